"""Run a Lambda bundle's handler the way Lambda does: in a fresh interpreter, cold, then warm.

Usage: python -I -S runner.py BUNDLE_DIR SCRIPT.json
SCRIPT.json: {"invocations": [{"event": {...}, "sleep_before": 0.0}, ...], "sys_path": [...]}
Prints one JSON line per invocation: the response, the handler's log lines, and timings (the
first line also carries the module's import time). Standard library only, like the handler.
"""

from __future__ import annotations

import io
import json
import sys
import time


def main() -> None:
    started = time.monotonic()
    bundle, script_path = sys.argv[1], sys.argv[2]
    with open(script_path, encoding="utf-8") as f:
        script = json.load(f)
    sys.path[:0] = [bundle, *script.get("sys_path", [])]
    t0 = time.monotonic()
    import lambda_function  # type: ignore[import-not-found]

    import_ms = (time.monotonic() - t0) * 1000
    out = sys.stdout
    for n, item in enumerate(script["invocations"]):
        if item.get("sleep_before"):
            time.sleep(item["sleep_before"])
        captured = io.StringIO()
        sys.stdout = captured
        t0 = time.monotonic()
        try:
            response = lambda_function.lambda_handler(item["event"], None)
            raised = None
        except BaseException as e:  # the handler must never raise; say so if it does
            response, raised = None, f"{type(e).__name__}: {e}"
        finally:
            sys.stdout = out
        record = {
            "n": n,
            "ms": round((time.monotonic() - t0) * 1000, 2),
            "response": response,
            "raised": raised,
            "log": [json.loads(line) for line in captured.getvalue().splitlines() if line.strip()],
        }
        if n == 0:
            record["import_ms"] = round(import_ms, 2)
            record["since_start_ms"] = round((time.monotonic() - started) * 1000, 2)
        out.write(json.dumps(record) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
