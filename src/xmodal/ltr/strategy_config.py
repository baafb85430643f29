"""Which strategies an index's learned pipeline uses: ``<index>/ltr/strategies.json``.

The file holds the registry names (or dotted paths) in order, ``{"format_version": 1, "strategies": [...]}``;
without it the pipeline uses :data:`~xmodal.ltr.strategies.registry.DEFAULT_STRATEGIES`. The CLI
(``xmodal ltr strategies add|remove|set|list``) edits it without opening the index, so a strategy that no
longer loads can still be removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import StorageError, ValidationError
from ..store.files import write_json
from .strategies.registry import DEFAULT_STRATEGIES

FILE = "strategies.json"
FORMAT = 1


def check(names: Sequence[str]) -> tuple[str, ...]:
    """A valid list of strategy names: non-empty strings, no repeats, at least one."""
    out = tuple(names)
    if not out or not all(isinstance(n, str) and n.strip() == n and n for n in out):
        raise ValidationError("strategies", f"must be a non-empty list of strategy names, got {list(out)!r}")
    if len(set(out)) != len(out):
        raise ValidationError("strategies", f"names a strategy twice: {list(out)!r}", "list each strategy once")
    return out


def saved(folder: Path) -> tuple[str, ...] | None:
    """The strategies saved for the pipeline in ``folder`` (``<index>/ltr``), or None when none are."""
    path = folder / FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        names = data["strategies"] if isinstance(data, dict) else None
        if data.get("format_version") != FORMAT or not isinstance(names, list):
            raise ValueError(f"format {data.get('format_version')!r}, this xmodal reads {FORMAT}")
        return check(names)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise StorageError(
            f"{path}: unreadable strategy list ({exc}); fix it or run `xmodal ltr strategies reset`"
        ) from exc


def configured(folder: Path) -> tuple[str, ...]:
    """The saved strategies, else the defaults."""
    return saved(folder) or DEFAULT_STRATEGIES


def save(folder: Path, names: Sequence[str]) -> None:
    """Write the strategy list atomically."""
    write_json(folder / FILE, {"format_version": FORMAT, "strategies": list(check(names))}, indent=2)


def reset(folder: Path) -> None:
    """Back to the defaults."""
    (folder / FILE).unlink(missing_ok=True)
