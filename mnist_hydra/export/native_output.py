"""Holding back what native (C++) code writes straight to file descriptor 2 while it converts or loads a model."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_output_quiet() -> Iterator[None]:
    """Hold back what TensorFlow's, LiteRT's and tf2onnx's C++ code writes to stderr (INFO lines about
    delegates and graph passes); it is shown if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
