"""Real TCP fronts on loopback for tests and benchmarks: Debian's HAProxy in TCP mode and
nginx's stream module, each passing TLS through to a backend with or without a PROXY
protocol header. They connect to the backend from their own loopback address (`source`), so
the tests' direct connections (from 127.0.0.1) are never the trusted front's."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.net import free_port, wait_listening

FRONT_SOURCE = "127.0.0.9"  # where the fronts connect to the backend from
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def haproxy_config(listen_port: int, backend_port: int, proxy: str, source: str) -> str:
    """HAProxy in TCP mode; `proxy` is "", "send-proxy" or "send-proxy-v2"."""
    return f"""\
global
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s

frontend public
    bind 127.0.0.1:{listen_port}
    default_backend home

backend home
    server gateway 127.0.0.1:{backend_port} {proxy} source {source}
"""


def nginx_stream_config(prefix: Path, listen_port: int, backend_port: int, source: str) -> str:
    return f"""\
load_module {STREAM_MODULE};
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
stream {{
    server {{
        listen 127.0.0.1:{listen_port};
        proxy_pass 127.0.0.1:{backend_port};
        proxy_protocol on;
        proxy_bind {source};
    }}
}}
"""


@dataclass
class Front:
    """One running front; `port` is where clients connect."""

    kind: str  # "haproxy" or "nginx"
    directory: Path
    backend_port: int
    proxy: str = "send-proxy-v2"  # HAProxy's server option ("" for none); nginx always v1
    source: str = FRONT_SOURCE
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / f"{self.kind}.log").open("ab")
        if self.kind == "haproxy":
            assert shutil.which("haproxy"), "haproxy is not installed: run make setup"
            conf = self.directory / "haproxy.cfg"
            conf.write_text(haproxy_config(self.port, self.backend_port, self.proxy, self.source))
            cmd = ["haproxy", "-f", str(conf), "-db"]
        else:
            assert STREAM_MODULE.exists(), "nginx's stream module is missing: run make setup"
            conf = self.directory / "nginx.conf"
            conf.write_text(
                nginx_stream_config(self.directory, self.port, self.backend_port, self.source)
            )
            cmd = ["nginx", "-c", str(conf), "-p", str(self.directory)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def log(self) -> str:
        return (self.directory / f"{self.kind}.log").read_text(errors="replace")
