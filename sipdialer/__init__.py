"""sipdialer: a progressive outbound dialer that is its own SIP phone system."""

import os

# numpy's OpenBLAS starts one busy-waiting thread per core at import; the dialer uses
# numpy only for tables and tones, so those threads would just steal CPU from the
# media relay (measured by bench/media_relay.py). Set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
