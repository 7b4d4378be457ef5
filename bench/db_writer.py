"""Durable writes per second through the DB writer (group commit) and beside its peers.

Run: .venv/bin/python bench/db_writer.py [--writes N] [--repeat R] [--dir DIR] [--synchronous FULL]

Two workloads, each on its own SQLite file with WAL and the same ``synchronous``
mode (FULL by default, the daemon's): setting writes with unique keys, and user
adds with the password already hashed (hashing happens before the writer and is
not what is measured here). For each, in one run:

- the DB writer actor with 8 concurrent askers, 1 asker, and 8 askers with
  ``max_batch = 1`` (group commit off);
- the baseline: a plain SQLAlchemy loop that opens an ORM Session per write and
  commits it, as a plain one-call-at-a-time server does;
- one big transaction (Core executemany, one commit): the ceiling;
- the disk's own commit rate: stdlib sqlite3, one row per commit.

Each figure is the median of ``--repeat`` runs; ratios are against the baseline
measured in the same run. Every write is acknowledged only after its commit.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pykka
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Session

import nua.settings
from nua import log
from nua.actors.call import call
from nua.actors.db_writer import DbWriter, WriterStats
from nua.actors.supervised import ChildContext
from nua.model import commands as cmd
from nua.model import engine as db_engine
from nua.model.base import utcnow
from nua.model.password import hash_password
from nua.model.schema import ensure_schema
from nua.model.setting import settings_table
from nua.model.user import users
from nua.settings import Settings

ASKERS = 8


# The baseline's ORM classes, mapped onto nua's own tables (nua itself uses Core only).
class _Orm(DeclarativeBase):
    pass


class User(_Orm):
    __table__ = users


class Setting(_Orm):
    __table__ = settings_table


def load_settings(url: str, synchronous: str, max_batch: int | None = None, state: Path | None = None) -> Settings:
    env = {"NUA_DB_URL": url, "NUA_DB_SQLITE_SYNCHRONOUS": synchronous}
    if state is not None:
        env |= {"XDG_STATE_HOME": str(state), "XDG_RUNTIME_DIR": str(state)}
    if max_batch is not None:
        env["NUA_DB_MAX_BATCH"] = str(max_batch)
    return nua.settings.load(environ=env)


class Workload:
    """How to make the i-th write of a run as a writer command, an ORM row and a Core row."""

    def __init__(self, name: str, password_hash: str) -> None:
        self.name = name
        self.password_hash = password_hash

    def command(self, tag: str, index: int) -> Any:
        if self.name == "setting_set":
            return cmd.SetSetting(f"{tag}.{index}", {"n": index})
        return cmd.AddUser(f"{tag}-{index}", f"{tag}-{index}@example.org", self.password_hash)

    def orm_write(self, session: Session, tag: str, index: int) -> None:
        if self.name == "setting_set":
            # merge: insert or update by key, the ORM's way to set a setting.
            session.merge(Setting(key=f"{tag}.{index}", value={"n": index}, updated_at=utcnow()))
            return
        # The original orchestrator's user add: next id from max(id), then insert.
        highest = session.scalar(sa.select(sa.func.max(users.c.id))) or 0
        now = utcnow()
        session.add(
            User(
                id=highest + 1,
                username=f"{tag}-{index}",
                email=f"{tag}-{index}@example.org",
                password_hash=self.password_hash,
                role="user",
                display_name="",
                created_at=now,
                updated_at=now,
            )
        )

    def core_rows(self, tag: str, count: int, first_id: int) -> tuple[sa.Table, list[dict[str, Any]]]:
        now = utcnow()
        if self.name == "setting_set":
            return settings_table, [{"key": f"{tag}.{i}", "value": {"n": i}, "updated_at": now} for i in range(count)]
        rows = [
            {
                "id": first_id + i,
                "username": f"{tag}-{i}",
                "email": f"{tag}-{i}@example.org",
                "password_hash": self.password_hash,
                "role": "user",
                "display_name": "",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(count)
        ]
        return users, rows


@contextmanager
def writer(settings: Settings) -> Iterator[pykka.ActorRef[Any]]:
    ref = DbWriter.start(ChildContext("db_writer", 1, lambda _exit: None), settings)
    try:
        yield ref
    finally:
        ref.stop(block=True, timeout=30)


def through_writer(settings: Settings, workload: Workload, tag: str, writes: int, askers: int) -> tuple[float, float]:
    """Writes/s through the actor with ``askers`` threads each calling and waiting in turn; and commands per commit."""
    with writer(settings) as ref:
        ref.ask(cmd.CountUsers(), timeout=30)  # started and schema ready
        per_asker = writes // askers
        errors: list[BaseException] = []
        start = threading.Barrier(askers + 1)

        def run(asker: int) -> None:
            start.wait()
            try:
                for index in range(per_asker):
                    call(ref, workload.command(f"{tag}a{asker}", index)).result(timeout=60)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(asker,)) for asker in range(askers)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        if errors:
            raise errors[0]
        stats = ref.ask(WriterStats(), timeout=30)
    return per_asker * askers / elapsed, stats["commands"] / max(1, stats["batches"])


def plain_engine(url: str, synchronous: str) -> sa.Engine:
    """A plain SQLAlchemy engine with the daemon's SQLite settings (WAL, synchronous), nothing else."""
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    return engine


