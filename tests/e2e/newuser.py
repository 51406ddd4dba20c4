"""Inside `unshare --net --mount`: a new user's relay and home, by the docs' commands as printed.

Run by tests/e2e/test_new_user.py with a spec (JSON): the checkout's fresh copy, the commands
read out of README.md and docs/relay.md, the relay's unit file. It prints one JSON line of
what it saw; any step that fails ends it with the step, its output and exit status 1.

This namespace is one machine playing two: relay.example.com and ha.example.com are 127.0.0.1
(a private /etc/hosts), /etc, /opt and /var/lib are private copies (useradd and the install
touch nothing outside), and unprivileged users may bind port 443 here, which stands in for the
unit's AmbientCapabilities=CAP_NET_BIND_SERVICE.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.homeassistant import HomeAssistant


class StepFailed(Exception):
    pass


class Shell:
    """Commands as a user types them: shell variables carry over, long runners go to the
    background, a prompt for a password is answered on a terminal."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.background: list[subprocess.Popen[bytes]] = []
        self.said: list[str] = []

    def run(self, command: str, answer: str | None = None) -> str:
        self.said.append(f"$ {command}")
        assignment = _assignment(command)
        if assignment is not None:  # NAME=VALUE or export NAME=VALUE: the shell's own
            name, value = assignment
            out = self._bash(f"printf %s {value}")
            self.env[name] = out
            return out
        if answer is not None:
            return self._on_terminal(command, answer)
        return self._bash(command)

    def _on_terminal(self, command: str, answer: str) -> str:
        """On a terminal: each time it asks (a line ending in ": "), type `answer`."""
        main_fd, sub_fd = pty.openpty()
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=sub_fd,
            stdout=sub_fd,
            stderr=sub_fd,
            start_new_session=True,
        )
        os.close(sub_fd)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main_fd, 4096)
                except OSError:  # the terminal closed: the command is done
                    break
                seen += data
                if seen.rstrip(b" ").endswith(b":"):
                    os.write(main_fd, answer.encode() + b"\r")
                    seen += b"\n"
            elif proc.poll() is not None:
                break
        os.close(main_fd)
        proc.wait(30)
        text = seen.decode(errors="replace")
        self.said.append(text)
        if proc.returncode != 0:
            raise StepFailed(f"{command}: exit {proc.returncode}\n{text}")
        return text

    def _bash(self, command: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.said.append(done.stdout + done.stderr)
        if done.returncode != 0:
            raise StepFailed(f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, command: str, log: Path) -> subprocess.Popen[bytes]:
        self.said.append(f"$ {command} &")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.background:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.background:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _assignment(command: str) -> tuple[str, str] | None:
    words = command.split("#")[0].strip()
    if words.startswith("export "):
        words = words[len("export ") :].strip()
    name, eq, value = words.partition("=")
    if eq and name.isidentifier() and " " not in name:
        return name, value.strip() or "''"
    return None


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def private_machine(private: Path) -> None:
    """Loopback up, port 443 for all, and private /etc (with the two names), /opt, /var/lib."""
    sh("ip", "link", "set", "lo", "up")
    sh("sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0")
    private.mkdir(parents=True)
    sh("cp", "-a", "/etc", str(private / "etc"))
    hosts = private / "etc" / "hosts"
    names = f"localhost {socket.gethostname()} relay.example.com ha.example.com"
    hosts.write_text(f"127.0.0.1 {names}\n::1 localhost\n")
    sh("mount", "--bind", str(private / "etc"), "/etc")
    for folder, name in (("/opt", "opt"), ("/var/lib", "var-lib")):
        (private / name).mkdir()
        sh("mount", "--bind", str(private / name), folder)


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-3000:]
            raise StepFailed(f"exited {proc.returncode} before listening on {port}: {said}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise StepFailed(f"nothing on port {port}: {log.read_text(errors='replace')[-3000:]}")


def unit_command(unit: str) -> tuple[str, dict[str, str], str]:
    """(User, Environment, ExecStart) of a systemd unit."""
    fields: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in unit.splitlines():
        key, eq, value = line.partition("=")
        if not eq or line.startswith("#"):
            continue
        if key == "Environment":
            name, _, v = value.partition("=")
            env[name] = v
        else:
            fields[key] = value
    return fields["User"], env, fields["ExecStart"]


def main(spec_path: str) -> dict[str, Any]:
    spec = json.loads(Path(spec_path).read_text())
    work, private = Path(spec["work"]), Path(spec["private"])
    private_machine(private)
    ha = HomeAssistant(private / "ha-config", 8123)
    base = {"PATH": spec["path"], "HOME": "/root", "LANG": "C.UTF-8", **spec["pip"]}
    # The home: its own hagate from the checkout ("after `pip install .`"), state in ~ .
    home_env = {
        **base,
        "PATH": f"{work / 'home-venv' / 'bin'}:{spec['path']}",
        "XDG_DATA_HOME": str(private / "home-data"),
    }
    checkout = Path(spec["checkout"])
    home = Shell(home_env, checkout)
    vps = Shell(dict(base), work)
    try:
        ha.start()  # the real Home Assistant, on 127.0.0.1:8123 as the docs assume
        home._bash(f"python3 -m venv {work / 'home-venv'}")
        home.run("pip install .")
        home.cwd = private
        # README, by hand.
        for command in spec["readme"]:
            if command.startswith("hagate serve"):
                log = private / "serve.log"
                wait_port(8443, home.start(command.split("#")[0].strip(), log), log)
                continue
            bare = command.split("#")[0].strip()
            needs_password = "--p12" in bare and "--password-file" not in bare
            home.run(bare, answer="a bundle password" if needs_password else None)
        home.stop_all()
        home.background.clear()
        # docs/relay.md: the relay, as root on the VPS.
        for block in spec["install"]:
            for command in block:
                out = vps.run(command)
                if "relay init" in command:
                    fingerprint = out.strip().splitlines()[-1]
        user, unit_env, exec_start = unit_command(spec["unit"])
        env_words = " ".join(f"{k}={v}" for k, v in unit_env.items())
        relay_log = private / "relay.log"
        relay = vps.start(f"sudo -u {user} env {env_words} {exec_start}", relay_log)
        wait_port(443, relay, relay_log)
        relay_user = subprocess.run(
            ["ps", "-o", "user=", "--ppid", str(relay.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        # docs/relay.md: the home side, with the token and the fingerprint put in.
        for command in spec["home"]:
            line = command.replace("hg1....", vps.env["TOKEN"]).replace("SHA256", fingerprint)
            if line.startswith("hagate connect"):
                connector_log = private / "connect.log"
                home.start(line.split("#")[0].strip(), connector_log)
            else:
                home.run(line)
        status = Path("/var/lib/hagate-relay/relay-status.json")
        deadline = time.monotonic() + 30
        while "ha.example.com" not in (status.read_text() if status.exists() else ""):
            if time.monotonic() > deadline:
                raise StepFailed(f"no connector: {connector_log.read_text()[-3000:]}")
            time.sleep(0.2)
        # A device with a certificate, by the curl line `cert issue` prints.
        issued = home.run("hagate cert issue tablet")
        curl = next(x.strip() for x in issued.splitlines() if x.strip().startswith("curl "))
        curl = curl.split(None, 1)[1]  # "curl   curl --cacert ...": the command itself
        answer = home.run(f"{curl} -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}'")
        page = home.run("curl -sS -k https://relay.example.com/")
        return {
            "through_relay": answer,
            "relay_page": page,
            "relay_user": relay_user[0] if relay_user else "",
            "relay_log": relay_log.read_text(errors="replace"),
        }
    finally:
        home.stop_all()
        vps.stop_all()
        ha.stop()
        Path(private / "said.log").write_text("\n".join(home.said + vps.said))


if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1])))
    except StepFailed as e:
        print(f"step failed: {e}", file=sys.stderr)
        sys.exit(1)
