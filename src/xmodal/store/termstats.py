"""What BM25F needs besides the postings — each term's document frequency and the index's totals — held in memory.

Every search reads them: the policy's known-term share, the lexical strategy's idf, the ranker's BM25F
feature. Read from FTS5's vocabulary per query they cost a SQLite round trip per search (most terms of a
new query have not been read before); read for every term when the index opens they would cost a scan a
one-shot CLI search never needs. So terms are read on demand (and kept), and the first search starts a
background pass that reads the whole vocabulary (≈ 80 bytes a term); once it is in, a term it lacks is in
no item, and no search reads the vocabulary again.

Kept exact under writes:

- **this store's writes** are counted by the code path that writes them (:meth:`TermStats.added` and
  :meth:`~TermStats.removed`, called by :class:`~xmodal.store.fulltext.FullText` inside the store's
  transaction) and applied only once that transaction commits (:meth:`~TermStats.committed`); a rolled-back
  write changes nothing;
- **another connection's writes** (another process, or another store on the same file) are noticed by the
  change log: every item write appends to it, so when its last sequence number is not the one the held
  figures reflect, they catch up with it (:meth:`TermStats._catch_up`: each row it names has its stored terms
  read again, its old ones out, its new ones in, checked against the file's totals) when every row's terms are
  held, and are otherwise dropped and read again (on demand, then by a new background pass). Writes that
  leave the items alone (the feedback log's) keep them;
- the background pass reads in one read transaction that starts with the change log's position; the
  commits of this store made while it read are replayed on top of it when it ends, and it is discarded
  when anything else was written meanwhile.

It also holds each row's stored terms (:meth:`TermStats.texts`: what the ranker's BM25F of a search's
candidates and the lexical strategy's frequent terms count in), under the same rules: read on demand and
kept, then all of them by the same background pass (up to :data:`MAX_ROWS` items; a larger index keeps at
most that many read on demand); a row this store writes takes its new terms when the transaction commits,
another connection's item writes are caught up with (all held) or drop them all (some held), and a read that
overlapped a commit is not kept. Once every row's terms are held, their postings are too (:mod:`.postings`,
built by the background pass, changed with each commit of this store and each catch-up, dropped with the
terms): the lexical run scores on them instead of one SQL query (:meth:`TermStats.scored`).

The check for another connection's writes (``PRAGMA data_version``, a read transaction's begin and end on the
file's locks: a few microseconds, most of what a read of held figures costs) runs at every read, except within
a :func:`checked_once` block (one search): there it runs at the block's first read of a store's figures only,
so the search's stages (the policy's known-term share, the lexical run, the ranker's BM25F) read one state of
them; when the block read the change log's position first (the engine's refresh does, for every search:
:meth:`TermStats.seen`), that read is the check, and no stage runs one. A commit another connection makes
during the block is seen by the next block, i.e. by the next search; this store's own commits join what is
held as they commit, in a block or not, and a write transaction always checks.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from .postings import MAX_POSTINGS, Postings

log = logging.getLogger(__name__)

#: vocabulary rows read per fetch by the background pass (short, so searches interleave and close stops it)
CHUNK = 5000
#: a vocabulary larger than this stays on disk (read per query): ≈ 80 MB of Python objects at the limit
MAX_TERMS = 1_000_000
#: after the held figures were dropped, a new background pass starts no sooner than this after the last one
RELOAD_AFTER_S = 5.0
#: rows whose stored terms are held (:meth:`TermStats.texts`; ≈ 240 bytes a row of WordNet glosses): a larger
#: index is not read whole by the background pass, and what was read on demand is dropped when it would hold more
MAX_ROWS = 250_000
#: characters of stored terms held, likewise (long texts: fewer rows)
MAX_TEXT_CHARS = 32_000_000
#: another connection's item writes are applied to what is held when they changed at most this many rows (or a
#: tenth of the index), else what is held is dropped and read again by a background pass
CATCH_UP_ROWS = 2_000

_LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM changes"
Totals = tuple[int, int, int]  # (items, title terms, body terms)

#: the term statistics checked for other connections' writes in the current :func:`checked_once` block
_CHECKED: ContextVar[list[TermStats] | None] = ContextVar("xmodal_termstats_checked", default=None)


@contextmanager
def checked_once() -> Iterator[None]:
    """Within the block (in this context: one search), each store's term statistics are checked for another
    connection's writes at the block's first read of them only (see the module docstring). A block inside
    another is part of it (the outer search's). Also a decorator: ``@checked_once()``."""
    if _CHECKED.get() is not None:
        yield
        return
    token = _CHECKED.set([])
    try:
        yield
    finally:
        _CHECKED.reset(token)


class _Delta:
    """One write transaction's effect: per term the change in document frequency, and the totals'."""

    __slots__ = ("base", "df", "end", "rows", "totals")

    def __init__(self, base: int) -> None:
        self.base, self.end = base, base
        self.df: dict[str, int] = {}
        self.totals = [0, 0, 0]
        self.rows: dict[int, tuple[str, str] | None] = {}  # row -> the stored terms it wrote (None: dropped)

    def row(self, title: Sequence[str], body: Sequence[str], sign: int) -> None:
        df = self.df
        for term in set(title).union(body):
            df[term] = df.get(term, 0) + sign
        self.totals[0] += sign
        self.totals[1] += sign * len(title)
        self.totals[2] += sign * len(body)


class TermStats:
    """Document frequencies and totals of one store's full-text index (``db``: the store's writing
    connection, used under ``lock``; ``reading``: a connection for reads that may run beside writes)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        lock: AbstractContextManager[object],
        reading: Callable[[], AbstractContextManager[sqlite3.Connection]],
        *,
        background: bool = True,
    ) -> None:
        self._db, self._lock, self._reading = db, lock, reading
        self._background = background
        self._df: dict[str, int] = {}
        self._complete = False  # _df holds every term in the index (absent: in no item)
        self._totals: Totals | None = None
        self._version: int | None = None  # the writing connection's data_version when last looked at
        self._seq = 0  # the change-log position the held figures reflect (read with the first version)
        self._gen = 0  # moves whenever the held figures change (a read from disk kept only if it did not)
        self._epoch = 0  # moves whenever they are dropped
        self._txn: _Delta | None = None
        self._replay: list[_Delta] | None = None  # commits made while the background pass reads
        self._loader: threading.Thread | None = None
        self._loaded_at = -RELOAD_AFTER_S
        self._too_large = False
        self._stop = threading.Event()
        self._texts: dict[int, tuple[str, str]] = {}  # row -> its stored (title, body) terms, space-joined
        self._texts_complete = False  # _texts holds every indexed row (absent: not indexed)
        self._text_chars = 0  # characters held in _texts, counted while it is filled on demand
        self._postings: Postings | None = None  # _texts inverted, held while _texts is complete (:mod:`.postings`)

    # -- reads --------------------------------------------------------------------------------------
    def lookup(self, terms: Iterable[str], *, totals: bool = True) -> tuple[Totals | None, dict[str, int]]:
        """The index's totals (None unless ``totals``) and the document frequency of each distinct term
        (0: in no item)."""
        wanted = set(terms)
        with self._lock:
            self._fresh_to_read()
            gen, held, complete, df = self._gen, self._totals, self._complete, self._df
            found = {t: df.get(t, 0) for t in wanted} if complete else {t: df[t] for t in wanted if t in df}
        missing = sorted(wanted - found.keys())
        need_totals = totals and held is None
        if missing or need_totals:
            with self._reading() as db:
                if need_totals:
                    docs, title, body = db.execute("SELECT docs, title, body FROM fulltext_totals").fetchone()
                    held = (int(docs), int(title), int(body))
                if missing:
                    found.update(dict.fromkeys(missing, 0))
                    marks = ",".join("?" * len(missing))
                    sql = f"SELECT term, doc FROM temp.fulltext_rows WHERE term IN ({marks})"
                    found.update((str(t), int(d)) for t, d in db.execute(sql, missing))
            with self._lock:
                if self._gen == gen:  # nothing changed meanwhile: keep them for the next query
                    self._df.update((t, found[t]) for t in missing)
                    if need_totals:
                        self._totals = held
        if not complete:
            self._start()
        return (held if totals else None), found

    def complete(self) -> bool:
        """Whether every term is held (the background pass is in)."""
        with self._lock:
            self._fresh_to_read()
            return self._complete

    def texts(
        self,
        rows: Iterable[int],
        read: Callable[[Sequence[int]], Iterable[tuple[int, str, str]]],
        *,
        checked: bool = False,
    ) -> dict[int, tuple[str, str]]:
        """The stored (title, body) terms of each row that has them, space-joined; the rows not held are read
        by ``read(rows)`` (yielding (row, title, body); run outside the lock) and kept for the next search
        unless a commit came in between. ``checked``: the caller has just looked the query's terms up
        (:meth:`lookup` checked for other connections' writes then; not checked again)."""
        with self._lock:
            if not checked:
                self._fresh_to_read()
            gen, held, complete = self._gen, self._texts, self._texts_complete
            found = {row: text for row in rows if (text := held.get(row)) is not None}
            missing = [] if complete else sorted({row for row in rows if row >= 0 and row not in found})
        if not complete:
            self._start()
        if not missing:
            return found
        read_now = {int(r): (str(t or ""), str(b or "")) for r, t, b in read(missing)}
        found.update(read_now)
        with self._lock:
            if self._gen == gen and not self._texts_complete:
                chars = sum(len(t) + len(b) for t, b in read_now.values())
                if len(self._texts) + len(read_now) > MAX_ROWS or self._text_chars + chars > MAX_TEXT_CHARS:
                    self._texts, self._text_chars = {}, 0
                if len(read_now) <= MAX_ROWS and chars <= MAX_TEXT_CHARS:
                    self._texts.update(read_now)
                    self._text_chars += chars
        return found

    def generation(self) -> int:
        """A number that moves whenever what is held changes (this store's commits, or another connection's item
        writes noticed): what a copy of :meth:`held_texts` was built from is current while it has not moved."""
        with self._lock:
            self._fresh_to_read()
            return self._gen

    def load(self) -> None:
        """Start the background pass now unless everything is held (or one ran moments ago): for a caller that
        will want :meth:`held_texts` soon."""
        if not self.complete():
            self._start()

    def held_texts(self, wait_s: float = 0.0) -> tuple[int, dict[int, tuple[str, str]]] | None:
        """(:meth:`generation`, a copy of every indexed row's stored (title, body) terms) when all of them are
        held, else None. When they are not, the background pass is started (unless one ran moments ago) and
        waited for up to ``wait_s`` seconds; an index over :data:`MAX_ROWS` rows never holds them all."""
        with self._lock:
            self._fresh_to_read()
            if self._texts_complete:
                return self._gen, dict(self._texts)
        if wait_s <= 0:
            return None
        self._start()
        loader = self._loader
        if loader is not None and loader is not threading.current_thread():
            loader.join(wait_s)
        with self._lock:
            self._fresh_to_read()
            return (self._gen, dict(self._texts)) if self._texts_complete else None

    def scored(
        self,
        idf: dict[str, float],
        fields: tuple[float, float],
        depth: int | None,
        *,
        k1: float,
        b: float,
        weights: tuple[float, float],
    ) -> list[tuple[int, float]] | None:
        """(row, BM25F score) of every row that holds a term of ``idf`` — rows ascending, or the ``depth`` best,
        best first — scored on the postings held in memory (:meth:`.postings.Postings.pairs`: what the SQL path
        gives), or None when they are not held (the background pass has not read every row's terms, or another
        connection's item writes dropped them): score in SQL then."""
        with self._lock:
            self._fresh_to_read()
            postings = self._postings
            if postings is None:
                return None
            return postings.pairs(idf, fields, depth, k1=k1, b=b, weights=weights)

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _last_seq(self) -> int:
        return int(self._db.execute(_LAST_SEQ).fetchone()[0])

    def seen(self, seq: int) -> None:
        """The change log's last position, just read on the store's connection (lock held): within a
        :func:`checked_once` block, the check of its first read, made by the read every search makes first (the
        engine's refresh), so none of its stages runs one. What is held is dropped when it reflects another
        position (another connection's item writes; this store's are counted as they commit)."""
        checked = _CHECKED.get()
        if checked is None or self._version is None or any(stats is self for stats in checked):
            return  # outside a block, before the first check (which sets the baselines), or checked already
        if seq != self._seq:
            self._moved(seq)
        checked.append(self)

    def _fresh_to_read(self) -> None:
        """:meth:`_fresh` for a read (lock held): once per :func:`checked_once` block, else every time."""
        checked = _CHECKED.get()
        if checked is None:
            self._fresh()
        elif not any(stats is self for stats in checked):
            self._fresh()
            checked.append(self)

    def _fresh(self) -> None:
        """Drop what is held when another connection changed the items since (lock held). ``data_version``
        moves with any other connection's commit; only one that moved the change log touched the items."""
        version = self._data_version()
        if version != self._version:
            first, self._version = self._version is None, version
            seq = self._last_seq()
            if first:
                self._seq = seq
            elif seq != self._seq:
                self._moved(seq)

    def _moved(self, seq: int) -> None:
        """The change log is at ``seq``, not where what is held stands (another connection wrote items; lock held):
        catch up with its changes when every row's terms are held (:meth:`_catch_up`), else drop what is held."""
        if not self._catch_up():
            self._forget(seq)

    def _catch_up(self) -> bool:
        """Apply the item writes logged since the held position, as this store's own commits are applied: each
        changed row's stored terms read again, its old ones (held) out, its new ones in. Only while every row's
        terms are held (else there is little to keep); False when it cannot, and the caller drops what is held:
        too many changes (the background pass reads everything faster), a log that went backwards, or totals
        that do not come out as the file's (a write that left no change behind, such as a rebuild of the index)."""
        if not (self._complete and self._texts_complete and self._totals is not None and self._txn is None):
            return False
        db = self._db
        began = not db.in_transaction  # one snapshot (a write transaction is one already)
        if began:
            db.execute("BEGIN")
        try:
            end = self._last_seq()
            if end < self._seq:
                return False
            rows = [int(r) for (r,) in db.execute("SELECT DISTINCT row FROM changes WHERE seq > ?", (self._seq,))]
            if len(rows) > max(CATCH_UP_ROWS, len(self._texts) // 10):
                return False
            now: dict[int, tuple[str, str]] = {}
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, c0, c1 FROM fulltext_content WHERE id IN ({marks})"
                now.update((int(r), (str(t or ""), str(b or ""))) for r, t, b in db.execute(sql, chunk))
            docs, title, body = db.execute("SELECT docs, title, body FROM fulltext_totals").fetchone()
        finally:
            if began and db.in_transaction:
                db.execute("COMMIT")  # read-only: ending it is all
        txn = _Delta(self._seq)
        txn.end = end
        for row in rows:
            old, new = self._texts.get(row), now.get(row)
            if old == new:
                continue
            if old is not None:
                txn.row(old[0].split(), old[1].split(), -1)
            if new is not None:
                txn.row(new[0].split(), new[1].split(), 1)
            txn.rows[row] = new
        self._apply(txn)
        if self._totals != (int(docs), int(title), int(body)):
            return False  # the caller drops everything held
        self._seq = end
        self._gen += 1
        if self._replay is not None:
            self._replay.append(txn)
        return True

    def _forget(self, seq: int) -> None:
        self._df, self._complete, self._totals = {}, False, None
        self._texts, self._texts_complete, self._text_chars = {}, False, 0
        self._postings = None
        self._seq = seq
        self._gen += 1
        self._epoch += 1

    # -- this store's writes (the store's lock held, inside its transaction) ------------------------
    def begin(self) -> None:
        """A write transaction starts: figures that another connection's item writes made stale catch up with
        them, or are dropped."""
        self._fresh()
        base = self._last_seq()
        if base != self._seq:
            self._moved(base)  # caught up to it (this transaction's snapshot), or dropped at it
        self._txn = _Delta(base)

    def tracking(self) -> bool:
        """Whether the open transaction's removed rows need their terms (something is held, or being read)."""
        return bool(self._df) or self._complete or self._totals is not None or self._replay is not None

    def added(self, title: Sequence[str], body: Sequence[str]) -> None:
        """A row was indexed in the open transaction (its title and body terms)."""
        if self._txn is None:  # a write outside begin/committed (a rebuild): nothing held can be trusted
            self._forget(self._seq)
        else:
            self._txn.row(title, body, 1)

    def touched(self, row: int, text: tuple[str, str] | None) -> None:
        """The open transaction writes ``row``'s stored (title, body) terms, space-joined (None: drops them);
        what is held of the row takes them when it commits."""
        if self._txn is None:
            self._forget(self._seq)
        else:
            self._txn.rows[row] = text

    def removed(self, title: Sequence[str], body: Sequence[str]) -> None:
        """A row was dropped from the index in the open transaction (the terms it had)."""
        if self._txn is None:
            self._forget(self._seq)
        else:
            self._txn.row(title, body, -1)

    def committing(self) -> None:
        """Inside the transaction, just before it commits: the change log's position it ends at."""
        if self._txn is not None:
            self._txn.end = self._last_seq()

    def committed(self) -> None:
        """The transaction committed: its changes join what is held."""
        txn, self._txn = self._txn, None
        if txn is None:
            return
        if not txn.df and txn.end == txn.base and not txn.rows:
            return
        self._apply(txn)
        self._seq = txn.end
        self._gen += 1
        if self._replay is not None:
            self._replay.append(txn)

    def rolled_back(self) -> None:
        self._txn = None

    def _apply(self, txn: _Delta) -> None:
        texts, postings = self._texts, self._postings
        for row, text in txn.rows.items():
            if postings is not None:  # held only with every row's terms: ``texts`` has the row's old ones
                old = texts.get(row)
                if old is not None:
                    postings.remove(row, *old)
                if text is not None:
                    postings.add(row, *text)
            if text is None:
                texts.pop(row, None)
            elif self._texts_complete or row in texts:
                texts[row] = text  # (on demand, a rewritten row's new length is not counted: it was there)
        if self._texts_complete and len(texts) > MAX_ROWS:  # grown past the limit by writes: read on demand
            self._texts, self._texts_complete, self._text_chars = {}, False, 0
            self._postings = None
        if self._postings is not None and self._postings.size > MAX_POSTINGS:  # scored in SQL from now on
            self._postings = None
        df, complete = self._df, self._complete
        for term, change in txn.df.items():
            if term in df:
                value = df[term] + change
                if value > 0 or not complete:
                    df[term] = value
                else:
                    del df[term]
            elif complete and change > 0:
                df[term] = change
        if self._totals is not None:
            docs, title, body = self._totals
            self._totals = (docs + txn.totals[0], title + txn.totals[1], body + txn.totals[2])

    # -- the background pass ----------------------------------------------------------------------------
    def _start(self) -> None:
        if not self._background or self._too_large:
            return
        with self._lock:
            running = self._loader is not None and self._loader.is_alive()
            if running or self._complete or time.monotonic() - self._loaded_at < RELOAD_AFTER_S:
                return
            self._loaded_at = time.monotonic()
            self._replay = []
            epoch = self._epoch
            self._loader = threading.Thread(target=self._load, args=(epoch,), name="xmodal-term-stats", daemon=True)
        self._loader.start()

    def _load(self, epoch: int) -> None:
        try:
            read = self._read_all()
        except Exception as exc:  # noqa: BLE001 - a warm-up that fails leaves the terms read on demand
            log.warning("reading the full-text vocabulary in the background failed (%s): read per query", exc)
            read = None
        with self._lock:
            replay, self._replay = self._replay, None
            if read is None or replay is None or epoch != self._epoch:
                return
            at, totals, df, texts, postings = read
            # the commits after the pass's snapshot, in order; it reflects one of their starting points or
            # the position now, else something it did not see (another connection's write) came between
            todo = [txn for txn in replay if txn.end > at]
            if at != self._seq and (not todo or todo[0].base != at):
                return
            self._df, self._totals, self._complete = df, totals, True
            if texts is not None:
                self._texts, self._texts_complete = texts, True
                self._postings = postings
            for txn in todo:
                self._apply(txn)
            self._gen += 1

    def _read_all(
        self,
    ) -> tuple[int, Totals, dict[str, int], dict[int, tuple[str, str]] | None, Postings | None] | None:
        """(change-log position, totals, every term's document frequency, every row's stored terms, their
        postings) read in one snapshot; None when stopped or the vocabulary is over :data:`MAX_TERMS`; the rows'
        terms None for an index of over :data:`MAX_ROWS` items, the postings None without them or when over
        :data:`~.postings.MAX_POSTINGS` (built here, in the background pass's thread, outside the lock)."""
        with self._reading() as db:
            db.execute("BEGIN")
            try:
                at = int(db.execute(_LAST_SEQ).fetchone()[0])  # the snapshot starts here
                docs, title, body = db.execute("SELECT docs, title, body FROM fulltext_totals").fetchone()
                df: dict[str, int] = {}
                cursor = db.execute("SELECT term, doc FROM temp.fulltext_rows")
                while chunk := cursor.fetchmany(CHUNK):
                    if self._stop.is_set():
                        return None
                    df.update(chunk)
                    if len(df) > MAX_TERMS:
                        self._too_large = True
                        log.info("the full-text vocabulary has over %d terms: read per query", MAX_TERMS)
                        return None
                texts: dict[int, tuple[str, str]] | None = None
                if docs <= MAX_ROWS:
                    texts, chars = {}, 0
                    cursor = db.execute("SELECT id, c0, c1 FROM fulltext_content")
                    while rows := cursor.fetchmany(CHUNK):
                        if self._stop.is_set():
                            return None
                        held = [(int(r), (str(t or ""), str(b or ""))) for r, t, b in rows]
                        chars += sum(len(t) + len(b) for _, (t, b) in held)
                        if chars > MAX_TEXT_CHARS:
                            texts = None  # too much text to hold: the rows are read on demand
                            break
                        texts.update(held)
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")  # read-only: ending it is all
        postings = None if texts is None else Postings.of(texts, self._stop.is_set)
        if postings is not None and postings.size > MAX_POSTINGS:
            postings = None
        return at, (int(docs), int(title), int(body)), df, texts, postings

    def close(self) -> None:
        """Stop the background pass (it finishes the chunk it is reading)."""
        self._stop.set()
        loader = self._loader
        if loader is not None and loader is not threading.current_thread():
            loader.join()
