"""The ``poststelle`` command: ``main`` (hub commands, the parser) and one module per group.

May import every room; nothing imports it (the script entry point is ``cli.main:main``).
"""