def session_per_call(url: str, synchronous: str, workload: Workload, tag: str, writes: int) -> float:
    engine = plain_engine(url, synchronous)
    try:
        began = time.perf_counter()
        for index in range(writes):
            with Session(engine) as session:
                workload.orm_write(session, tag, index)
                session.commit()
        return writes / (time.perf_counter() - began)
    finally:
        engine.dispose()


def one_transaction(url: str, synchronous: str, workload: Workload, tag: str, writes: int) -> float:
    engine = plain_engine(url, synchronous)
    try:
        with engine.connect() as conn:
            first_id = (conn.scalar(sa.select(sa.func.max(users.c.id))) or 0) + 1
        table, rows = workload.core_rows(tag, writes, first_id)
        began = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)
        return writes / (time.perf_counter() - began)
    finally:
        engine.dispose()


def raw_commits(path: Path, synchronous: str, writes: int) -> float:
    """The disk's commit rate: stdlib sqlite3, WAL, one small row per commit."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, value TEXT)")
        began = time.perf_counter()
        for index in range(writes):
            connection.execute("BEGIN")
            connection.execute("INSERT INTO rows (value) VALUES (?)", (f"row {index}",))
            connection.execute("COMMIT")
        return writes / (time.perf_counter() - began)
    finally:
        connection.close()


def median_of(repeat: int, measure: Callable[[int], float]) -> float:
    return statistics.median(measure(run) for run in range(repeat))


def bench_workload(workload: Workload, directory: Path, args: argparse.Namespace) -> tuple[dict[str, float], float]:
    """Writes/s of each way of writing (labelled), and the commands per commit of the writer with 8 askers."""
    url = f"sqlite:///{directory}/{workload.name}.db"
    settings = load_settings(url, args.synchronous, state=directory)
    unbatched = load_settings(url, args.synchronous, max_batch=1, state=directory)
    engine = db_engine.create(settings.db)
    with engine.begin() as conn:
        ensure_schema(conn)
    engine.dispose()

    figures: dict[str, float] = {}
    batch_sizes: list[float] = []

    def actor(config: Settings, askers: int, label: str) -> Callable[[int], float]:
        def measure(run: int) -> float:
            rate, per_commit = through_writer(config, workload, f"{label}r{run}", args.writes, askers)
            if label == "w8":
                batch_sizes.append(per_commit)
            return rate

        return measure

    figures["writer, 8 askers"] = median_of(args.repeat, actor(settings, ASKERS, "w8"))
    figures["writer, 1 asker"] = median_of(args.repeat, actor(settings, 1, "w1"))
    figures["writer, 8 askers, max_batch=1"] = median_of(args.repeat, actor(unbatched, ASKERS, "wb1"))
    baseline_writes = max(200, args.writes // 3)
    figures["baseline: Session + commit per call"] = median_of(
        args.repeat, lambda run: session_per_call(url, args.synchronous, workload, f"s{run}", baseline_writes)
    )
    figures["ceiling: one transaction"] = median_of(
        args.repeat, lambda run: one_transaction(url, args.synchronous, workload, f"t{run}", args.writes * 5)
    )
    return figures, statistics.median(batch_sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=4000, help="writes per actor run (default 4000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, median reported (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the database files (default: a temp dir)")
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
    parser.add_argument("--workloads", default="setting_set,user_add")
    args = parser.parse_args()
    log.configure("error")
    logging.disable(logging.WARNING)

    security = nua.settings.load(environ={}).security
    password_hash = hash_password("benchmark password", security)
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, SQLAlchemy {version('sqlalchemy')},"
        f" pykka {version('pykka')}; WAL, synchronous={args.synchronous}; {ASKERS} askers;"
        f" median of {args.repeat} runs of {args.writes} writes"
    )
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="nua-bench-") as tmp:
        directory = Path(tmp)
        print(f"database files in {directory}")
        disk = median_of(args.repeat, lambda run: raw_commits(directory / f"raw{run}.db", args.synchronous, 1000))
        print(f"\ndisk's own commit rate (stdlib sqlite3, 1 row per commit): {disk:,.0f} commits/s")
        for name in args.workloads.split(","):
            figures, per_commit = bench_workload(Workload(name, password_hash), directory, args)
            baseline = figures["baseline: Session + commit per call"]
            print(f"\n{name}: durable writes/s")
            for label, rate in figures.items():
                print(f"  {label:<40} {rate:>10,.0f}/s   {rate / baseline:>6.2f}x baseline")
            group = figures["writer, 8 askers"]
            print(f"  commands per commit (writer, 8 askers): {per_commit:.1f}")
            print(
                f"  => group commit with {ASKERS} askers: {group / baseline:.2f}x the commit-per-call baseline,"
                f" {group / disk:.2f}x the disk's commit rate, {group / figures['ceiling: one transaction']:.3f}"
                " of the ceiling"
            )


if __name__ == "__main__":
    main()
