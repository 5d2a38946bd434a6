"""``python -m sipdialer``: the same as the ``sipdialer`` command."""

from __future__ import annotations

from sipdialer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
