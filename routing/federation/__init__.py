"""Federation between state hubs (territory, peer tables, cross-state cases), tenant isolation.

May import table, contracts and mappings; never hub, ops or cli.
"""
