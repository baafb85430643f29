"""``POST /backup``: back the served index up into a new folder on the server, while it keeps serving; and
``GET /audit``, the admin audit log (who deleted what, when).

An admin call, and only where the server config names a ``backup_dir``: the body gives the new backup's name,
never a path, so no key can make the server write anywhere else. The backup runs on a worker thread, not on
the write queue, so writes go on meanwhile (:mod:`xmodal.store.backup` keeps it consistent; for a
``postgres://`` index, :mod:`xmodal.store.postgres_backup`). There is no restore route: an index is never
replaced while a server has it open (``xmodal restore`` with the server stopped).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import ValidationError
from .auth import Principal
from .deps import require, server
from .errors import ApiError, responses

router = APIRouter(tags=["service"])
AdminKey = Annotated[Principal, Depends(require("admin"))]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class BackupRequest(BaseModel):
    """The new backup's name: a folder created in the server's ``backup_dir``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        min_length=1, max_length=128, description="letters, digits, '_', '.' or '-' (e.g. docs-2024-06-01)"
    )


class BackupResponse(BaseModel):
    """What was backed up (the manifest's summary)."""

    name: str
    path: str = Field(description="the backup folder on the server (for `xmodal restore`)")
    items: int
    store_seq: int = Field(description="the store's last change in the backup: every write acknowledged before")
    files: int
    bytes: int
    seconds: float
    missing_media: list[str]


@router.post("/backup", response_model=BackupResponse, responses=responses(400, 401, 403, 422, 429, 507))
async def backup(request: Request, body: BackupRequest, _: AdminKey) -> BackupResponse:
    """Back up the index (store, media, derived state, and a manifest of checksums) into the new folder
    ``name`` of the server's ``backup_dir``. Every write acknowledged before this call is in it; writes go on
    meanwhile. Restore it with ``xmodal --index DIR restore PATH`` while no server has DIR open. A server on a
    ``postgres://`` index writes its schema's dump and its media (folder or bucket) instead; restore that with
    ``xmodal --index postgres://… restore PATH``."""
    state = server(request)
    if state.config.backup_dir is None:
        raise ApiError(
            403,
            "this server takes no backups over HTTP (no backup folder is configured)",
            "backup_dir",
            "set backup_dir in the server config (--config FILE), or run `xmodal --index DIR backup DEST` on the "
            "server",
        )
    if not NAME.fullmatch(body.name):
        raise ValidationError(
            "name", f"{body.name!r} is not a backup name", "use letters, digits, '_', '.' or '-', e.g. docs-2024-06-01"
        )
    destination = Path(state.config.backup_dir) / body.name
    manifest = await run_in_threadpool(state.engine.backup, destination)
    return BackupResponse(name=body.name, path=str(destination), **manifest.summary())


class AuditResponse(BaseModel):
    """The newest entries of the admin audit log, newest first: who (``api-key:NAME``, ``cli:USER``,
    ``library:USER``) deleted which items (the ids asked for, every id deleted with the segments), when."""

    entries: list[dict[str, Any]]


@router.get("/audit", response_model=AuditResponse, responses=responses(401, 403, 429))
def audit(request: Request, _: AdminKey, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditResponse:
    """The admin audit log of the index (deletes: actor, ids, options, time); needs the admin scope."""
    return AuditResponse(entries=server(request).engine.audit_log(limit))
