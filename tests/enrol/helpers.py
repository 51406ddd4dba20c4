"""Running `hagate cert enrol` and reading what it printed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import run_hagate


@dataclass
class Printed:
    url: str
    token: str
    password: str
    qr: list[str]
    fingerprint: str | None
    out: str


def enrol(state: Path, name: str, port: int, *extra: str) -> Printed:
    r = run_hagate("cert", "enrol", name, "--url", f"https://ha.test:{port}", *extra, state=state)
    assert r.code == 0, r.err
    url = re.search(r"^  (https://\S+)$", r.out, re.M)
    password = re.search(r"Bundle password .*: (\S+)$", r.out, re.M)
    assert url and password, r.out
    lines = r.out.splitlines()
    qr = [line for line in lines if line and set(line) <= set("█▀▄ ")]
    fp = re.search(r"^  ([0-9A-F]{2}(?::[0-9A-F]{2}){31})$", r.out, re.M)
    return Printed(
        url.group(1),
        url.group(1).rsplit("/", 1)[1],
        password.group(1),
        qr,
        fp.group(1).replace(":", "").lower() if fp else None,
        r.out,
    )
