"""Server settings: API keys, limits, CORS and logging, from a JSON or TOML file and the environment.

A config file looks like (TOML; JSON with the same structure works too)::

    open_reads = true                # reads without a key; writes and admin always need one
    max_body_bytes = 20_000_000
    max_pixels = 25_000_000
    max_image_bytes = 20_971_520     # one image file
    image_decodes = 0                # image queries decoded at once (0: one per CPU, at most 4)
    anonymous_inflight = 2           # requests one anonymous client address may have in flight
    anonymous_cpu = 0.1              # CPU-seconds per second its requests may take (0: not metered) ...
    anonymous_cpu_burst = 1.0        # ... up to this many at once
    anonymous_total_inflight = 1     # all anonymous addresses together: searches running at once ...
    anonymous_total_cpu = 0.1        # ... and CPU-seconds per second (by default one address's share)
    refusal_delay = 1.0              # seconds a 429 is held back (at most its Retry-After)
    keep_alive = 65                  # seconds an idle keep-alive connection stays open (above clients' own)
    cors_origins = ["http://localhost:3000"]
    allowed_hosts = ["search.example.com"]   # Host names clients use besides localhost and the bound address
    backup_dir = "/var/backups/xmodal"       # where POST /backup writes (none: the route is off)

    [export_provenance]              # thumbnails and image downloads watermarked and C2PA-signed (default: off)
    watermark = true                 # xmodal.guards.provenance.export has every key
    c2pa_cert = "/etc/xmodal/c2pa-chain.pem"
    c2pa_key = "/etc/xmodal/c2pa-key.pem"

    encoder = "http-embeddings"      # encoder of an index the server creates (as --encoder; default offline) ...
    [encoder_options]                # ... and its options (as --encoder-option; keys: better in the environment)
    url = "http://127.0.0.1:8000/v1"
    model = "BAAI/bge-small-en-v1.5"

    [indexes]                        # named indexes, served under /indexes/{name}/ (xmodal serve --index-name)
    docs = "/srv/xmodal/docs"
    pics = { path = "/srv/xmodal/pics", encoder = "open_clip", encoder_options = { model = "ViT-B-32" } }

    [[keys]]
    key = "s3cret-writer"
    scopes = ["read", "write"]
    rate = 50.0                      # tokens per second (a request costs 1, a search more), burst below
    burst = 100
    indexes = ["docs"]               # optional: the named indexes this key may use (others: 403)

The encoder settings choose the encoder of an index that does not exist yet and pass options an existing
index does not record (a device, a batch size, a key); an existing index keeps its own encoder, and one
named otherwise is refused (``xmodal.settings``). A named index's own ``encoder`` wins over the command
line's ``--encoder``, which wins over the top-level one; its ``encoder_options`` are added to theirs when it
names no encoder of its own, else they are its only options.

``XMODAL_API_KEYS`` adds keys from the environment: ``KEY:read+write,KEY2:admin`` (a key without
``:scopes`` gets ``read``); ``KEY:read@docs+pics`` limits a key to the named indexes ``docs`` and ``pics``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SCOPES = ("read", "write", "admin")
INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
INDEX_NAME_RULE = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
ENV_KEYS = "XMODAL_API_KEYS"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key, what it may do and its own rate limit (``None``: the server default)."""

    key: str
    scopes: frozenset[str]
    name: str = ""
    rate: float | None = None
    burst: int | None = None
    #: the named indexes this key may use (None: every index, the root one included); a key limited to some
    #: gets 403 naming any other, and the root routes' index refuses it
    indexes: frozenset[str] | None = None

    @property
    def label(self) -> str:
        """A name safe to log (never the key itself)."""
        return self.name or "key-" + hashlib.sha256(self.key.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    """An encoder by registry name (None: inherited) and its options, from a server config."""

    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything the REST app needs besides the engine."""

    keys: tuple[ApiKey, ...] = ()
    open_reads: bool = True
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_image_bytes: int = 20 * 1024 * 1024  # one image's file (a query's, or an item's over REST)
    image_decodes: int = 0  # image queries decoded at once; 0: one per CPU, at most 4
    max_batch: int = 1000
    rate: float = 200.0  # tokens/s per key (or client address when anonymous); a request costs 1, a search more
    burst: int = 400
    # An anonymous client address (xmodal.serve.admission): requests in flight at once, and the CPU its requests'
    # work may take, in CPU-seconds per second (0: not metered) up to a burst of CPU-seconds
    anonymous_inflight: int = 2
    anonymous_cpu: float = 0.1
    anonymous_cpu_burst: float = 1.0
    anonymous_total_inflight: int = 1  # ... and all anonymous addresses together
    # by default all anonymous addresses together get one address's share: with 0.25, 16 addresses (a botnet) took
    # 2.4 times one address's CPU, and stretched the keyed clients' tail (docs/benchmarks.md, issue 13)
    anonymous_total_cpu: float = 0.1
    refusal_delay: float = (
        1.0  # seconds a 429 is held back (at most its Retry-After): a tar pit for clients that ignore it
    )
    # Seconds an idle keep-alive connection stays open. Longer than the idle expiry of the clients and proxies in
    # front (httpx and this package's client: 5 s; AWS load balancers: 60 s), so the client always drops an idle
    # connection first: a server that closes one as the client reuses it fails that request (uvicorn's 5 s met
    # httpx's 5 s about once in 3,000 requests under load, docs/benchmarks.md)
    keep_alive: int = 65
    cors_origins: tuple[str, ...] = ()
    thumbnail_size: int = 256
    thumbnail_cache: int = 512  # thumbnails kept in memory
    write_queue: int = 1024
    log_requests: bool = True
    mcp: bool = True  # mount the MCP endpoint at /mcp (when the mcp package is installed)
    host: str = "127.0.0.1"  # the address served
    # More Host names clients may use (REST, page and MCP; others get 421) besides localhost, 127.0.0.1, ::1
    # and the bound address; bound to 0.0.0.0 / :: with none given, any Host; "*": any (xmodal.serve.hosts)
    allowed_hosts: tuple[str, ...] = ()
    #: Named indexes (name, folder) served under /indexes/{name}/ (xmodal.serve.indexes)
    indexes: tuple[tuple[str, str], ...] = ()
    #: The folder POST /backup writes backups into (None: the route answers 501)
    backup_dir: str | None = None
    #: The folder the MCP tool add_items reads files from by path (None: base64 only; xmodal.serve.mcp_add)
    mcp_media_folder: str | None = None
    #: The encoder (registry name) and options of an index the server creates (xmodal.cli.serve)
    encoder: str | None = None
    encoder_options: Mapping[str, Any] = field(default_factory=dict)
    #: A named index's own encoder choice, from its table in [indexes]
    index_encoders: tuple[tuple[str, EncoderChoice], ...] = ()
    #: Watermark and C2PA signing of exported images (xmodal.guards.provenance.export; empty: off)
    export_provenance: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, *, env: dict[str, str] | None = None) -> ServeConfig:
        """Read ``path`` (``.toml`` or ``.json``) if given, then add keys from ``XMODAL_API_KEYS``."""
        data: dict[str, Any] = _read(Path(path)) if path is not None else {}
        config = cls.from_dict(data)
        env_keys = (env if env is not None else dict(os.environ)).get(ENV_KEYS, "")
        return replace(config, keys=config.keys + parse_env_keys(env_keys)) if env_keys else config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServeConfig:
        known = {f.name for f in fields(cls)} - {"index_encoders"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown server setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        values["keys"] = tuple(_parse_key(i, k) for i, k in enumerate(data.get("keys", [])))
        values["cors_origins"] = tuple(data.get("cors_origins", ()))
        values["allowed_hosts"] = check_hosts(data.get("allowed_hosts", ()), "allowed_hosts")
        values["indexes"] = check_indexes(data.get("indexes", {}), "indexes")
        values["index_encoders"] = index_encoders(data.get("indexes", {}), "indexes")
        choice = check_encoder(data.get("encoder"), data.get("encoder_options", {}), "")
        values["encoder"], values["encoder_options"] = choice.name, choice.options
        backup_dir = data.get("backup_dir")
        if backup_dir is not None and (not isinstance(backup_dir, str) or not Path(backup_dir).is_absolute()):
            raise ConfigError(f"server setting backup_dir must be an absolute folder path, got {backup_dir!r}")
        media_folder = data.get("mcp_media_folder")
        if media_folder is not None and (not isinstance(media_folder, str) or not Path(media_folder).is_absolute()):
            raise ConfigError(f"server setting mcp_media_folder must be an absolute folder path, got {media_folder!r}")
        positive = (
            "max_body_bytes",
            "max_pixels",
            "max_image_bytes",
            "max_batch",
            "burst",
            "thumbnail_size",
            "keep_alive",
        )
        for name in (*positive, "thumbnail_cache"):
            if name in values and (not isinstance(values[name], int) or values[name] < 1):
                raise ConfigError(f"server setting {name} must be a positive integer, got {values[name]!r}")
        for name in ("anonymous_inflight", "anonymous_total_inflight"):
            inflight = values.get(name, 1)
            if isinstance(inflight, bool) or not isinstance(inflight, int) or inflight < 1:
                raise ConfigError(f"server setting {name} must be a positive integer, got {inflight!r}")
        for name in ("anonymous_cpu", "anonymous_total_cpu", "anonymous_cpu_burst", "refusal_delay"):
            value = values.get(name, 1.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"server setting {name} must be a number of seconds, 0 or more, got {value!r}")
        metered = values.get("anonymous_cpu", 1.0) > 0 or values.get("anonymous_total_cpu", 1.0) > 0
        if metered and values.get("anonymous_cpu_burst", 1.0) <= 0:
            raise ConfigError("server setting anonymous_cpu_burst must be above 0 while CPU is metered (e.g. 1.0)")
        if "export_provenance" in values:
            from ..guards.provenance.export import ExportSettings

            ExportSettings.parse(values["export_provenance"])  # a ConfigError naming the key and the fix
        decodes = values.get("image_decodes", 0)
        if isinstance(decodes, bool) or not isinstance(decodes, int) or decodes < 0:
            raise ConfigError(f"server setting image_decodes must be 0 (one per CPU) or more, got {decodes!r}")
        return cls(**values)

    def with_keys(self, *keys: ApiKey) -> ServeConfig:
        return replace(self, keys=self.keys + keys)


def check_hosts(hosts: Any, where: str) -> tuple[str, ...]:
    """Allowed host entries (``name``, ``name:port``, ``[v6]:port`` or ``*``), or a ConfigError naming ``where``."""
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise ConfigError(f"server setting {where} must be a list of host names, got {hosts!r}")
    for host in hosts:
        if not isinstance(host, str) or not host.strip() or any(c in host.strip() for c in "/@ \t,"):
            raise ConfigError(
                f"{where}: {host!r} is not a host name; give a name or address as clients write it in the URL, "
                "without scheme or path (example.com, example.com:8443, 10.0.0.5, [::1]), or * for any"
            )
    return tuple(host.strip() for host in hosts)


def check_index_name(name: object, where: str) -> str:
    """An index name usable in a URL path, or a :class:`ConfigError` naming ``where`` and the rule."""
    if not isinstance(name, str) or not INDEX_NAME.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not an index name; use {INDEX_NAME_RULE} (e.g. docs)")
    return name


def check_encoder(name: Any, options: Any, where: str) -> EncoderChoice:
    """An encoder choice of the config (``where``: "" at the top level, or ``indexes.NAME.``)."""
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f'server setting {where}encoder must be an encoder name (e.g. "offline"), got {name!r}')
    if not isinstance(options, dict) or not all(isinstance(k, str) and k.strip() for k in options):
        raise ConfigError(
            f'server setting {where}encoder_options must be a table of option = value, e.g. {{model = "ViT-B-32"}}'
        )
    return EncoderChoice(name.strip() if isinstance(name, str) else None, dict(options))


INDEX_TABLE_KEYS = ("path", "encoder", "encoder_options")


def index_encoders(indexes: Any, where: str) -> tuple[tuple[str, EncoderChoice], ...]:
    """The encoder choices of the named indexes given as tables (``{path = …, encoder = …, encoder_options = …}``)."""
    if not isinstance(indexes, dict):
        return ()
    return tuple(
        (name, check_encoder(spec.get("encoder"), spec.get("encoder_options", {}), f"{where}.{name}."))
        for name, spec in indexes.items()
        if isinstance(spec, dict)
    )


def _index_folder(spec: Any, where: str) -> Any:
    """The folder of a named index given as a path string or as a table with ``path``."""
    if not isinstance(spec, dict):
        return spec
    unknown = sorted(set(spec) - set(INDEX_TABLE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; an index table takes {', '.join(INDEX_TABLE_KEYS)}")
    return spec.get("path")


def check_indexes(indexes: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Named index folders (a table of name = folder, or name = {path = folder, encoder = …}), each name and
    folder given once."""
    if not isinstance(indexes, dict):
        raise ConfigError(f'server setting {where} must be a table of name = folder, e.g. {{docs = "/srv/docs"}}')
    out, folders = [], set[str]()
    for name, spec in indexes.items():
        check_index_name(name, where)
        folder = _index_folder(spec, f"{where}.{name}")
        if not isinstance(folder, str) or not folder.strip():
            raise ConfigError(f"{where}.{name}: give the index folder as a path string, got {folder!r}")
        resolved = str(Path(folder).resolve())
        if resolved in folders:
            raise ConfigError(f"{where}.{name}: the folder {folder} is already served under another name")
        folders.add(resolved)
        out.append((name, folder))
    return tuple(out)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"server config {path} not found; give an existing .toml or .json file")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"server config {path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"server config {path} must hold an object of settings")
    return data


