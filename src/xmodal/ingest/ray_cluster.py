"""Connecting to a Ray cluster for a distributed add: an existing one by address, or a local one started
here and bound to 127.0.0.1 only.

By default Ray binds its servers to every interface and the machine's external address; a local cluster is
started with Ray's multi-node switch off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which Ray reads when
imported, so it is set in the imported module too) and the node address ``127.0.0.1``, so nothing of it
listens beyond this machine (``tests/test_ray_ingest.py`` checks every listening socket). A connection
already made by the caller (``ray.init`` before the add) is used as is and left open.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError, MissingDependency

LOCAL = frozenset({"local", "ray://local"})
LOOPBACK = "127.0.0.1"
CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # off: Ray stays on 127.0.0.1


def ray_module() -> Any:
    """The ``ray`` package, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependency("ray[data]", "ray") from exc
    return ray


@contextlib.contextmanager
def connected(address: str | None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """``with connected("ray://HOST:10001") as ray:`` — the ``ray`` module connected to the cluster at
    ``address`` (``ray://HOST:PORT`` through Ray Client, ``auto`` for the cluster this machine belongs to),
    or to a new local cluster of ``num_cpus`` CPUs on 127.0.0.1 for ``local``, ``ray://local`` or ``None``;
    disconnected (a local cluster stopped) afterwards. A connection the caller made already is reused."""
    if address is not None and address not in LOCAL:
        check_address(address)
    ray = ray_module()
    if ray.is_initialized():
        yield ray
        return
    if address is None or address in LOCAL:
        start_local(ray, num_cpus=num_cpus)
    else:
        _connect(ray, address)
    try:
        yield ray
    finally:
        ray.shutdown()


def start_local(ray: Any, *, num_cpus: int | None = None) -> None:
    """Start a one-node Ray cluster on 127.0.0.1 (no dashboard, workers' logs kept out of this process's)."""
    os.environ[CLUSTER_SWITCH] = "0"  # for Ray processes started from here
    # Ray reads the switch once, when imported: set after `import ray`, it binds to every interface
    # (checked on Ray 2.60: the GCS, raylet and workers on `::`, an agent on the external address)
    constants = importlib.import_module("ray._private.ray_constants")
    setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010 (a private constant: no typed attribute)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address=LOOPBACK,
        log_to_driver=False,
        configure_logging=False,
    )


def check_address(address: str) -> None:
    """Refuse what is not a Ray address (before anything connects)."""
    if not (address == "auto" or address.startswith("ray://")):
        raise ConfigError(
            f"--cluster {address!r} is not a Ray address: give ray://HOST:PORT (Ray Client, port 10001 by default), "
            "auto (the cluster this machine belongs to) or local (a one-node cluster on 127.0.0.1)"
        )


def _connect(ray: Any, address: str) -> None:
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot connect to the Ray cluster at {address} ({exc}): check the address and that the cluster "
            "runs (`ray status` on its head node)"
        ) from exc
