"""Typing back-ends without a display: text preparation, session detection, back-end choice,
command construction and tool error handling (real subprocesses: false, sleep, a missing
binary). Typing itself is tested on a real X display in test_inject_x11.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from Xlib import XK

from dictation.errors import ConfigError, InjectionError
from dictation.inject import (
    AUTO_ORDER,
    BACKENDS,
    Injector,
    choose_backend,
    clipboard,
    detect_session,
    xdotool,
    xtest,
)
from dictation.inject.process import run_tool
from dictation.inject.text import prepare_text


@pytest.mark.parametrize(
    "raw,prepared",
    [
        ("cafe\u0301", "café"),  # NFD -> NFC
        ("a\r\nb\rc\nd", "a\nb\nc\nd"),
        ("tab\there", "tab\there"),
        ("bell\x07 esc\x1b del\x7f c1\x85.", "bell esc del c1."),
        ("日本 ✓ 😀", "日本 ✓ 😀"),
        ("", ""),
    ],
)
def test_prepare_text(raw: str, prepared: str) -> None:
    assert prepare_text(raw) == prepared


@pytest.mark.parametrize(
    "ch,keysym",
    [
        ("a", 0x61),
        ("~", 0x7E),
        ("é", 0xE9),  # Latin-1 keysyms equal the code point
        ("ÿ", 0xFF),
        ("Ā", 0x1000100),  # beyond Latin-1: Unicode keysym
        ("✓", 0x1002713),
        ("😀", 0x101F600),
        ("\n", XK.XK_Return),
        ("\t", XK.XK_Tab),
    ],
)
def test_keysym_for_char(ch: str, keysym: int) -> None:
    assert xtest.keysym_for_char(ch) == keysym


@pytest.mark.parametrize(
    "env,platform,session",
    [
        ({"DISPLAY": ":0"}, "linux", "x11"),
        ({"XDG_SESSION_TYPE": "x11"}, "linux", "x11"),
        ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux", "wayland"),  # Xwayland
        ({"XDG_SESSION_TYPE": "wayland"}, "linux", "wayland"),
        ({}, "linux", "unknown"),
        ({"XDG_SESSION_TYPE": "tty"}, "linux", "unknown"),
        ({"DISPLAY": ":0"}, "darwin", "macos"),
        ({}, "win32", "windows"),
    ],
)
def test_detect_session(env: dict[str, str], platform: str, session: str) -> None:
    assert detect_session(env, platform) == session


def test_every_backend_module_has_the_interface() -> None:
    import importlib

    for name, module_name in BACKENDS.items():
        module = importlib.import_module(f"dictation.inject.{module_name}")
        assert name == module.NAME
        assert callable(module.available) and callable(module.type_text)
    assert {name for names in AUTO_ORDER.values() for name in names} <= set(BACKENDS)


def test_choose_backend_rejects_unknown_name() -> None:
    with pytest.raises(ConfigError, match="'typewriter' is unknown.*xtest"):
        choose_backend("typewriter", session="x11")


def test_choose_backend_unknown_session() -> None:
    with pytest.raises(InjectionError, match="DISPLAY nor WAYLAND_DISPLAY"):
        choose_backend("auto", session="unknown")


def test_choose_backend_x11_without_display_lists_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(InjectionError) as info:
        choose_backend("auto", session="x11")
    message = str(info.value)
    assert "xtest: no X11 display" in message and "xdotool: no X11 display" in message


def test_choose_backend_wayland_without_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither wtype nor ydotool on PATH
    with pytest.raises(InjectionError) as info:
        choose_backend("auto", session="wayland")
    assert "apt install wtype" in str(info.value) and "apt install ydotool" in str(info.value)


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="pynput is the backend there")
def test_choose_pynput_on_linux_is_refused() -> None:
    with pytest.raises(InjectionError, match="only used on macOS and Windows"):
        choose_backend("pynput")


def test_injector_delegates_with_terminal_flag() -> None:
    calls: list[tuple[str, bool]] = []

    def fake_type(text: str, *, terminal: bool = False) -> None:
        calls.append((text, terminal))

    Injector("fake", fake_type).type_text("hi", terminal=True)
    assert calls == [("hi", True)]


def test_xdotool_command_reads_stdin_and_slows_down_for_unicode() -> None:
    ascii_cmd = xdotool.build_command("plain text")
    unicode_cmd = xdotool.build_command("café")
    assert ascii_cmd == ["xdotool", "type", "--delay", str(xdotool.KEY_DELAY_MS), "--file", "-"]
    assert unicode_cmd[3] == str(xdotool.UNICODE_KEY_DELAY_MS)
    assert "café" not in unicode_cmd  # the text travels on stdin, not in the process list


def test_xdotool_available_reasons(tmp_path: Path) -> None:
    assert "DISPLAY" in (xdotool.available({}) or "")
    assert "not installed" in (xdotool.available({"DISPLAY": ":9"}, which=lambda _: None) or "")
    assert xdotool.available({"DISPLAY": ":9"}, which=lambda _: "/usr/bin/xdotool") is None


def test_xtest_unavailable_without_display() -> None:
    assert "DISPLAY" in (xtest.available({}) or "")
    # a display number nobody serves
    assert "cannot connect" in (xtest.available({"DISPLAY": ":987"}) or "")


def test_xtest_type_without_display_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(InjectionError, match="DISPLAY is not set"):
        xtest.type_text("x")


def test_run_tool_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(InjectionError, match="'no-such-tool-xyz' is not installed"):
        run_tool(["no-such-tool-xyz"], what="typing")
    with pytest.raises(InjectionError, match="exited with status 3: boom"):
        run_tool(["sh", "-c", "echo boom >&2; exit 3"], what="typing")
    with pytest.raises(InjectionError, match="did not finish within 0.2 s"):
        run_tool(["sleep", "5"], what="typing", timeout_s=0.2)
    done = run_tool(["cat"], what="echo", input_bytes="ü".encode())
    assert done.stdout == "ü".encode()


def test_clipboard_choose_target() -> None:
    assert clipboard.choose_target(["TARGETS", "STRING", "UTF8_STRING"]) == "UTF8_STRING"
    assert clipboard.choose_target(["TARGETS", "image/png", "image/bmp"]) == "image/png"
    assert clipboard.choose_target(["TARGETS", "text/html"]) == "text/html"
    assert clipboard.choose_target(["TARGETS", "STRING"]) == "STRING"
    assert clipboard.choose_target(["TARGETS", "TIMESTAMP"]) is None


def test_copy_to_clipboard_without_any_session() -> None:
    with pytest.raises(InjectionError, match="cannot copy the text to the clipboard"):
        clipboard.copy_to_clipboard("x", env={}, platform="linux")


def test_copy_to_clipboard_reports_tool_failure(tmp_path: Path) -> None:
    """A failing xclip (a stand-in script on PATH) is reported with its stderr."""
    fake = tmp_path / "xclip"
    fake.write_text("#!/bin/sh\necho 'Error: Can not open display' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(InjectionError, match="status 1: Error: Can not open display"):
        clipboard.copy_to_clipboard(
            "x",
            env={"DISPLAY": ":0"},
            platform="linux",
            runner=lambda cmd, **kw: subprocess.run([str(fake), *cmd[1:]], **kw),
            which=lambda name: str(fake) if name == "xclip" else None,
        )
