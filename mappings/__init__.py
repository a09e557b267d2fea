"""poststelle.mappings — see README.md."""

if __name__ != "poststelle.mappings":
    # The charter installs this folder only as poststelle.mappings; importing it bare from a
    # checkout would create a second, divergent copy of every module-level registry.
    raise ImportError("import this package as 'poststelle.mappings', not 'mappings'")
