"""Back-ends for sessions this machine cannot have: Wayland (wtype, ydotool, wl-copy) and
macOS/Windows (pynput, pbcopy).

There is no Wayland compositor here (none runs as root) and no /dev/uinput, and this is not a
Mac, so these tests use a fake subprocess runner and a fake ``which`` (mocks for what cannot
exist here) and check only availability detection, the exact commands built and how failures
are reported. The ydotoold socket is a real Unix socket.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dictation.errors import InjectionError
from dictation.inject import clipboard, pynput_backend, wtype, ydotool


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


def test_ydotool_refuses_non_ascii_before_typing() -> None:
    runner = FakeRunner()
    with pytest.raises(InjectionError, match="only type ASCII.*'é✓'"):
        ydotool.type_text("café ✓", runner=runner)
    assert runner.calls == []


def test_ydotool_failure_is_reported() -> None:
    runner = FakeRunner(2, b"failed to connect socket")
    with pytest.raises(InjectionError, match="ydotool exited with status 2: failed to connect"):
        ydotool.type_text("hello", runner=runner)


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
