"""What `hagate audit` reports: findings with a stable id, a severity, the problem in plain
words and the exact fix.

Rules:
  1. An id names the check and, after a colon, what it is about (a certificate's name, a
     rule's description made into a slug), so it stays the same from run to run and can be
     listed in `audit.ignore`.
  2. Findings come sorted: high first, then by id, so two runs on the same setup print the
     same text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    id: str
    severity: Severity
    problem: str  # what is wrong, in plain words
    fix: str  # the command or config change that fixes it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.label,
            "problem": self.problem,
            "fix": self.fix,
        }


def slug(text: str) -> str:
    """A rule's description (or a name) as an id part: lower-case words joined by '-'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:60].strip("-") or "unnamed"


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity, f.id))


def split_ignored(
    findings: Iterable[Finding], ignore: Iterable[str]
) -> tuple[list[Finding], list[Finding]]:
    """(reported, silenced): an `audit.ignore` entry silences the finding with that id."""
    silenced_ids = set(ignore)
    reported: list[Finding] = []
    silenced: list[Finding] = []
    for f in ordered(findings):
        (silenced if f.id in silenced_ids else reported).append(f)
    return reported, silenced


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = {s.label: 0 for s in Severity}
    for f in findings:
        out[f.severity.label] += 1
    return out
