"""The sans-IO SIP stack: bytes and ``now`` in, bytes and events out (DESIGN.md rule 1)."""
