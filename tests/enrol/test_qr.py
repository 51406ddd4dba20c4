"""The QR code `hagate cert enrol` draws in the terminal decodes to the link it prints
(read back from the printed Unicode blocks with a real QR decoder, zxing-cpp)."""

from __future__ import annotations

from pathlib import Path

import zxingcpp
from PIL import Image

from tests.conftest import run_hagate
from tests.enrol.helpers import enrol

# Each character is two modules, one above the other; a drawn half is a light module.
HALVES = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}


def decode(lines: list[str], scale: int = 8) -> list[str]:
    width = max(len(line) for line in lines)
    image = Image.new("L", (width * scale, len(lines) * 2 * scale), 0)
    for y, line in enumerate(lines):
        for x, ch in enumerate(line):
            for half, light in enumerate(HALVES[ch]):
                if light:
                    box = (
                        x * scale,
                        (2 * y + half) * scale,
                        (x + 1) * scale,
                        (2 * y + half + 1) * scale,
                    )
                    image.paste(255, box)
    return [r.text for r in zxingcpp.read_barcodes(image, try_invert=True)]


def test_the_printed_qr_code_decodes_to_the_printed_link(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = run_hagate(
        "init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=state
    )
    assert r.code == 0, r.err
    printed = enrol(state, "phone", 8443)
    assert len(printed.qr) > 10
    assert decode(printed.qr) == [printed.url]
    assert (
        printed.url.startswith("https://ha.test:8443/.hagate/enrol/") and len(printed.token) == 32
    )


def test_without_url_the_link_names_the_hostname(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = run_hagate(
        "init", "--hostname", "ha.example.com", "--upstream", "http://127.0.0.1:8123", state=state
    )
    assert r.code == 0, r.err
    r = run_hagate("cert", "enrol", "tablet", state=state)
    assert r.code == 0, r.err
    assert "  https://ha.example.com/.hagate/enrol/" in r.out
    qr = [line for line in r.out.splitlines() if line and set(line) <= set("█▀▄ ")]
    assert decode(qr)[0].startswith("https://ha.example.com/.hagate/enrol/")


def test_enrol_mistakes_are_plain(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_hagate("init", "--hostname", "ha.test", "--upstream", "http://127.0.0.1:8123", state=state)
    for args, message in [
        (("--ttl", "soon"), "bad --ttl"),
        (("--ttl", "2s"), "between 5s and 24h"),
        (("--url", "http://ha.test"), "bad --url"),
        (("--device", "toaster"), "Invalid value for '--device'"),
    ]:
        r = run_hagate("cert", "enrol", "phone", *args, state=state)
        assert r.code != 0 and message in r.err, (args, r.err)
    r = run_hagate("cert", "enrol", "bad name!", state=state)
    assert r.code == 1 and "Traceback" not in r.err
    r = run_hagate("cert", "list", "--json", state=state)
    assert r.out.strip() == "[]"  # nothing was issued by the mistakes
