"""The guards' saved state: one JSON file per screen, replaced whole (never left half written)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and an atomic rename; on any failure (a full
    disk) no partial file is left behind and the error is raised."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
