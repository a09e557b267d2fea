"""The fault suite: real nats-server and ``poststelle run`` processes under steady load, one
fault per scenario, each ending with the conservation balance taken from outside the hub.

``python -m chaos [--short] [--only NAME]``; ``make chaos`` and ``make chaos-short``.
"""

__all__: list[str] = []
