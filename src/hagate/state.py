"""The state directory: where hagate keeps its CA, certificates, config and event store.

Rules for every file written here:
  1. Writes are atomic: a temporary file in the same directory, fsync, rename, fsync of the
     directory. A crash leaves either the old file or the new one, never half of one.
  2. Key files are created 0600 from the first byte (the mode is set by open(), not chmod later).
  3. Read-modify-write of shared files (the certificate inventory) happens under `lock()`,
     so concurrent `hagate` processes never lose each other's updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from hagate.errors import HagateError

CONFIG_NAME = "hagate.yaml"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CRL_NAME = "crl.pem"
INVENTORY_NAME = "issued.json"
ISSUED_DIR = "issued"
CLIENTS_DIR = "clients"
LOCK_NAME = ".lock"


def default_state_dir() -> Path:
    """`$XDG_DATA_HOME/hagate`, i.e. `~/.local/share/hagate` by default."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "hagate"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically; the file has `mode` from its creation."""
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed or widened nothing; be exact
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


# The SQLite files this process has made sure of (WAL, tables): the gateway opens some of them
# per request, and need not run their schema each time.
_SCHEMA_MADE: set[Path] = set()


@contextlib.contextmanager
def private_db(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """A connection to a small SQLite file of the state directory in autocommit mode: created
    0600 before SQLite writes a byte into it, in WAL mode with `schema` made once per process."""
    fresh = not path.exists()
    if fresh:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        if fresh or path not in _SCHEMA_MADE:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
            _SCHEMA_MADE.add(path)
        yield db
    finally:
        db.close()


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateDir:
    """A hagate state directory and the names of the files inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    def exists(self) -> bool:
        return (self.path / CA_CERT).exists()

    def require(self) -> StateDir:
        """Fail with a clear message unless `hagate init` has been run here."""
        if not self.path.is_dir():
            raise HagateError(f"no state directory at {self.path}: run hagate init first")
        if not self.exists() or not self.config_path.exists():
            raise HagateError(f"{self.path} holds no hagate state: run hagate init first")
        return self

    def create(self) -> None:
        """Create the directory 0700 (and its parents) if it does not exist yet."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
        except OSError as e:
            raise HagateError(f"cannot create state directory {self.path}: {e.strerror}") from e

    def subdir(self, name: str) -> Path:
        d = self.path / name
        d.mkdir(mode=0o700, exist_ok=True)
        return d

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock across processes for read-modify-write of shared state."""
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
