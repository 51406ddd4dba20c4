"""The certificates as people see them: each with its status, and its first and last use
(when, from where, with what). One object for `hagate cert list --json` and the console's
API."""

from __future__ import annotations

import contextlib
from typing import Any

from hagate.credentials.bindings import Bindings, summary
from hagate.enrol.store import EnrolmentStore
from hagate.pki.authority import Authority
from hagate.state import StateDir


def device_summaries(state: StateDir) -> list[dict[str, Any]]:
    store = EnrolmentStore(state)
    held = Bindings(state).by_certificate()
    out = []
    for r in Authority(state).records():
        first = store.first_use(r.sha256)
        last = store.last_use(r.sha256) if first is not None else None
        if first is not None and last is None:
            last = dict(first)  # used once, or its later uses were noted before last-use files
            with contextlib.suppress(OSError):
                last["time"] = store.first_use_path(r.sha256).stat().st_mtime
        mine = held.get(r.sha256, [])
        credentials = {**summary(mine), "each": [b.to_json() for b in mine]}
        out.append(
            {**r.summary(), "first_used": first, "last_used": last, "credentials": credentials}
        )
    return out
