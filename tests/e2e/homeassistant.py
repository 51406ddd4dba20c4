"""A real Home Assistant for end-to-end tests.

The first run creates a Python 3.13 virtualenv outside the checkout (`$HAGATE_CACHE`, default
~/.cache/hagate) with a pinned Home Assistant and the packages its frontend, auth and
onboarding load at start; later runs reuse it. HA then runs on loopback with `--skip-pip`, so
every run starts the same way. Nothing here is optional: a missing Python 3.13 is an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.container import EXTRA

HA_VERSION = "2025.4.4"
PACKAGES = [
    f"homeassistant=={HA_VERSION}",
    "home-assistant-frontend==20250411.0",  # what HA 2025.4.4's frontend integration pins
    "pyotp==2.8.0",  # auth's multi-factor modules, loaded at start
    "PyQRCode==1.2.1",
    "PyNaCl==1.5.0",  # mobile_app's, for the companion apps' registration (issue 27)
]
CACHE = Path(os.environ.get("HAGATE_CACHE", Path.home() / ".cache" / "hagate"))
PASSWORD = "correct horse battery staple"
# The newest Home Assistant that installs here needs Python >= 3.13.2, newer than this
# machine's; it runs in a container made from a Debian trixie root (Python 3.13.5), on the
# host's network, with its config folder mounted at the same path.
NEWEST = "2026.2.3"
MYPY = "2.4.1"  # checks the integration against each Home Assistant's own types
# The integrations the tests' configuration loads, and those Home Assistant imports to describe
# services (helpers/service.py's base components), whose own requirements the image installs
# with those of everything they depend on (HA runs with --skip-pip, as here).
LOADED = ("frontend", "http", "api", "websocket_api", "onboarding", "config", "alexa",
          "input_boolean", "logbook", "recorder", "repairs", "auth", "script", "automation",
          "persistent_notification", "stream", "conversation", "ai_task",
          "assist_satellite", "camera", "media_player", "notify", "todo")  # fmt: skip
CONTAINERFILE = """\
FROM {base}
ARG PIP_CERT
COPY requirements.py /tmp/requirements.py
RUN python3 -m venv /opt/ha \\
 && /opt/ha/bin/pip install --quiet --disable-pip-version-check --cert "$PIP_CERT" \\
      homeassistant=={version} pyotp==2.9.0 PyQRCode==1.2.1 mypy=={mypy} \\
 && /opt/ha/bin/python /tmp/requirements.py {loaded} > /tmp/requirements.txt \\
 && /opt/ha/bin/pip install --quiet --disable-pip-version-check --cert "$PIP_CERT" \\
      -r /tmp/requirements.txt
"""
REQUIREMENTS = """\
import json, pathlib, sys, homeassistant
root = pathlib.Path(homeassistant.__file__).parent / "components"
todo, seen = list(sys.argv[1:]), set()
while todo:
    name = todo.pop()
    manifest = root / name / "manifest.json"
    if name in seen or not manifest.exists():
        continue
    seen.add(name)
    data = json.loads(manifest.read_text())
    todo += data.get("dependencies", [])
    for line in data.get("requirements", []):
        print(line)
"""
# Tagged by what makes it: a changed recipe (or base) makes a new image.
_RECIPE = CONTAINERFILE + REQUIREMENTS + " ".join(LOADED) + MYPY + repr(EXTRA)
NEWEST_IMAGE = (
    f"localhost/hagate-homeassistant:{NEWEST}-{hashlib.sha256(_RECIPE.encode()).hexdigest()[:10]}"
)


def versions() -> list[str]:
    """The Home Assistant releases the integration's tests run against."""
    return [HA_VERSION, NEWEST]


def ensure_newest_image() -> str:
    """The image with the newest Home Assistant, built once on the cached trixie base."""
    from tests.container import CA_BUNDLE, ensure_base, podman

    if podman("image", "exists", NEWEST_IMAGE, check=False).returncode == 0:
        return NEWEST_IMAGE
    base = ensure_base("trixie")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Containerfile").write_text(
            CONTAINERFILE.format(base=base, version=NEWEST, loaded=" ".join(LOADED), mypy=MYPY)
        )
        (Path(tmp) / "requirements.py").write_text(REQUIREMENTS)
        podman(
            "build", "--network", "host", "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "--build-arg", f"PIP_CERT={CA_BUNDLE}", "-t", NEWEST_IMAGE, tmp,
            timeout=2400,
        )  # fmt: skip
    return NEWEST_IMAGE


