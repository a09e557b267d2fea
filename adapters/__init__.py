"""poststelle.adapters — the adapter SDK (base, registry, testing) and the adapters themselves.

May import contracts and mappings; never routing, the hub's internals (docs/architecture.md).
"""

if __name__ != "poststelle.adapters":
    # The charter installs this folder only as poststelle.adapters; importing it bare from a
    # checkout would create a second, divergent copy of every module-level registry.
    raise ImportError("import this package as 'poststelle.adapters', not 'adapters'")
