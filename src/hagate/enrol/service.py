"""Answering the enrolment link in the gateway (blocking file work: run it in a thread)."""

from __future__ import annotations

import time

from hagate.enrol import pages
from hagate.enrol.answer import CONTENT_TYPES, Kind, Reply, Route
from hagate.enrol.platform import chosen
from hagate.enrol.store import EnrolmentStore
from hagate.state import StateDir

HTML = "text/html; charset=utf-8"
MISS = "unknown, used or expired enrolment link"


class Enrolments:
    def __init__(self, state: StateDir, hostname: str) -> None:
        self.store = EnrolmentStore(state)
        self.hostname = hostname

    def reply(self, r: Route, user_agent: str, ip: str, head_only: bool = False) -> Reply:
        """The reply, after the shared miss limit; a 404 counts as a miss of `ip`."""
        if self.store.blocked(ip):
            return Reply(429, HTML, pages.too_many(), "too many misses from this address")
        reply = self._reply(r, user_agent, head_only)
        if reply.status == 404:
            self.store.miss(ip)
        return reply

    def _reply(self, r: Route, user_agent: str, head_only: bool) -> Reply:
        if r.kind is Kind.METHOD:
            return Reply(405, HTML, pages.not_found(), "the enrolment link takes GET only")
        if r.kind is Kind.NOT_FOUND:
            return Reply(404, HTML, pages.not_found(), "nothing else exists under /.hagate/")
        if r.kind is Kind.PAGE or head_only:
            found = self.store.find(r.token)
            if found is None:
                return self._after_download(r, user_agent) or Reply(
                    404, HTML, pages.not_found(), MISS
                )
            platform = chosen(found.device, user_agent)
            if r.kind is Kind.FILE:  # HEAD of a download: nothing is used up
                return Reply(200, CONTENT_TYPES[r.file], b"", "download checked", found.name)
            body = pages.enrol_page(
                r.token,
                found.name,
                self.hostname,
                platform,
                found.server_sha256,
                with_ca=found.server_sha256 is not None,
            )
            return Reply(
                200,
                HTML,
                body,
                f"enrolment page for {found.name} ({platform.device.value})",
                found.name,
            )
        taken = self.store.take(r.token, r.file)
        if taken is None:
            return self._after_download(r, user_agent) or Reply(404, HTML, pages.not_found(), MISS)
        item, data = taken
        suffix = ".mobileconfig" if r.file == "mobileconfig" else ".p12"
        return Reply(
            200,
            CONTENT_TYPES[r.file],
            data,
            f"certificate {item.name} delivered ({r.file}); the link is used up",
            item.name,
            filename=f"{item.name}{'-legacy' if r.file == 'legacy.p12' else ''}{suffix}",
        )

    def _after_download(self, r: Route, user_agent: str) -> Reply | None:
        """The link after its download: the next steps (the page 200, a file again 410)."""
        item = self.store.find_downloaded(r.token)
        if item is None or item.used is None:
            return None
        at = time.strftime("%H:%M", time.gmtime(item.used))
        body = pages.downloaded_page(
            item.name,
            self.hostname,
            chosen(item.device, user_agent),
            with_ca=item.server_sha256 is not None,
            at=at,
        )
        status, why = (200, "the page") if r.kind is Kind.PAGE else (410, "a second download")
        return Reply(status, HTML, body, f"{why} of a used enrolment link", item.name)
