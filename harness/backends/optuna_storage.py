"""Where an Optuna study lives: a journal file (one machine's, the default) or a database
URL every machine reaches; each opened with problems (a missing driver, an unreachable
host, a corrupt journal) as one line."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from harness.backends.journal import repair_cut_record
from harness.backends.optuna_config import config
from harness.errors import HarnessError
from harness.study import StudySpec

JOURNAL_FILE = "optuna.journal"


class Heartbeat(NamedTuple):
    """How a database storage tells a lost machine's trials from running ones: each running
    trial records a heartbeat every ``interval_s`` seconds; one silent for ``grace_s`` is
    taken as lost (``[optuna].heartbeat_seconds`` and ``grace_seconds``)."""

    interval_s: int = 30
    grace_s: int = 120


DEFAULT_HEARTBEAT = Heartbeat()


def storage_url(spec: StudySpec, run_dir: Path, override: str | None = None) -> str:
    """The storage in use: ``--storage``, then ``[optuna].storage``, else the run's journal file."""
    return override or config(spec).storage or str(run_dir / JOURNAL_FILE)


def join_storage(spec: StudySpec, storage: str | None, oracle: str | None) -> str:
    """The storage a ``harness worker`` joins: ``--storage``, else ``[optuna].storage``; it
    must be a database URL every machine reaches (a journal file is one machine's)."""
    where = "--storage" if storage else "[optuna].storage"
    storage = storage or config(spec).storage
    if storage and "://" not in storage:
        raise HarnessError(
            f"{where} {storage}: a journal file is one machine's; harness worker joins a "
            "study on shared storage: give a database URL every machine reaches, such as "
            "postgresql://USER:PASSWORD@HOST/DB (the same URL on every machine)"
        )
    if not storage:
        raise HarnessError(
            "harness worker joins a study on shared storage: pass --storage "
            "postgresql://USER:PASSWORD@HOST/DB (the same URL on every machine) or set "
            "[optuna].storage"
        )
    return storage


def storage_exists(url: str) -> bool:
    """Whether the storage at ``url`` is there already: a journal or SQLite file that
    exists, or any other database (a server's database is created by its owner)."""
    if "://" not in url:
        return Path(url).is_file()
    database = _sqlite_database(url)
    if database is None:  # a server's, or a URL too malformed to say: opening it tells
        return True
    return database not in ("", ":memory:") and Path(database).is_file()


def make_storage(
    url: str, heartbeat: Heartbeat = DEFAULT_HEARTBEAT
) -> optuna.storages.BaseStorage:
    """Open the storage at ``url`` to run the study in it (``harness run`` and its workers):
    a journal file path (its folder created, a cut-off last record mended first) or any
    Optuna RDB URL (sqlite://, postgresql://, mysql://); created when it is not there.
    A database records a heartbeat of each trial that runs (``heartbeat``)."""
    if "://" not in url:
        return _journal_storage(url, mend=True)
    _check_sqlite(url)
    return _server_storage(url, heartbeat) or _rdb_storage(url, heartbeat)


def read_storage(url: str) -> optuna.storages.BaseStorage:
    """Open the storage at ``url`` only to read it (``show``, ``report``, the resume check):
    a journal is read past a cut-off last record, never mended, and a journal or SQLite
    file that is not there is a HarnessError, never created."""
    if not storage_exists(url):
        raise HarnessError(f"no Optuna storage at {_hide_password(url)}")
    if "://" not in url:
        return _journal_storage(url, mend=False)
    return _server_storage(url) or _rdb_storage(url, DEFAULT_HEARTBEAT)


#: A database server's storage per (process, URL), kept for the process's life: every
#: progress poll and trial of the process reuses its bounded pool of connections.
_SERVER_STORAGES: dict[tuple[int, str], optuna.storages.BaseStorage] = {}


def _server_storage(
    url: str, heartbeat: Heartbeat | None = None
) -> optuna.storages.BaseStorage | None:
    """This process's storage for a database server's ``url`` (PostgreSQL, MySQL), opened
    on first use and kept: a new storage per call would open a new connection (and the
    server a new backend process) per progress poll. None for a journal or SQLite file,
    opened afresh each time (no server to spare, and a file moved aside or removed after
    a refused run must not be read through a connection to the old one)."""
    if not _is_server(url):
        return None
    key = (os.getpid(), url)  # a forked child opens its own: a pool is not shared across
    storage = _SERVER_STORAGES.get(key)
    if storage is None:
        storage = _SERVER_STORAGES[key] = _rdb_storage(url, heartbeat or DEFAULT_HEARTBEAT)
    elif heartbeat is not None:  # the study's settings, on the pool the process already has
        _set_heartbeat(storage, heartbeat)
    return storage


