"""A versioned, content-addressed skill registry with an embedded SQLite index.

Layout of a store directory::

    index.sqlite            names, versions, aliases, tags, lineage, metadata (WAL mode)
    objects/ab/abcdef...    every file of every version, named by its sha256
    tmp/                    files being written (renamed into objects/ once complete)

A version is immutable: its files are content-addressed and its row is written once, in one
transaction, after all its files are durably on disk. Versions are integers from 1 per name,
never reused. ``latest`` is the highest version; other aliases are set by users.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import h5py
import networkx as nx
import safetensors.torch

from skillbank.algos.buffer import ReplayBuffer
from skillbank.errors import IntegrityError, NotFoundError, SkillbankError, write_error
from skillbank.nn.skill import DESCRIPTION_FILE, WEIGHTS_FILE, Skill
from skillbank.store import archive
from skillbank.store.entities import (
    DATA_FILES,
    EXPORT_MANIFEST,
    INDEX_FILE,
    SHA_RE,
    STORE_ENV,
    Parent,
    Ref,
    validate_name,
)  # fmt: skip

DEFAULT_STORE = "skills_store"
SCHEMA_VERSION = 1


RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
    FOREIGN KEY (name, version) REFERENCES versions(name, version));
"""
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, created TEXT NOT NULL,
    task TEXT, algorithm TEXT, description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL, files TEXT NOT NULL,
    PRIMARY KEY (name, version));
CREATE INDEX IF NOT EXISTS versions_task ON versions(task);
CREATE INDEX IF NOT EXISTS versions_algorithm ON versions(algorithm);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (name, alias), FOREIGN KEY (name, version) REFERENCES versions(name, version));
CREATE TABLE IF NOT EXISTS tags (
    name TEXT NOT NULL, version INTEGER NOT NULL, tag TEXT NOT NULL,
    PRIMARY KEY (name, version, tag), FOREIGN KEY (name, version) REFERENCES versions(name, version));
CREATE INDEX IF NOT EXISTS tags_tag ON tags(tag);
CREATE TABLE IF NOT EXISTS parents (
    name TEXT NOT NULL, version INTEGER NOT NULL,
    parent_name TEXT NOT NULL, parent_version INTEGER NOT NULL,
    relation TEXT NOT NULL, info TEXT NOT NULL DEFAULT '{}',
    FOREIGN KEY (name, version) REFERENCES versions(name, version),
    FOREIGN KEY (parent_name, parent_version) REFERENCES versions(name, version));
CREATE INDEX IF NOT EXISTS parents_child ON parents(name, version);
CREATE INDEX IF NOT EXISTS parents_parent ON parents(parent_name, parent_version);
"""
    + RUNS_SCHEMA
)


def _index_json(text: Any) -> Any:
    """A JSON column of the index, or an IntegrityError: a corrupt index must not take a command down."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, UnicodeDecodeError) as error:
        raise IntegrityError(f"the store's index holds a malformed entry ({error}); restore it from a backup") from None
    if not isinstance(value, dict):
        raise IntegrityError("the store's index holds a malformed entry; restore it from a backup")
    return value


