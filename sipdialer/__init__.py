"""sipdialer: a progressive outbound dialer that is its own SIP phone system."""

__version__ = "0.1.0"
