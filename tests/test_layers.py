"""The package's layers, read from its own imports (every import, also those inside functions
or under TYPE_CHECKING: an import moved into a function to dodge a cycle still runs upward).

  - `hagate.http1` is pure code over bytes: it imports nothing of hagate's but itself, and no
    asyncio.
  - `hagate.run` wires the components together and starts processes: only the command line
    (and `python -m hagate`) may import it; a component that did would run upward.
  - `hagate.cli` only parses arguments: nothing imports it but `python -m hagate`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def imports() -> Iterator[tuple[str, str]]:
    """(importing module, imported module) for every import in the package."""
    for path in sorted((SRC / "hagate").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield module, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield module, node.module
                for alias in node.names:
                    yield module, f"{node.module}.{alias.name}"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_package_has_modules_to_read() -> None:
    found = list(imports())
    assert ("hagate.gateway.request", "hagate.http1.heads") in found
    assert any(within(m, "hagate.cli") and within(i, "hagate.run") for m, i in found)


def test_http1_is_pure_code_over_bytes() -> None:
    wrong = [
        (m, i)
        for m, i in imports()
        if within(m, "hagate.http1")
        and ((within(i, "hagate") and not within(i, "hagate.http1")) or within(i, "asyncio"))
    ]
    assert wrong == []


def test_only_the_command_line_imports_the_wiring() -> None:
    allowed = ("hagate.run", "hagate.cli", "hagate.__main__")
    wrong = [
        (m, i)
        for m, i in imports()
        if within(i, "hagate.run") and not any(within(m, a) for a in allowed)
    ]
    assert wrong == []


def test_nothing_imports_the_command_line() -> None:
    allowed = ("hagate.cli", "hagate.__main__")
    wrong = [
        (m, i)
        for m, i in imports()
        if within(i, "hagate.cli") and not any(within(m, a) for a in allowed)
    ]
    assert wrong == []
