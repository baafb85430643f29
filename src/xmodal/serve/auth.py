"""API keys with scopes: ``read`` < ``write`` < ``admin`` (a higher scope includes the lower ones).

Writes and admin calls always need a key; reads need one only when the config says
``open_reads = false``. Keys come in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .config import ApiKey, ServeConfig

_RANK = {"read": 0, "write": 1, "admin": 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key, or an anonymous client identified by its address (for rate limits)."""

    key: ApiKey | None
    client: str

    @property
    def label(self) -> str:
        return self.key.label if self.key is not None else f"anon:{self.client}"

    @property
    def actor(self) -> str:
        """The name the audit log records this caller's deletes under: ``api-key:NAME`` (or ``anon:ADDRESS``)."""
        return f"api-key:{self.key.label}" if self.key is not None else f"anon:{self.client}"

    @property
    def policy_name(self) -> str | None:
        """The name the guards policy knows this caller by (``[keys.NAME]``): its key's, None when anonymous."""
        return self.key.label if self.key is not None else None


def has_scope(key: ApiKey, scope: str) -> bool:
    """Whether ``key`` holds ``scope`` (or a higher one)."""
    return max(_RANK[s] for s in key.scopes) >= _RANK[scope]


class AuthError(Exception):
    """401 (no or unknown key) or 403 (key lacks the scope), with a message saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class KeyRing:
    """Looks keys up in constant time per key and checks scopes."""

    def __init__(self, config: ServeConfig) -> None:
        self._keys = config.keys
        self.open_reads = config.open_reads

    def find(self, presented: str) -> ApiKey | None:
        found = None
        for key in self._keys:  # compare with every key so timing says nothing about which matched
            if hmac.compare_digest(key.key.encode(), presented.encode()):
                found = key
        return found

    def authorize(self, presented: str | None, scope: str, client: str) -> Principal:
        """The caller if ``presented`` may use ``scope``; else raise :class:`AuthError`."""
        if not presented:
            if scope == "read" and self.open_reads:
                return Principal(None, client)
            raise AuthError(
                401, f"this call needs an API key with the {scope!r} scope: send 'Authorization: Bearer KEY'"
            )
        key = self.find(presented)
        if key is None:
            raise AuthError(401, "unknown API key: check the key, or ask the server admin for one")
        if not has_scope(key, scope):
            raise AuthError(403, f"this API key has scopes {sorted(key.scopes)}; this call needs {scope!r}")
        return Principal(key, client)


def check_index(key: ApiKey | None, index: str | None) -> None:
    """Refuse a key limited to some named indexes (:attr:`ApiKey.indexes`) a request to another one, or to the
    index at the root routes (``index`` None): :class:`AuthError` 403 naming the index. A caller without a key
    (open reads) and a key for every index pass."""
    if key is None or key.indexes is None:
        return
    allowed = ", ".join(sorted(key.indexes))
    if index is None:
        raise AuthError(403, f"this API key may use only the indexes {allowed}: call /indexes/NAME/... instead")
    if index not in key.indexes:
        raise AuthError(403, f"this API key may not use the index {index!r}; it may use only {allowed}")


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` (the former wins)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return authorization.strip()  # malformed: treated as a key, so it fails as unknown
    return x_api_key.strip() if x_api_key else None
