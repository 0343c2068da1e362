"""Typing back-ends checked by the commands they build: Wayland (wtype, wl-clipboard paste,
ydotool, the RemoteDesktop portal probe) and macOS/Windows (pynput, pbcopy).

These tests use a fake subprocess runner and a fake ``which``. For wtype and wl-clipboard that
only pins the exact commands: they run for real on the headless sway session in
test_wayland_desktop.py. ydotool (no /dev/uinput here), the RemoteDesktop portal (GNOME/KDE
cannot run here; its answers are hand-written in gdbus's reply format) and pynput on
macOS/Windows cannot exist on this machine, so fakes are all they get. The ydotoold socket
is a real Unix socket.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dictation.errors import InjectionError
from dictation.inject import clipboard, portal, pynput_backend, wlclipboard, wtype, ydotool


class FakeRunner:
    """Records commands like subprocess.run would receive them; answers with ``returncode``
    and ``stderr``."""

    def __init__(self, returncode: int = 0, stderr: bytes = b"") -> None:
        self.calls: list[tuple[list[str], bytes | None]] = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.calls.append((command, kwargs.get("input")))
        return subprocess.CompletedProcess(command, self.returncode, b"", self.stderr)


def installed(*names: str) -> Any:
    return lambda name: f"/usr/bin/{name}" if name in names else None


# --- wtype -------------------------------------------------------------------------------


def test_wtype_available_needs_wayland_and_binary() -> None:
    assert "WAYLAND_DISPLAY" in (wtype.available({"DISPLAY": ":0"}, installed("wtype")) or "")
    assert "apt install wtype" in (wtype.available({"WAYLAND_DISPLAY": "w-0"}, installed()) or "")
    assert wtype.available({"WAYLAND_DISPLAY": "wayland-0"}, installed("wtype")) is None


def test_wtype_is_not_offered_on_gnome_and_kde() -> None:
    """mutter and KWin have no virtual-keyboard protocol: wtype would fail at the first word."""
    gnome = {"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "GNOME"}
    kde = {"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "KDE"}
    assert wtype.available(gnome, installed("wtype")) == (
        "GNOME has no virtual-keyboard protocol for wtype")
    assert "KDE" in (wtype.available(kde, installed("wtype")) or "")


def test_wtype_paste_combos_pad_for_gtk() -> None:
    """The GTK 3 quirk (harness README): the combo's key must not be the keymap's last."""
    assert wtype.combo_command(("ctrl", "v")) == [
        "wtype", "-M", "ctrl", "-k", "v", "-m", "ctrl", "-p", "F24"]
    assert wtype.combo_command(("ctrl", "shift", "v")) == [
        "wtype", "-M", "ctrl", "-M", "shift", "-k", "v", "-m", "shift", "-m", "ctrl", "-p",
        "F24"]
    with pytest.raises(ValueError, match="hyper"):
        wtype.combo_command(("hyper", "v"))


def test_wtype_commands_split_newlines_and_tabs() -> None:
    assert wtype.build_commands("-v naïve\ncafé\tx\n") == [
        ["wtype", "--", "-v naïve"],  # after "--": a leading dash is text
        ["wtype", "-k", "Return"],
        ["wtype", "--", "café"],
        ["wtype", "-k", "Tab"],
        ["wtype", "--", "x"],
        ["wtype", "-k", "Return"],
    ]
    assert wtype.build_commands("") == []


def test_wtype_types_nfc() -> None:
    runner = FakeRunner()
    wtype.type_text("cafe\u0301 ✓", runner=runner)
    assert runner.calls == [(["wtype", "--", "café ✓"], None)]


def test_wtype_compositor_without_protocol_suggests_ydotool() -> None:
    runner = FakeRunner(1, b"Compositor does not support the virtual keyboard protocol\n")
    with pytest.raises(InjectionError, match="virtual keyboard protocol.*'ydotool'"):
        wtype.type_text("hello", runner=runner)


# --- ydotool -----------------------------------------------------------------------------


@pytest.fixture
def ydotoold_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening Unix socket standing where ydotoold would put its own."""
    path = tmp_path / ".ydotool_socket"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    try:
        yield path
    finally:
        server.close()


