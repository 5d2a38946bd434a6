"""Test-suite root.

Its presence makes pytest (rootdir-less "prepend" import mode) put ``tests/`` on
``sys.path``, so test modules anywhere below can ``from helpers import load, crlf``.
"""