def _file_entries(text: Any, ref: Ref) -> dict[str, dict[str, Any]]:
    """A version's files column: ``{filename: {"sha256", "size"}}``, each entry checked."""
    files = _index_json(text)
    for filename, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and SHA_RE.match(entry["sha256"])):
            raise IntegrityError(f"the index's entry for {filename} of {ref} is malformed; restore it from a backup")
    return files


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str | None]:
    versions = {}
    for package in ("skillbank", "torch", "gymnasium", "mujoco", "numpy"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class Registry:
    """A skill store. ``Registry()`` opens ``$SKILLBANK_STORE`` or ``./skills_store`` (created if absent)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, create: bool = True) -> None:
        """Open the store at ``path``; ``create`` makes a new one where there is none (otherwise that is
        a :class:`NotFoundError`). A store on a read-only filesystem, or one this user cannot write, is
        opened read-only: it can be listed, shown, loaded and exported, and writing is refused."""
        self.path = Path(path or os.environ.get(STORE_ENV) or DEFAULT_STORE)
        self.db_path = self.path / INDEX_FILE
        if self.path.exists() and not self.path.is_dir():
            raise SkillbankError(f"store path {self.path} exists and is not a directory")
        if not self.db_path.is_file() and not create:
            raise NotFoundError(f"no skill store at {self.path}; check --store (or $SKILLBANK_STORE)")
        self.read_only = self.db_path.is_file() and not (
            os.access(self.path, os.W_OK) and os.access(self.db_path, os.W_OK)
        )
        if not self.read_only:
            try:
                (self.path / "objects").mkdir(parents=True, exist_ok=True)
                (self.path / "tmp").mkdir(exist_ok=True)
            except OSError as error:
                raise SkillbankError(f"cannot create the store {self.path}: {error.strerror}") from None
        with self._connect() as db:
            (schema,) = db.execute("PRAGMA user_version").fetchone()
            if schema > SCHEMA_VERSION:
                raise SkillbankError(f"{self.path} was written by a newer skillbank (schema {schema}); upgrade it")
            if schema == 0:  # a new store, the only one written to here; tables without a version are a corrupt one
                if db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'versions'").fetchone()[0]:
                    raise IntegrityError(f"the store's index {self.db_path} has lost its schema version; restore it")
                if not self.read_only:
                    db.executescript(SCHEMA)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _writable(self) -> None:
        if self.read_only:
            raise SkillbankError(f"the store {self.path} is read-only; write to a store of your own (--store PATH)")

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r})"

    # ----- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self.read_only:  # a shared copy nobody writes: read it as it is, without WAL files
                db = sqlite3.connect(f"file:{self.db_path}?mode=ro&immutable=1", uri=True, isolation_level=None)
            else:
                db = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as error:
            raise IntegrityError(f"cannot open the store's index {self.db_path}: {error}") from None
        try:
            if not self.read_only:
                db.execute("PRAGMA busy_timeout = 60000")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            db.row_factory = sqlite3.Row
            yield db
        except UnicodeDecodeError as error:  # a text column that is not UTF-8: the index is corrupt
            raise IntegrityError(f"the store's index {self.db_path} is corrupt ({error}); restore it") from None
        except sqlite3.DatabaseError as error:
            # SQLite reports a full disk as "database or disk is full", or as a disk I/O error.
            full = isinstance(error, sqlite3.OperationalError) and (
                "full" in str(error) or shutil.disk_usage(self.path).free < 1 << 20
            )
            if full:
                raise SkillbankError(
                    f"no space left on the device writing {self.db_path} ({error}); free some space and try again"
                ) from None
            raise IntegrityError(
                f"the store's index {self.db_path} is unreadable ({error}); restore it from an export or a backup"
            ) from None
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes SQLite's write lock up front (waiting on busy)."""
        self._writable()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _object_path(self, sha: str) -> Path:
        return self.path / "objects" / sha[:2] / sha

    def _put_object(self, data: bytes) -> str:
        """Store ``data`` under its sha256: temp file, fsync, atomic rename, fsync the directory."""
        self._writable()
        sha = sha256_bytes(data)
        final = self._object_path(sha)
        if final.exists():
            return sha
        tmp = self.path / "tmp" / f"{sha}.{uuid.uuid4().hex}"
        try:
            final.parent.mkdir(exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            directory = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise write_error(error, tmp, len(data)) from None
        return sha

    def _read_object(self, ref: Ref, filename: str, entry: dict[str, Any]) -> bytes:
        path = self._object_path(entry["sha256"])
        if not path.is_file():
            raise IntegrityError(f"{filename} of {ref} is missing from the store ({path}); run `skillbank verify`")
        data = path.read_bytes()
        if sha256_bytes(data) != entry["sha256"]:
            raise IntegrityError(
                f"{filename} of {ref} is corrupt: {path} does not match its recorded sha256; "
                "restore it from an export or re-register the skill"
            )
        return data

    # ----- references ---------------------------------------------------------------------------
    def resolve(self, ref: str | Ref) -> Ref:
        """``name`` (latest), ``name@N`` or ``name@alias`` to a concrete ``Ref``; clear errors otherwise."""
        if isinstance(ref, Ref):
            return ref
        name, _, selector = str(ref).partition("@")
        validate_name(name)
        with self._connect() as db:
            versions = [r[0] for r in db.execute("SELECT version FROM versions WHERE name=? ORDER BY version", (name,))]
            if not versions:
                names = [r[0] for r in db.execute("SELECT DISTINCT name FROM versions")]
                close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else "; `skillbank list` shows the skills"
                raise NotFoundError(f"no skill named {name!r} in {self.path}{hint}")
            if selector in ("", "latest"):
                return Ref(name, versions[-1])
            if selector.isdigit():
                if int(selector) not in versions:
                    raise NotFoundError(f"{name} has no version {selector}; versions: {', '.join(map(str, versions))}")
                return Ref(name, int(selector))
            row = db.execute("SELECT version FROM aliases WHERE name=? AND alias=?", (name, selector)).fetchone()
            if row is None:
                aliases = [r[0] for r in db.execute("SELECT alias FROM aliases WHERE name=?", (name,))]
                raise NotFoundError(
                    f"{name} has no alias {selector!r}; aliases: {', '.join(['latest', *aliases])}; "
                    f"versions: {', '.join(map(str, versions))}"
                )
            return Ref(name, row[0])

    # ----- writing ------------------------------------------------------------------------------
    def register(
        self,
        skill: Skill,
        name: str,
        *,
        tags: Sequence[str] = (),
        description: str = "",
        parents: Sequence[str | Parent] = (),
        replay: ReplayBuffer | None = None,
        rollouts: str | os.PathLike[str] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Store ``skill`` as the next version of ``name`` and return its reference ``name@N``.

        ``parents`` are references (or :class:`Parent` edges with a relation) recorded as lineage;
        ``replay`` stores the replay buffer and ``rollouts`` an HDF5 file, both loaded only on request.
        With ``run_id`` (a training run's id) registering is idempotent: a run registered before gets
        back its version, and nothing is added.
        """
        if run_id is not None and (existing := self.find_run(run_id)) is not None:
            return existing
        validate_name(name)
        for tag in tags:
            validate_name(tag, "tag")
        edges = [p if isinstance(p, Parent) else Parent(p) for p in parents]
        resolved = [(self.resolve(p.ref), p) for p in edges]
        for _, edge in resolved:
            validate_name(edge.relation, "relation")
        blobs = {
            DESCRIPTION_FILE: json.dumps(skill.description_json(), indent=2, sort_keys=True).encode(),
            WEIGHTS_FILE: safetensors.torch.save(skill.state_tensors()),
        }
        if replay is not None:
            with tempfile.TemporaryDirectory() as tmp:
                blobs[DATA_FILES["replay"]] = replay.save_hdf5(Path(tmp) / "replay.h5").read_bytes()
        if rollouts is not None:
            blobs[DATA_FILES["rollouts"]] = Path(rollouts).read_bytes()
        files = {fn: {"sha256": self._put_object(data), "size": len(data)} for fn, data in blobs.items()}
        info = skill.description_json()
        meta = {
            **info,
            "origin": edges[0].relation if edges else "trained",
            "library_versions": library_versions(),
            "registry_format": SCHEMA_VERSION,
            **({"run_id": run_id} if run_id is not None else {}),
        }
        task = (info.get("task") or {}).get("name") or (info.get("task") or {}).get("env_id")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        parent_rows = [(ref, edge.relation, edge.info) for ref, edge in resolved]
        return self._insert_version(
            name, created, task, info.get("algorithm"), description, meta, files, tags, parent_rows
        )

    def _insert_version(
        self,
        name: str,
        created: str,
        task: str | None,
        algorithm: str | None,
        description: str,
        meta: dict[str, Any],
        files: dict[str, Any],
        tags: Sequence[str],
        parents: Sequence[tuple[Ref, str, dict[str, Any]]],
    ) -> str:
        """Add the next version of ``name`` with its tags and lineage, in one transaction (or, for a run
        registered in the meantime, return its version)."""
        with self._write() as db:
            if meta.get("run_id") is not None and (existing := self._find_run(db, meta["run_id"])) is not None:
                return existing
            (last,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM versions WHERE name=?", (name,)).fetchone()
            version = last + 1
            db.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, created, task, algorithm, description, json.dumps(meta), json.dumps(files)),
            )
            db.executemany("INSERT INTO tags VALUES (?, ?, ?)", [(name, version, t) for t in dict.fromkeys(tags)])
            if meta.get("run_id") is not None:
                db.execute(RUNS_SCHEMA)
                db.execute("INSERT INTO runs VALUES (?, ?, ?)", (meta["run_id"], name, version))
            db.executemany(
                "INSERT INTO parents VALUES (?, ?, ?, ?, ?, ?)",
                [(name, version, r.name, r.version, relation, json.dumps(info)) for r, relation, info in parents],
            )
        return f"{name}@{version}"

    @staticmethod
    def _find_run(db: sqlite3.Connection, run_id: str) -> str | None:
        try:
            row = db.execute("SELECT name, version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.OperationalError:  # a store from before runs were recorded: none is
            return None
        return None if row is None else f"{row[0]}@{row[1]}"

    def find_run(self, run_id: str) -> str | None:
        """The version a training run (by its id) was registered as, or None."""
        with self._connect() as db:
            return self._find_run(db, run_id)

    def alias(self, ref: str, alias: str) -> str:
        """Point ``name@alias`` at the version ``ref`` resolves to (moving it if it exists)."""
        validate_name(alias, "alias")
        if alias == "latest" or alias.isdigit():
            raise SkillbankError(f"alias {alias!r} is reserved: 'latest' is automatic and numbers are versions")
        target = self.resolve(ref)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (target.name, alias, target.version))
        return f"{target.name}@{alias} -> {target}"

    def tag(self, ref: str, tag: str) -> str:
        """Add ``tag`` to a version (tags are searchable with :meth:`find`)."""
        validate_name(tag, "tag")
        target = self.resolve(ref)
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO tags VALUES (?, ?, ?)", (target.name, target.version, tag))
        return str(target)

    # ----- reading ------------------------------------------------------------------------------
    def load(self, ref: str | Ref) -> Skill:
        """Load a skill after checking every file's sha256; never unpickles."""
        target = self.resolve(ref)
        files = self._files(target)
        if DESCRIPTION_FILE not in files or WEIGHTS_FILE not in files:
            raise IntegrityError(f"the index lists no {DESCRIPTION_FILE} or {WEIGHTS_FILE} for {target}; restore it")
        skill = Skill.from_bytes(
            self._read_object(target, DESCRIPTION_FILE, files[DESCRIPTION_FILE]),
            self._read_object(target, WEIGHTS_FILE, files[WEIGHTS_FILE]),
        )
        skill.ref = str(target)
        return skill

    def _files(self, target: Ref) -> dict[str, dict[str, Any]]:
        with self._connect() as db:
            row = db.execute("SELECT files FROM versions WHERE name=? AND version=?", (target.name, target.version))
            return _file_entries(row.fetchone()[0], target)

    @contextmanager
    def open_data(self, ref: str | Ref, kind: str = "replay") -> Iterator[h5py.File]:
        """Open a version's ``replay`` or ``rollouts`` HDF5 file read-only, after checking its sha256."""
        if kind not in DATA_FILES:
            raise SkillbankError(f"unknown data kind {kind!r}; one of {', '.join(DATA_FILES)}")
        target = self.resolve(ref)
        filename = DATA_FILES[kind]
        files = self._files(target)
        if filename not in files:
            raise NotFoundError(f"{target} was registered without {kind} data")
        data = self._read_object(target, filename, files[filename])
        with h5py.File(io.BytesIO(data), "r") as f:
            yield f

    def replay_buffer(self, ref: str | Ref, capacity: int | None = None) -> ReplayBuffer:
        """A version's stored replay buffer, loaded only now."""
        target = self.resolve(ref)
        files = self._files(target)
        if DATA_FILES["replay"] not in files:
            raise NotFoundError(f"{target} was registered without replay data")
        data = self._read_object(target, DATA_FILES["replay"], files[DATA_FILES["replay"]])
        return ReplayBuffer.load_hdf5(io.BytesIO(data), capacity)

    def replay_union(self, refs: Sequence[str | Ref]) -> ReplayBuffer | None:
        """One buffer with the stored replay of every version in ``refs`` (e.g. a composite's
        constituents), or None when any of them was registered without replay data."""
        buffers = []
        for ref in refs:
            target = self.resolve(ref)
            if DATA_FILES["replay"] not in self._files(target):
                return None
            buffers.append(self.replay_buffer(target))
        return ReplayBuffer.concatenate(buffers)

    def _row_info(self, db: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
        key = (row["name"], row["version"])
        aliases = [r[0] for r in db.execute("SELECT alias FROM aliases WHERE name=? AND version=?", key)]
        tags = [r[0] for r in db.execute("SELECT tag FROM tags WHERE name=? AND version=?", key)]
        parents = [
            {"ref": f"{r[0]}@{r[1]}", "relation": r[2], "info": _index_json(r[3])}
            for r in db.execute(
                "SELECT parent_name, parent_version, relation, info FROM parents WHERE name=? AND version=?", key
            )
        ]
        return {
            "ref": f"{row['name']}@{row['version']}",
            "name": row["name"],
            "version": row["version"],
            "created": row["created"],
            "task": row["task"],
            "algorithm": row["algorithm"],
            "description": row["description"],
            "aliases": aliases,
            "tags": tags,
            "parents": parents,
            "files": _file_entries(row["files"], Ref(row["name"], row["version"])),
            "metadata": _index_json(row["metadata"]),
        }

    def info(self, ref: str | Ref) -> dict[str, Any]:
        """Everything recorded about one version (metadata, files, aliases, tags, parents)."""
        target = self.resolve(ref)
        with self._connect() as db:
            row = db.execute("SELECT * FROM versions WHERE name=? AND version=?", (target.name, target.version))
            info = self._row_info(db, row.fetchone())
            (latest,) = db.execute("SELECT MAX(version) FROM versions WHERE name=?", (target.name,)).fetchone()
        if latest == target.version:
            info["aliases"].insert(0, "latest")
        return info

    def versions(self, name: str) -> list[dict[str, Any]]:
        """All versions of ``name``, oldest first."""
        self.resolve(name)
        return self.find(name=name)

    def list(self) -> list[dict[str, Any]]:
        """One summary per skill name: latest version, number of versions, task, algorithm, aliases."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT v.name, v.version, v.task, v.algorithm, v.created, c.n FROM versions v "
                "JOIN (SELECT name, MAX(version) AS latest, COUNT(*) AS n FROM versions GROUP BY name) c "
                "ON v.name = c.name AND v.version = c.latest ORDER BY v.name"
            ).fetchall()
            aliases: dict[str, list[str]] = {}
            for name, alias, version in db.execute("SELECT name, alias, version FROM aliases ORDER BY alias"):
                aliases.setdefault(name, []).append(f"{alias}->{version}")
        return [
            {
                "name": r["name"],
                "latest": r["version"],
                "versions": r["n"],
                "task": r["task"],
                "algorithm": r["algorithm"],
                "created": r["created"],
                "aliases": aliases.get(r["name"], []),
            }
            for r in rows
        ]

    def find(
        self, *, name: str | None = None, task: str | None = None, algo: str | None = None, tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Versions matching every given filter (exact match), oldest first."""
        clauses, args = [], []
        for column, value in (("v.name", name), ("v.task", task), ("v.algorithm", algo)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if tag is not None:
            clauses.append("EXISTS (SELECT 1 FROM tags t WHERE t.name=v.name AND t.version=v.version AND t.tag=?)")
            args.append(tag)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM versions v {where} ORDER BY v.name, v.version", args).fetchall()
            return [self._row_info(db, row) for row in rows]

    def lineage(self, ref: str | Ref) -> nx.DiGraph:
        """The version's ancestors and descendants: nodes ``name@N``, edges parent -> child with ``relation``."""
        start = self.resolve(ref)
        graph = nx.DiGraph()
        with self._connect() as db:

            def add_node(name: str, version: int) -> None:
                row = db.execute(
                    "SELECT task, algorithm, created, metadata FROM versions WHERE name=? AND version=?",
                    (name, version),
                ).fetchone()
                origin = _index_json(row["metadata"]).get("origin", "trained")
                graph.add_node(
                    f"{name}@{version}",
                    task=row["task"],
                    algorithm=row["algorithm"],
                    created=row["created"],
                    origin=origin,
                )

            add_node(start.name, start.version)
            for query, upward in (
                ("SELECT parent_name, parent_version, relation, info FROM parents WHERE name=? AND version=?", True),
                ("SELECT name, version, relation, info FROM parents WHERE parent_name=? AND parent_version=?", False),
            ):
                frontier, seen = [(start.name, start.version)], {(start.name, start.version)}
                while frontier:
                    node = frontier.pop()
                    for other_name, other_version, relation, info in db.execute(query, node).fetchall():
                        other = (other_name, other_version)
                        if other not in seen:
                            seen.add(other)
                            frontier.append(other)
                            add_node(*other)
                        parent, child = (other, node) if upward else (node, other)
                        graph.add_edge(
                            f"{parent[0]}@{parent[1]}", f"{child[0]}@{child[1]}", relation=relation, **_index_json(info)
                        )
        return graph

    # ----- integrity ----------------------------------------------------------------------------
    def verify(self) -> dict[str, Any]:
        """Check the index's integrity and every stored file's sha256; report problems and stray files."""
        problems: list[str] = []
        referenced: set[str] = set()
        with self._connect() as db:
            (check,) = db.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                problems.append(f"index.sqlite: {check}")
            rows = db.execute("SELECT name, version, files FROM versions").fetchall()
        checked = 0
        for name, version, files in rows:
            try:
                entries = _file_entries(files, Ref(name, version))
            except IntegrityError as error:
                problems.append(str(error))
                continue
            for filename, entry in entries.items():
                referenced.add(entry["sha256"])
                try:
                    self._read_object(Ref(name, version), filename, entry)
                    checked += 1
                except IntegrityError as error:
                    problems.append(str(error))
        stray = [
            str(p.relative_to(self.path))
            for p in sorted((self.path / "objects").glob("*/*"))
            if p.name not in referenced
        ]
        # Temp files older than an hour were left by a killed writer; they are never referenced.
        stale = [
            str(p.relative_to(self.path))
            for p in (self.path / "tmp").iterdir()
            if time.time() - p.stat().st_mtime > 3600
        ]
        return {
            "store": str(self.path),
            "versions": len(rows),
            "files_checked": checked,
            "ok": not problems,
            "problems": problems,
            "unreferenced_files": stray + stale,
        }

    # ----- moving skills between stores ---------------------------------------------------------
    def export(self, ref: str | Ref, file: str | os.PathLike[str]) -> list[str]:
        """Write the version and all its ancestors, with every file, into one ``.tar.gz`` archive."""
        target = self.resolve(ref)
        ancestors = nx.ancestors(self.lineage(target), str(target))
        refs = [str(target), *sorted(ancestors)]
        entries = [self.info(r) for r in refs]
        blobs: dict[str, bytes] = {}
        for entry in entries:
            entry["aliases"] = [a for a in entry["aliases"] if a != "latest"]
            for filename, file_entry in entry["files"].items():
                blobs[file_entry["sha256"]] = self._read_object(
                    Ref(entry["name"], entry["version"]), filename, file_entry
                )
        manifest = {"format": "skillbank-export", "format_version": 1, "root": str(target), "versions": entries}
        out = Path(file)
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for name, data in [(EXPORT_MANIFEST, json.dumps(manifest, indent=2).encode())] + [
                (f"objects/{sha}", data) for sha, data in sorted(blobs.items())
            ]:
                member = tarfile.TarInfo(name)
                member.size, member.mtime, member.mode = len(data), int(time.time()), 0o644
                tar.addfile(member, io.BytesIO(data))
        os.replace(tmp, out)
        return refs

    def import_(self, file: str | os.PathLike[str], max_size: int | None = None) -> dict[str, str]:
        """Import an archive written by :meth:`export`; returns ``{exported ref: ref in this store}``.

        The archive is streamed (:mod:`skillbank.store.archive`): each member's size is checked against
        ``max_size`` (default 4 GiB; the running total too) before it is read, and its sha256 computed
        while it is copied to a scratch folder. Links, special files, paths other than the manifest and
        ``objects/<sha256>``, files whose sha256 differs from their name, malformed manifests, skills and
        data files are refused before anything is written to the store. A version whose files already
        exist under the same name is reused.
        """

        self._writable()
        staging = Path(tempfile.mkdtemp(prefix="import-", dir=self.path / "tmp"))
        try:
            manifest, staged = archive.stage(Path(file), staging, max_size or archive.MAX_IMPORT_BYTES)
            entries = archive.check_manifest(manifest, staged, file)
            mapping: dict[str, str] = {}
            pending = list(entries)
            while pending:  # parents before children
                ready = [e for e in pending if all(p["ref"] in mapping for p in e["parents"])]
                if not ready:
                    raise SkillbankError(f"refusing {file}: its lineage has a cycle")
                for entry in ready:
                    pending.remove(entry)
                    mapping[entry["ref"]] = self._import_version(entry, staged, mapping)
            return mapping
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _import_version(self, entry: dict[str, Any], staged: dict[str, Path], mapping: dict[str, str]) -> str:
        files = entry["files"]
        for existing in self.find(name=entry["name"]):
            if existing["files"] == files:
                return existing["ref"]
        for file_entry in files.values():
            final = self._object_path(file_entry["sha256"])
            if not final.exists():
                try:
                    final.parent.mkdir(exist_ok=True)
                    os.replace(staged[file_entry["sha256"]], final)  # the scratch folder is on the store's disk
                except OSError as error:
                    raise write_error(error, final, file_entry["size"]) from None
        parents = []
        for parent in entry["parents"]:
            p_name, p_version = mapping[parent["ref"]].split("@")
            parents.append((Ref(p_name, int(p_version)), parent["relation"], parent["info"]))
        meta = {**entry["metadata"], "imported_from": entry["ref"]}
        return self._insert_version(
            entry["name"], entry["created"], entry["task"], entry["algorithm"], entry["description"],
            meta, files, entry["tags"], parents,
        )  # fmt: skip