def test_ydotool_available_needs_binary_and_socket(ydotoold_socket: Path) -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "YDOTOOL_SOCKET": str(ydotoold_socket)}
    assert ydotool.available(env, installed("ydotool")) is None
    assert "apt install ydotool" in (ydotool.available(env, installed()) or "")
    missing = {"YDOTOOL_SOCKET": str(ydotoold_socket.parent / "absent")}
    reason = ydotool.available(missing, installed("ydotool")) or ""
    assert "ydotoold service is not running" in reason and "absent" in reason


def test_ydotool_finds_socket_in_runtime_dir(ydotoold_socket: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(ydotoold_socket.parent)}
    assert ydotool.socket_candidates(env) == [ydotoold_socket, Path("/tmp/.ydotool_socket")]
    assert ydotool.available(env, installed("ydotool")) is None


def test_ydotool_regular_file_is_not_a_socket(tmp_path: Path) -> None:
    (tmp_path / ".ydotool_socket").write_text("")
    reason = ydotool.available({"XDG_RUNTIME_DIR": str(tmp_path)}, installed("ydotool"))
    assert reason is not None and "not running" in reason


def test_ydotool_command() -> None:
    runner = FakeRunner()
    ydotool.type_text("--help me\nnow", runner=runner)
    assert runner.calls == [(["ydotool", "type", "--", "--help me\nnow"], None)]


def test_ydotool_refuses_non_ascii_before_typing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)  # no wl-copy route to paste with
    runner = FakeRunner()
    with pytest.raises(InjectionError, match="only type ASCII.*'é✓'.*wl-clipboard"):
        ydotool.type_text("café ✓", runner=runner)
    assert runner.calls == []


def test_ydotool_pastes_non_ascii_runs() -> None:
    runner = FakeRunner()
    pasted: list[str] = []
    ydotool.type_text("café ✓ ok", runner=runner, paste=pasted.append)
    assert runner.calls == [(["ydotool", "type", "--", "caf"], None),
                            (["ydotool", "type", "--", " "], None),
                            (["ydotool", "type", "--", " ok"], None)]
    assert pasted == ["é", "✓"]


def test_ydotool_paste_keys_are_linux_key_codes() -> None:
    assert ydotool.combo_command(("ctrl", "shift", "v")) == [
        "ydotool", "key", "29:1", "42:1", "47:1", "47:0", "42:0", "29:0"]


def test_ydotool_reason_says_what_to_enable() -> None:
    reason = ydotool.available({"XDG_RUNTIME_DIR": "/nonexistent"}, installed("ydotool")) or ""
    assert "ydotoold" in reason and "/dev/uinput" in reason and "input" in reason


def test_ydotool_failure_is_reported() -> None:
    runner = FakeRunner(2, b"failed to connect socket")
    with pytest.raises(InjectionError, match="ydotool exited with status 2: failed to connect"):
        ydotool.type_text("hello", runner=runner)


# --- wl-clipboard paste ------------------------------------------------------------------


class FakeWaylandClipboard:
    """wl-copy / wl-paste as fake processes over one clipboard (types -> bytes); the real
    tools run on the sway session in test_wayland_desktop.py."""

    def __init__(self, content: dict[str, bytes] | None = None) -> None:
        self.content = dict(content or {})
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.commands.append(command)
        ok = subprocess.CompletedProcess(command, 0, b"", b"")
        if command[:2] == ["wl-paste", "--list-types"]:
            if not self.content:
                return subprocess.CompletedProcess(command, 1, b"", b"Nothing is copied\n")
            return subprocess.CompletedProcess(command, 0, "\n".join(self.content).encode(), b"")
        if command[:3] == ["wl-paste", "--no-newline", "--type"]:
            return subprocess.CompletedProcess(command, 0, self.content[command[3]], b"")
        if command == ["wl-copy", "--clear"]:
            self.content = {}
            return ok
        if command[:2] == ["wl-copy", "--type"]:
            self.content = {command[2]: kwargs["input"]}
            return ok
        raise AssertionError(command)