def _parse_key(index: int, spec: Any) -> ApiKey:
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str) or len(spec["key"]) < 8:
        raise ConfigError(f"keys[{index}] needs a 'key' string of at least 8 characters")
    scopes = frozenset(spec.get("scopes", ["read"]))
    _check_scopes(scopes, f"keys[{index}].scopes")
    rate, burst = spec.get("rate"), spec.get("burst")
    indexes = spec.get("indexes")
    if indexes is not None:
        if isinstance(indexes, str) or not isinstance(indexes, list) or not indexes:
            raise ConfigError(f'keys[{index}].indexes must be a list of index names, e.g. ["docs"] (leave it out: all)')
        indexes = frozenset(check_index_name(name, f"keys[{index}].indexes") for name in indexes)
    return ApiKey(
        spec["key"],
        scopes,
        str(spec.get("name", "")),
        float(rate) if rate else None,
        int(burst) if burst else None,
        indexes,
    )


def parse_env_keys(text: str) -> tuple[ApiKey, ...]:
    """Keys from ``KEY:read+write,KEY2:admin``; ``KEY:read@docs+pics`` limits a key to those named indexes."""
    keys = []
    for i, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key, _, spec = part.partition(":")
        scope_text, at, index_text = spec.partition("@")
        scopes = frozenset(s for s in scope_text.replace("+", " ").split() if s) or frozenset({"read"})
        _check_scopes(scopes, f"{ENV_KEYS}[{i}]")
        if len(key) < 8:
            raise ConfigError(f"{ENV_KEYS}[{i}]: keys need at least 8 characters")
        names = [n for n in index_text.replace("+", " ").split() if n]
        if at and not names:
            raise ConfigError(f"{ENV_KEYS}[{i}]: name the indexes after '@' (KEY:read@docs+pics), or drop the '@'")
        indexes = frozenset(check_index_name(n, f"{ENV_KEYS}[{i}]") for n in names) if at else None
        keys.append(ApiKey(key, scopes, f"env-{i}", indexes=indexes))
    return tuple(keys)


def _check_scopes(scopes: frozenset[str], where: str) -> None:
    bad = sorted(scopes - set(SCOPES))
    if bad:
        raise ConfigError(f"{where}: unknown scope(s) {bad}; use {', '.join(SCOPES)}")
