"""Feedback: durable impression and event logs, and off-policy evaluation over them."""

from __future__ import annotations

from .log import EVENT_TYPES, Event, FeedbackLog, Impression

__all__ = ["EVENT_TYPES", "Event", "FeedbackLog", "Impression"]
