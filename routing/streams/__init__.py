"""What the hub keeps in NATS: stream, bucket and consumer names (topology), the claim check.

May import contracts and mappings only; every other room of routing may import it.
"""
