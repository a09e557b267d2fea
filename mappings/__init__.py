"""poststelle.mappings — the declarative XÖV ⇄ CaseEvent mappings and the engine running them.

May import nothing else of the house: it is the bottom floor (docs/architecture.md).
"""

if __name__ != "poststelle.mappings":
    # The charter installs this folder only as poststelle.mappings; importing it bare from a
    # checkout would create a second, divergent copy of every module-level registry.
    raise ImportError("import this package as 'poststelle.mappings', not 'mappings'")
