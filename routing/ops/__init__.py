"""The operator's tools: quarantine, DLQ, parked records, stats, the audit trail, counters
and Prometheus metrics, tracing.

May import streams, contracts and mappings; never hub, table, federation or cli.
"""