def find_python313() -> str:
    candidates = [os.environ.get("HAGATE_PYTHON313", ""), shutil.which("python3.13") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.13*/bin/python3.13")))
    candidates += ["/usr/local/bin/python3.13", "/usr/bin/python3.13"]
    for c in candidates:
        if not c:
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([c, "--version"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.startswith("Python 3.13"):
                return c
    raise RuntimeError(
        "Python 3.13 is needed for the real Home Assistant and was not found; "
        "install it or set HAGATE_PYTHON313"
    )


def ensure_venv() -> Path:
    """The cached virtualenv with the pinned Home Assistant, created on first use."""
    venv = CACHE / f"ha-{HA_VERSION}"
    stamp = venv / "hagate-packages.txt"
    wanted = "\n".join(PACKAGES) + "\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        have = stamp.read_text().split() if stamp.exists() else []
        pip = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        if (venv / "bin" / "hass").exists() and set(have) <= set(PACKAGES):
            if set(have) == set(PACKAGES):
                return venv
            # Packages added since the venv was made: only those are installed.
            added = [p for p in PACKAGES if p not in have]
            subprocess.run([*pip, *added], check=True, timeout=1800)
            stamp.write_text(wanted)
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([find_python313(), "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *PACKAGES], check=True, timeout=1800)
        stamp.write_text(wanted)
    return venv


def ensure_tools_venv() -> Path:
    """mypy beside the cached Home Assistant: a venv that sees its packages (a .pth file), so
    the cached one stays as its stamp says."""
    ha = ensure_venv()
    venv = CACHE / f"ha-{HA_VERSION}-tools"
    stamp = venv / "hagate-tools.txt"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == MYPY:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(ha / "bin" / "python"), "-m", "venv", str(venv)], check=True)
        [site] = glob.glob(str(venv / "lib" / "python3.*" / "site-packages"))
        [ha_site] = glob.glob(str(ha / "lib" / "python3.*" / "site-packages"))
        Path(site, "homeassistant-venv.pth").write_text(ha_site + "\n")
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", f"mypy=={MYPY}"],
            check=True, timeout=900,
        )  # fmt: skip
        stamp.write_text(MYPY)
    return venv


CONFIGURATION = """\
homeassistant:
  name: hagate test home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
  use_x_forwarded_for: true
  trusted_proxies:
    - 127.0.0.1
  ip_ban_enabled: true
  login_attempts_threshold: 3
frontend:
api:
websocket_api:
onboarding:
config:
alexa:
  smart_home:
input_boolean:
  porch_light:
    name: Porch light
  kitchen_light:
    name: Kitchen light
logger:
  default: warning
  logs:
    aiohttp.access: info
"""


@dataclass
class HomeAssistant:
    config_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    access_token: str = ""
    refresh_token: str = ""
    extra: str = ""  # more configuration.yaml, after the standard one
    trusts_proxy: bool = True  # use_x_forwarded_for with 127.0.0.1 as trusted proxy
    tls: tuple[Path, Path, Path] | None = None  # certificate, key, CA: HA's own TLS
    version: str = HA_VERSION  # or NEWEST, run in its container
    container: str = ""  # the container's name, when it runs in one
    debug: list[str] = field(default_factory=list)  # loggers at debug level

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def context(self) -> ssl.SSLContext | None:
        """For HA's own TLS: its CA, and no name check (the certificate names the public
        hostname, not 127.0.0.1)."""
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls[2]))
        ctx.check_hostname = False
        return ctx

    def _open(self, req: urllib.request.Request | str, timeout: float) -> Any:
        return urllib.request.urlopen(req, timeout=timeout, context=self.context())

    def command(self) -> list[str]:
        if self.version == HA_VERSION:
            return [str(ensure_venv() / "bin" / "hass"), "-c", str(self.config_dir), "--skip-pip"]
        if self.version != NEWEST:
            raise ValueError(f"no Home Assistant {self.version} here")
        image = ensure_newest_image()
        self.container = f"hagate-ha-{self.port}"
        return [
            "podman", "run", "--rm", "--name", self.container, "--network", "host",
            "-v", f"{self.config_dir}:{self.config_dir}", image,
            "/opt/ha/bin/hass", "-c", str(self.config_dir), "--skip-pip",
        ]  # fmt: skip

    def start(self, timeout: float = 300) -> None:
        command = self.command()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        config = CONFIGURATION.format(port=self.port) + self.extra
        if self.version == HA_VERSION:  # the companion apps' integration (its PyNaCl is here)
            config += "mobile_app:\n"
        config = config.replace(
            "    aiohttp.access: info\n",
            "    aiohttp.access: info\n" + "".join(f"    {name}: debug\n" for name in self.debug),
        )
        if not self.trusts_proxy:
            config = config.replace("use_x_forwarded_for: true", "use_x_forwarded_for: false")
        if self.tls is not None:
            config = config.replace(
                "  server_port:",
                f"  ssl_certificate: {self.tls[0]}\n  ssl_key: {self.tls[1]}\n  server_port:",
            )
        (self.config_dir / "configuration.yaml").write_text(config)
        self.log = (self.config_dir / "stdout.log").open("wb")
        from tests.container import env

        self.proc = subprocess.Popen(
            command,
            env=env(),  # Podman's settings, for the newest (in a container)
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited: {self.read_log()[-3000:]}")
            if self.access_token:  # onboarded: /api/onboarding is gone; wait until RUNNING
                req = urllib.request.Request(self.url + "/api/config")
                req.add_header("Authorization", f"Bearer {self.access_token}")
                with (
                    contextlib.suppress(OSError, urllib.error.URLError, ValueError),
                    self._open(req, timeout=2) as r,
                ):
                    if json.loads(r.read()).get("state") == "RUNNING":
                        return
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                self._open(self.url + "/api/onboarding", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"Home Assistant did not start in {timeout}s: {self.read_log()[-3000:]}")

    def read_log(self) -> str:
        path = self.config_dir / "home-assistant.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text + (self.config_dir / "stdout.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # Podman passes it on to Home Assistant in its container
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.container:
            from tests.container import podman

            podman("rm", "-f", self.container, check=False)

    def _post(
        self, path: str, data: dict[str, Any], token: str | None = None, form: bool = False
    ) -> Any:
        body = (urllib.parse.urlencode(data) if form else json.dumps(data)).encode()
        req = urllib.request.Request(self.url + path, data=body, method="POST")
        req.add_header(
            "Content-Type", "application/x-www-form-urlencoded" if form else "application/json"
        )
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with self._open(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def onboard(self, public_url: str) -> None:
        """Create the owner through HA's onboarding API and finish onboarding."""
        client_id = public_url.rstrip("/") + "/"
        user = self._post(
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": "Owner",
                "username": "owner",
                "password": PASSWORD,
                "language": "en",
            },
        )
        tokens = self._post(
            "/auth/token",
            {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id},
            form=True,
        )
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        self._post("/api/onboarding/core_config", {}, self.access_token)
        self._post("/api/onboarding/analytics", {}, self.access_token)
        self._post(
            "/api/onboarding/integration",
            {"client_id": client_id, "redirect_uri": client_id + "?auth_callback=1"},
            self.access_token,
        )

    def ws(self, kind: str, check: bool = True, **fields: Any) -> Any:
        """One command on HA's websocket API, as its frontend sends it; its result (the whole
        answer, failed or not, with check=False)."""
        from websockets.sync.client import connect

        url = f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/api/websocket"
        with connect(url, open_timeout=30, ssl=self.context()) as ws:
            json.loads(ws.recv())
            ws.send(json.dumps({"type": "auth", "access_token": self.access_token}))
            assert json.loads(ws.recv())["type"] == "auth_ok"
            ws.send(json.dumps({"id": 1, "type": kind, **fields}))
            answer = json.loads(ws.recv())
        if not check:
            return answer
        assert answer.get("success"), answer
        return answer["result"]

    def long_lived_token(self, name: str) -> str:
        """A long-lived access token, made through HA's websocket API as the profile page does."""
        token: str = self.ws("auth/long_lived_access_token", client_name=name, lifespan=365)
        return token

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path)
        req.add_header("Authorization", f"Bearer {self.access_token}")
        with self._open(req, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, data: dict[str, Any]) -> Any:
        return self._post(path, data, self.access_token)

    def state(self, entity_id: str) -> str:
        req = urllib.request.Request(f"{self.url}/api/states/{entity_id}")
        req.add_header("Authorization", f"Bearer {self.access_token}")
        with self._open(req, timeout=30) as r:
            value: str = json.loads(r.read())["state"]
            return value

    def banned(self) -> str:
        path = self.config_dir / "ip_bans.yaml"
        return path.read_text() if path.exists() else ""
