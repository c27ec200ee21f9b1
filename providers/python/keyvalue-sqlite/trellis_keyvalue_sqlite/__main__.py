"""Runs the provider: ``python -m trellis_keyvalue_sqlite --db FILE``."""

from .provider import main

main()
