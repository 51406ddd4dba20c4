"""hagate's container image for tests, built with Podman on a Debian base made here.

Nothing can be pulled on this machine, so the base image is a Debian bookworm root made with
mmdebstrap (Python 3.11, its venv module, the CA bundle), cached as a tarball in the user's
cache and imported into Podman; the image is then built from the checkout's Dockerfile with
that base. pip inside the build reads the host's CA bundle (mounted, never copied in).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(__file__).resolve().parent / "containers.conf"
CACHE = Path.home() / ".cache" / "hagate" / "container"
IMAGE = "localhost/hagate:latest"  # the compose files' `image: hagate`
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# The newest Home Assistant builds a few of its requirements from source (lru-dict).
EXTRA = {"trixie": ("gcc", "g++", "libc6-dev", "python3-dev")}


def env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env(), timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr[-3000:]}")
    return done


def ensure_base(suite: str = "bookworm") -> str:
    """The Debian base image of `suite`, made once and kept (tarball in the cache, image in
    Podman): bookworm for hagate's images, trixie for the newest Home Assistant."""
    extra = EXTRA.get(suite, ())
    # Named by what is in it: another package list makes another base.
    tag = suite + ("-" + hashlib.sha256(",".join(extra).encode()).hexdigest()[:8] if extra else "")
    image = f"localhost/hagate-base:{tag}"
    if podman("image", "exists", image, check=False).returncode == 0:
        return image
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"base-{tag}.tar"
    if not tarball.exists():
        partial = tarball.with_name(f"base-{tag}.partial.tar")  # mmdebstrap: format by name
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=" + ",".join(PACKAGES + extra),
                suite,
                str(partial),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        partial.rename(tarball)  # a half-made root never counts as the cache
    podman("import", str(tarball), image)
    return image


def build_image() -> str:
    """hagate's image from this checkout's Dockerfile, on the local base."""
    base = ensure_base()
    podman(
        "build",
        "--network", "host",
        "--format", "docker",  # keeps HEALTHCHECK
        "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--build-arg", f"BASE={base}",
        "--build-arg", f"PIP_CERT={CA_BUNDLE}",
        "-t", IMAGE,
        str(ROOT),
        timeout=900,
    )  # fmt: skip
    return IMAGE
