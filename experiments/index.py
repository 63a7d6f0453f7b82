"""The query index: a SQLite file derived from git, refreshed whenever a branch head moved.

It lives in ``<lab>/.git/aar-index.sqlite`` and can be deleted or rebuilt at any time; git stays
the only source of truth. A refresh re-reads only the attempt folders whose tree changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from experiments.gitobjects import READ_ERRORS
from experiments.layout import (
    ATTEMPTS_DIR,
    FIRST_RESEARCHER,
    SESSION_FILE,
    SESSION_REFS,
    UNATTACHED_USAGE_PATH,
    StoreError,
)
from experiments.ranking import (
    SQL_BOUND,
    SQL_NOT_REJECTED,
    SQL_ORDER,
    SQL_RANKS,
    UNTESTED_PENALTY,
    lower_bound,
)
from experiments.reviews import NOTES_REF, read_all_notes
from experiments.schemas import AttemptSummary, Review, SessionSummary, TokenUsage
from experiments.tags import TAGS_REF, read_all_tags
from sandbox.errors import HarnessError
from sandbox.files import file_lock
from sandbox.tasks import get_task
from sandbox.tasks.spec import readable_name

if TYPE_CHECKING:
    from experiments.store import LabStore

INDEX_FILE = "aar-index.sqlite"
SCHEMA_VERSION = "3"  # 3: the tags table
SORTS = ("time", "pgr", "lcb", "index")  # pgr and lcb: both the one ranking (experiments/ranking.py)
ORDERS = {"time": "a.created_at DESC, a.idx DESC", "pgr": SQL_ORDER, "lcb": SQL_ORDER,
          "index": "a.idx, a.researcher, a.created_at"}
# Table columns a page can be sorted by (``key`` ascending, ``-key`` descending; unscored last).
COLUMN_SORTS = {"step": "a.idx", "name": "a.name COLLATE NOCASE", "researcher": "a.researcher",
                "status": "a.status", "dev_pgr": "a.pgr", "lower": SQL_BOUND, "vs_vanilla": "a.vs_vanilla",
                "dev_acc": "a.dev_acc", "heldout_acc": "a.heldout_acc", "heldout_pgr": "a.heldout_pgr",
                "seeds": "a.n_seeds", "cost": "a.cost_usd", "finished": "a.created_at", "session": "a.session_id"}
_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS heads(ref TEXT PRIMARY KEY, sha TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(session_id TEXT PRIMARY KEY, head TEXT, task TEXT, proposer TEXT,
  model TEXT, status TEXT, created_at TEXT, parent_session TEXT, extra_cost REAL, extra_tokens INTEGER);
CREATE TABLE IF NOT EXISTS attempts(attempt_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
  folder TEXT NOT NULL, tree TEXT NOT NULL, commit_sha TEXT NOT NULL, researcher TEXT, idx INTEGER,
  name TEXT, status TEXT, task TEXT, pgr REAL, pgr_ci95 REAL, n_seeds INTEGER, dev_acc REAL,
  heldout_acc REAL, heldout_pgr REAL, vs_vanilla REAL, vs_vanilla_p REAL, warnings TEXT,
  cost_usd REAL, tokens INTEGER, parent_id TEXT, created_at TEXT);
CREATE INDEX IF NOT EXISTS attempts_session ON attempts(session_id, idx);
CREATE INDEX IF NOT EXISTS attempts_task_pgr ON attempts(task, pgr);
CREATE INDEX IF NOT EXISTS attempts_created ON attempts(created_at);
CREATE TABLE IF NOT EXISTS tags(attempt_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(attempt_id, tag));
CREATE TABLE IF NOT EXISTS reviews(attempt_id TEXT NOT NULL, seq INTEGER NOT NULL, verdict TEXT,
  note TEXT, reviewer TEXT, email TEXT, created_at TEXT, PRIMARY KEY(attempt_id, seq));
"""
_ATTEMPT_COLS = ("attempt_id", "session_id", "folder", "tree", "commit_sha", "researcher", "idx", "name",
                 "status", "task", "pgr", "pgr_ci95", "n_seeds", "dev_acc", "heldout_acc", "heldout_pgr",
                 "vs_vanilla", "vs_vanilla_p", "warnings", "cost_usd", "tokens", "parent_id", "created_at")


