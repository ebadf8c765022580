"""IDX reading and writing: round trips, content digests, and one-line errors that name the file."""

from __future__ import annotations

import gzip
import hashlib
import time

import numpy as np
import pytest

from mnist_hydra.data.idx_format import idx_digest, read_idx, read_idx_with_digest, write_idx
from mnist_hydra.errors import DataError

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == "uint8":
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) + 200  # values > 127 catch a signed mix-up
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    loaded, digest = read_idx_with_digest(path)
    assert loaded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded, array)
    assert digest == idx_digest(array)
    loaded[0, 0, 0] = 1  # callers may write to what they get


def test_header_and_byte_order(tmp_path):
    path = tmp_path / "labels-idx1"
    write_idx(path, np.array([1, 258], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 2])


def test_digest_is_of_decompressed_content(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", array)
    write_idx(tmp_path / "x.gz", array)
    plain = hashlib.sha256((tmp_path / "x").read_bytes()).hexdigest()
    assert read_idx_with_digest(tmp_path / "x")[1] == plain
    assert read_idx_with_digest(tmp_path / "x.gz")[1] == plain
    assert idx_digest(array) == plain


def test_write_rejects_dtype_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))


def _good_bytes() -> bytes:
    return bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))


BAD_FILES = {
    "bad magic": ("x", b"\x01\x02" + _good_bytes()[2:], "bad magic"),
    "unknown dtype": ("x", bytes([0, 0, 0x07]) + _good_bytes()[3:], "unknown IDX dtype code 0x07"),
    "truncated header": ("x", _good_bytes()[:6], "truncated: expected an IDX header of 12 bytes, found 6"),
    "tiny header": ("x", b"\x00\x00", "truncated"),
    "truncated data": ("x", _good_bytes()[:-2], "truncated: expected 18 bytes of IDX data, found 16"),
    "trailing bytes": ("x", _good_bytes() + b"\x00\x00\x00", "3 trailing bytes after 18 bytes"),
    "corrupt gzip": ("x.gz", b"this is not gzip at all", "corrupt gzip"),
    "truncated gzip": ("x.gz", gzip.compress(_good_bytes() * 50)[:-20], "gzip"),
    "gzip of truncated data": ("x.gz", gzip.compress(_good_bytes()[:-1]), "truncated"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_is_one_line_data_error_naming_it(tmp_path, case):
    name, content, expected = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent.gz")


def test_a_gz_and_a_plain_twin_must_hold_the_same_data(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "x.gz", array)
    write_idx(tmp_path / "x", array)  # MNIST's folders often hold both
    assert np.array_equal(read_idx(tmp_path / "x.gz"), array)
    write_idx(tmp_path / "x", array[::-1])
    with pytest.raises(DataError, match=r"x.gz and x beside it hold different data; keep one of them"):
        read_idx(tmp_path / "x.gz")


def test_a_file_read_again_unchanged_comes_from_memory_and_a_rewritten_one_from_disk(tmp_path, monkeypatch):
    """A sweep's jobs in one process read the data once; any write to the file (new times) reads it afresh,
    and a file written in the last RACY_NS is never kept (its times could repeat within a clock tick)."""
    from mnist_hydra.data import idx_format

    reads = []
    read_bytes = idx_format._read_bytes
    monkeypatch.setattr(idx_format, "_read_bytes", lambda path: reads.append(path) or read_bytes(path))
    path = tmp_path / "x-idx3.gz"
    write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    read_idx_with_digest(path)
    read_idx_with_digest(path)
    assert len(reads) == 2  # just written: racy, read each time

    monkeypatch.setattr(idx_format, "RACY_NS", 0)  # as if written long ago, as a downloaded data set is
    first, digest = read_idx_with_digest(path)
    first[0, 0, 0] = 99  # each caller's own copy
    again, again_digest = read_idx_with_digest(path)
    assert len(reads) == 3 and again_digest == digest and again[0, 0, 0] == 0

    time.sleep(0.02)  # past the file system clock's tick (RACY_NS is what covers a write within one)
    write_idx(path, np.full((2, 3, 4), 7, np.uint8))  # the same size, other content
    changed, changed_digest = read_idx_with_digest(path)
    assert len(reads) == 4 and changed_digest != digest and (changed == 7).all()
