"""poststelle.contracts — what the hub speaks: CaseEvent, registry, validation, the wire contract.

May import mappings only; adapters and routing build on it (docs/architecture.md).
"""

if __name__ != "poststelle.contracts":
    # The charter installs this folder only as poststelle.contracts; importing it bare from a
    # checkout would create a second, divergent copy of every module-level registry.
    raise ImportError("import this package as 'poststelle.contracts', not 'contracts'")