def close_storages() -> None:
    """Close the connections of every kept server storage of this process (at exit)."""
    for (pid, _), storage in list(_SERVER_STORAGES.items()):
        if pid == os.getpid():
            storage.engine.dispose()  # type: ignore[attr-defined]
    _SERVER_STORAGES.clear()


atexit.register(close_storages)


def heartbeat_ages(storage: optuna.storages.BaseStorage, study_id: int) -> dict[int, float]:
    """Seconds since the last heartbeat of each RUNNING trial of the study that has one, by
    trial id, measured on the database's clock (the machines' clocks may differ). Empty for
    a storage that records no heartbeats (a journal file: one machine's)."""
    if not isinstance(storage, optuna.storages.RDBStorage) or not storage.heartbeat_interval:
        return {}
    import sqlalchemy  # lazy: only database storages need it
    from optuna.storages._rdb import models  # Optuna's schema: the heartbeat table

    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    with sqlalchemy.orm.Session(storage.engine) as session:
        now = session.execute(sqlalchemy.func.now()).scalar_one().replace(tzinfo=None)
        rows = session.execute(
            sqlalchemy.select(trials.trial_id, beats.heartbeat)
            .join(beats, beats.trial_id == trials.trial_id)
            .where(
                trials.study_id == study_id,
                trials.state == optuna.trial.TrialState.RUNNING,
            )
        ).all()
    return {trial_id: (now - beat.replace(tzinfo=None)).total_seconds() for trial_id, beat in rows}


def _is_server(url: str) -> bool:
    """Whether ``url`` is a database server's (PostgreSQL, MySQL), not a file's."""
    return url.split("://", 1)[0].lower().startswith(("postgresql", "postgres", "mysql"))


@contextlib.contextmanager
def removed_on_error(url: str) -> Iterator[None]:
    """Remove the journal or SQLite file (and the folders made for it) that what runs
    inside creates, if it raises: a refused run leaves no storage behind."""
    path = _local_file(url)
    if path is None or path.exists():
        yield
        return
    first_new = path
    while not first_new.parent.exists() and first_new.parent != first_new:
        first_new = first_new.parent
    try:
        yield
    except BaseException:
        if first_new != path:
            shutil.rmtree(first_new, ignore_errors=True)
        elif path.is_file():
            path.unlink()
        raise


def _local_file(url: str) -> Path | None:
    """The file a journal path or an SQLite URL names; None for a server's database."""
    if "://" not in url:
        return Path(url)
    database = _sqlite_database(url)
    return Path(database) if database not in (None, "", ":memory:") else None


def _sqlite_database(url: str) -> str | None:
    """The database file of an SQLite URL (``:memory:`` or "" for an in-memory one); None
    for another database or a URL too malformed to say (opening it says what is wrong)."""
    if not url.split("://", 1)[0].lower().startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url  # lazy: only SQLite URLs need it

    try:
        return make_url(url).database or ""
    except Exception:  # noqa: BLE001 - a malformed URL: opening it says what is wrong
        return None


def _check_sqlite(url: str) -> None:
    """Refuse an SQLite URL that cannot hold the study, before anything is created: an
    in-memory database (each process would see its own, empty one) or a file whose
    folder is missing, or that is a folder itself."""
    database = _sqlite_database(url)
    if database is None:
        return
    if database in ("", ":memory:"):
        raise HarnessError(
            f"--storage {url}: an in-memory SQLite database is lost between processes; give "
            "a file, e.g. sqlite:///study.db"
        )
    _check_file_path(f"--storage {url}", Path(database), "database file")


def _check_file_path(where: str, path: Path, kind: str) -> None:
    """Refuse a storage ``path`` that is a folder, a device or a pipe, or whose folder is a
    file or (for a database, whose folder is not created) missing."""
    if path.is_dir():
        raise HarnessError(
            f"{where}: is a directory; give a {kind} path "
            f"(e.g. {path / ('study.journal' if kind == 'journal file' else 'study.db')})"
        )
    if path.exists() and not path.is_file():
        raise HarnessError(f"{where}: not a regular file (a device or a pipe); give a {kind} path")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise HarnessError(
            f"{where}: {folder} is a file, not a folder; give a {kind} path in a folder"
        )
    if kind == "database file" and not path.parent.is_dir():
        raise HarnessError(
            f"{where}: the folder {path.parent} does not exist; create it first "
            f"(mkdir -p {path.parent}) or give a path in an existing folder"
        )


