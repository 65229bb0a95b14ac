"""The files stages write and read back: Parquet tables, JSON, JSON Lines, text, each written
atomically (a temporary file beside the target, renamed into place only on success).

Every function that touches the file system for a stage lives in this package, so stage cores
stay pure. Reading raw input files (encodings, formats, line-level error capture) is the ingest
stage's alone: :mod:`sftops.io.detect` and :mod:`sftops.io.readers`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.errors import InputDataError, OutputWriteError, SftopsError


@contextmanager
def atomic_path(target: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (an empty folder with ``directory``) and move it
    into place only on success. A storage failure while writing (disk full, quota, read-only
    file system, I/O error) is a one-line :class:`OutputWriteError` naming ``target`` and the
    problem; its previous version stays and the temporary path is removed."""
    target = Path(target)
    tmp = ""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if directory:
            # os.mkdir honours the umask (mkdtemp would make a model folder private)
            tmp = str(target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
            os.mkdir(tmp)
        else:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            os.close(fd)
            # mkstemp makes it private (0600); the file gets the mode a plain open() would give
            # it, so users sharing a cache folder ($SFTOPS_CACHE_DIR, umask 002) read each other's
            os.chmod(tmp, 0o666 & ~current_umask())
        yield Path(tmp)
        if directory:
            _move_folder_into_place(Path(tmp), target)
        else:
            os.replace(tmp, target)
    except SftopsError:
        raise
    except Exception as err:
        problem = write_problem(err)
        if problem is None:
            raise
        kept = "its previous version is kept" if target.exists() else "nothing was written"
        raise OutputWriteError(f"{problem} while writing it; {kept}", file=target) from err
    finally:
        if tmp and directory:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp and os.path.exists(tmp):
            os.unlink(tmp)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``, glibc 2.28+), so no
    reader and no crash ever sees ``second`` missing; False where the system or the file system
    cannot."""
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange):
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(code, os.strerror(code), str(second))
    return True


def _move_folder_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``. A folder cannot replace another in one rename: the two are
    swapped in one step where Linux can (the caller removes ``tmp``, now the old folder), else
    the old one is moved aside first, and put back if the new one cannot take its place."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        return
    aside = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.old"
    os.rename(target, aside)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_problem(err: BaseException) -> str | None:
    """What a storage failure raised while writing says went wrong, as a short phrase; None for
    an error that is not about the storage. Libraries that write in native code raise their own
    types: safetensors a ``SafetensorError`` ending in ``(os error 28)``, torch a RuntimeError
    whose context is the OSError of the Python file it was writing to.

    >>> write_problem(OSError(errno.ENOSPC, "No space left on device"))
    'no space left on device (disk full)'
    >>> write_problem(OSError(errno.EROFS, "Read-only file system"))
    'read-only file system'
    >>> write_problem(Exception("I/O error: No space left on device (os error 28)"))
    'no space left on device (disk full)'
    >>> write_problem(Exception("Error while serializing: I/O error (os error 5)"))
    'input/output error'
    >>> write_problem(ValueError("tensors must be contiguous")) is None
    True
    """
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(is_out_of_space(exc) for exc in chain):
        return "no space left on device (disk full)"
    code = err.errno if isinstance(err, OSError) else None
    if code is None and (found := re.search(r"\(os error (\d+)\)", str(err))):
        code = int(found.group(1))
    if not code:
        return None
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only be read by setting
    it, which races with other threads creating files).

    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block: processes,
    and clones of the project sharing a folder, that build the same thing take turns, so it
    is built once and the others find it done. Released when the holder dies, too."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_out_of_space(err: BaseException) -> bool:
    """A disk-full or over-quota error, also from libraries (pyarrow, safetensors) that raise
    their own types or set no errno.

    >>> is_out_of_space(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_out_of_space(OSError("Error writing bytes to file. Detail: [errno 28] No space left"))
    True
    >>> is_out_of_space(OSError(errno.EACCES, "Permission denied"))
    False
    """
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    return "no space left" in text or "quota exceeded" in text


def write_table(frame: pd.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputDataError("file not found (run the previous stage first)", file=path)
    return pd.read_parquet(path)


def write_jsonl(records: Iterable[dict[str, Any]], target: str | Path) -> int:
    count = 0
    # Quarantined raw records may hold unpaired surrogates (JSON "\ud800"), which UTF-8
    # cannot encode: they are written as \u escapes, so the line still reads back as JSON.
    with (
        atomic_path(target) as tmp,
        tmp.open("w", encoding="utf-8", errors="backslashreplace") as handle,
    ):
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str))
            handle.write("\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_json(data: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(
            json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
        )


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
