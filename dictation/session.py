"""Which desktop session the app runs in, and which routes it uses there (import-light: only the
standard library, so ``dictation status`` and ``dictation shortcut`` stay fast).

:func:`detect` reads the environment: the session type (``XDG_SESSION_TYPE``,
``WAYLAND_DISPLAY``, ``DISPLAY``) and the desktop (``XDG_CURRENT_DESKTOP``, ``SWAYSOCK``,
``I3SOCK``, ``HYPRLAND_INSTANCE_SIGNATURE``, ``KDE_FULL_SESSION``, ...). :class:`Routes` says
how the app types, pastes into terminals, hears its hotkey and learns the focused window in that
session, each with the reason; the status command and the tray tooltip show it.

============  ====================  =======================  ============================
desktop       typing                hotkey                   focus latch, terminal rules
============  ====================  =======================  ============================
X11 (any)     XTEST / xdotool       pynput double tap        X11 ``_NET_ACTIVE_WINDOW``
sway, i3      wtype (+ wl-copy)     desktop shortcut, evdev  sway/i3 IPC ``get_tree``
Hyprland      wtype (+ wl-copy)     desktop shortcut, evdev  ``hyprctl activewindow -j``
wlroots       wtype (+ wl-copy)     desktop shortcut, evdev  none: latch off
GNOME, KDE    portal / ydotool      desktop shortcut, evdev  none: latch off
============  ====================  =======================  ============================
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

SessionKind = Literal["x11", "wayland", "macos", "windows", "unknown"]
Desktop = Literal["sway", "i3", "hyprland", "wlroots", "gnome", "kde", "other", "none"]

WLROOTS_DESKTOPS = ("river", "wayfire", "labwc", "dwl", "qtile", "niri", "hikari", "cage",
                    "phosh", "cosmic")
"""``XDG_CURRENT_DESKTOP`` names of compositors that offer the virtual-keyboard protocol wtype
uses (wlroots-based ones, and niri/COSMIC which implement it too)."""

WAYLAND_SHORTCUT_HINT = "bind `dictation toggle` to a desktop shortcut (`dictation shortcut`)"


def session_kind(env: Mapping[str, str] | None = None,
                 platform: str = sys.platform) -> SessionKind:
    """The kind of desktop session, from the platform and environment. Under Wayland, X11
    programs run through Xwayland and cannot type into native Wayland windows, so Wayland wins
    over a set ``DISPLAY``."""
    env = os.environ if env is None else env
    if platform == "darwin":
        return "macos"
    if platform in ("win32", "cygwin"):
        return "windows"
    session_type = env.get("XDG_SESSION_TYPE", "").lower()
    if session_type == "wayland" or env.get("WAYLAND_DISPLAY"):
        return "wayland"
    if session_type == "x11" or env.get("DISPLAY"):
        return "x11"
    return "unknown"


def desktop_name(env: Mapping[str, str] | None = None) -> Desktop:
    """Which desktop: sway, i3, Hyprland, another wlroots compositor, GNOME, KDE, other (or
    none without a graphical session). The compositor's own socket variables win over
    ``XDG_CURRENT_DESKTOP`` (which a user may have set by hand)."""
    env = os.environ if env is None else env
    current = [part.strip().lower() for part in env.get("XDG_CURRENT_DESKTOP", "").split(":")]
    current += [env.get("XDG_SESSION_DESKTOP", "").lower(),
                env.get("DESKTOP_SESSION", "").lower().rsplit("/", 1)[-1]]
    if env.get("HYPRLAND_INSTANCE_SIGNATURE") or "hyprland" in current:
        return "hyprland"
    if env.get("SWAYSOCK") or "sway" in current:
        return "sway"
    if env.get("I3SOCK") or "i3" in current:
        return "i3"
    if env.get("KDE_FULL_SESSION") or "kde" in current or "plasma" in current:
        return "kde"
    if any(name in ("gnome", "gnome-classic", "ubuntu", "unity", "pop") for name in current) \
            or env.get("GNOME_SETUP_DISPLAY"):
        return "gnome"
    if any(name in WLROOTS_DESKTOPS for name in current):
        return "wlroots"
    if not (env.get("WAYLAND_DISPLAY") or env.get("DISPLAY")):
        return "none"
    return "other"


@dataclass(frozen=True)
class DesktopSession:
    """The session kind (x11, wayland, ...) and the desktop (sway, gnome, ...)."""

    kind: SessionKind
    desktop: Desktop

    @property
    def wayland(self) -> bool:
        return self.kind == "wayland"

    @property
    def virtual_keyboard(self) -> bool:
        """Whether the compositor lets clients type through the virtual-keyboard protocol
        (wtype): wlroots compositors do, GNOME's mutter and KDE's KWin do not."""
        return self.wayland and self.desktop not in ("gnome", "kde")

    @property
    def focus_route(self) -> str | None:
        """How the focused window is learnt: ``x11``, ``sway-ipc``, ``hyprctl``, or None."""
        if self.kind == "x11":
            return "x11"
        if not self.wayland:
            return None
        if self.desktop in ("sway", "i3"):
            return "sway-ipc"
        if self.desktop == "hyprland":
            return "hyprctl"
        return None

    def label(self) -> str:
        """E.g. ``wayland/sway``."""
        return f"{self.kind}/{self.desktop}"


def detect(env: Mapping[str, str] | None = None, platform: str = sys.platform
           ) -> DesktopSession:
    """The desktop session this process runs in (see the module docstring)."""
    env = os.environ if env is None else env
    return DesktopSession(session_kind(env, platform), desktop_name(env))


@dataclass(frozen=True)
class Route:
    """One way the app does something (``name``) and why that one (``why``)."""

    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


@dataclass(frozen=True)
class Routes:
    """How the app types, pastes into terminals, hears its hotkey and follows the focus in
    this session. The status command prints :meth:`lines`; the tooltip :meth:`short`."""

    session: DesktopSession
    typing: Route
    terminal: Route
    hotkey: Route
    focus: Route

    def lines(self) -> list[str]:
        return [f"session: {self.session.label()}", f"typing: {self.typing}",
                f"terminals: {self.terminal}", f"hotkey: {self.hotkey}",
                f"focus latch: {self.focus}"]

    def short(self) -> str:
        """One line for the tray tooltip."""
        return (f"{self.session.label()} · typing {self.typing.name} · hotkey "
                f"{self.hotkey.name} · focus {self.focus.name}")


FOCUS_OFF_WHY = {
    "gnome": "GNOME tells no application which window has the focus on Wayland",
    "kde": "KDE tells no application which window has the focus on Wayland",
}


def focus_route(session: DesktopSession) -> Route:
    """How the focus latch learns the focused window, or why it is off."""
    route = session.focus_route
    if route == "x11":
        return Route("x11", "the X server's _NET_ACTIVE_WINDOW")
    if route == "sway-ipc":
        return Route("sway-ipc", f"{session.desktop}'s IPC socket (get_tree)")
    if route == "hyprctl":
        return Route("hyprctl", "hyprctl activewindow -j")
    if session.wayland:
        why = FOCUS_OFF_WHY.get(session.desktop,
                                "this Wayland compositor has no focused-window query the app "
                                "knows")
        return Route("off", f"{why}: text goes to whatever window has the focus, and "
                            "terminals are not recognised")
    return Route("off", f"focus cannot be known in a {session.kind} session")


def plan_routes(session: DesktopSession, *, typing: str | None, typing_why: str,
                paster: str | None, hotkey: str, hotkey_why: str) -> Routes:
    """Routes from what the app chose: ``typing`` (back-end name, None: none works) and why,
    ``paster`` (terminal paste back-end, None: terminals are typed into), the hotkey route."""
    typed = Route(typing or "none", typing_why)
    if paster:
        keys = "ctrl+shift+v"
        terminal = Route(f"paste ({paster})", f"whole phrases with {keys}")
    else:
        terminal = Route(f"type ({typing or 'none'})", "no clipboard paste route here")
    return Routes(session, typed, terminal, Route(hotkey, hotkey_why), focus_route(session))
