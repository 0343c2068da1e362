"""The evdev double-tap listener's detection, on recorded key event sequences.

This machine has no /dev/input (no keyboards, no uinput), so the listener cannot open a
device here. The sequences below are written in ``evtest``'s exact output format (not
captured on a machine: there is none here), with human tap timings (presses of 80-100 ms, gaps
of 150-700 ms) and auto-repeat (value 2, every 33 ms after 500 ms) as the kernel sends it for
a held key. The detector they feed is the one the X11 listener uses.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dictation.errors import DictationError
from dictation.hotkey import Action, DoubleTapDetector
from dictation.hotkey_evdev import KEY_CODES, open_keyboards, parse_evtest, replay

HEADER = """Input driver version is 1.0.1
Input device ID: bus 0x3 vendor 0x46d product 0xc31c version 0x110
Input device name: "Logitech USB Keyboard"
Testing ... (interrupt to exit)
"""


def evtest(*events: tuple[float, int, int]) -> str:
    """evtest lines for (time, code, value) key events, each followed by a SYN_REPORT."""
    lines = [HEADER]
    for t, code, value in events:
        sec, usec = int(t), round((t - int(t)) * 1e6)
        lines.append(f"Event: time {sec}.{usec:06d}, type 1 (EV_KEY), code {code} (KEY_X), "
                     f"value {value}")
        lines.append(f"Event: time {sec}.{usec:06d}, -------------- SYN_REPORT ------------")
    return "\n".join(lines)


T0 = 1733130000.0
RCTRL = KEY_CODES["ctrl_r"]
DOUBLE_TAP = evtest((T0, RCTRL, 1), (T0 + 0.09, RCTRL, 0), (T0 + 0.25, RCTRL, 1),
                    (T0 + 0.33, RCTRL, 0))
SLOW_TAPS = evtest((T0, RCTRL, 1), (T0 + 0.09, RCTRL, 0), (T0 + 0.80, RCTRL, 1),
                   (T0 + 0.88, RCTRL, 0))
HELD_WITH_REPEAT = evtest((T0, RCTRL, 1), *[(T0 + 0.5 + 0.033 * i, RCTRL, 2) for i in range(10)],
                          (T0 + 0.9, RCTRL, 0), (T0 + 1.0, RCTRL, 1), (T0 + 1.08, RCTRL, 0))
CTRL_C_THEN_TAP = evtest((T0, RCTRL, 1), (T0 + 0.05, 46, 1), (T0 + 0.08, 46, 0),
                         (T0 + 0.1, RCTRL, 0), (T0 + 0.3, RCTRL, 1), (T0 + 0.38, RCTRL, 0))


def test_parse_evtest_skips_syn_lines() -> None:
    events = list(parse_evtest(DOUBLE_TAP))
    assert [(typ, code, value) for _, typ, code, value in events] == [
        (1, 97, 1), (1, 97, 0), (1, 97, 1), (1, 97, 0)]
    assert events[1][0] - events[0][0] == pytest.approx(0.09)


def test_double_tap_starts_and_single_tap_stops() -> None:
    detector = DoubleTapDetector("ctrl_r")
    fired = replay(detector, parse_evtest(DOUBLE_TAP))
    assert [a for _, a in fired] == [Action.START]
    detector.set_active(True)
    stop = evtest((T0 + 2, RCTRL, 1), (T0 + 2.08, RCTRL, 0))
    assert [a for _, a in replay(detector, parse_evtest(stop))] == [Action.STOP]


def test_taps_too_far_apart_do_nothing() -> None:
    assert replay(DoubleTapDetector("ctrl_r"), parse_evtest(SLOW_TAPS)) == []


def test_held_key_with_auto_repeat_is_not_a_tap() -> None:
    """value 2 (repeat) events keep the key down: a hold, and the tap after it is one tap."""
    assert replay(DoubleTapDetector("ctrl_r"), parse_evtest(HELD_WITH_REPEAT)) == []


def test_ctrl_combination_is_not_a_tap() -> None:
    """Right Ctrl + C, then one tap: the combination is not the first half of a double tap."""
    assert replay(DoubleTapDetector("ctrl_r"), parse_evtest(CTRL_C_THEN_TAP)) == []


def test_other_hotkeys_map_to_their_codes() -> None:
    seq = evtest((T0, KEY_CODES["f9"], 1), (T0 + 0.08, KEY_CODES["f9"], 0),
                 (T0 + 0.2, KEY_CODES["f9"], 1), (T0 + 0.28, KEY_CODES["f9"], 0))
    assert KEY_CODES["f9"] == 67 and KEY_CODES["f13"] == 183 and KEY_CODES["alt_r"] == 100
    assert [a for _, a in replay(DoubleTapDetector("f9"), parse_evtest(seq))] == [Action.START]
    assert replay(DoubleTapDetector("ctrl_r"), parse_evtest(seq)) == []


class FakeEvdev:
    """python-evdev's module surface for opening devices (no /dev/input here)."""

    def __init__(self, devices: dict[str, Any]) -> None:
        self.devices = devices

    def list_devices(self) -> list[str]:
        return list(self.devices)

    def InputDevice(self, path: str) -> Any:  # noqa: N802 (python-evdev's name)
        device = self.devices[path]
        if isinstance(device, Exception):
            raise device
        return device


def device(name: str, keys: list[int]) -> Any:
    return SimpleNamespace(name=name, capabilities=lambda: {1: keys}, close=lambda: None)


def test_open_keyboards_keeps_keyboards_only() -> None:
    evdev = FakeEvdev({"/dev/input/event0": device("Power Button", [116]),
                       "/dev/input/event1": device("AT Translated Set 2 keyboard", [1, 30, 97]),
                       "/dev/input/event2": device("ydotoold virtual device", [30, 97])})
    assert [d.name for d in open_keyboards(evdev)] == ["AT Translated Set 2 keyboard"]


def test_unreadable_devices_say_join_the_input_group() -> None:
    evdev = FakeEvdev({"/dev/input/event3": PermissionError(13, "Permission denied")})
    with pytest.raises(DictationError, match="not readable.*usermod -aG input"):
        open_keyboards(evdev)
    with pytest.raises(DictationError, match="no /dev/input devices"):
        open_keyboards(FakeEvdev({}))


def test_listener_on_this_machine_says_what_is_missing() -> None:
    """The real python-evdev on this machine, which has no /dev/input devices: start() fails
    with what to do instead of listening to nothing."""
    pytest.importorskip("evdev")
    from dictation.hotkey_evdev import EvdevHotkeyListener

    listener = EvdevHotkeyListener(lambda action: None)
    with pytest.raises(DictationError, match="usermod -aG input|hotkey.evdev = false"):
        listener.start()
    assert not listener.live
