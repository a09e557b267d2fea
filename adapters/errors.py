"""The two ways a delivery can fail, and what the hub does about each."""

from __future__ import annotations

__all__ = ["DeliveryError", "PermanentDeliveryError", "RetryableDeliveryError"]


class DeliveryError(Exception):
    """Base class: a back end did not take the event."""


class RetryableDeliveryError(DeliveryError):
    """Try again later (timeouts, 5xx, a full disk): the hub naks with a growing delay."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help (4xx, a rejected payload): the event goes to ``DLQ``."""
