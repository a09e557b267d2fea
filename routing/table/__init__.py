"""The routing table: rules, resolver, KV store, YAML/CSV files, generator, ``[[routes]]``.

May import contracts and mappings only; never hub, ops, federation or cli.
"""
