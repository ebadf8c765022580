"""IDX files (the MNIST format): read, write, and checksum their decompressed content."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import threading
import time
import zlib
from collections import OrderedDict
from typing import Any

import numpy as np

from mnist_hydra.errors import DataError

# IDX type code -> big-endian numpy dtype, as the format stores data.
_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {(d.kind, d.itemsize): code for code, d in _DTYPES.items()}

# A process that trains on one data set many times (a sweep's or a search's jobs, a notebook) decompresses,
# parses and checksums each file once: the array and its digest are kept, keyed by what any write to the file
# changes (device, inode, size, modification and change times), and each caller gets a copy of its own.
_CACHE_BYTES = 512 * 2**20  # MNIST's four files are 55 MB decoded; a larger set is read afresh past this
_cache: OrderedDict[tuple[int, ...], tuple[np.ndarray, str, int]] = OrderedDict()  # key -> array, digest, size
_cache_lock = threading.Lock()  # a thread pool's jobs may load at once
RACY_NS = 2_000_000_000


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in an IDX file (gzip when the name ends in .gz)."""
    return read_idx_with_digest(path)[0]


def read_idx_with_digest(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """The array in an IDX file and the SHA-256 of its decompressed bytes, from one read (or, for a file
    unchanged since this process last read it, from memory)."""
    name = os.fspath(path)
    key = _file_key(name)
    entry = None
    if key is not None:
        with _cache_lock:
            entry = _cache.get(key)
            if entry is not None:
                _cache.move_to_end(key)
    if entry is None:
        raw = _read_bytes(name)
        entry = _parse(raw, name), hashlib.sha256(raw).hexdigest(), len(raw)
        if key is not None:
            _remember(key, entry)
    array, digest, size = entry
    _require_same_twin(name, size, digest)  # the plain twin beside it may have changed meanwhile
    return array.copy(), digest


def _file_key(name: str) -> tuple[int, ...] | None:
    """What identifies the file's content, or None for one not to keep: not a regular file (a pipe, /proc), or
    written in the last RACY_NS, when a second write could still leave the same times (the clock's tick; git
    calls such a file "racily clean" and reads it again)."""
    try:
        info = os.stat(name)
    except OSError:
        return None  # _read_bytes says why, in one line
    if not stat.S_ISREG(info.st_mode) or time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) < RACY_NS:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _remember(key: tuple[int, ...], entry: tuple[np.ndarray, str, int]) -> None:
    if entry[0].nbytes > _CACHE_BYTES:
        return
    with _cache_lock:
        _cache[key] = entry
        while sum(array.nbytes for array, _, _ in _cache.values()) > _CACHE_BYTES:
            _cache.popitem(last=False)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write `array` as an IDX file, gzip-compressed when the name ends in .gz."""
    header, data = _serialise(np.asarray(array))
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header)
        f.write(data)


def idx_digest(array: np.ndarray) -> str:
    """SHA-256 of the IDX bytes `array` would be written as, to compare with a file's content digest."""
    header, data = _serialise(np.asarray(array))
    digest = hashlib.sha256(header)
    digest.update(data)
    return digest.hexdigest()


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{name}: cannot read: {e.strerror or e}") from e
    if not name.endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        # EOFError is how gzip reports a file cut short mid-stream.
        reason = "truncated gzip stream" if isinstance(e, EOFError) else f"corrupt gzip: {e}"
        raise DataError(f"{name}: {reason}") from e


def _require_same_twin(name: str, size: int, digest: str) -> None:
    """DataError when `NAME.gz` has a plain `NAME` beside it with other content: which one is meant is not ours to
    guess. The same content (MNIST's own folders hold both) is fine."""
    if not name.endswith(".gz"):
        return
    plain = name.removesuffix(".gz")
    try:
        if not os.path.isfile(plain):
            return
        same = os.path.getsize(plain) == size
        if same:
            twin = hashlib.sha256()
            with open(plain, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    twin.update(block)
            same = twin.hexdigest() == digest
    except OSError as e:
        raise DataError(f"{plain}: cannot read: {e.strerror or e}") from e
    if not same:
        base = os.path.basename(plain)
        raise DataError(
            f"{name} and {base} beside it hold different data; keep one of them (the folder's files are "
            f"read .gz or plain, and these two disagree)"
        )


def _parse(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 4:
        raise DataError(f"{name}: truncated: expected an IDX header of at least 4 bytes, found {len(raw)}")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: bad magic 0x{raw[:4].hex()}: an IDX file starts with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _DTYPES)
        raise DataError(f"{name}: unknown IDX dtype code 0x{code:02X}; known: {known}")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{name}: truncated: expected an IDX header of {offset} bytes, found {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = _DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    expected = offset + count * dtype.itemsize
    if len(raw) < expected:
        raise DataError(f"{name}: truncated: expected {expected} bytes of IDX data, found {len(raw)}")
    if len(raw) > expected:
        raise DataError(f"{name}: {len(raw) - expected} trailing bytes after {expected} bytes of IDX data")
    # astype copies into native byte order, so callers get a writable array.
    return np.frombuffer(raw, dtype, count, offset).astype(dtype.newbyteorder("=")).reshape(shape)


def _serialise(array: np.ndarray) -> tuple[bytes, memoryview]:
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.ndim > 255:
        raise ValueError(f"cannot store dtype {array.dtype} with {array.ndim} dims as IDX")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = np.ascontiguousarray(array, _DTYPES[code])
    # A memoryview of an empty n-d array cannot be cast; its bytes are none anyway.
    return header, data.data.cast("B") if data.size else memoryview(b"")
