"""poststelle.contracts — see README.md."""

if __name__ != "poststelle.contracts":
    # The charter installs this folder only as poststelle.contracts; importing it bare from a
    # checkout would create a second, divergent copy of every module-level registry.
    raise ImportError("import this package as 'poststelle.contracts', not 'contracts'")
