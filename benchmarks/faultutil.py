"""The fault drivers of ``bench_faults.py``: writer processes, the real CLI in its own process, an
``LD_PRELOAD`` shim that fails ``fsync`` (``EIO``) or writes (``ENOSPC``) on demand, a small tmpfs, and the
damage done to files at rest (torn checkpoint files, a corrupt store page).

The shim is compiled here with ``cc`` (none: the fsync and injected-ENOSPC faults are skipped). Each fault
is switched by a control file: while ``$FAULT_FSYNC`` exists, ``fsync``/``fdatasync`` fail with ``EIO``;
while ``$FAULT_ENOSPC`` exists, writes that would grow a file fail with ``ENOSPC`` (as on a full disk, where
writing over a file's existing bytes, or growing one by ``ftruncate`` (sparse), still works); only for files under ``$FAULT_PREFIX`` (the index folder). SQLite and Python's own file writes go through these calls; writes
glibc makes inside ``fwrite`` (numpy's ``tofile``) do not, so the tmpfs is the thorough disk-full test.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
QUIET = {"PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int on(const char *var) { const char *p = getenv(var); struct stat st; return p && *p && stat(p, &st) == 0; }
static int under(int fd) {
    const char *prefix = getenv("FAULT_PREFIX"); char link[64], path[4096]; ssize_t n;
    if (!prefix || !*prefix) return 1;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return strncmp(path, prefix, strlen(prefix)) == 0;
}
static int eio(int fd) { return on("FAULT_FSYNC") && under(fd); }
static int full(int fd) { return on("FAULT_ENOSPC") && under(fd); }
static int grows(int fd, off_t len) { struct stat st; return fstat(fd, &st) == 0 && len > st.st_size; }
static off_t here(int fd) { off_t at = lseek(fd, 0, SEEK_CUR); return at < 0 ? 0 : at; }
#define REAL(f) static __typeof__(f) *real; if (!real) real = (__typeof__(f) *)dlsym(RTLD_NEXT, #f)
#define FAIL(e) do { errno = e; return -1; } while (0)

int fsync(int fd) { REAL(fsync); if (eio(fd)) FAIL(EIO); return real(fd); }
int fdatasync(int fd) { REAL(fdatasync); if (eio(fd)) FAIL(EIO); return real(fd); }
ssize_t write(int fd, const void *b, size_t n) {
    REAL(write); if (n && full(fd) && grows(fd, here(fd) + (off_t)n)) FAIL(ENOSPC); return real(fd, b, n); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) {
    REAL(pwrite); if (n && full(fd) && grows(fd, o + (off_t)n)) FAIL(ENOSPC); return real(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t o) {
    REAL(pwrite64); if (n && full(fd) && grows(fd, o + (off_t)n)) FAIL(ENOSPC); return real(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec *v, int c) {
    size_t n = 0; int i; REAL(writev); for (i = 0; i < c; i++) n += v[i].iov_len;
    if (n && full(fd) && grows(fd, here(fd) + (off_t)n)) FAIL(ENOSPC); return real(fd, v, c); }
int fallocate(int fd, int mode, off_t o, off_t len) {
    REAL(fallocate); if (full(fd)) FAIL(ENOSPC); return real(fd, mode, o, len); }
int posix_fallocate(int fd, off_t o, off_t len) {
    REAL(posix_fallocate); if (full(fd)) return ENOSPC; return real(fd, o, len); }
"""


# -- processes ----------------------------------------------------------------------------------------
def writer(
    index: Path, ledger: Path, seed: int, *, ops: int = 0, stop: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A writer process (``faultwriter.py``) named after its ledger file."""
    cmd = [sys.executable, str(BENCH / "faultwriter.py"), str(index), ledger.stem, str(ledger), str(seed)]
    cmd += ["--ops", str(ops)] + (["--stop", str(stop)] if stop else [])
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **QUIET, **(env or {})}
    )


def cli_command(index: Path, args: Sequence[str], *, unchecked_open: bool = False) -> list[str]:
    """``xmodal --index INDEX ARGS`` as a command line; ``unchecked_open``: as if the store were too large for
    the quick check on open (a damaged page is then met by the first statement that reads it)."""
    argv = ["--index", str(index), *args]
    if not unchecked_open:
        return [sys.executable, "-m", "xmodal.cli", *argv]
    code = "import sys, xmodal.store.sqlite as s; s.QUICK_CHECK_BYTES = 0; from xmodal.cli import main; "
    return [sys.executable, "-c", code + f"sys.exit(main({argv!r}))"]


def cli(
    index: Path, *args: str, unchecked_open: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``xmodal`` CLI in its own process."""
    return subprocess.run(
        cli_command(index, args, unchecked_open=unchecked_open),
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET, **(env or {})},
        timeout=300,
    )


def acks(ledger: Path) -> int:
    """Acknowledged ops in a ledger so far."""
    try:
        return ledger.read_bytes().count(b'"ack": true')
    except FileNotFoundError:
        return 0


