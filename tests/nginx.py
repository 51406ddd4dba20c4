"""nginx on loopback for tests and benchmarks: as an upstream, or as an mTLS proxy peer."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.net import free_port, wait_listening


@dataclass
class Nginx:
    prefix: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, servers: str, workers: int = 1) -> None:
        if shutil.which("nginx") is None:
            raise RuntimeError("nginx is not installed: run `make setup`")
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        (self.prefix / "body").mkdir(exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(f"""
user root;
worker_processes {workers};
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log warn;
events {{ worker_connections 16384; }}
worker_rlimit_nofile 65536;
http {{
    access_log off;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/body;
    sendfile on;
    keepalive_requests 1000000;
    {servers}
}}
""")
        self.proc = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.prefix)], stderr=subprocess.PIPE
        )
        wait_listening(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def upstream(prefix: Path, big_file_size: int = 1 << 30) -> Nginx:
    """nginx serving a small response, a large sparse file, and accepting PUT uploads."""
    prefix.mkdir(parents=True, exist_ok=True)
    root = prefix / "www"
    (root / "upload").mkdir(parents=True, exist_ok=True)
    with open(root / "big.bin", "wb") as f:
        f.truncate(big_file_size)
    (root / "small.txt").write_text("ok\n" * 10)
    port = free_port()
    n = Nginx(prefix, port)
    n.start(f"""
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /upload/ {{ dav_methods PUT; client_max_body_size 0; create_full_put_path on; }}
    }}""")
    return n
