"""The hub's runtime: hub, routing core, intake, delivery, replies, wiring, NATS, config, demo,
worker processes.

May import table, federation, ops, streams, adapters, contracts, mappings; never cli.
"""
