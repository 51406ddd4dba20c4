"""Which kind of device opened the enrolment page, from its user agent (pure)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Device(enum.Enum):
    IOS = "ios"  # iPhone, iPad, iPod (and the companion app on them)
    MACOS = "macos"
    ANDROID = "android"
    WINDOWS = "windows"
    LINUX = "linux"
    OTHER = "other"

    @property
    def apple(self) -> bool:
        return self in (Device.IOS, Device.MACOS)


DEVICE_NAMES = ("android", "ios", "macos", "windows", "linux", "auto")
LEGACY_ANDROID = 11  # Android 11 and older reject AES/PBKDF2 PKCS#12 bundles
_ANDROID = re.compile(r"Android (\d+)")


@dataclass(frozen=True)
class Platform:
    device: Device
    legacy: bool = False  # needs the 3DES/SHA-1 PKCS#12


def detect(user_agent: str) -> Platform:
    ua = user_agent
    if "iPhone" in ua or "iPad" in ua or "iPod" in ua or "io.robbie.HomeAssistant" in ua:
        return Platform(Device.IOS)
    if "Android" in ua:
        m = _ANDROID.search(ua)
        return Platform(Device.ANDROID, legacy=m is not None and int(m.group(1)) <= LEGACY_ANDROID)
    if "Macintosh" in ua or "Mac OS X" in ua:
        return Platform(Device.MACOS)
    if "Windows" in ua:
        return Platform(Device.WINDOWS)
    if "Linux" in ua or "X11" in ua or "CrOS" in ua:
        return Platform(Device.LINUX)
    return Platform(Device.OTHER)


def chosen(device: str | None, user_agent: str) -> Platform:
    """`--device` when given (not "auto"), else what the user agent says. A forced Android
    still takes the legacy bundle when its user agent shows an old Android."""
    seen = detect(user_agent)
    if device is None or device == "auto":
        return seen
    forced = Device(device)
    return Platform(forced, legacy=seen.legacy if forced is Device.ANDROID else False)
