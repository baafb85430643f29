"""A local Milvus 2.3.5 standalone server (the real Go/C++ server of the PyPI package ``milvus``) for
tests, benchmarks and trying the ``milvus`` backend on one machine.

:class:`LocalMilvus` extracts the server's binaries once into a cache folder (``$XMODAL_MILVUS_CACHE``,
default ``~/.cache/xmodal/milvus-<version>``; ~250 MB) and runs each server in its own data folder with
its own ports — the gRPC ports, the metrics/health port and the embedded etcd's client and peer ports (an
etcd config file of its own, since the embedded etcd's defaults 2379/2380 are fixed) — so that several
can run side by side. Starts are serialised by a file lock in the cache folder (the port choice and the
extraction are not atomic otherwise). Components register themselves on 127.0.0.1 and etcd listens on
127.0.0.1 only; Milvus 2.3's own gRPC and metrics servers listen on every interface of the machine (the
server has no setting for it), on ports chosen at random.

    with LocalMilvus(tmp_folder) as server:
        client = MilvusClient(uri=server.uri)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import ConfigError

#: The gRPC ports of the template (``milvus`` package's config.yaml.template keys).
PORT_KEYS = (
    "proxy_port",
    "proxy_internal_port",
    "root_coord_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
START_TIMEOUT_MS = 120_000
#: Settings of a local server: the query coordinator checks and pulls every 100 ms (default 1000/500), so a
#: new collection loads in a fraction of a second rather than ~3 s.
SETTINGS: dict[str, Any] = {
    "queryCoord.checkInterval": 100,
    "queryCoord.distPullInterval": 100,
    "queryCoord.checkChannelInterval": 100,
    "queryCoord.checkSegmentInterval": 100,
    "queryCoord.leaderViewUpdateInterval": 0.1,
}


def cache_folder() -> Path:
    """Where the binaries are extracted once (``$XMODAL_MILVUS_CACHE`` or ``~/.cache/xmodal/milvus-<v>``)."""
    import milvus

    given = os.environ.get("XMODAL_MILVUS_CACHE")
    return Path(given) if given else Path.home() / ".cache" / "xmodal" / f"milvus-{milvus.__version__}"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (held together while chosen, so never the same twice)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _template(etcd_config: Path, settings: dict[str, Any]) -> str:
    """The package's config template with an etcd config file of our own, every component on 127.0.0.1 and
    ``settings`` (``section.key``) written in."""
    import milvus

    text = (Path(milvus.__file__).parent / "data" / "config.yaml.template").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s+)ip:(\s*)#.*$", r"\1ip: 127.0.0.1", text)
    text = text.replace("localhost:{{ etcd_port", "127.0.0.1:{{ etcd_port")
    text = re.sub(r"(?m)^etcd:\n", f"etcd:\n  config:\n    path: {etcd_config}\n", text, count=1)
    if f"path: {etcd_config}" not in text:
        raise ConfigError("the milvus package's config template has changed: no etcd section found")
    for dotted, value in settings.items():
        text = _set(text, dotted, str(value).lower() if isinstance(value, bool) else str(value))
    return text


def _set(text: str, dotted: str, value: str) -> str:
    """``text`` (YAML, two spaces an indent level) with the setting ``a.b.c`` set to ``value``: replaced where
    the key is, added at the top of its section otherwise."""
    start, end, depth = 0, len(text), 0
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        pad = "  " * depth
        found = re.search(rf"(?m)^{pad}{re.escape(part)}:(?P<rest>.*)$", text[start:end])
        if found is None:
            if i == 0:
                raise ConfigError(f"no section {part!r} in the milvus config template for the setting {dotted!r}")
            lines = "".join(f"{'  ' * (depth + j)}{p}:\n" for j, p in enumerate(parts[i:-1]))
            line = f"{'  ' * (depth + len(parts) - i - 1)}{parts[-1]}: {value}\n"
            return text[:start] + lines + line + text[start:]
        if i == len(parts) - 1:
            line = f"{pad}{part}: {value}"
            return text[: start + found.start()] + line + text[start + found.end() :]
        start += found.end() + 1  # the section's block: up to the next line indented no deeper than its key
        tail = re.search(rf"(?m)^(?!{pad}  )(?=\S|{pad}\S)", text[start:end])
        end = start + (tail.start() if tail else end - start)
        depth += 1
    return text


def _bind_reusable(port: int) -> socket.socket | None:
    """The milvus package's check that ``port`` is free, as the server binds it (``SO_REUSEADDR``, what Go
    sets): a port whose last connections are in TIME_WAIT — a restart on the same ports — counts as free."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalMilvus:
    """One Milvus standalone server in ``folder`` (a new temporary folder when None), on free ports."""

    def __init__(
        self,
        folder: str | Path | None = None,
        *,
        cache: str | Path | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self._own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="xmodal-milvus-")) if folder is None else Path(folder)
        self.cache = Path(cache) if cache is not None else cache_folder()
        #: milvus.yaml settings by dotted key (``{"queryCoord.checkInterval": 100}``) over :data:`SETTINGS`.
        self.settings = {**SETTINGS, **(settings or {})}
        self._server: Any = None
        self._ports: list[int] = []  # chosen on the first start, kept by a restart
        self.port = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalMilvus:
        """Extract the binaries (once), choose ports (the first time: a restart keeps them, so clients reconnect
        to the same address) and start the server; returns when it is healthy."""
        try:
            import milvus
            from filelock import FileLock
        except ImportError as exc:
            raise ConfigError(f"{exc.name} is not installed: pip install 'xmodal[milvus]'") from None
        self.cache.mkdir(parents=True, exist_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.cache / "start.lock"), timeout=600):
            milvus._initialize_data_files(str(self.cache))  # extracts only what changed (md5 of each file)
            bin_link = self.folder / "bin"
            if not bin_link.exists():
                bin_link.symlink_to(self.cache / "bin", target_is_directory=True)
            ports = self._ports or free_ports(len(PORT_KEYS) + 3)
            self._ports = ports
            etcd_client, etcd_peer, metrics = ports[-3:]
            etcd_config = self.folder / "configs" / "etcd.yaml"
            etcd_config.parent.mkdir(parents=True, exist_ok=True)
            etcd_config.write_text(
                "name: xmodal\n"
                f"listen-client-urls: http://127.0.0.1:{etcd_client}\n"
                f"advertise-client-urls: http://127.0.0.1:{etcd_client}\n"
                f"listen-peer-urls: http://127.0.0.1:{etcd_peer}\n"
                f"initial-advertise-peer-urls: http://127.0.0.1:{etcd_peer}\n"
                f"initial-cluster: xmodal=http://127.0.0.1:{etcd_peer}\n"
                "initial-cluster-state: new\n",
                encoding="utf-8",
            )
            template = self.folder / "configs" / "milvus.yaml.template"
            template.write_text(_template(etcd_config, self.settings), encoding="utf-8")
            config = milvus.MilvusServerConfig(
                template=str(template),
                data_dir=str(self.folder),
                etcd_port=etcd_client,
                etcd_log_level="warn",
                **dict(zip(PORT_KEYS, ports, strict=False)),
            )
            config.glog_conf_file = str(Path(milvus.__file__).parent / "data" / "glog.conf")  # set for no template
            config.try_bind_port = _bind_reusable  # a restart's ports may hold TIME_WAIT connections still
            server = milvus.MilvusServer(config, wait_for_started=False)
            server.webservice_port = metrics
            self._launch(server)
            self._server, self.port = server, ports[0]
            try:
                server.wait_started(timeout=START_TIMEOUT_MS)
            except BaseException:
                self.stop()
                raise
        return self

    def _launch(self, server: Any) -> None:
        """What ``MilvusServer.start`` does, with the server bound to this process's life: it gets SIGTERM
        when the process that started it dies (Linux), so a killed test run leaves no server behind."""
        server.config.resolve()  # writes configs/milvus.yaml
        exe = Path(server.get_milvus_executable_path())
        env = {
            **os.environ,
            "DEPLOY_MODE": "STANDALONE",
            "METRICS_PORT": str(server.webservice_port),
            "MILVUS_RUN_DIR": str(self.folder / "run"),
            "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(exe.parent), os.environ.get("LD_LIBRARY_PATH")) if p),
        }
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / "milvus-stdout.log", "wb") as out, open(logs / "milvus-stderr.log", "wb") as err:
            server.server_proc = subprocess.Popen(
                [str(exe), "run", "standalone"],
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def restart(self, *, down_s: float = 0.0) -> LocalMilvus:
        """Stop the server (its data kept) and start it again on the same ports after ``down_s`` seconds:
        what a client sees of a Milvus restart."""
        self.stop(keep=True)
        time.sleep(down_s)
        return self.start()

    def stop(self, *, keep: bool = False) -> None:
        """Stop the server (and remove its folder when it made a temporary one, unless ``keep``)."""
        server, self._server = self._server, None
        if server is not None:
            proc = server.server_proc
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)  # its graceful stop can take 10 s: the data is thrown away anyway
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
                server.server_proc = None
        if self._own_folder and not keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalMilvus:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
