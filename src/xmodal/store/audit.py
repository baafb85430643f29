"""The admin audit log: who deleted what and when, in the store's own ``audit_log`` table.

Each delete appends one entry in the delete's own transaction (an acknowledged delete is always in the log):
the actor (an API key's name for REST and MCP, ``cli:<user>`` for the command line, ``library:<user>`` for a
program), the action, the ids asked for and every id deleted (segments included), the options, and the time.
Only ids are kept: never an item's text, media or vectors.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    asked TEXT NOT NULL,
    deleted TEXT NOT NULL,
    options TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What an admin action records besides the ids: who, which action, with which options, when."""

    actor: str
    action: str = "delete"
    options: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


def record(db: sqlite3.Connection, entry: AuditEntry, asked: Sequence[str], deleted: Sequence[str]) -> None:
    """Append ``entry`` (inside the caller's transaction)."""
    db.execute(
        "INSERT INTO audit_log (at, actor, action, asked, deleted, options) VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry.at,
            entry.actor,
            entry.action,
            json.dumps(list(asked)),
            json.dumps(list(deleted)),
            json.dumps(dict(entry.options), sort_keys=True),
        ),
    )


def entries(db: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first."""
    rows = db.execute(
        "SELECT seq, at, actor, action, asked, deleted, options FROM audit_log ORDER BY seq DESC LIMIT ?", (limit,)
    ).fetchall()
    return [
        {
            "seq": int(seq),
            "at": float(at),
            "actor": str(actor),
            "action": str(action),
            "asked": json.loads(asked),
            "deleted": json.loads(deleted),
            "options": json.loads(options),
        }
        for seq, at, actor, action, asked, deleted, options in rows
    ]
