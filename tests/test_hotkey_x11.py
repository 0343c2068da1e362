"""HotkeyListener on a real X display (the shared harness), with real key events from xdotool.

Keys are injected as keycodes (105 = Right Ctrl, 54 = c, 38 = a, 75 = F9): xdotool's key names
would press Control_L as well. Each gesture is followed by a pause longer than the double-tap
window so that gestures do not join into one burst.
"""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Iterator

import pytest
from harness import desktop_session, xdotool

from dictation.hotkey import Action, HotkeyListener

pytestmark = pytest.mark.e2e

PAUSE_S = 0.6  # > double_tap_window_s: the next gesture is a new one
QUIET_S = 1.0  # how long "nothing happened" is watched for


class Recorder:
    def __init__(self) -> None:
        self.actions: queue.Queue[Action] = queue.Queue()

    def next(self, timeout: float = 3.0) -> Action | None:
        try:
            return self.actions.get(timeout=timeout)
        except queue.Empty:
            return None


def _listen(key: str) -> Iterator[tuple[HotkeyListener, Recorder]]:
    rec = Recorder()
    live: list[bool] = []
    listener = HotkeyListener(lambda action, _at: rec.actions.put(action), key=key,
                              on_live=lambda: live.append(True))
    listener.start()
    try:
        assert listener.wait_live(10), f"listener never became live: {listener.error}"
        assert live == [True]
        yield listener, rec
    finally:
        listener.stop()


@pytest.fixture(scope="module")
def keyboard_desktop() -> Iterator[dict[str, str]]:
    """One harness desktop for this module; no tray, notifications or audio are needed."""
    with desktop_session(E2E_TRAY="0", E2E_NOTIFY="0", E2E_AUDIO="0") as env:
        yield env


@pytest.fixture
def ctrl_r(keyboard_desktop: dict[str, str]) -> Iterator[tuple[HotkeyListener, Recorder]]:
    yield from _listen("ctrl_r")


@pytest.fixture
def f9(keyboard_desktop: dict[str, str]) -> Iterator[tuple[HotkeyListener, Recorder]]:
    subprocess.run(["xset", "r", "on"], check=True)
    subprocess.run(["xset", "r", "rate", "150", "30"], check=True)  # delay 0.15 s < max_tap_s
    try:
        yield from _listen("f9")
    finally:
        subprocess.run(["xset", "r", "rate"], check=True)  # back to the server's defaults


def test_right_ctrl_gestures(ctrl_r: tuple[HotkeyListener, Recorder]) -> None:
    listener, rec = ctrl_r

    # idle: double tap -> START
    xdotool("key", "--delay", "80", "105", "105")
    assert rec.next() is Action.START
    listener.set_active(True)
    time.sleep(PAUSE_S)

    # active: held 1 s -> nothing (as a tap it would be STOP)
    xdotool("keydown", "105")
    time.sleep(1.0)
    xdotool("keyup", "105")
    assert rec.next(QUIET_S) is None

    # active: Right Ctrl + c -> nothing
    xdotool("key", "105+54")
    assert rec.next(QUIET_S) is None

    # active: single tap -> STOP
    xdotool("key", "105")
    assert rec.next() is Action.STOP
    listener.set_active(False)
    time.sleep(PAUSE_S)

    # idle: two Ctrl+c in a row -> nothing
    xdotool("key", "--delay", "80", "105+54", "105+54")
    assert rec.next(QUIET_S) is None
    time.sleep(PAUSE_S)

    # idle: another key between the taps -> nothing
    xdotool("key", "--delay", "80", "105", "38", "105")
    assert rec.next(QUIET_S) is None
    time.sleep(PAUSE_S)

    # idle: slow double tap (0.7 s apart) -> nothing
    xdotool("key", "105")
    time.sleep(0.7)
    xdotool("key", "105")
    assert rec.next(QUIET_S) is None
    time.sleep(PAUSE_S)

    # still working after all that
    xdotool("key", "--delay", "80", "105", "105")
    assert rec.next() is Action.START


def test_muted_while_the_app_types(ctrl_r: tuple[HotkeyListener, Recorder]) -> None:
    listener, rec = ctrl_r
    listener.set_active(True)
    with listener.muted():
        xdotool("key", "105")  # stands in for the app's own keystrokes
    assert rec.next(QUIET_S) is None
    xdotool("key", "105")
    assert rec.next() is Action.STOP


def test_auto_repeating_f9_never_triggers(f9: tuple[HotkeyListener, Recorder]) -> None:
    """The X server auto-repeats F9 with a delay (0.15 s) shorter than a tap may last."""
    listener, rec = f9
    listener.set_active(True)
    xdotool("keydown", "75")
    time.sleep(0.8)
    xdotool("keyup", "75")
    assert rec.next(QUIET_S) is None
    xdotool("key", "75")
    assert rec.next() is Action.STOP
