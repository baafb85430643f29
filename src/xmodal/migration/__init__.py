"""Moving an index to another encoder while it serves: ``xmodal reindex`` (see :mod:`.reindex`)."""

from __future__ import annotations

from .reindex import Reindex

__all__ = ["Reindex"]
