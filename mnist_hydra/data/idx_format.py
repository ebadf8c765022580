"""IDX files (the MNIST format): read, write, and checksum their decompressed content."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
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


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in an IDX file (gzip when the name ends in .gz)."""
    return read_idx_with_digest(path)[0]


def read_idx_with_digest(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """The array in an IDX file and the SHA-256 of its decompressed bytes, from one read."""
    raw = _read_bytes(path)
    array, digest = _parse(raw, os.fspath(path)), hashlib.sha256(raw).hexdigest()
    _require_same_twin(os.fspath(path), len(raw), digest)
    return array, digest


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
