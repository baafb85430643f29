"""A local PostgreSQL server (Debian's ``postgresql`` package) for tests, benchmarks and trying the
``postgres`` store on one machine.

:class:`LocalPostgres` runs ``initdb`` and ``postgres`` from ``/usr/lib/postgresql/<version>/bin`` (or
``$XMODAL_PG_BIN``) in a data folder of its own, listening on 127.0.0.1 only, on a free port, with its unix
socket in that folder. PostgreSQL refuses to run as root, so when this process is root the server runs as an
unprivileged user (``nobody`` by default) and the folder is handed to it. ``initdb`` runs once per version
into a template cluster (:func:`cache_folder`), copied for each server. Starts are serialised by a file
lock (the port choice is not atomic otherwise); the server gets SIGTERM when the process that started it
dies, so a killed test run leaves none behind.

    with LocalPostgres() as server:
        store = PostgresStore(server.url)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ..backends.milvus_server import _die_with_parent, free_ports
from ..errors import ConfigError, MissingDependency

START_TIMEOUT_S = 60.0
#: settings of a throwaway server: small and quick. ``fsync=off``: a commit is in the operating system's
#: hands before it is acknowledged (``synchronous_commit`` stays on), so ``kill -9`` of the server loses no
#: acknowledged write; only a crash of the machine could, which a test server need not survive.
SETTINGS = {
    "fsync": "off",
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "32MB",
    "max_connections": "50",
    "max_wal_size": "256MB",
    "log_min_messages": "warning",
}


def cache_folder() -> Path:
    """Where the template cluster is kept (``$XMODAL_PG_CACHE`` or ``<tmp>/xmodal-postgres``): somewhere the
    server's unprivileged user can read, which a root home folder is not."""
    given = os.environ.get("XMODAL_PG_CACHE")
    return Path(given) if given else Path(tempfile.gettempdir()) / "xmodal-postgres"


def pg_bin() -> Path:
    """The folder of ``initdb`` and ``postgres``: ``$XMODAL_PG_BIN`` or the newest Debian install."""
    given = os.environ.get("XMODAL_PG_BIN")
    if given:
        return Path(given)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise ConfigError("PostgreSQL is not installed: apt-get install postgresql (or set XMODAL_PG_BIN)")
    return found[-1].parent


class LocalPostgres:
    """One PostgreSQL server in ``folder`` (a new temporary folder when None) on a free 127.0.0.1 port."""

    def __init__(self, folder: str | Path | None = None, *, user: str = "nobody") -> None:
        self._own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="xmodal-pg-")) if folder is None else Path(folder)
        self.run_as = user if os.geteuid() == 0 else None
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A ``postgres://`` URL of the server's ``postgres`` database as its superuser ``xmodal``."""
        return f"postgres://xmodal@127.0.0.1:{self.port}/postgres"

    def _demote(self) -> None:  # pragma: no cover - runs in the child between fork and exec
        _die_with_parent()
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

    def _own(self, path: Path) -> None:
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for folder, _, files in os.walk(path):
                os.chown(folder, entry.pw_uid, entry.pw_gid)
                for name in files:
                    os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)

    def start(self) -> LocalPostgres:
        """``initdb`` (once per folder) and start the server; returns when it accepts connections."""
        try:
            import psycopg  # noqa: F401 - the readiness check connects with it
            from filelock import FileLock
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "postgres") from None
        data = self.folder / "data"
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)
        cache = cache_folder()
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache / "start.lock"), timeout=120):
            if not (data / "PG_VERSION").is_file():
                shutil.copytree(self._template(cache), data, dirs_exist_ok=True)
                self._own(self.folder)
            self.port = self.port or free_ports(1)[0]  # a restart keeps its port: clients keep their URL
            self._start_on(self.port)
        return self

    def _template(self, cache: Path) -> Path:
        """A fresh cluster made by ``initdb`` once per PostgreSQL version and user, copied for each server
        (``initdb`` takes seconds; a copy a fraction of one). The caller holds the start lock."""
        binaries = pg_bin()
        template = cache / f"template-{binaries.parent.name}-{self.run_as or os.getuid()}"
        if not (template / "PG_VERSION").is_file():
            work = cache / f"{template.name}.new"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            self._own(work)
            self._run([str(binaries / "initdb"), "-D", str(work), "-U", "xmodal", "--auth=trust", "-E", "UTF8", "-N"])
            work.rename(template)
        return template

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, preexec_fn=self._demote, check=False)  # noqa: PLW1509
        if done.returncode != 0:
            raise ConfigError(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def _wait(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                raise ConfigError(f"PostgreSQL exited at start ({self._process.returncode}): {tail}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(f"PostgreSQL did not start within {START_TIMEOUT_S:.0f} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (a fast shutdown: open transactions roll back; an immediate one when its folder, made
        for it, is removed next) and remove a folder made for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(3 if self._own_folder else 2)  # SIGQUIT: immediate shutdown; SIGINT: fast
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def kill(self) -> None:
        """``kill -9`` the server (its data folder is kept; :meth:`restart` starts it again)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self) -> None:
        """Start the server again on the same port (after :meth:`kill`, or :meth:`stop` of a kept folder)."""
        self._start_on(self.port)

    def _start_on(self, port: int) -> None:
        binaries = pg_bin()
        options = [
            f"-c{key}={value}" for key, value in {**SETTINGS, "unix_socket_directories": str(self.folder)}.items()
        ]
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(self.folder / "data"), "-p", str(port), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._demote,  # noqa: PLW1509
        )
        log.close()
        self._wait()

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
