"""docs/console.md, run as printed against a running gateway: the admin section, the password
typed on a terminal, a sign-in link, a token and the curl call, listing and revoking. Only the
port differs (a free one, for 9464)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tests.console.conftest import Browser
from tests.docs import ROOT, code_blocks, sh_blocks
from tests.e2e.newuser import Shell
from tests.gateway.harness import make_gateway
from tests.net import free_port

DOC = "docs/console.md"


def test_the_console_page_as_printed(tmp_path: Path) -> None:
    g = make_gateway(tmp_path)
    port = free_port()
    [admin] = code_blocks(DOC, "yaml", "Turn it on")
    assert "127.0.0.1:9464" in admin
    g.configure(extra="\n" + admin.replace("9464", str(port)))
    g.issue("phone")
    g.start()
    try:
        g.request("/wp-login.php")  # something blocked for the curl call to find
        g.events()
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HAGATE_STATE_DIR": str(g.state),
        }
        shell = Shell(env, tmp_path)
        blocks = [[c.replace("9464", str(port)) for c in b] for b in sh_blocks(DOC)]
        password, link, admin_mark, api, manage = blocks
        assert password == ["hagate console password"]
        shell.run(password[0], answer="a console password")
        b = Browser(port)
        b.sign_in("a console password")
        printed = shell.run(link[0])
        url = re.search(rf"http://127\.0\.0\.1:{port}(/console/link/\S+)", printed)
        assert url, printed
        other = Browser(port)
        assert other.post(url.group(1)).status == 303
        assert other.get("/console/").status == 200
        # The admin certificate: the doc's `phone` marked, then the console through the gateway.
        assert g.request("/.hagate/console/", cert="phone").status == 404
        shell.run(admin_mark[0])
        page = g.request("/.hagate/console/", cert="phone")
        assert page.status == 200 and b"certificate phone" in page.body
        shell.run(api[0])
        assert shell.env["TOKEN"].startswith("hgc_")
        found = json.loads(shell.run(api[1]))
        assert [e["path"] for e in found["events"]] == ["/wp-login.php"]
        listed = shell.run(manage[0])
        assert re.search(r"^scripts\s+made .* valid$", listed, re.M), listed
        shell.run(manage[1])
        assert "revoked" in shell.run(manage[0])
        assert "Ended 2 session(s)" in shell.run(manage[2])
        assert b.get("/console/").status == 303
    finally:
        g.stop()
        g.upstream.close()


def test_the_pictures_the_page_shows_are_there() -> None:
    text = (ROOT / DOC).read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    for image in images:
        path = ROOT / "docs" / image
        assert path.is_file() and path.stat().st_size > 10_000, image


def test_the_readme_says_what_the_page_runs() -> None:
    """The README's console section is the page's first steps, word for word (run above)."""
    assert code_blocks("README.md", "yaml", "The console") == code_blocks(DOC, "yaml", "Turn it on")
    assert sh_blocks("README.md", "The console") == [sh_blocks(DOC)[0]]
