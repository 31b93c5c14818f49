"""Atomic output: a file (or a frame's folder) is either complete or absent, never half-written."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import FaceReconError, InputFileError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success.

    The temporary file keeps the final suffix, so writers that pick a format from the
    extension (PIL, trimesh, matplotlib) behave as for the real name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        # mkstemp creates 0600 (and some writers recreate the file): give the final file the
        # permissions a plain open() would
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


_PART_DIR = re.compile(r"^\.(?P<name>.+)\.(?:part|old)-(?P<pid>\d+)-[^.]+$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# parent folder -> {NAME: [its .NAME.part-PID-* / .NAME.old-PID-* siblings]}, from one listing per parent and process:
# a batch writes thousands of frame folders into one parent, and listing it for each (~1 ms per 1,000 entries)
# made a batch quadratic in its length.  Leftovers of a killed process that appear after the listing (another
# process killed while this one runs) are found by the next process.
_PARTS_SEEN: dict = {}
_MAX_PARTS_SEEN = 64


def _remove_stale(path: Path) -> None:
    """Remove ``.NAME.part-PID-*`` / ``.NAME.old-PID-*`` folders left by a killed process (SIGKILL)."""
    key = str(path.parent.absolute())
    parts = _PARTS_SEEN.get(key)
    if parts is None:
        try:
            siblings = list(path.parent.iterdir())
        except OSError:
            return
        parts = {}
        for q in siblings:
            m = _PART_DIR.match(q.name)
            if m:
                parts.setdefault(m["name"], []).append(q)
        if len(_PARTS_SEEN) >= _MAX_PARTS_SEEN:
            _PARTS_SEEN.pop(next(iter(_PARTS_SEEN)))
        _PARTS_SEEN[key] = parts
    keep = []
    for q in parts.pop(path.name, []):
        m = _PART_DIR.match(q.name)
        if q.is_dir() and not q.is_symlink() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(q, ignore_errors=True)
        elif q.exists():
            keep.append(q)  # a live process's: looked at again by the next write of the folder
    if keep:
        parts[path.name] = keep


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it becomes ``path`` in one rename.

    For a frame's outputs (meshes, pose.json, overlay, ...): a batch that fails or is
    interrupted inside a frame leaves that frame's previous folder (or none), never a
    half-filled one.  An existing folder is replaced by an atomic exchange (Linux
    ``renameat2``; elsewhere two renames) and then deleted.  The temporary folder is
    ``.NAME.part-PID-XXXX`` in the same parent; one left by a killed process (SIGKILL, which
    nothing can intercept) is removed by the next write of the same folder.
    """

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise FaceReconError(f"{path}: exists and is not a folder; cannot write the frame's outputs there")
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.part-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder a plain mkdir's mode
        if path.is_dir() and not path.is_symlink():
            if _exchange(tmp, path):
                shutil.rmtree(tmp, ignore_errors=True)  # now holds the old contents
                return
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{os.getpid()}-", dir=path.parent))
            os.replace(path, old)  # onto the empty placeholder
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: Path):
    """Parse a JSON file; errors are one-line ``InputFileError``s naming the file."""
    import json


    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"invalid JSON ({' '.join(str(exc).split())[:160]})") from None
    except RecursionError:
        raise InputFileError(path, "invalid JSON (nested too deeply)") from None


# -- checked cache files ----------------------------------------------------------------------------------------------
# What a run builds once and later runs read back (a GLB template, the UV raster of a face model): one file per key,
# written atomically, read only when whole (the key itself, lengths, CRC-32 of the payload) and of that key.

_CACHE_MAGIC = b"facerecon-cache-v1\n"


def write_cache_file(path: Path, key_text: str, header: dict, arrays: list, keep: int = 16) -> bool:
    """Write ``header`` (JSON-able) and ``arrays`` (NumPy arrays, or bytes) under ``key_text`` to ``path``
    (atomic); the oldest files of the folder beyond ``keep`` with the same name prefix (up to the first '-')
    go. False where it cannot be written."""
    import json
    import zlib

    import numpy as np

    try:
        parts = [a if isinstance(a, bytes) else np.ascontiguousarray(a).tobytes() for a in arrays]
        meta = [["bytes", [len(a)]] if isinstance(a, bytes) else [np.asarray(a).dtype.str, list(np.shape(a))] for a in arrays]
        payload = b"".join(parts)
        head = json.dumps({"key": key_text, "header": header, "arrays": meta, "length": len(payload),
                           "crc32": zlib.crc32(payload)}).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, _CACHE_MAGIC + len(head).to_bytes(4, "little") + head + payload)
        prefix = path.name.split("-")[0]
        old = sorted(path.parent.glob(f"{prefix}-*.bin"), key=lambda q: q.stat().st_mtime)
        for q in old[:-keep]:
            q.unlink(missing_ok=True)
        return True
    except (OSError, TypeError, ValueError):
        return False


def read_cache_file(path: Path, key_text: str) -> tuple[dict, list] | None:
    """(header, arrays) of a file of :func:`write_cache_file` when it is whole and of ``key_text``; else None."""
    import json
    import zlib

    import numpy as np

    try:
        data = path.read_bytes()
        if not data.startswith(_CACHE_MAGIC):
            return None
        at = len(_CACHE_MAGIC)
        n = int.from_bytes(data[at: at + 4], "little")
        head = json.loads(data[at + 4: at + 4 + n].decode("utf-8"))
        payload = memoryview(data)[at + 4 + n:]
        if head["key"] != key_text or head["length"] != len(payload) or zlib.crc32(payload) != head["crc32"]:
            return None
        arrays, off = [], 0
        for dtype, shape in head["arrays"]:
            if dtype == "bytes":
                arrays.append(bytes(payload[off: off + shape[0]]))
                off += shape[0]
                continue
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            arrays.append(np.frombuffer(payload, dt, count, off).reshape(shape))
            off += count * dt.itemsize
        return (head["header"], arrays) if off == len(payload) else None
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        return None
