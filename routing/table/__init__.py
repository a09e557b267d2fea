"""The routing table: rules, resolver, KV store, YAML/CSV files, generator, ``[[routes]]``.

May import streams (the bucket's name), contracts and mappings; never hub, ops, federation or cli.
"""
