"""Mending an Optuna journal file whose last record was cut off mid-write.

A process killed while appending (a crash, a power loss, a full disk) can leave
the journal ending in half a line. Optuna reads past it, but the next record any
process appends would be written onto that half line, and from then on the
journal is corrupt in the middle and unreadable. So before a journal is opened,
a cut-off last record is moved aside into a file next to it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from optuna.storages.journal import JournalFileOpenLock

log = logging.getLogger(__name__)

#: Bytes read at a time while looking back for the last complete record.
_CHUNK = 1 << 16


def _ends_cut(path: Path) -> bool:
    """Whether the file is non-empty and its last byte is not a newline."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _end_of_last_record(path: Path) -> int:
    """The offset just past the file's last newline (0 when it has none)."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - _CHUNK)
            f.seek(start)
            chunk = f.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
    return 0


def repair_cut_record(path: Path) -> Path | None:
    """Move a cut-off last record of the journal at ``path`` into ``<name>.cut-<time>`` beside
    it and truncate the journal to its last complete record; return the file the bytes went
    to, or None when there was nothing to mend (or it could not be mended, as on a
    read-only file system, where Optuna still reads the journal).

    It holds the journal's own lock (the one harness's writers take), so no process is
    half-way through an append when it looks: a half line seen under the lock was left by
    a process that died writing it.
    """
    try:
        if not path.is_file() or not _ends_cut(path):
            return None
    except OSError:
        return None
    lock = JournalFileOpenLock(str(path))
    try:
        lock.acquire()
    except OSError:
        return None
    try:
        if not _ends_cut(path):  # a writer finished its record while we waited
            return None
        keep = _end_of_last_record(path)
        with open(path, "rb") as f:
            f.seek(keep)
            cut = f.read()
        aside = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}")
        aside.write_bytes(cut)
        os.truncate(path, keep)
    except OSError as exc:
        log.warning("%s: its last record was cut off mid-write and could not be mended: %s",
                    path, exc.strerror or exc)
        return None
    finally:
        lock.release()
    log.warning(
        "%s: its last record was cut off mid-write (a process stopped while writing it); "
        "moved those %d bytes to %s. A trial that record finished counts as interrupted "
        "and runs again.",
        path, len(cut), aside.name,
    )
    return aside
