"""Writing files so that a reader never sees half of one.

Results are rewritten after every trial while ``harness show`` or another worker
may be reading them: each file is written beside its target under a temporary
name, then moved over it in one step (``os.replace``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; on success it replaces ``target``
    in one step, on failure it is removed. The temporary name keeps ``target``'s suffix
    (Keras and NumPy choose the format by it).

    A symbolic link is written through (the file it points to is replaced, the link
    stays), and a target that exists but is not a regular file (a FIFO, a device such as
    ``/dev/stdout``) is yielded itself, to be written into: replacing it would put a
    regular file where the pipe or device was.
    """
    target = Path(target)
    try:
        mode = target.stat().st_mode  # through links: /dev/stdout is a link to a pipe
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        yield target
        return
    if target.is_symlink():
        target = target.resolve()
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
