"""Small file-system helpers for derived data written as whole folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def fresh_dir(directory: Path) -> Path:
    """An empty sibling folder ``<name>.tmp`` to write a new version of ``directory`` into."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def swap_dir(tmp: Path, directory: Path) -> None:
    """Put the folder ``tmp`` in the place of ``directory``; a crash leaves the old or the new one."""
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