def _mean(stat: dict | None) -> float | None:
    return None if not stat else stat.get("mean")


def usage_tokens(usage: dict[str, Any]) -> int:
    """Every token of a stored TokenUsage (a dict: rows are read from raw JSON for speed)."""
    return sum(int(usage.get(k, 0)) for k in TokenUsage.model_fields if k.endswith("_tokens"))


def attempt_row(meta: dict, result: dict | None, session_id: str, folder: str, tree: str, commit: str) -> tuple:
    """The index row of one attempt, from its attempt.json and result.json."""
    usage = meta.get("usage") or {}
    res = result or {}
    vs = res.get("vs_vanilla") or {}
    tokens = usage_tokens(usage)
    pgr = res.get("pgr") or {}
    return (meta["attempt_id"], session_id, folder, tree, commit, meta.get("researcher", FIRST_RESEARCHER),
            meta["index"],
            meta["name"], meta["status"], res.get("task"), _mean(pgr), res.get("pgr_ci95"), pgr.get("n", 0),
            _mean(res.get("dev_acc")), _mean(res.get("heldout_acc")), _mean(res.get("heldout_pgr")),
            vs.get("mean"), vs.get("p_value"), json.dumps(res.get("warnings", [])),
            float(usage.get("cost_usd", 0.0)), tokens, meta.get("parent_id"), meta.get("created_at", ""))


