"""Session detection (Wayland/X11, which desktop) and the routes the app reports from the
environment alone (no desktop needed: the detection reads variables only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dictation.session import desktop_name, detect, focus_route, plan_routes, session_kind

SWAY = {"WAYLAND_DISPLAY": "wayland-1", "XDG_SESSION_TYPE": "wayland",
        "XDG_CURRENT_DESKTOP": "sway", "SWAYSOCK": "/run/user/1000/sway-ipc.sock"}
HYPR = {"WAYLAND_DISPLAY": "wayland-1", "HYPRLAND_INSTANCE_SIGNATURE": "abc_123",
        "XDG_CURRENT_DESKTOP": "Hyprland"}
GNOME = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland",
         "XDG_CURRENT_DESKTOP": "ubuntu:GNOME", "DISPLAY": ":0"}
KDE = {"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "KDE", "KDE_FULL_SESSION": "true"}
RIVER = {"WAYLAND_DISPLAY": "wayland-1", "XDG_CURRENT_DESKTOP": "river"}
I3 = {"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11", "I3SOCK": "/run/user/1000/i3/ipc.sock"}


@pytest.mark.parametrize(("env", "kind", "desktop"), [
    (SWAY, "wayland", "sway"),
    (HYPR, "wayland", "hyprland"),
    (GNOME, "wayland", "gnome"),  # DISPLAY (Xwayland) set too: Wayland wins
    (KDE, "wayland", "kde"),
    (RIVER, "wayland", "wlroots"),
    (I3, "x11", "i3"),
    ({"DISPLAY": ":0", "XDG_CURRENT_DESKTOP": "XFCE"}, "x11", "other"),
    ({"XDG_SESSION_TYPE": "wayland", "XDG_CURRENT_DESKTOP": "sway"}, "wayland", "sway"),
    ({}, "unknown", "none"),
])
def test_detect(env: dict[str, str], kind: str, desktop: str) -> None:
    session = detect(env, "linux")
    assert (session.kind, session.desktop) == (kind, desktop)


def test_compositor_socket_wins_over_a_stale_current_desktop() -> None:
    env = {**SWAY, "XDG_CURRENT_DESKTOP": "GNOME"}  # e.g. set by hand in a profile
    assert desktop_name(env) == "sway"


def test_macos_and_windows() -> None:
    assert session_kind({"DISPLAY": ":0"}, "darwin") == "macos"
    assert session_kind({}, "win32") == "windows"


def test_virtual_keyboard_only_outside_gnome_and_kde() -> None:
    assert detect(SWAY, "linux").virtual_keyboard
    assert detect(RIVER, "linux").virtual_keyboard
    assert not detect(GNOME, "linux").virtual_keyboard
    assert not detect(KDE, "linux").virtual_keyboard
    assert not detect(I3, "linux").virtual_keyboard  # X11: no Wayland protocol at all


@pytest.mark.parametrize(("env", "route"), [
    (SWAY, "sway-ipc"), (HYPR, "hyprctl"), (I3, "x11"), (GNOME, "off"), (KDE, "off"),
    (RIVER, "off"),
])
def test_focus_route(env: dict[str, str], route: str) -> None:
    assert focus_route(detect(env, "linux")).name == route


def test_gnome_focus_off_says_why() -> None:
    why = focus_route(detect(GNOME, "linux")).why
    assert "GNOME" in why and "terminals are not recognised" in why


def test_routes_lines_and_tooltip() -> None:
    routes = plan_routes(detect(SWAY, "linux"), typing="wtype", typing_why="first that works",
                         paster="wlclipboard", hotkey="desktop shortcut",
                         hotkey_why="bind `dictation toggle`")
    assert routes.lines() == [
        "session: wayland/sway",
        "typing: wtype (first that works)",
        "terminals: paste (wlclipboard) (whole phrases with ctrl+shift+v)",
        "hotkey: desktop shortcut (bind `dictation toggle`)",
        "focus latch: sway-ipc (sway's IPC socket (get_tree))",
    ]
    assert routes.short() == ("wayland/sway · typing wtype · hotkey desktop shortcut · focus "
                              "sway-ipc")
    none = plan_routes(detect(GNOME, "linux"), typing=None, typing_why="nothing works",
                       paster=None, hotkey="desktop shortcut", hotkey_why="-")
    assert none.typing.name == "none" and none.terminal.name == "type (none)"


def test_session_module_is_import_light() -> None:
    """`dictation status` and `dictation shortcut` import it: no numpy, torch or Xlib."""
    code = ("import sys, dictation.session, dictation.shortcut; "
            "print(sorted(m for m in ('numpy', 'torch', 'Xlib', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
