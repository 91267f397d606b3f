"""Shared parts of the benchmark scripts: the machine line and docs/benchmarks.md.

Each script owns one section of docs/benchmarks.md between two HTML
comments named after it, such as ``<!-- hub-load:start -->``, and replaces
only that section when it runs again.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine(*versions: str) -> str:
    """Describe the CPU, cores and Python of this machine, then `versions`."""
    model = platform.machine() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        if match:
            model = match.group(1).strip()
    parts = [model, f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    return ", ".join([*parts, *versions])


def marks(name: str) -> tuple[str, str]:
    """Return the comments that open and close the section `name`."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, text: str, docs: Path = DOCS) -> None:
    """Replace the section `name` of `docs` with `text`, or append it."""
    start, end = marks(name)
    docs.parent.mkdir(parents=True, exist_ok=True)
    current = docs.read_text() if docs.exists() else "# Benchmarks\n"
    section = f"{start}\n{text.strip(chr(10))}\n{end}"
    if start in current and end in current:
        before = current.split(start)[0]
        after = current.split(end, 1)[1]
        current = before + section + after
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(current)
