"""A deployment's exploration settings: ``<index>/ltr/exploration.json``.

The file holds ``{"format_version": 1, "budget": 0.2, "calls": "identified", "top": 4}`` (see
:class:`~xmodal.ltr.exploration.ExploreSettings`); without it the pipeline uses the defaults. The CLI
(``xmodal ltr explore show|set|reset``) edits it; a change takes effect when the index is next opened.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import StorageError, XmodalError
from ..store.files import write_json
from .exploration import ExploreSettings

FILE = "exploration.json"
FORMAT = 1


def saved(folder: Path) -> ExploreSettings | None:
    """The settings saved in ``folder`` (``<index>/ltr``), or None when none are."""
    path = folder / FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format_version") != FORMAT:
            raise ValueError(f"format {data.get('format_version') if isinstance(data, dict) else None!r}")
        return ExploreSettings(**{k: v for k, v in data.items() if k != "format_version"})
    except (OSError, ValueError, TypeError, XmodalError) as exc:
        raise StorageError(
            f"{path}: unreadable exploration settings ({exc}); fix it or run `xmodal ltr explore reset`"
        ) from exc


def configured(folder: Path) -> ExploreSettings:
    """The saved settings, else the defaults."""
    return saved(folder) or ExploreSettings()


def save(folder: Path, settings: ExploreSettings) -> None:
    """Write the settings atomically."""
    data = {"format_version": FORMAT, "budget": settings.budget, "calls": settings.calls, "top": settings.top}
    write_json(folder / FILE, data, indent=2)


def reset(folder: Path) -> None:
    """Back to the defaults."""
    (folder / FILE).unlink(missing_ok=True)
