"""Focus tracking: the pure parts with a scripted window source, and focused_window /
FocusLatch on a real X display (the shared harness) with a real second window (xterm)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from harness import desktop_session, harness_focus
from Xlib import X

from dictation.output.focus import FocusLatch, WindowInfo, focused_window, is_terminal

EDITOR = WindowInfo(1, "Gedit", "notes.txt")
TERMINAL = WindowInfo(2, "XTerm", "bash")
TERMINAL_CLASSES = ["XTerm", "gnome-terminal-server", "kitty", "Alacritty"]


class ScriptedFocus:
    """A window source that returns the given windows in turn (the last one forever)."""

    def __init__(self, *windows: WindowInfo | None) -> None:
        self.windows = list(windows)

    def __call__(self) -> WindowInfo | None:
        return self.windows.pop(0) if len(self.windows) > 1 else self.windows[0]


def test_is_terminal_ignores_case() -> None:
    assert is_terminal("xterm", TERMINAL_CLASSES)
    assert is_terminal("Gnome-terminal-server", TERMINAL_CLASSES)
    assert not is_terminal("Gedit", TERMINAL_CLASSES)
    assert not is_terminal("", TERMINAL_CLASSES)
    assert not is_terminal("XTerm", [])


def test_latch_holds_while_focus_stays() -> None:
    latch = FocusLatch(ScriptedFocus(EDITOR, EDITOR, WindowInfo(1, "Gedit", "notes.txt *")))
    assert latch.target == EDITOR
    assert latch.check()
    assert latch.check()  # same window id, changed title: still the same window


def test_latch_notices_focus_moving_and_coming_back() -> None:
    latch = FocusLatch(ScriptedFocus(EDITOR, TERMINAL, None, EDITOR))
    assert not latch.check()
    assert latch.current == TERMINAL
    assert not latch.check()  # focus on no window at all
    assert latch.current is None
    assert latch.check()  # back on the window dictation started in


def test_latch_without_known_start_window_never_blocks() -> None:
    """Wayland/macOS: the focused window is unknown, so the latch cannot tell."""
    latch = FocusLatch(ScriptedFocus(None, TERMINAL))
    assert latch.target is None
    assert latch.check()


def test_focused_window_without_x_display() -> None:
    assert focused_window({}) is None
    assert focused_window({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}) is None
    assert focused_window({"DISPLAY": ":987"}) is None  # nobody serves it


# --- on a real X display -----------------------------------------------------------------

WAIT_S = 10.0


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def x_desktop() -> Iterator[dict[str, str]]:
    with desktop_session(E2E_TRAY="0", E2E_NOTIFY="0", E2E_AUDIO="0") as env:
        yield env


@pytest.fixture
def xterm(x_desktop: dict[str, str]) -> Iterator[int]:
    """A real xterm window (not focused yet); yields its id, closes it afterwards."""
    title = f"focus-xterm-{os.getpid()}"
    proc = subprocess.Popen(
        ["xterm", "-title", title, "-e", "sleep", "300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--onlyvisible", "--name", f"^{title}$"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        yield int(found.stdout.split()[0])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        harness_focus()


@pytest.mark.e2e
def test_focused_window_is_the_text_box(x_desktop: dict[str, str]) -> None:
    harness_focus()
    window = focused_window()
    assert window == WindowInfo(int(x_desktop["E2E_TEXT_WINDOW"]), "E2etextbox", "e2e-textbox")
    assert not is_terminal(window.wm_class, TERMINAL_CLASSES)


@pytest.mark.e2e
def test_latch_notices_focus_moving_to_another_window(
    x_desktop: dict[str, str], xterm: int
) -> None:
    harness_focus()
    latch = FocusLatch()
    assert latch.target is not None and latch.target.wm_class == "E2etextbox"
    assert latch.check()
    subprocess.run(["xdotool", "windowactivate", "--sync", str(xterm)], check=True, timeout=10)
    assert wait_until(lambda: not latch.check())
    assert latch.current is not None
    assert (latch.current.id, latch.current.wm_class) == (xterm, "XTerm")
    assert is_terminal(latch.current.wm_class, TERMINAL_CLASSES)
    harness_focus()
    assert wait_until(latch.check)


@pytest.fixture(scope="module")
def bare_x_desktop() -> Iterator[dict[str, str]]:
    """A harness desktop without a window manager: no _NET_ACTIVE_WINDOW, no frames."""
    with desktop_session(E2E_WM="none", E2E_TRAY="0", E2E_NOTIFY="0", E2E_AUDIO="0") as env:
        yield env


@pytest.mark.e2e
def test_focused_window_without_window_manager(bare_x_desktop: dict[str, str]) -> None:
    """The input focus is used; focus on an inner widget window is walked up to the
    top-level window that carries WM_CLASS."""
    from Xlib.display import Display

    top = int(bare_x_desktop["E2E_TEXT_WINDOW"])
    assert focused_window() == WindowInfo(top, "E2etextbox", "e2e-textbox")
    disp = Display()
    try:
        inner = disp.create_resource_object("window", top).query_tree().children
        assert inner and all(child.get_wm_class() is None for child in inner)
        inner[0].set_input_focus(X.RevertToParent, X.CurrentTime)
        disp.sync()
        assert disp.get_input_focus().focus.id == inner[0].id
        window = focused_window()
        assert window is not None and window.id == top
    finally:
        disp.close()
        harness_focus()


@pytest.mark.e2e
def test_focused_window_looks_below_a_frame(bare_x_desktop: dict[str, str]) -> None:
    """Focus on a window manager style frame (no WM_CLASS) finds the client inside it."""
    from Xlib.display import Display

    disp = Display()
    try:
        root = disp.screen().root
        frame = root.create_window(10, 10, 200, 100, 0, X.CopyFromParent)
        client = frame.create_window(0, 0, 200, 100, 0, X.CopyFromParent)
        client.set_wm_class("framedApp", "FramedApp")
        client.set_wm_name("inside a frame")
        client.map()
        frame.map()
        disp.sync()
        frame.set_input_focus(X.RevertToParent, X.CurrentTime)
        disp.sync()
        assert focused_window() == WindowInfo(client.id, "FramedApp", "inside a frame")
        frame.destroy()
        disp.sync()
    finally:
        disp.close()
        harness_focus()
