"""Run a bundle's handler in a fresh interpreter, as Lambda does: unpacked, cold, then warm."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hagate.errors import HagateError

LAMBDA_PYTHONS = ("python3.13", "python3.12")


def lambda_python() -> str:
    """A Python of one of Lambda's versions (3.13, 3.12) that runs, if this machine has one;
    else this interpreter."""
    home = Path.home()
    candidates = [shutil.which(name) or "" for name in LAMBDA_PYTHONS]
    for version in ("3.13", "3.12"):
        candidates += sorted(
            glob.glob(str(home / f".pyenv/versions/{version}*/bin/python{version}"))
        )
        candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for c in candidates:
        if not c:
            continue
        try:
            out = subprocess.run([c, "--version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.startswith(("Python 3.13", "Python 3.12")):
            return c
    return sys.executable


@dataclass
class Invocation:
    response: Any
    ms: float
    log: list[dict[str, Any]]
    raised: str | None
    import_ms: float | None = None
    since_start_ms: float | None = None


def run_bundle(
    bundle: Path,
    events: list[dict[str, Any]],
    python: str | None = None,
    sleeps: list[float] | None = None,
    env: dict[str, str] | None = None,
    sys_path: list[str] | None = None,
    timeout: float = 120,
) -> list[Invocation]:
    """Unpack `bundle` into a private folder and run its handler once per event, in one
    fresh interpreter (`-I -S`, so nothing but the standard library is there unless
    `sys_path` adds it, as Lambda's runtime adds boto3)."""
    try:
        archive = zipfile.ZipFile(bundle)
    except (OSError, zipfile.BadZipFile) as e:
        raise HagateError(f"cannot read the bundle {bundle}: {e}") from e
    with tempfile.TemporaryDirectory(prefix="hagate-lambda-") as tmp, archive:
        task = Path(tmp) / "task"
        archive.extractall(task)
        if not (task / "lambda_function.py").exists():
            raise HagateError(f"{bundle} has no lambda_function.py at its top level")
        runner = Path(tmp) / "runner.py"
        runner.write_bytes(resources.files("hagate.alexa").joinpath("runner.py").read_bytes())
        script = Path(tmp) / "script.json"
        invocations = [
            {"event": e, "sleep_before": (sleeps or [])[i] if i < len(sleeps or []) else 0}
            for i, e in enumerate(events)
        ]
        script.write_text(json.dumps({"invocations": invocations, "sys_path": sys_path or []}))
        flags = ["-I"] if sys_path else ["-I", "-S"]
        proc = subprocess.run(
            [python or lambda_python(), *flags, str(runner), str(task), str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
    if proc.returncode != 0:
        raise HagateError(f"the handler's interpreter failed: {proc.stderr.strip()[-2000:]}")
    out = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        out.append(
            Invocation(
                r["response"],
                r["ms"],
                r["log"],
                r["raised"],
                r.get("import_ms"),
                r.get("since_start_ms"),
            )
        )
    return out