class LabIndex:
    """SQLite rows of sessions, attempts and reviews, kept in step with the lab's refs."""

    def __init__(self, store: LabStore) -> None:
        self.store = store
        self.path = store.git_dir / INDEX_FILE

    # -- connection ----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.row_factory = sqlite3.Row
        db.executescript(_DDL)
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
            db.commit()
        elif row["value"] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError("index schema changed")
        return db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._open()
        except sqlite3.DatabaseError:  # derived data: a damaged or outdated file is rebuilt
            self.path.unlink(missing_ok=True)
            db = self._open()
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _refresh_lock(self) -> Iterator[None]:
        with file_lock(self.store.git_dir / "aar-index.lock"):
            yield

    # -- refresh -------------------------------------------------------------------------
    def _current_heads(self) -> dict[str, str]:
        return self.store.objects.refs(SESSION_REFS.rstrip("/"), NOTES_REF, TAGS_REF)

    def refresh(self, force: bool = False) -> bool:
        """Bring the index up to date with git; returns True when anything was re-read."""
        heads = self._current_heads()
        with self._db() as db:
            if not force and dict(db.execute("SELECT ref, sha FROM heads").fetchall()) == heads:
                return False
        with self._refresh_lock(), self._db() as db:
            known = {} if force else dict(db.execute("SELECT ref, sha FROM heads").fetchall())
            heads = self._current_heads()
            with db:
                if force:
                    for table in ("heads", "sessions", "attempts", "reviews", "tags"):
                        db.execute(f"DELETE FROM {table}")
                for ref, sha in heads.items():
                    if known.get(ref) != sha and ref.startswith(SESSION_REFS):
                        self._index_session(db, ref[len(SESSION_REFS):], sha)
                for ref in set(known) - set(heads):
                    if ref.startswith(SESSION_REFS):
                        sid = ref[len(SESSION_REFS):]
                        db.execute("DELETE FROM sessions WHERE session_id=?", (sid,))
                        db.execute("DELETE FROM attempts WHERE session_id=?", (sid,))
                if known.get(NOTES_REF) != heads.get(NOTES_REF):
                    self._index_reviews(db)
                if known.get(TAGS_REF) != heads.get(TAGS_REF):
                    db.execute("DELETE FROM tags")
                    db.executemany("INSERT OR REPLACE INTO tags VALUES(?, ?)",
                                   [(aid, tag) for aid, tags in read_all_tags(self.store) for tag in tags])
                db.execute("DELETE FROM heads")
                db.executemany("INSERT INTO heads VALUES(?, ?)", heads.items())
        return True

    def rebuild(self) -> None:
        self.path.unlink(missing_ok=True)
        self.refresh(force=True)

    def _index_session(self, db: sqlite3.Connection, sid: str, head: str) -> None:
        objects = self.store.objects
        try:
            root = objects.commit_tree(head)
            manifest = json.loads(objects.read_text(root, SESSION_FILE) or "{}")
        except READ_ERRORS:
            return  # a damaged branch is left out of the index; `aar check` reports it
        unattached = json.loads(objects.read_text(root, UNATTACHED_USAGE_PATH) or "{}")  # calls after the last attempt
        db.execute("INSERT OR REPLACE INTO sessions VALUES(?,?,?,?,?,?,?,?,?,?)", (
            sid, head, manifest.get("task", "?"), manifest.get("proposer", "?"), manifest.get("model"),
            manifest.get("status", "?"), manifest.get("created_at", ""), manifest.get("parent_session"),
            float(unattached.get("cost_usd", 0.0)), usage_tokens(unattached)))
        folders = {name: tree.hex() for name, tree in self.store.attempt_folders(sid, head).items()}
        indexed = {r["folder"]: r["tree"] for r in db.execute(
            "SELECT folder, tree FROM attempts WHERE session_id=?", (sid,))}
        gone = [f for f in indexed if f not in folders]
        db.executemany("DELETE FROM attempts WHERE session_id=? AND folder=?", [(sid, f) for f in gone])
        changed = [f for f, tree in folders.items() if indexed.get(f) != tree]
        if not changed:
            return
        commits = self._commits_by_path(head)
        rows = []
        for folder in changed:
            entries = objects.read_tree(bytes.fromhex(folders[folder]))
            try:
                meta = json.loads(objects.read(entries["attempt.json"][0], "blob"))
                result = json.loads(objects.read(entries["result.json"][0], "blob"))
            except READ_ERRORS:
                continue  # unreadable folders are reported by `aar check`
            commit = commits.get(f"{ATTEMPTS_DIR}/{folder}", head)
            rows.append(attempt_row(meta, result, sid, folder, folders[folder], commit))
        db.execute("DELETE FROM attempts WHERE session_id=? AND folder IN (SELECT value FROM json_each(?))",
                   (sid, json.dumps(changed)))
        marks = ",".join("?" * len(_ATTEMPT_COLS))
        db.executemany(f"INSERT OR REPLACE INTO attempts VALUES({marks})", rows)

    def _commits_by_path(self, head: str) -> dict[str, str]:
        """``attempts/<folder> -> newest commit`` that wrote it, from the commit trailers."""
        out = self.store.repo.git.log("--format=%H%x1f%(trailers:key=Aar-Path,valueonly,separator=%x1e)", head)
        found: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, path = line.partition("\x1f")
            for p in path.split("\x1e"):
                if p.strip():
                    found.setdefault(p.strip(), sha)
        return found

    def _index_reviews(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM reviews")
        for _commit, attempt_id, reviews in read_all_notes(self.store):
            db.executemany("INSERT OR REPLACE INTO reviews VALUES(?,?,?,?,?,?,?)", [
                (attempt_id, seq, r.verdict, r.note, r.reviewer, r.email, r.created_at)
                for seq, r in enumerate(reviews)])

    # -- queries -------------------------------------------------------------------------
    def _summaries(self, db: sqlite3.Connection, where: str, args: list[Any], order: str,
                   limit: int | None, offset: int = 0) -> list[AttemptSummary]:
        sql = f"SELECT a.* FROM attempts a JOIN sessions s USING(session_id) {where} ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        rows = db.execute(sql, args).fetchall()
        latest = {r["attempt_id"]: r for r in db.execute(
            "SELECT attempt_id, verdict, note FROM reviews ORDER BY attempt_id, seq")}
        tags: dict[str, list[str]] = {}
        for r in db.execute("SELECT attempt_id, tag FROM tags ORDER BY attempt_id, tag = 'star' DESC, rowid"):
            tags.setdefault(r[0], []).append(r[1])
        return [_summary(r, latest.get(r["attempt_id"]), tags.get(r["attempt_id"], [])) for r in rows]

    def ideas(self, session: str | None = None, task: str | None = None, statuses: list[str] | None = None,
              sort: str = "time", limit: int | None = None, researcher: str | None = None,
              include_replays: bool = True) -> list[AttemptSummary]:
        """Attempts matching the filters, newest first (``time``), best first (``pgr``) or in step order."""
        if sort not in SORTS:
            raise StoreError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
        self.refresh()
        where, args = where_clause(sessions=None if session is None else [session], task=task, statuses=statuses,
                                   include_replays=include_replays, researcher=researcher, task_column="a.task")
        order = "a.session_id, a.idx, a.researcher" if sort == "index" else ORDERS[sort]
        with self._db() as db:
            return self._summaries(db, where, args, order, limit)

    def leaderboard(self, task: str, limit: int = 20, include_replays: bool = False) -> list[AttemptSummary]:
        """The best ok attempts on ``task`` by the one ranking (experiments/ranking.py: the lower
        95% bound, not the mean, so a lucky few-seed result does not lead), then the rejected
        ones, unranked, so they stay visible with their notes."""
        rows = [r for r in self.ideas(task=task, statuses=["ok"], sort="lcb", include_replays=include_replays)
                if r.pgr is not None]
        return ([r for r in rows if not r.rejected][:limit] + [r for r in rows if r.rejected])

    # -- the public query API (the dashboard pages through it) -----------------------------
    def page(self, offset: int, limit: int, *, sessions: list[str] | None = None, task: str | None = None,
             statuses: list[str] | None = None, order: str = "index", include_replays: bool = True,
             scored_only: bool = False, search: str | None = None,
             tag: str | None = None) -> tuple[list[AttemptSummary], int, dict[str, int]]:
        """One page of attempts matching the filters (``order``: see ``order_sql``; ``pgr`` and
        ``lcb`` put rejected attempts after every ranked one; ``search``: text in the idea's name
        or the attempt or session id), the number matching in all, and the per-status counts
        (over every status, for the filter's buttons)."""
        sort = order_sql(order)
        self.refresh()
        where, args = where_clause(sessions=sessions, task=task, statuses=statuses, include_replays=include_replays,
                                   search=search, tag=tag)
        if scored_only:
            where += (" AND " if where else "WHERE ") + "a.pgr IS NOT NULL"
        count_where, count_args = where_clause(sessions=sessions, task=task, include_replays=include_replays,
                                               search=search, tag=tag)
        base = f"FROM attempts a JOIN sessions s USING(session_id) {where}"
        with self._db() as db:
            total = db.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
            rows = self._summaries(db, where, args, sort, limit, offset)
            counts = {r[0]: r[1] for r in db.execute(
                f"SELECT a.status, COUNT(*) FROM attempts a JOIN sessions s USING(session_id) {count_where} "
                "GROUP BY a.status ORDER BY 2 DESC", count_args)}
        return rows, total, counts

    def chart_rows(self, sessions: list[str]) -> list[dict[str, Any]]:
        """Every attempt of the sessions, just the columns a chart needs, in step order."""
        self.refresh()
        with self._db() as db:
            return [dict(r) for r in db.execute(
                "SELECT attempt_id, idx, researcher, name, status, pgr, pgr_ci95, created_at, heldout_pgr, "
                f"NOT ({SQL_NOT_REJECTED}) AS rejected FROM attempts a "
                "WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY idx, researcher, created_at",
                (json.dumps(sessions),))]

    def vanilla_pgrs(self, sessions: list[str]) -> list[float]:
        """Vanilla's dev PGR on each scored attempt's seeds (``pgr - vs_vanilla``), sorted."""
        with self._db() as db:
            return sorted(r[0] for r in db.execute(
                "SELECT pgr - vs_vanilla FROM attempts WHERE session_id IN (SELECT value FROM json_each(?)) "
                "AND status = 'ok' AND pgr IS NOT NULL AND vs_vanilla IS NOT NULL", (json.dumps(sessions),)))

    def neighbours(self, row: AttemptSummary) -> tuple[str | None, str | None]:
        """Ids of the same researcher's previous and next attempt in the session."""
        with self._db() as db:
            found = {r[0]: r[1] for r in db.execute(
                "SELECT idx, attempt_id FROM attempts WHERE session_id = ? AND researcher = ? AND idx IN (?, ?)",
                (row.session_id, row.researcher, row.index - 1, row.index + 1))}
        return found.get(row.index - 1), found.get(row.index + 1)

    def session_reviews(self, session: str) -> list[tuple[str, int, Review]]:
        """``(attempt_id, seq, review)`` of every review of the session's attempts, in order."""
        self.refresh()
        with self._db() as db:
            return [(r["attempt_id"], r["seq"], Review(verdict=r["verdict"], note=r["note"], reviewer=r["reviewer"],
                                             email=r["email"], created_at=r["created_at"])) for r in db.execute(
                "SELECT rv.* FROM reviews rv JOIN attempts a USING(attempt_id) WHERE a.session_id = ? "
                "ORDER BY rv.created_at, rv.attempt_id, rv.seq", (session,))]

    def latest_reviews(self, session: str | None = None) -> dict[str, tuple[str, str]]:
        """``attempt_id -> (verdict, note)`` of every reviewed attempt (of ``session``): its latest review."""
        self.refresh()
        with self._db() as db:
            return {r["attempt_id"]: (r["verdict"], r["note"]) for r in db.execute(
                "SELECT rv.attempt_id, rv.verdict, rv.note FROM reviews rv LEFT JOIN attempts a USING(attempt_id) "
                "WHERE ? IS NULL OR a.session_id = ? ORDER BY rv.attempt_id, rv.seq", (session, session))}

    def replay_count(self, task: str) -> int:
        """Ok attempts on ``task`` that come from replay sessions (hidden from leaderboards by default)."""
        self.refresh()
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM attempts a JOIN sessions s USING(session_id) "
                              "WHERE a.task = ? AND a.status = 'ok' AND s.proposer = 'replay'", (task,)).fetchone()[0]

    def resolve_task(self, text: str) -> str:
        """The task identity ``text`` means here: an identity as stored, a task name or directory
        (resolved to its ``name@content-key`` identity), or the readable part of one identity."""
        tasks = self.tasks()
        if text in tasks:
            return text
        try:
            return get_task(text).name  # a registered name or a task directory
        except HarnessError:
            pass
        hits = [t for t in tasks if readable_name(t) == text or t.startswith(text)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise StoreError(f"task {text!r} is ambiguous in this lab: {', '.join(sorted(hits))}; "
                             "pass one of them or the task directory")
        raise StoreError(f"no attempts on task {text!r} in this lab; tasks here: {', '.join(tasks) or 'none yet'}")

    def tag_counts(self, sessions: list[str] | None = None) -> dict[str, int]:
        """``tag -> attempts carrying it`` (of ``sessions``), most used first."""
        self.refresh()
        with self._db() as db:
            return {r[0]: r[1] for r in db.execute(
                "SELECT t.tag, COUNT(*) FROM tags t JOIN attempts a USING(attempt_id) "
                "WHERE ? IS NULL OR a.session_id IN (SELECT value FROM json_each(?)) GROUP BY t.tag ORDER BY 2 DESC, 1",
                (None if sessions is None else 1, json.dumps(sessions or [])))}

    def tasks(self) -> dict[str, int]:
        self.refresh()
        with self._db() as db:
            return {r[0]: r[1] for r in db.execute(
                "SELECT task, COUNT(*) FROM attempts WHERE task IS NOT NULL GROUP BY task ORDER BY 2 DESC")}

    def find(self, text: str) -> AttemptSummary:
        """An attempt by id, unique id prefix, or commit sha prefix."""
        self.refresh()
        if len(text) < 4:
            raise StoreError(f"attempt id {text!r} is too short; give at least 4 characters")
        with self._db() as db:
            exact = self._summaries(db, "WHERE a.attempt_id = ?", [text], "a.attempt_id", 1)
            if exact:
                return exact[0]
            for column, key in (("a.attempt_id", text), ("a.commit_sha", text.lower())):
                hits = self._summaries(db, f"WHERE substr({column}, 1, ?) = ?", [len(key), key], "a.attempt_id", 3)
                if len(hits) == 1:
                    return hits[0]
                if len(hits) > 1:
                    raise StoreError(f"attempt prefix {text!r} is ambiguous; give more characters")
        raise StoreError(f"no attempt {text!r} in {self.store.path}; list them with `aar ideas`")

    def reviews(self, attempt_id: str) -> list[Review]:
        self.refresh()
        with self._db() as db:
            return [Review(verdict=r["verdict"], note=r["note"], reviewer=r["reviewer"], email=r["email"],
                           created_at=r["created_at"]) for r in db.execute(
                "SELECT * FROM reviews WHERE attempt_id=? ORDER BY seq", (attempt_id,))]

    def sessions(self) -> list[SessionSummary]:
        self.refresh()
        with self._db() as db:
            stats = {r["session_id"]: r for r in db.execute(
                "SELECT session_id, COUNT(*) n, SUM(status='ok') ok, SUM(cost_usd) cost, SUM(tokens) tokens, "
                "GROUP_CONCAT(DISTINCT researcher) who FROM attempts GROUP BY session_id")}
            best = {r["session_id"]: r for r in db.execute(  # the one ranking, rejected attempts left out
                "SELECT session_id, attempt_id, pgr, pgr_ci95 FROM (SELECT a.session_id, a.attempt_id, a.pgr, "
                f"a.pgr_ci95, ROW_NUMBER() OVER (PARTITION BY a.session_id ORDER BY {SQL_ORDER}) n "
                f"FROM attempts a WHERE {SQL_RANKS}) WHERE n = 1")}
            out = []
            for s in db.execute("SELECT * FROM sessions ORDER BY created_at DESC, session_id"):
                st, b = stats.get(s["session_id"]), best.get(s["session_id"])
                out.append(SessionSummary(
                    session_id=s["session_id"], branch=f"sessions/{s['session_id']}", task=s["task"],
                    proposer=s["proposer"], model=s["model"], status=s["status"], created_at=s["created_at"],
                    parent_session=s["parent_session"], attempts=st["n"] if st else 0, ok=st["ok"] if st else 0,
                    best_pgr=b["pgr"] if b else None, best_attempt=b["attempt_id"] if b else None,
                    best_lower=lower_bound(b["pgr"], b["pgr_ci95"]) if b else None,
                    cost_usd=((st["cost"] or 0.0) if st else 0.0) + (s["extra_cost"] or 0.0),
                    tokens=((st["tokens"] or 0) if st else 0) + (s["extra_tokens"] or 0),
                    researchers=sorted(st["who"].split(",")) if st and st["who"] else [], head=s["head"]))
            return out

    def session_heads(self) -> dict[str, str]:
        """``session_id -> head`` as last indexed."""
        with self._db() as db:
            return {r[0]: r[1] for r in db.execute("SELECT session_id, head FROM sessions")}

    def folders(self) -> set[tuple[str, str, str]]:
        """``(session, folder, attempt_id)`` of every indexed attempt (for consistency checks)."""
        with self._db() as db:
            return {(r[0], r[1], r[2]) for r in db.execute("SELECT session_id, folder, attempt_id FROM attempts")}


def _summary(r: sqlite3.Row, review: sqlite3.Row | None, tags: list[str] | None = None) -> AttemptSummary:
    return AttemptSummary(
        attempt_id=r["attempt_id"], session_id=r["session_id"], researcher=r["researcher"], index=r["idx"],
        name=r["name"], status=r["status"], task=r["task"], pgr=r["pgr"], pgr_ci95=r["pgr_ci95"],
        pgr_lower=lower_bound(r["pgr"], r["pgr_ci95"]) if r["status"] == "ok" else None,
        n_seeds=r["n_seeds"] or 0, dev_acc=r["dev_acc"], heldout_acc=r["heldout_acc"],
        heldout_pgr=r["heldout_pgr"], vs_vanilla=r["vs_vanilla"], vs_vanilla_p=r["vs_vanilla_p"],
        warnings=json.loads(r["warnings"] or "[]"), cost_usd=r["cost_usd"] or 0.0, tokens=r["tokens"] or 0,
        parent_id=r["parent_id"], created_at=r["created_at"], commit=r["commit_sha"], folder=r["folder"],
        review=review["verdict"] if review else None, review_note=review["note"] if review else None,
        tags=tags or [])


def order_sql(order: str) -> str:
    """The ORDER BY of ``order``: a named order of ``ORDERS``, or a ``COLUMN_SORTS`` key
    (``-key`` for descending), ties in step order; unknown names are a StoreError."""
    if order in ("pgr", "lcb"):
        return f"NOT ({SQL_RANKS}), {ORDERS[order]}"
    if order in ORDERS:
        return ORDERS[order]
    column = COLUMN_SORTS.get(order.removeprefix("-"))
    if column is None:
        raise StoreError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}, or a column "
                         f"({', '.join(COLUMN_SORTS)}), with a leading '-' for descending")
    return f"{column} IS NULL, {column} {'DESC' if order.startswith('-') else 'ASC'}, a.idx, a.researcher"


