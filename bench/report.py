"""Writing benchmark results into docs/benchmarks.md, one section per benchmark."""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section is written by a script in `bench/` (run `make bench`), which runs the peers side
by side in one run on the same machine and reports ratios. Figures are from the machine named
in each section; compare ratios rather than absolute numbers across machines.
"""


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def finish(name: str, lines: list[str], results: Iterable[Mapping[str, Any]]) -> None:
    """Close a load benchmark's section with its count of failed or non-2xx responses (from
    the `keep` and `new` loads of every result), print it and write it."""
    failures = sum(r["keep"].failed + r["new"].failed for r in results)
    body = "\n".join([*lines, "", f"Failed or non-2xx responses across all runs: {failures}."])
    print(body)
    write_section(name, body)


def write_section(name: str, body: str) -> None:
    """Replace the section `name` in docs/benchmarks.md (or append it)."""
    text = DOC.read_text() if DOC.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(text)
