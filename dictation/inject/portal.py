"""The XDG RemoteDesktop portal on GNOME and KDE: is it there, can it offer a keyboard, does it
hand out libei connections. The portal typing back-end (:mod:`dictation.inject.portal_keyboard`)
asks it before it is chosen, and a GNOME/KDE user is told exactly what exists and what to
enable when no typing back-end works (those compositors offer no virtual-keyboard protocol).

The probe asks ``org.freedesktop.portal.Desktop`` for two properties of its
``org.freedesktop.portal.RemoteDesktop`` interface with ``gdbus`` (GLib's D-Bus tool, present
wherever the portal is): ``version`` (2 and later have ``ConnectToEIS``: libei) and
``AvailableDeviceTypes`` (bit 1: keyboard). Every portal session needs the user's consent in
a dialog (asked once: the back-end keeps the portal's restore token).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from dictation.errors import InjectionError
from dictation.inject.process import Runner, run_tool

DEST = "org.freedesktop.portal.Desktop"
OBJECT = "/org/freedesktop/portal/desktop"
INTERFACE = "org.freedesktop.portal.RemoteDesktop"
KEYBOARD = 1
"""``AvailableDeviceTypes`` bit of a keyboard (2: pointer, 4: touchscreen)."""
EIS_VERSION = 2
"""First RemoteDesktop portal version with ``ConnectToEIS`` (libei)."""


@dataclass(frozen=True)
class PortalStatus:
    """What the probe found: ``version`` None means no portal answered (``error`` says why)."""

    version: int | None
    device_types: int = 0
    error: str = ""

    @property
    def keyboard(self) -> bool:
        return bool(self.device_types & KEYBOARD)

    @property
    def libei(self) -> bool:
        return self.version is not None and self.version >= EIS_VERSION

    def message(self) -> str:
        """One sentence for the user."""
        if self.version is None:
            return (f"No RemoteDesktop portal answered ({self.error}): install and start "
                    "xdg-desktop-portal with its GNOME or KDE back-end "
                    "(xdg-desktop-portal-gnome / xdg-desktop-portal-kde)")
        if not self.keyboard:
            return (f"The RemoteDesktop portal (version {self.version}) offers no keyboard "
                    "device here")
        return (f"The RemoteDesktop portal (version {self.version}, keyboard, libei "
                f"{'yes' if self.libei else 'no'}) is present: the portal typing back-end "
                "uses it (the desktop asks once whether dictation may control the keyboard)")


_UINT = re.compile(r"^\(<(?:uint32 )?(\d+)>,\)$")


def parse_uint_reply(reply: str) -> int:
    """The number in a ``gdbus call`` reply to ``Properties.Get`` of a uint32 property, e.g.
    ``(<uint32 7>,)``."""
    match = _UINT.match(reply.strip())
    if match is None:
        raise ValueError(f"unexpected D-Bus reply {reply.strip()!r}")
    return int(match.group(1))


def _get(prop: str, runner: Runner) -> int:
    done = run_tool(["gdbus", "call", "--session", "--dest", DEST, "--object-path", OBJECT,
                     "--method", "org.freedesktop.DBus.Properties.Get", INTERFACE, prop],
                    what="asking the desktop portal", runner=runner, timeout_s=5.0)
    return parse_uint_reply(done.stdout.decode("utf-8", "replace"))


def probe(runner: Runner = subprocess.run,
          which: Callable[[str], str | None] = shutil.which) -> PortalStatus:
    """Ask the session bus about the RemoteDesktop portal (see the module docstring)."""
    if which("gdbus") is None:
        return PortalStatus(None, error="gdbus is not installed (apt install libglib2.0-bin)")
    try:
        version = _get("version", runner)
        types = _get("AvailableDeviceTypes", runner)
    except (InjectionError, ValueError) as exc:
        detail = str(exc)
        if "ServiceUnknown" in detail or "was not provided" in detail:
            detail = "no xdg-desktop-portal on the session bus"
        elif "No such interface" in detail or "UnknownInterface" in detail:
            detail = "the portal has no RemoteDesktop interface"
        return PortalStatus(None, error=detail)
    return PortalStatus(version, types)
