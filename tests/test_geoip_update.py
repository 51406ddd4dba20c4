"""`hagate geoip update` against a local server, and databases swapped under running gateways."""

from __future__ import annotations

import gzip
import http.server
import io
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.geoip import GeoIP
from tests.conftest import Setup, run_hagate
from tests.gateway.harness import make_gateway
from tests.geo import write_asn_db, write_country_db


class Files(http.server.ThreadingHTTPServer):
    """Serves `routes`: path -> (status, body, Content-Length to claim or None)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, length = routes.get(self.path, (404, b"not here", None))
                self.send_response(status)
                self.send_header("Content-Length", str(length if length is not None else len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, template: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{template}"


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files()
    yield server
    server.shutdown()


def dbs(tmp: Path, asn: int, country: str = "DE") -> tuple[bytes, bytes]:
    a = write_asn_db(tmp / f"a{asn}.mmdb", {"127.0.0.0/8": asn, "1.1.1.0/24": 13335})
    c = write_country_db(tmp / f"c{country}.mmdb", {"127.0.0.0/8": (country, "EU")})
    return a.read_bytes(), c.read_bytes()


def tar_gz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"GeoLite2_20261201/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_update_fetches_checks_and_puts_both_databases_in_place(setup: Setup, files: Files) -> None:
    asn, country = dbs(setup.tmp, 3320)
    files.routes["/asn.mmdb.gz"] = (200, gzip.compress(asn), None)
    files.routes["/country.mmdb.gz"] = (200, gzip.compress(country), None)
    before = (setup.state / "hagate.yaml").read_text()
    r = setup.run("geoip", "update", "--source", files.url("/{db}.mmdb.gz"))
    assert r.code == 0, r.err
    assert "asn:" in r.out and "GeoLite2-ASN" in r.out and "country:" in r.out
    geo = GeoIP(
        str(setup.state / "geoip" / "asn.mmdb"), str(setup.state / "geoip" / "country.mmdb")
    )
    assert geo.lookup("127.0.0.9").asn == 3320 and geo.lookup("127.0.0.9").country == "DE"
    after = (setup.state / "hagate.yaml").read_text()
    assert f"asn_db: {setup.state / 'geoip' / 'asn.mmdb'}" in after
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert all(c in after.splitlines() for c in comments)  # every comment kept
    explain = setup.run("rules", "explain", "--ip", "127.0.0.9")
    assert "AS3320" in explain.out


def test_maxmind_archives_are_unpacked(setup: Setup, files: Files) -> None:
    asn, country = dbs(setup.tmp, 6805)
    files.routes["/mm/asn"] = (200, tar_gz("GeoLite2-ASN.mmdb", asn), None)
    files.routes["/mm/country"] = (200, tar_gz("GeoLite2-Country.mmdb", country), None)
    r = setup.run("geoip", "update", "--source", files.url("/mm/{db}"))
    assert r.code == 0, r.err
    assert GeoIP(str(setup.state / "geoip" / "asn.mmdb")).lookup("127.0.0.1").asn == 6805


@pytest.mark.parametrize(
    ("route", "needle"),
    [
        ((404, b"", None), "HTTP 404 Not Found"),
        ((200, b"this is not a database", None), "does not open"),
        ("cut-gzip", "not a whole archive"),
        ((200, b"\x1f\x8b\x08" + b"\0" * 20, 5000), "stopped at"),
        ("country-as-asn", "not an asn one"),
    ],
)
def test_a_failed_update_keeps_the_old_file_and_says_why(
    setup: Setup, files: Files, route: object, needle: str
) -> None:
    asn, country = dbs(setup.tmp, 3320)
    files.routes["/good/asn"] = (200, asn, None)
    files.routes["/good/country"] = (200, country, None)
    assert setup.run("geoip", "update", "--source", files.url("/good/{db}")).code == 0
    old = (setup.state / "geoip" / "asn.mmdb").read_bytes()
    if route == "country-as-asn":
        files.routes["/bad/asn"] = (200, country, None)
    elif route == "cut-gzip":
        whole = gzip.compress(asn)
        files.routes["/bad/asn"] = (200, whole[: len(whole) // 2], None)
    else:
        files.routes["/bad/asn"] = route  # type: ignore[assignment]
    r = setup.run("geoip", "update", "--only", "asn", "--source", files.url("/bad/{db}"))
    assert r.code != 0 and needle in r.err and "unchanged" in r.err, r.err
    assert (setup.state / "geoip" / "asn.mmdb").read_bytes() == old
    assert not list((setup.state / "geoip").glob(".geoip-*"))  # no half-written leftovers


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--source", "maxmind"], "--license-key"), (["--source", "ftp://x"], "--source must be")],
)
def test_bad_sources_are_plain_errors(setup: Setup, args: list[str], needle: str) -> None:
    r = setup.run("geoip", "update", *args)
    assert r.code != 0 and needle in r.err


def test_a_running_gateway_takes_a_swapped_database_under_load(
    tmp_path: Path, files: Files
) -> None:
    g = make_gateway(tmp_path)
    v1, _ = dbs(tmp_path, 3320)
    v2, _ = dbs(tmp_path, 6805)
    files.routes["/v1/asn"] = (200, v1, None)
    files.routes["/v2/asn"] = (200, gzip.compress(v2), None)
    assert (
        run_hagate(
            "geoip", "update", "--only", "asn", "--source", files.url("/v1/{db}"), state=g.state
        ).code
        == 0
    )
    g.configure(
        rules="""\
  - description: Not from AS6805
    expression: ip.src.asnum eq 6805
    action: block
"""
    )
    g.issue("phone")
    g.start()
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline and len(statuses) < 3000:
            try:
                statuses.append(g.request("/api/states", cert="phone", source="127.0.0.40").status)
            except OSError as e:
                errors.append(str(e))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1)
        assert statuses and set(statuses) == {200}
        r = run_hagate(
            "geoip", "update", "--only", "asn", "--source", files.url("/v2/{db}"), state=g.state
        )
        assert r.code == 0, r.err
        swapped = time.monotonic()
        while 403 not in statuses[-5:]:
            assert time.monotonic() - swapped < 12, "the gateway kept the old database"
            time.sleep(0.2)
    finally:
        stop.set()
        worker.join()
        g.stop()
        g.upstream.close()
    assert not errors and set(statuses) <= {200, 403}  # no request failed while it swapped
    assert statuses[-1] == 403


def test_a_replaced_file_is_taken_and_a_broken_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What gateways and relays (the same class) do when the file under them changes."""
    import os

    import hagate.geoip

    monkeypatch.setattr(hagate.geoip, "CHECK_EVERY", 0.0)
    live = tmp_path / "asn.mmdb"
    v1, _ = dbs(tmp_path, 3320)
    v2, _ = dbs(tmp_path, 6805)
    live.write_bytes(v1)
    geo = GeoIP(str(live))
    assert geo.lookup("127.0.0.1").asn == 3320
    (tmp_path / "next").write_bytes(v2)
    os.replace(tmp_path / "next", live)
    assert geo.lookup("127.0.0.1").asn == 6805
    (tmp_path / "broken").write_bytes(b"not a database at all")
    os.replace(tmp_path / "broken", live)
    assert geo.lookup("127.0.0.1").asn == 6805  # the one in service stays
    assert geo.lookup("127.0.0.1").asn == 6805
    assert capsys.readouterr().err.count("does not open") == 1  # said once, not per lookup