def test_wl_paste_restores_the_users_clipboard() -> None:
    board = FakeWaylandClipboard({"image/png": b"\x89PNG..."})
    pressed: list[tuple[str, ...]] = []

    def press(combo: Any) -> None:
        pressed.append(tuple(combo))
        assert board.content == {wlclipboard.TEXT_TYPE: "naïve ✓".encode()}

    assert wlclipboard.paste("naïve ✓", terminal=True, press=press, runner=board,
                             sleep=lambda s: None)
    assert pressed == [("ctrl", "shift", "v")]
    assert board.content == {"image/png": b"\x89PNG..."}


def test_wl_paste_keeps_what_the_user_copied_meanwhile() -> None:
    board = FakeWaylandClipboard({wlclipboard.TEXT_TYPE: b"old"})

    def press_and_user_copies(combo: Any) -> None:
        board.content = {"text/plain": b"copied by the user"}

    assert not wlclipboard.paste("ours", terminal=False, press=press_and_user_copies,
                                 runner=board, sleep=lambda s: None)
    assert board.content == {"text/plain": b"copied by the user"}


def test_wl_paste_empty_clipboard_is_cleared_again_also_on_failure() -> None:
    board = FakeWaylandClipboard()

    def failing(combo: Any) -> None:
        raise InjectionError("wtype failed")

    with pytest.raises(InjectionError, match="wtype failed"):
        wlclipboard.paste("x", terminal=False, press=failing, runner=board, sleep=lambda s: None)
    assert board.content == {}
    assert board.commands[-1] == ["wl-copy", "--clear"]


def test_wl_clipboard_available() -> None:
    sway = {"WAYLAND_DISPLAY": "wayland-1", "XDG_CURRENT_DESKTOP": "sway"}
    assert wlclipboard.available(sway, installed("wl-copy", "wl-paste", "wtype")) is None
    assert "apt install wl-clipboard" in (
        wlclipboard.available(sway, installed("wl-copy", "wtype")) or "")
    gnome = {"WAYLAND_DISPLAY": "wayland-0", "XDG_CURRENT_DESKTOP": "GNOME",
             "YDOTOOL_SOCKET": "/nonexistent"}
    reason = wlclipboard.available(gnome, installed("wl-copy", "wl-paste", "wtype", "ydotool"))
    assert reason is not None and "GNOME has no virtual-keyboard" in reason
    assert "ydotoold service is not running" in reason


# --- RemoteDesktop portal probe (gdbus-format replies) ----------------------------------


class RecordedGdbus:
    """Answers `gdbus call ... Properties.Get RemoteDesktop PROP` like gdbus prints them (the
    values are what the portal spec documents: version 2, device types keyboard|pointer = 3),
    or with gdbus's error text. Written by hand in gdbus's output format, not captured: GNOME
    and KDE cannot run on this machine."""

    def __init__(self, replies: dict[str, str], error: str = "") -> None:
        self.replies, self.error = replies, error

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        assert command[:3] == ["gdbus", "call", "--session"]
        assert command[-2] == portal.INTERFACE
        if self.error:
            return subprocess.CompletedProcess(command, 1, b"", self.error.encode())
        return subprocess.CompletedProcess(command, 0, self.replies[command[-1]].encode(), b"")


def test_portal_probe_present_with_keyboard() -> None:
    status = portal.probe(RecordedGdbus({"version": "(<uint32 2>,)\n",
                                         "AvailableDeviceTypes": "(<uint32 3>,)\n"}),
                          installed("gdbus"))
    assert (status.version, status.keyboard, status.libei) == (2, True, True)
    assert "version 2, keyboard, libei yes" in status.message()
    assert "the portal typing back-end uses it" in status.message()


