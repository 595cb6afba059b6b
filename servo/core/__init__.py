"""PURE: the servo's models, protocol constants and rules. No I/O, no clock, no environment:
this package imports only itself (tests/unit/test_layout.py keeps it so)."""
