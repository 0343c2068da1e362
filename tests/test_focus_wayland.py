"""The focused window on Wayland: sway/i3 IPC trees and Hyprland's ``hyprctl`` answers.

The sway trees in tests/recorded/ were captured with ``swaymsg -t get_tree -r`` on the headless
sway harness (GTK text window + a foot terminal; an empty workspace). Hyprland is not
installed here: its answers are hand-written in the JSON format ``hyprctl activewindow -j``
prints. The live IPC round trip against real sway runs in test_wayland_desktop.py; here a Unix
socket speaking the i3-ipc framing stands in for it.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dictation.output.focus import (
    IPC_GET_TREE,
    FocusLatch,
    WindowInfo,
    focused_in_tree,
    focused_window,
    hyprland_focused_window,
    parse_hyprctl_window,
    sway_focused_window,
)

RECORDED = Path(__file__).resolve().parent / "recorded"


def tree(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return data


def test_focused_terminal_in_a_recorded_sway_tree() -> None:
    window = focused_in_tree(tree("sway-get-tree-foot-focused.json"))
    assert window is not None
    assert (window.wm_class, window.title) == ("foot", "foot")
    assert window.pid is not None and window.id > 0


def test_focused_text_window_in_a_recorded_sway_tree() -> None:
    window = focused_in_tree(tree("sway-get-tree-textbox-focused.json"))
    assert window is not None
    assert (window.wm_class, window.title) == ("wl_textbox.py", "e2e-textbox")


def test_empty_workspace_has_no_focused_window() -> None:
    assert focused_in_tree(tree("sway-get-tree-empty-workspace.json")) is None


def test_xwayland_window_uses_its_x11_class() -> None:
    node = {"id": 1, "type": "root", "nodes": [{"id": 9, "type": "con", "focused": True,
            "app_id": None, "name": "xterm", "pid": 42,
            "window_properties": {"class": "XTerm", "instance": "xterm"}}]}
    assert focused_in_tree(node) == WindowInfo(9, "XTerm", "xterm", 42)


@pytest.fixture
def fake_sway_socket(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    """A Unix socket answering each i3-ipc request with the recorded tree of a focused foot."""
    path = tmp_path / "sway-ipc.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    types: list[int] = []
    payload = (RECORDED / "sway-get-tree-foot-focused.json").read_bytes()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                magic, length, kind = struct.unpack("=6sII", conn.recv(14))
                assert magic == b"i3-ipc" and length == 0
                types.append(kind)
                header = struct.pack("=6sII", b"i3-ipc", len(payload), kind)
                conn.sendall(header + payload[:100])
                conn.sendall(payload[100:])  # replies may arrive in pieces

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path, types
    finally:
        server.close()


def test_sway_ipc_round_trip(fake_sway_socket: tuple[Path, list[int]]) -> None:
    path, types = fake_sway_socket
    window = sway_focused_window({"SWAYSOCK": str(path)})
    assert window is not None and window.wm_class == "foot"
    assert types == [IPC_GET_TREE]
    env = {"WAYLAND_DISPLAY": "wayland-1", "SWAYSOCK": str(path)}
    assert focused_window(env) == window


def test_sway_socket_gone_is_no_window(tmp_path: Path) -> None:
    assert sway_focused_window({"SWAYSOCK": str(tmp_path / "absent.sock")}) is None
    assert sway_focused_window({}) is None


HYPRCTL_FOOT = json.dumps({
    "address": "0x5581e8ad6f30", "mapped": True, "hidden": False, "at": [10, 40],
    "size": [1260, 750], "workspace": {"id": 1, "name": "1"}, "floating": False,
    "monitor": 0, "class": "kitty", "title": "~ - kitty", "initialClass": "kitty",
    "initialTitle": "kitty", "pid": 4242, "xwayland": False, "pinned": False,
    "fullscreen": False, "fullscreenMode": 0, "fakeFullscreen": False, "grouped": [],
    "swallowing": "0x0", "focusHistoryID": 0})


def test_hyprctl_active_window() -> None:
    assert parse_hyprctl_window(HYPRCTL_FOOT) == WindowInfo(0x5581e8ad6f30, "kitty",
                                                            "~ - kitty", 4242)
    assert parse_hyprctl_window("{}") is None  # nothing focused
    assert parse_hyprctl_window("Invalid") is None


def test_hyprctl_runner_and_failure() -> None:
    calls: list[list[str]] = []

    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, HYPRCTL_FOOT, "")

    window = hyprland_focused_window(runner)
    assert calls == [["hyprctl", "activewindow", "-j"]]
    assert window is not None and window.wm_class == "kitty"

    def missing(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("hyprctl")

    assert hyprland_focused_window(missing) is None


def test_gnome_and_kde_have_no_focus_source_so_the_latch_is_off() -> None:
    for desktop in ("GNOME", "KDE"):
        env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": desktop, "DISPLAY": ":0"}
        assert focused_window(env) is None
        latch = FocusLatch(lambda env=env: focused_window(env))  # type: ignore[misc]
        assert latch.target is None and latch.check()