def _rdb_storage(url: str, heartbeat: Heartbeat) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage; a missing driver or an unreachable database is one line."""
    scheme = url.split("://", 1)[0].lower()
    engine_kwargs: dict[str, Any] = {}
    if _is_server(url):
        # An unreachable host fails within this many seconds, not the OS's minutes.
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        # A bounded pool, kept open (_server_storage): a process never holds more than
        # POOL_CONNECTIONS, opened as its threads (the trial loop, Optuna's heartbeat)
        # first need them; a connection the server dropped is replaced, not an error.
        engine_kwargs.update(
            pool_size=POOL_CONNECTIONS, max_overflow=0, pool_pre_ping=True
        )
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat.interval_s,
            grace_period=_optuna_grace(heartbeat),
        )
    except ImportError as exc:
        fix = DRIVER_FIXES.get(scheme.split("+")[0]) or (
            f"pip install {exc.name}" if getattr(exc, "name", None) else "install its driver"
        )
        raise HarnessError(
            f"--storage {_hide_password(url)}: the driver for {scheme}:// databases is not "
            f"installed; {fix}"
        )
    except Exception as exc:  # noqa: BLE001 - connection and driver problems are user input
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise HarnessError(
            f"cannot open Optuna storage {_hide_password(url)}: {type(exc).__name__}: {first}"
        )


def _optuna_grace(heartbeat: Heartbeat) -> int:
    """The grace of Optuna's own check (in ``study.optimize``, before each trial), which
    fails a silent trial as an ordinary failure, counted and never run again. harness's
    check (``stale_trials``, run first, after ``heartbeat.grace_s``) marks it interrupted
    instead; Optuna's waits twice as long, so that harness's always takes a trial first."""
    return 2 * heartbeat.grace_s


def _set_heartbeat(storage: optuna.storages.BaseStorage, heartbeat: Heartbeat) -> None:
    """Give an open database storage the study's heartbeat settings."""
    storage.heartbeat_interval = heartbeat.interval_s  # type: ignore[attr-defined]
    storage.grace_period = _optuna_grace(heartbeat)  # type: ignore[attr-defined]


#: Seconds a database connection may take before the storage counts as unreachable.
CONNECT_TIMEOUT_S = 10
#: Database connections one process holds at most: its trial loop and Optuna's heartbeat
#: thread each use one at a time (docs/distributed.md: connections per machine).
POOL_CONNECTIONS = 2
#: URL scheme -> how to install its database driver.
DRIVER_FIXES = {
    "postgresql": "pip install 'harness[postgres]'",
    "postgres": "pip install 'harness[postgres]'",
    "mysql": "pip install pymysql (and write the URL as mysql+pymysql://...)",
}


def _hide_password(url: str) -> str:
    head, sep, tail = url.partition("://")
    if "@" not in tail:
        return url
    credentials, _, host = tail.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{host}" if ":" in credentials else url


def _journal_storage(url: str, mend: bool) -> optuna.storages.BaseStorage:
    """A journal file's storage; a path that is not a journal file, or a corrupt journal,
    is one line. With ``mend``, a cut-off last record is moved aside and the folder made."""
    path = Path(url)
    if url.endswith("/"):  # Path drops the slash: the folder's name would become the file's
        raise HarnessError(
            f"--storage {url}: names a folder; give a journal file path "
            f"(e.g. {path / 'study.journal'})"
        )
    _check_file_path(f"--storage {url}", path, "journal file")
    _check_journal_start(url, path)
    try:
        if mend:
            repair_cut_record(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(url, lock_obj=JournalFileOpenLock(url))
        return optuna.storages.JournalStorage(backend)
    except OSError as exc:
        raise HarnessError(f"cannot open the journal {url}: {exc.strerror or exc}")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise HarnessError(
            f"{url}: not a readable Optuna journal ({type(exc).__name__}); it is corrupt. "
            "Move it away to start the study afresh, or restore a copy"
        )


#: How every record of an Optuna journal begins (JournalStorage writes op_code first).
_JOURNAL_START = re.compile(rb'\s*\{\s*"op_code"\s*:')


def _check_journal_start(url: str, path: Path) -> None:
    """Refuse an existing, non-empty file that does not begin with a journal record (a CSV,
    a study file), before it is mended or appended to: it is some other file."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HarnessError(f"cannot open the journal {url}: {exc.strerror or exc}")
    if head and not _JOURNAL_START.match(head):
        raise HarnessError(
            f"{url}: not an Optuna journal (it does not begin with a journal record). If it "
            "is the study's journal it is corrupt: move it away to start the study afresh, "
            "or restore a copy; else give another --storage"
        )
