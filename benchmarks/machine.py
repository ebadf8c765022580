"""What a benchmark ran on, printed beside its figures: figures from two machines are never compared."""

from __future__ import annotations

import os
import re
from pathlib import Path


def cpu_model() -> str:
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        names = []
    flags = Path("/proc/cpuinfo").read_text() if names else ""
    extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores" + (f" ({', '.join(extras)})" if extras else "")


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"