def test_portal_probe_without_portal_says_what_to_install() -> None:
    error = ("Error: GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name "
             "org.freedesktop.portal.Desktop was not provided by any .service files\n")
    status = portal.probe(RecordedGdbus({}, error), installed("gdbus"))
    assert status.version is None
    assert "no xdg-desktop-portal on the session bus" in status.message()
    assert "xdg-desktop-portal-gnome" in status.message()
    missing_if = ("Error: GDBus.Error:org.freedesktop.DBus.Error.InvalidArgs: No such "
                  "interface “org.freedesktop.portal.RemoteDesktop”\n")
    assert "no RemoteDesktop interface" in portal.probe(RecordedGdbus({}, missing_if),
                                                        installed("gdbus")).message()
    assert "gdbus is not installed" in portal.probe(RecordedGdbus({}), installed()).message()


def test_portal_reply_parser() -> None:
    assert portal.parse_uint_reply("(<uint32 7>,)") == 7
    assert portal.parse_uint_reply("(<1>,)\n") == 1
    with pytest.raises(ValueError):
        portal.parse_uint_reply("('x',)")


# --- clipboard rescue on Wayland and macOS -----------------------------------------------


def test_copy_to_clipboard_wayland_uses_wl_copy() -> None:
    runner = FakeRunner()
    clipboard.copy_to_clipboard(
        "cafe\u0301",
        env={"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"},
        platform="linux",
        runner=runner,
        which=installed("wl-copy", "xclip"),
    )
    assert runner.calls == [(["wl-copy"], "café".encode())]


def test_copy_to_clipboard_macos_uses_pbcopy() -> None:
    runner = FakeRunner()
    clipboard.copy_to_clipboard("naïve", env={}, platform="darwin", runner=runner)
    assert runner.calls == [(["pbcopy"], "naïve".encode())]


# --- pynput (macOS, Windows) -------------------------------------------------------------


class FakeController:
    typed: list[str] = []

    def type(self, text: str) -> None:
        FakeController.typed.append(text)


class RefusingController:
    def type(self, text: str) -> None:
        raise RuntimeError("not trusted for accessibility")


def test_pynput_available_only_on_macos_and_windows() -> None:
    """On Linux the platform gate refuses; for macOS/Windows it passes and only pynput's own
    import is checked (which may fail here, on Linux, without an X display)."""
    assert "only used on macOS and Windows" in (pynput_backend.available("linux") or "")
    for platform in ("darwin", "win32"):
        reason = pynput_backend.available(platform)
        assert reason is None or reason.startswith("pynput cannot be imported")


def test_pynput_types_nfc() -> None:
    FakeController.typed = []
    pynput_backend.type_text("cafe\u0301\r\n", controller_factory=FakeController)
    assert FakeController.typed == ["café\n"]


def test_pynput_failure_is_an_injection_error() -> None:
    with pytest.raises(InjectionError, match="pynput failed.*not trusted.*Accessibility"):
        pynput_backend.type_text("x", controller_factory=RefusingController)


# --- GNOME/KDE: what the user is told -----------------------------------------------------


def test_gnome_without_ydotool_says_what_to_enable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GNOME Wayland environment (variables only: GNOME cannot run here). ydotool is not
    installed on this machine and no portal answers (gdbus runs for real, without a session
    bus), so nothing can type: the error names each missing piece and how to enable it (the
    portal back-end, tried before ydotool, says no portal answered)."""
    from dictation.inject import choose_backend, skipped_before

    for name in ("DISPLAY", "SWAYSOCK", "I3SOCK", "HYPRLAND_INSTANCE_SIGNATURE",
                 "DBUS_SESSION_BUS_ADDRESS", "YDOTOOL_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setenv("XDG_CURRENT_DESKTOP", "GNOME")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent")
    monkeypatch.setattr(ydotool.shutil, "which", lambda name: None)
    skipped = skipped_before("ydotool", "wayland")
    assert skipped[0] == "wtype: GNOME has no virtual-keyboard protocol for wtype"
    assert len(skipped) == 2 and skipped[1].startswith("portal: No RemoteDesktop portal answered")
    with pytest.raises(InjectionError) as caught:
        choose_backend("auto", "wayland")
    message = str(caught.value)
    assert "wtype: GNOME has no virtual-keyboard protocol" in message
    assert "ydotool is not installed" in message and "ydotoold" in message
    assert "/dev/uinput" in message
    assert "RemoteDesktop portal" in message
