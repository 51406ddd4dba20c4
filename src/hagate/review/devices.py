"""The certificates as people see them: each with its status, first use (when, from where,
with what) and last use. One object for `hagate cert list --json` and the console's API."""

from __future__ import annotations

import contextlib
from typing import Any

from hagate.enrol.store import EnrolmentStore
from hagate.pki.authority import Authority
from hagate.state import StateDir


def device_summaries(state: StateDir) -> list[dict[str, Any]]:
    store = EnrolmentStore(state)
    out = []
    for r in Authority(state).records():
        first = store.first_use(r.sha256)
        last = None
        if first is not None:
            # A later use is the first-use record's modification time (EnrolmentStore.record_use).
            with contextlib.suppress(OSError):
                last = store.first_use_path(r.sha256).stat().st_mtime
        out.append({**r.summary(), "first_used": first, "last_used": last})
    return out
