"""One resolver for every pluggable part: built-in names, entry points, then ``"package.module:Name"``.

Each kind of part (encoders, index kinds, backends, strategies, modes, media loaders, extensions) has
one :class:`Registry`. A name resolves, in order, to

1. a part registered in this process (:meth:`Registry.register`; built-ins register lazily as
   ``"module:attr"`` strings so importing xmodal imports no optional dependency),
2. an entry point of the group ``xmodal.<group>`` of any installed distribution (how a third-party
   package makes its part visible to the CLI and the server without any code running first),
3. a dotted path ``"package.module:Name"`` (or ``"package.module.Name"``).

The resolved object is checked against the registry's protocol when one is given. An index records
the names it was built with, so an index built with a third-party part reopens in every adapter as
long as that part resolves. txtai's ``scoring/factory.py`` is the model for the name-or-path rule.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")

ENTRY_POINT_PREFIX = "xmodal."


class Registry(Generic[T]):
    """Named parts of one kind. ``check`` validates a resolved object (raise ``TypeError`` to refuse it)."""

    def __init__(self, group: str, what: str, check: Callable[[Any], bool] | None = None) -> None:
        self.group = group
        self.what = what
        self._check = check
        self._parts: dict[str, T | str] = {}

    @property
    def entry_point_group(self) -> str:
        return ENTRY_POINT_PREFIX + self.group

    def register(self, name: str, part: T | str) -> None:
        """Register a part, or a lazy ``"module:attr"`` reference to it, under ``name``."""
        self._parts[name] = part

    def unregister(self, name: str) -> None:
        self._parts.pop(name, None)

    def names(self) -> list[str]:
        """Every name that resolves without a dotted path: registered ones and entry points."""
        return sorted(set(self._parts) | {ep.name for ep in self._entry_points()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._parts or any(ep.name == name for ep in self._entry_points()))

    def resolve(self, name: str) -> T:
        """The part called ``name``; a :class:`ConfigError` naming what to install when it is missing."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.what} name must be a non-empty string, got {name!r}")
        part = self._parts.get(name)
        if part is None:
            part = self._from_entry_point(name)
        if part is None:
            if ":" not in name and "." not in name:
                raise ConfigError(
                    f"unknown {self.what} {name!r}; available: {', '.join(self.names()) or 'none'} "
                    f"(or a dotted path 'package.module:Name', or a package exposing the entry point "
                    f"group {self.entry_point_group!r})"
                )
            part = name
        loaded = self._load(name, part) if isinstance(part, str) else part
        self._parts[name] = loaded
        return loaded

    # -- internals --------------------------------------------------------------------------------
    def _entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return list(importlib.metadata.entry_points(group=self.entry_point_group))

    def _from_entry_point(self, name: str) -> str | None:
        for ep in self._entry_points():
            if ep.name == name:
                return str(ep.value)
        return None

    def _load(self, name: str, reference: str) -> T:
        module_name, attr = _split(reference)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            package = (exc.name or module_name).split(".")[0]
            raise ConfigError(
                f"{self.what} {name!r} needs the module {module_name!r}, which is not installed; "
                f"install the package that provides {package!r} (pip install {package})"
            ) from exc
        try:
            loaded: Any = getattr(module, attr)
        except AttributeError:
            raise ConfigError(f"{self.what} {name!r}: module {module_name!r} has no {attr!r}") from None
        if self._check is not None and not self._check(loaded):
            raise ConfigError(f"{self.what} {name!r} ({reference}) does not implement the {self.what} protocol")
        result: T = loaded
        return result


def _split(reference: str) -> tuple[str, str]:
    """``"pkg.mod:Name"`` or ``"pkg.mod.Name"`` → (module, attribute)."""
    if ":" in reference:
        module, _, attr = reference.partition(":")
    else:
        module, _, attr = reference.rpartition(".")
    if not module or not attr:
        raise ConfigError(f"{reference!r} is not a dotted path; write it as 'package.module:Name'")
    return module, attr


def dotted_path(obj: object) -> str:
    """``"package.module:Name"`` of a class or function (how an index records a part it has no name for)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ConfigError(f"{obj!r} has no importable dotted path; register it by name instead")
    return f"{module}:{qualname}"