def wait_for_acks(
    ledgers: Sequence[Path], procs: Sequence[subprocess.Popen[bytes]], n: int, timeout: float = 60
) -> None:
    """Until every ledger has ``n`` acknowledged ops (a writer that died or stalled is an error)."""
    deadline = time.monotonic() + timeout
    while not all(acks(p) >= n for p in ledgers):
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            err = dead[0].stderr.read().decode(errors="replace")[-2000:] if dead and dead[0].stderr else ""
            raise RuntimeError(f"a writer died or stalled before its first writes: {err}")
        time.sleep(0.02)


def kill9(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    """Wait for a process; its stderr (a traceback there is a crash)."""
    _, err = proc.communicate(timeout=timeout)
    return err.decode(errors="replace") if err else ""


# -- the LD_PRELOAD shim --------------------------------------------------------------------------------
def build_shim(folder: Path) -> Path | None:
    """Compile the fault shim into ``folder``; None when no C compiler is found."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source, library = folder / "faultshim.c", folder / "faultshim.so"
    source.write_text(SHIM_C)
    done = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], capture_output=True
    )
    return library if done.returncode == 0 else None


def shim_env(library: Path, prefix: Path, control: Path, fault: str) -> dict[str, str]:
    """The environment that loads the shim, with ``fault`` (``FAULT_FSYNC`` or ``FAULT_ENOSPC``) switched by
    the file ``control``, for files under ``prefix``."""
    return {"LD_PRELOAD": str(library), fault: str(control), "FAULT_PREFIX": str(prefix.resolve())}


# -- a small disk ---------------------------------------------------------------------------------------
@contextmanager
def tmpfs(folder: Path, size_mb: int) -> Iterator[Path | None]:
    """A tmpfs of ``size_mb`` MiB mounted on ``folder`` (root on Linux); None where mount is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or shutil.which("mount") is None:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def grow(disk: Path, size_mb: int) -> None:
    """Make the tmpfs on ``disk`` larger (an operator adding space)."""
    subprocess.run(["mount", "-o", f"remount,size={size_mb}m", str(disk)], check=True, capture_output=True)


def fill(disk: Path, slack: int) -> Path:
    """Write a file on ``disk`` until ``ENOSPC``, then give back ``slack`` bytes (a nearly full disk)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for block in (65536, 512):  # large blocks first, then small ones into what is left
            try:
                while True:
                    handle.write(b"\0" * block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    if slack:
        os.truncate(filler, max(0, filler.stat().st_size - slack))
    return filler


# -- damage at rest -------------------------------------------------------------------------------------
DERIVED = ("index", "ltr", "genret")  # derived folders of an index with the default extensions
TEARS = ("truncate", "zero-tail", "garbage-tail", "delete", "half-swapped")


def tear(index: Path, rng: random.Random) -> str:
    """Damage one derived checkpoint file as a crash or a torn write would; returns what was done."""
    files = sorted(p for name in DERIVED for p in (index / name).rglob("*") if p.is_file())
    how = rng.choice(TEARS)
    if how == "half-swapped" or not files:  # a checkpoint killed between its two renames (files.swap_dir)
        folder = index / rng.choice([n for n in DERIVED if (index / n).is_dir()] or ["index"])
        if folder.is_dir():
            shutil.copytree(folder, folder.with_name(folder.name + ".tmp"))
            os.replace(folder, folder.with_name(folder.name + ".old"))
        return f"half-swapped {folder.name}/"
    path = rng.choice(files)
    size = path.stat().st_size
    cut = rng.randrange(size) if size else 0
    if how == "truncate":
        os.truncate(path, cut)
    elif how == "delete":
        path.unlink()
    else:
        with open(path, "r+b") as handle:
            handle.seek(cut)
            handle.write(bytes(size - cut) if how == "zero-tail" else rng.randbytes(size - cut))
    return f"{how} {path.relative_to(index)} at {cut} of {size}"


def page_size(store: Path) -> int:
    raw = int.from_bytes(store.read_bytes()[16:18], "big")
    return 65536 if raw == 1 else raw


def corrupt_page(store: Path, rng: random.Random) -> str:
    """Overwrite one random page of a closed SQLite file with random bytes (or zeros); returns which."""
    size = page_size(store)
    pages = store.stat().st_size // size
    page = rng.randrange(pages)
    zeros = rng.random() < 0.25
    with open(store, "r+b") as handle:
        handle.seek(page * size)
        handle.write(bytes(size) if zeros else rng.randbytes(size))
    return f"page {page + 1} of {pages} {'zeroed' if zeros else 'random'}"


def copy_store(index: Path, to: Path) -> None:
    """Copy ``store.sqlite`` (and any ``-wal``) of a closed index: the backup a recovery restores."""
    to.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        source = index / f"store.sqlite{suffix}"
        target = to / source.name
        if source.exists():
            shutil.copy2(source, target)
        else:
            target.unlink(missing_ok=True)


def restore_store(backup: Path, index: Path) -> None:
    """Put the backup of ``store.sqlite`` back (the recovery path of a damaged store)."""
    for suffix in ("-wal", "-shm"):
        (index / f"store.sqlite{suffix}").unlink(missing_ok=True)
    for source in backup.iterdir():
        shutil.copy2(source, index / source.name)
