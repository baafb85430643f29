"""``POST /backup``: back the served index up into a new folder on the server, while it keeps serving.

An admin call: it writes where the body says on the server's disk. The backup runs on a worker thread, not
on the write queue, so writes go on meanwhile (:mod:`xmodal.store.backup` keeps it consistent). There is no
restore route: an index is never replaced while a server has it open (``xmodal restore`` with the server
stopped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import ValidationError
from .auth import Principal
from .deps import require, server
from .errors import responses

router = APIRouter(tags=["service"])
AdminKey = Annotated[Principal, Depends(require("admin"))]


class BackupRequest(BaseModel):
    """Where to write the backup."""

    model_config = ConfigDict(extra="forbid")
    destination: str = Field(
        min_length=1, max_length=4096, description="an absolute path on the server that does not exist yet"
    )


class BackupResponse(BaseModel):
    """What was backed up (the manifest's summary)."""

    destination: str
    items: int
    store_seq: int = Field(description="the store's last change in the backup: every write acknowledged before")
    files: int
    bytes: int
    seconds: float
    missing_media: list[str]


@router.post("/backup", response_model=BackupResponse, responses=responses(401, 403, 422, 429, 507))
async def backup(request: Request, body: BackupRequest, _: AdminKey) -> BackupResponse:
    """Back up the index (store, media, derived state, and a manifest of checksums) into the new folder
    ``destination``. Every write acknowledged before this call is in it; writes go on meanwhile. Restore it
    with ``xmodal --index DIR restore DESTINATION`` while no server has DIR open."""
    destination = Path(body.destination)
    if not destination.is_absolute():
        raise ValidationError(
            "destination",
            f"{body.destination!r} is not an absolute path",
            "give the full path on the server, e.g. /var/backups/xmodal-2024-06-01",
        )
    manifest = await run_in_threadpool(server(request).engine.backup, destination)
    return BackupResponse(destination=str(destination), **manifest.summary())
