"""Where an Optuna study lives: a journal file (one machine's, the default) or a database
URL every machine reaches; each opened with problems (a missing driver, an unreachable
host, a corrupt journal) as one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from harness.backends.journal import repair_cut_record
from harness.backends.optuna_config import config
from harness.errors import HarnessError
from harness.study import StudySpec

JOURNAL_FILE = "optuna.journal"


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
    if url.split("://", 1)[0].lower().startswith("sqlite"):
        from sqlalchemy.engine import make_url  # lazy: only SQLite URLs need it

        try:
            database = make_url(url).database
        except Exception:  # noqa: BLE001 - a malformed URL: opening it says what is wrong
            return True
        return bool(database) and database != ":memory:" and Path(database).is_file()
    return True


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file path or any Optuna RDB URL (sqlite://, postgresql://, mysql://)."""
    if "://" not in url:
        return _journal_storage(url)
    scheme = url.split("://", 1)[0].lower()
    engine_kwargs: dict[str, Any] = {}
    if scheme.startswith(("postgresql", "mysql")):
        # An unreachable host fails within this many seconds, not the OS's minutes.
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=30,
            grace_period=120,
            failed_trial_callback=None,
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


#: Seconds a database connection may take before the storage counts as unreachable.
CONNECT_TIMEOUT_S = 10
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


def _journal_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file's storage; a path that is a directory or a corrupt journal is one line."""
    path = Path(url)
    if path.is_dir():
        raise HarnessError(
            f"--storage {url}: is a directory; give a journal file path (e.g. {url}/study.journal) "
            "or a database URL"
        )
    repair_cut_record(path)
    try:
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