def where_clause(*, sessions: list[str] | None = None, task: str | None = None, statuses: list[str] | None = None,
                 include_replays: bool = True, researcher: str | None = None,
                 task_column: str = "COALESCE(a.task, s.task)", search: str | None = None,
                 tag: str | None = None) -> tuple[str, list[Any]]:
    """The one SQL filter over ``attempts a JOIN sessions s``: a WHERE clause and its arguments."""
    clauses: list[str] = []
    args: list[Any] = []
    if sessions is not None:
        clauses.append("a.session_id IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(sessions))
    for column, value in ((task_column, task), ("a.researcher", researcher)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if statuses:
        clauses.append(f"a.status IN ({','.join('?' * len(statuses))})")
        args.extend(statuses)
    if not include_replays:
        clauses.append("s.proposer != 'replay'")
    if tag:
        clauses.append("a.attempt_id IN (SELECT attempt_id FROM tags WHERE tag = ?)")
        args.append(tag)
    if search:
        clauses.append("(instr(lower(a.name), ?) > 0 OR instr(a.attempt_id, ?) > 0 OR instr(a.session_id, ?) > 0)")
        args.extend([search.lower(), search, search])
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


__all__ = ["COLUMN_SORTS", "ORDERS", "order_sql", "SORTS", "UNTESTED_PENALTY", "LabIndex",
           "attempt_row", "usage_tokens", "where_clause"]
