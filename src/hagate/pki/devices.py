"""What to tell a user about putting a client certificate on each kind of device."""

from __future__ import annotations

from pathlib import Path
from shlex import quote


def install_instructions(
    p12: Path | None, pem_dir: Path | None, name: str, hostname: str, ca: Path | None
) -> str:
    """`ca`: the CA file a client needs to trust the gateway (None when its certificate is
    from a public CA)."""
    bundle = str(p12) if p12 else "the .p12 bundle (issue one with --p12)"
    lines = [
        "Install it:",
        f"  Android   copy {bundle} to the phone; Settings > Security > Encryption & credentials >",
        "            Install a certificate > VPN & app user certificate; enter the password.",
        "            Android 11 and older: issue the bundle with --legacy.",
        f"  Windows   double-click {bundle} (or certmgr.msc > Personal > Certificates >",
        "            All Tasks > Import), store: Current User, Personal.",
        f"  macOS     double-click {bundle}, add it to the login keychain; Safari and Chrome",
        "            offer it when the site asks. Older macOS: issue with --legacy.",
        f"  iOS/iPadOS AirDrop or mail {bundle} to the device, Settings > Profile Downloaded >",
        "            Install. The companion app (iOS 17+) picks the certificate in its server",
        "            settings. Older iOS: issue with --legacy.",
        f"  Linux     pk12util -d sql:$HOME/.pki/nssdb -i {bundle}   (Chromium, Firefox via NSS)",
    ]
    if pem_dir is not None:
        trust = f"--cacert {quote(str(ca))} " if ca is not None else ""
        crt, key = (quote(str(pem_dir / (name + ext))) for ext in (".crt", ".key"))
        lines.append(f"  curl      curl {trust}--cert {crt} --key {key} https://{hostname}/")
    return "\n".join(lines)
