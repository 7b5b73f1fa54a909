"""Inter-process locks on files and folders (``flock``), the one place that takes them.

``flock`` is released by the kernel when its holder dies, so a killed writer, export or
training run never leaves a lock held. Two kinds are used:

* :func:`exclusive_lock` waits for a lock on a path that stays (the registry's lock file, the
  splits manifest's folder): writers of one shared file take turns.
* :func:`claim` takes a lock file that exists only while it is held (a bundle being exported,
  a version being trained) and fails at once if another process holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``, waiting until other holders are done. A folder is
    locked as it is; a file is created if missing and never removed. Lock a folder when the
    file it guards is replaced by renames: a lock on the old file would not exclude a process
    that opens the new one."""
    target = Path(path)
    if target.is_dir():
        fd = os.open(target, os.O_RDONLY)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def claim(
    path: str | Path, busy: Callable[[], Exception], *, make_parent: bool = False
) -> Iterator[None]:
    """Hold the lock file ``path`` for the block, or raise ``busy()`` at once if another
    process holds it. The file is removed on release (while still held, so no one else has
    taken it). ``make_parent`` creates its folder, again if another process removed it
    (empty) between our mkdir and our open."""
    lock = Path(path)
    while True:
        if make_parent:
            lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if make_parent:
                continue
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy() from None
        except BaseException:
            os.close(fd)
            raise
        # The holder may have finished and removed the file between our open and our lock:
        # then we hold a lock on a file no one else can see. Only the named file counts.
        try:
            ours = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            ours = False
        if ours:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the lock
