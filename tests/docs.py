"""The commands the docs print, read out of their Markdown, for tests that run them as printed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


def code_blocks(doc: str, language: str, section: str | None = None) -> list[str]:
    """The text of the ```LANGUAGE blocks of `doc`, under `section` if given."""
    return ["\n".join(b) + "\n" for b in _blocks(doc, section, (language,), join=False)]


def sh_blocks(doc: str, section: str | None = None) -> list[list[str]]:
    """The ```sh blocks of `doc` (a path from the repository's root), each as its command
    lines (indentation of a list item removed; a line ending in \\ joined with the next). With
    `section`: only the blocks under the heading whose text starts so, up to the next heading
    of the same or a higher level."""
    return _blocks(doc, section, ("sh", "bash", "shell"), join=True)


def _blocks(
    doc: str, section: str | None, languages: tuple[str, ...], join: bool
) -> list[list[str]]:
    lines = (ROOT / doc).read_text().splitlines()
    if section is not None:
        start = next(
            i
            for i, x in enumerate(lines)
            if x.startswith("#") and x.lstrip("#").strip().startswith(section)
        )
        level = len(lines[start]) - len(lines[start].lstrip("#"))
        end = next(
            (
                i
                for i in range(start + 1, len(lines))
                if lines[i].startswith("#" * level + " ")
                or (lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) < level)
            ),
            len(lines),
        )
        lines = lines[start:end]
    blocks: list[list[str]] = []
    inside: str | None = None  # the open block's language
    current: list[str] = []
    indent = ""
    for line in lines:
        fence = FENCE.match(line)
        if fence:
            if inside is None:
                inside, indent, current = fence.group(2), fence.group(1), []
            else:
                if inside in languages:
                    blocks.append(_join(current) if join else current)
                inside = None
            continue
        if inside is not None:
            current.append(line[len(indent) :] if line.startswith(indent) else line)
    return blocks


def _join(lines: list[str]) -> list[str]:
    out: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole and not whole.startswith("#"):
            out.append(whole)
    return out
