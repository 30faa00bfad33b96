"""Opening the store: SQLite (embedded default) or PostgreSQL (production).

SQLite
    WAL journal, ``synchronous=NORMAL`` (a commit is durable once the WAL is
    synced at checkpoint; a power cut may lose the last commits, a process
    crash loses nothing), foreign keys on, a busy timeout.  Writers begin with
    ``BEGIN IMMEDIATE`` so a write transaction holds the write lock from its
    first statement (no lock upgrade, no ``SQLITE_BUSY`` half-way through), and
    the writers of one process are serialised by a lock before they touch the
    file.  Only one engine process may use a file: it holds an exclusive
    ``flock`` on ``FILE.lock`` for its lifetime, and a second one is refused.

PostgreSQL
    A normal connection pool (``READ COMMITTED``); the service serialises
    writers of one instance with row locks (``SELECT ... FOR UPDATE``) and
    claims due work with ``FOR UPDATE SKIP LOCKED``, so any number of engine
    processes can share one database.

``postgresql://`` URLs are read with psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from engine.runtime.errors import EngineError, EngineLocked, StoreUnavailable

__all__ = ["Database", "normalize_url", "open_database", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: the newest Alembic revision in ``migrations/versions`` (a test keeps the two equal):
#: a store already there is opened without loading Alembic at all
HEAD_REVISION = "0005"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str | URL) -> URL:
    """The SQLAlchemy URL to use (``postgresql://`` means psycopg 3).

    A string that is not a database URL raises :class:`StoreUnavailable`.
    """
    try:
        u = make_url(url)
    except ArgumentError:
        raise StoreUnavailable(
            f"{url!r} is not a database URL: write sqlite:///PATH/FILE.sqlite3 or "
            "postgresql://USER@HOST:PORT/DATABASE") from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


class Database:
    """An open store: a SQLAlchemy engine plus how to run transactions on it.

    ``write()`` gives a connection in a writer transaction (``BEGIN IMMEDIATE``
    on SQLite, serialised within the process); ``read()`` a connection in a
    read transaction.  Both commit on success and roll back on error.
    """

    def __init__(self, url: str | URL, *, engine_lock: bool = True, echo: bool = False,
                 pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise EngineError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self._lock_fd: int | None = None
        self._write_lock = threading.RLock()
        self.path: Path | None = None
        if self.is_sqlite:
            self.engine = self._sqlite_engine(engine_lock, echo)
        else:
            self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True,
                                        pool_size=pool_size, max_overflow=pool_size)
        self._writer = self.engine.execution_options(jrule_write=True)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    # --- SQLite ------------------------------------------------------------------
    def _sqlite_engine(self, engine_lock: bool, echo: bool) -> Engine:
        database = self.url.database
        memory = database in (None, "", ":memory:")
        if not memory:
            assert database is not None
            self.path = Path(database).resolve()
            if engine_lock:
                self._lock_fd = _lock_sqlite_file(self.path)
            engine = create_engine(self.url.set(database=str(self.path)), echo=echo,
                                   connect_args={"check_same_thread": False},
                                   pool_size=8, max_overflow=8)
        else:
            engine = create_engine(self.url, echo=echo, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transactions out of the driver's hands: SQLAlchemy's "begin"
            # event below issues BEGIN (IMMEDIATE for writers) itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("jrule_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine

    # --- transactions ------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A writer transaction (committed on success, rolled back on error)."""
        if self.is_sqlite:
            with self._write_lock, self._writer.begin() as conn:
                yield conn
        else:
            with self._writer.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (one consistent snapshot on SQLite WAL)."""
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """An ORM session in a writer (or reader) transaction, for callers that want one."""
        with (self.write() if write else self.read()) as conn, Session(bind=conn) as session:
            yield session
            session.flush()

    def schema_revision(self) -> str | None:
        """The Alembic revision the store is at (None: not created yet)."""
        with self.read() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            revision: str | None = conn.execute(
                text("SELECT version_num FROM alembic_version")).scalar()
            return revision

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (a no-op read when it is)."""
        if self.schema_revision() == HEAD_REVISION:
            return
        with self.write() as conn:
            _upgrade_connection(conn)

    def close(self) -> None:
        """Dispose of the pool and release the SQLite engine lock."""
        self.engine.dispose()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _lock_sqlite_file(path: Path) -> int:
    """Hold an exclusive, non-blocking ``flock`` on ``PATH.lock`` (or refuse).

    ``flock`` locks belong to the open file description, so a second open in
    the same process is refused too; the kernel drops the lock when the process
    dies, however it dies, so a crash never leaves a stale lock behind.
    """
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise EngineLocked(
            f"another jrule engine (pid {holder}) is using {path}; stop it or use "
            "PostgreSQL for several engines") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def _upgrade_connection(conn: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")


def open_database(url: str | URL, *, engine_lock: bool = True, migrate: bool = True,
                  echo: bool = False) -> Database:
    """Open a store by URL and (by default) bring its schema up to date.

    ``engine_lock=False`` opens a SQLite file without claiming it (for tools
    that only read while an engine runs).
    """
    db = Database(url, engine_lock=engine_lock, echo=echo)
    try:
        _probe(db)
        if migrate:
            db.upgrade()
    except BaseException:
        db.close()
        raise
    return db


def _probe(db: Database) -> None:
    """Connect once, so that a store that is down or not a database is refused by name.

    The connection goes back to the pool; the open that follows reuses it.
    """
    try:
        with db.engine.connect():
            pass
    except DBAPIError as exc:
        reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())
        raise StoreUnavailable(
            f"cannot open the database {db.url.render_as_string(hide_password=True)}: "
            f"{reason}") from None


def upgrade(url: str | URL) -> None:
    """``alembic upgrade head`` on the database at ``url``."""
    db = Database(url, engine_lock=False)
    try:
        _probe(db)
        with db.write() as conn:
            _upgrade_connection(conn)
    finally:
        db.close()
