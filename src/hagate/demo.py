"""`make run`: a short guided tour that sets up a demo state directory and issues a certificate.

It runs the real `hagate` commands, printing each one first, so what it shows is what a user
would type. Everything lands in ./demo (wiped at the start), nothing outside it is touched.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DEMO = Path("demo")


def step(title: str, *args: str) -> None:
    cmd = ["hagate", *args]
    print(f"\n== {title}\n$ {shlex.join(cmd)}", flush=True)
    subprocess.run([sys.executable, "-m", "hagate", *args], check=True)


def main() -> None:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir()
    state = str(DEMO / "state")
    password = DEMO / "bundle-password.txt"
    password.write_text("demo-password\n")
    password.chmod(0o600)
    step(
        "Create hagate's CA, a server certificate and a config",
        "--state-dir",
        state,
        "init",
        "--hostname",
        "ha.example.test",
        "--upstream",
        "http://127.0.0.1:8123",
    )
    step(
        "Issue a client certificate for a phone, as a PKCS#12 bundle",
        "--state-dir",
        state,
        "cert",
        "issue",
        "phone",
        "--p12",
        str(DEMO / "phone.p12"),
        "--password-file",
        str(password),
        "--pem-dir",
        str(DEMO / "pem"),
    )
    step(
        "And one for an older Android tablet (legacy 3DES/SHA-1 bundle)",
        "--state-dir",
        state,
        "cert",
        "issue",
        "old-tablet",
        "--legacy",
        "--p12",
        str(DEMO / "old-tablet.p12"),
        "--password-file",
        str(password),
    )
    step("Every certificate and its status", "--state-dir", state, "cert", "list")
    step(
        "Revoke the tablet: the inventory and crl.pem show it at once",
        "--state-dir",
        state,
        "cert",
        "revoke",
        "old-tablet",
        "--reason",
        "lost",
    )
    step("The list again", "--state-dir", state, "cert", "list")
    print(
        f"\nDone. The state directory is {state}; the bundles are in {DEMO}/ "
        f"(password: {password})."
    )


if __name__ == "__main__":
    main()
