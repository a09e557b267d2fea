"""poststelle.routing — the hub, in rooms: hub, table, federation, ops, streams and cli.

May import nothing itself (it holds no code); each room says which rooms it may import.
"""

if __name__ != "poststelle.routing":
    # The charter installs this folder only as poststelle.routing; importing it bare from a
    # checkout would create a second, divergent copy of every module-level registry.
    raise ImportError("import this package as 'poststelle.routing', not 'routing'")
