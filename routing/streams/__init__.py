"""What the hub keeps in NATS: stream, bucket and consumer names, claim checks, originals.

May import contracts and mappings only; every other room of routing may import it.
"""
