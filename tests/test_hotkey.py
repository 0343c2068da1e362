"""DoubleTapDetector on a fake clock: every event carries its own timestamp (seconds)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dictation.errors import ConfigError
from dictation.hotkey import (
    HOTKEY_NAMES,
    Action,
    DoubleTapDetector,
    HotkeyListener,
    key_name,
    parse_hotkey,
)

K = "ctrl_r"


class Driver:
    """Feeds a detector and collects every action, polling at each event like the listener's
    timer would (a poll at ``t`` only confirms taps released ``repeat_gap_s`` before ``t``)."""

    def __init__(self, detector: DoubleTapDetector | None = None) -> None:
        self.d = detector or DoubleTapDetector(K)
        self.actions: list[tuple[float, Action]] = []

    def _record(self, t: float, action: Action | None) -> None:
        if action is not None:
            self.actions.append((t, action))

    def press(self, t: float, key: str = K) -> None:
        self._record(t, self.d.poll(t))
        self._record(t, self.d.press(key, t))

    def release(self, t: float, key: str = K) -> None:
        self._record(t, self.d.poll(t))
        self._record(t, self.d.release(key, t))

    def tap(self, t: float, hold: float = 0.05, key: str = K) -> float:
        """Tap ``key`` at ``t`` for ``hold`` s; returns the release time."""
        self.press(t, key)
        self.release(t + hold, key)
        return t + hold

    def settle(self, t: float) -> None:
        self._record(t, self.d.poll(t))

    @property
    def kinds(self) -> list[Action]:
        return [a for _, a in self.actions]


def test_double_tap_starts_once_confirmed() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    drv.tap(r1 + 0.1)
    assert drv.kinds == []  # the second release waits repeat_gap_s for a possible auto-repeat
    assert drv.d.next_deadline() == pytest.approx(r1 + 0.1 + 0.05 + 0.02)
    drv.settle(r1 + 0.1 + 0.05 + 0.01)
    assert drv.kinds == []
    drv.settle(r1 + 0.1 + 0.05 + 0.021)
    assert drv.kinds == [Action.START]
    assert drv.d.next_deadline() is None


def test_next_event_confirms_a_tap_without_poll() -> None:
    d = DoubleTapDetector(K)
    assert d.press(K, 0.0) is None
    assert d.release(K, 0.05) is None
    assert d.press(K, 0.15) is None  # confirms tap 1 (no action: it is a first tap)
    assert d.release(K, 0.2) is None
    assert d.press("'a'", 0.5) is Action.START  # any later event confirms tap 2


def test_slow_double_tap_does_not_start_but_its_second_tap_can_begin_a_new_one() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    r2 = drv.tap(r1 + 0.45)  # pause 0.45 s > 0.4 s window
    drv.settle(r2 + 0.1)
    assert drv.kinds == []
    drv.tap(r2 + 0.2)
    drv.settle(r2 + 1.0)
    assert drv.kinds == [Action.START]


def test_window_runs_from_first_release_to_second_press() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    drv.tap(r1 + 0.38, hold=0.3)  # release-to-release would be 0.68 s, the pause is 0.38 s
    drv.settle(10.0)
    assert drv.kinds == [Action.START]


def test_window_is_configurable() -> None:
    drv = Driver(DoubleTapDetector(K, double_tap_window_s=0.6))
    r1 = drv.tap(0.0)
    drv.tap(r1 + 0.55)
    drv.settle(10.0)
    assert drv.kinds == [Action.START]


def test_single_tap_stops_when_active_and_does_nothing_when_idle() -> None:
    drv = Driver()
    drv.tap(0.0)
    drv.settle(1.0)
    assert drv.kinds == []
    drv.d.set_active(True)
    drv.tap(2.0)
    drv.settle(3.0)
    assert drv.kinds == [Action.STOP]


def test_actions_carry_the_press_time_of_the_tap_that_completed_them() -> None:
    drv = Driver()
    drv.tap(0.0)
    drv.tap(0.2)
    drv.settle(1.0)
    assert drv.kinds == [Action.START] and drv.d.action_at == 0.2
    drv.d.set_active(True)
    drv.tap(5.0, hold=0.1)
    drv.settle(7.0)  # confirmed late (a busy listener): still stamped at the press
    assert drv.kinds == [Action.START, Action.STOP] and drv.d.action_at == 5.0


def test_hold_since_marks_a_press_that_may_be_the_stop_tap() -> None:
    """While active, audio from a hotkey press on waits: the press may be the stop tap."""
    drv = Driver()
    drv.press(1.0)
    assert drv.d.hold_since(1.1) is None  # idle: nothing to hold
    drv.release(1.05)
    drv.settle(2.0)
    drv.d.set_active(True)
    assert drv.d.hold_since(2.0) is None
    drv.press(3.0)
    assert drv.d.hold_since(3.1) == 3.0  # down: may become a tap
    assert drv.d.hold_since(3.5) is None  # held longer than max_tap_s: a hold, not a tap
    drv.release(3.6)
    drv.press(4.0)
    drv.release(4.05)
    assert drv.d.hold_since(4.06) == 4.0  # released, not yet confirmed
    drv.settle(4.2)
    assert drv.kinds == [Action.STOP]
    assert drv.d.hold_since(9.0) == 4.0  # fired: until the app stops the dictation
    drv.d.set_active(False)
    assert drv.d.hold_since(9.0) is None
    drv.d.set_active(True)
    assert drv.d.hold_since(9.0) is None  # a new dictation does not inherit the old stop
    drv.press(10.0, key="'c'")
    assert drv.d.hold_since(10.0) is None  # other keys never hold audio


def test_ctrl_c_combination_is_not_a_tap() -> None:
    drv = Driver()
    for start in (0.0, 0.2):  # ctrl+c twice in quick succession: no double tap
        drv.press(start)
        drv.press(start + 0.02, "'c'")
        drv.release(start + 0.04)
        drv.release(start + 0.06, "'c'")
    drv.settle(1.0)
    drv.d.set_active(True)
    drv.press(2.0)
    drv.press(2.02, "'c'")
    drv.release(2.05, "'c'")
    drv.release(2.07)
    drv.settle(3.0)
    assert drv.kinds == []


def test_other_key_released_while_hotkey_down_is_a_combination() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.press(0.0, "shift")  # shift held before the hotkey ...
    drv.press(0.1)
    drv.release(0.15, "shift")  # ... and let go while it is down
    drv.release(0.2)
    drv.settle(1.0)
    assert drv.kinds == []


def test_held_key_never_triggers() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.press(0.0)
    drv.release(1.0)  # held 1 s
    drv.settle(2.0)
    assert drv.kinds == []
    drv.d.set_active(False)
    r1 = drv.tap(3.0)
    drv.press(r1 + 0.1)  # a tap followed by a hold is no double tap
    drv.release(r1 + 0.6)
    drv.settle(5.0)
    assert drv.kinds == []


def test_max_tap_duration_is_the_limit() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.tap(0.0, hold=0.34)
    drv.settle(1.0)
    assert drv.kinds == [Action.STOP]
    drv.tap(2.0, hold=0.36)
    drv.settle(3.0)
    assert drv.kinds == [Action.STOP]


def test_auto_repeat_presses_without_release_never_trigger() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.press(0.0)
    t = 0.2
    while t < 0.3:  # repeats from a 0.2 s repeat delay, released before max_tap_s
        drv.press(t)
        t += 0.03
    drv.release(0.31)
    drv.settle(1.0)
    assert drv.kinds == []


@pytest.mark.parametrize("repeat_delay", [0.2, 0.66])
def test_auto_repeat_release_press_pairs_never_trigger(repeat_delay: float) -> None:
    for active in (False, True):
        drv = Driver()
        drv.d.set_active(active)
        drv.press(0.0)
        t = repeat_delay
        for _ in range(20):  # "detectable auto-repeat off": release + press at the same time
            drv.release(t)
            drv.press(t + 0.0005)
            t += 0.033
        drv.release(t)
        drv.settle(t + 1.0)
        assert drv.kinds == [], f"active={active}"


def test_other_key_between_taps_cancels_double_tap() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    drv.tap(r1 + 0.05, hold=0.03, key="'a'")
    drv.tap(r1 + 0.2)
    drv.settle(2.0)
    assert drv.kinds == []


def test_muted_flag_ignores_the_apps_own_keys() -> None:
    drv = Driver()
    drv.d.muted = True
    r1 = drv.tap(0.0)
    drv.tap(r1 + 0.1)
    drv.settle(1.0)
    assert drv.kinds == []
    drv.d.muted = False
    r1 = drv.tap(2.0)
    drv.tap(r1 + 0.1)
    drv.settle(3.0)
    assert drv.kinds == [Action.START]


def test_mute_until_covers_keys_reported_late_then_expires() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.d.mute_until(1.0)
    drv.tap(0.5)  # e.g. an XTEST key coming back through X RECORD after typing ended
    drv.settle(0.99)
    assert drv.kinds == []
    drv.d.mute_until(0.2)  # never shortens
    assert drv.d.is_muted(0.9)
    drv.tap(1.5)
    drv.settle(2.0)
    assert drv.kinds == [Action.STOP]


def test_muted_keys_do_not_spoil_a_real_tap_around_them() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.press(0.0)
    drv.d.muted = True  # the app types while the user's tap is down
    drv.tap(0.05, hold=0.01, key="'x'")
    drv.d.muted = False
    drv.release(0.2)
    drv.settle(1.0)
    assert drv.kinds == [Action.STOP]


def test_hotkey_press_while_muted_cannot_become_a_tap() -> None:
    drv = Driver()
    drv.d.set_active(True)
    drv.d.muted = True
    drv.press(0.0)
    drv.d.muted = False
    drv.release(0.1)
    drv.settle(1.0)
    assert drv.kinds == []
    drv.tap(2.0)  # and the detector is not stuck afterwards
    drv.settle(3.0)
    assert drv.kinds == [Action.STOP]


def test_triple_tap_starts_once_and_does_not_stop() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    r2 = drv.tap(r1 + 0.1)
    drv.settle(r2 + 0.03)
    assert drv.kinds == [Action.START]
    drv.d.set_active(True)  # the app reacts to START at once
    r3 = drv.tap(r2 + 0.15)  # third tap of the same burst: ignored
    drv.settle(r3 + 0.5)
    assert drv.kinds == [Action.START]
    drv.tap(r3 + 1.0)  # a later single tap stops
    drv.settle(r3 + 2.0)
    assert drv.kinds == [Action.START, Action.STOP]


def test_double_tap_while_active_stops_once() -> None:
    drv = Driver()
    drv.d.set_active(True)
    r1 = drv.tap(0.0)
    drv.settle(r1 + 0.03)
    assert drv.kinds == [Action.STOP]
    drv.d.set_active(False)  # the app stops at once
    r2 = drv.tap(r1 + 0.1)  # not the first half of a new double tap
    drv.tap(r2 + 0.1)  # still the same burst
    drv.settle(5.0)
    assert drv.kinds == [Action.STOP]


def test_other_key_ends_a_burst() -> None:
    drv = Driver()
    drv.d.set_active(True)
    r1 = drv.tap(0.0)
    drv.tap(r1 + 0.05, hold=0.03, key="'a'")
    drv.tap(r1 + 0.2)
    drv.settle(5.0)
    assert drv.kinds == [Action.STOP, Action.STOP]


def test_becoming_active_forgets_a_pending_first_tap() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    drv.settle(r1 + 0.05)
    drv.d.set_active(True)  # e.g. started from the tray
    drv.d.set_active(False)  # and stopped again
    drv.tap(r1 + 0.1)
    drv.settle(2.0)
    assert drv.kinds == []


def test_reset_forgets_gestures_in_progress() -> None:
    drv = Driver()
    r1 = drv.tap(0.0)
    drv.d.reset()
    drv.tap(r1 + 0.1)
    drv.settle(2.0)
    assert drv.kinds == []


def test_other_hotkey_names_work_and_ctrl_r_is_then_an_ordinary_key() -> None:
    drv = Driver(DoubleTapDetector("f9"))
    r1 = drv.tap(0.0, key="f9")
    drv.tap(r1 + 0.1, key="ctrl_r")
    drv.tap(r1 + 0.2, key="f9")
    drv.tap(r1 + 0.3, key="f9")
    drv.settle(2.0)
    assert drv.kinds == [Action.START]


@pytest.mark.parametrize("args", [(0.4, 0.35, 0.0), (0.4, 0.35, 0.5), (0.01, 0.35, 0.02)])
def test_inconsistent_timing_is_rejected(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="repeat_gap_s"):
        DoubleTapDetector(K, *args)


def test_parse_hotkey_accepts_known_names_in_any_case() -> None:
    assert parse_hotkey("ctrl_r") == "ctrl_r"
    assert parse_hotkey(" Alt-R ") == "alt_r"
    assert parse_hotkey("F9") == "f9"
    assert set(HOTKEY_NAMES) >= {"ctrl_r", "alt_r", "shift_r", "cmd_r", "f1", "f12", "f20"}


@pytest.mark.parametrize("bad", ["a", "ctrl", "caps_lock", "f21", "", "ctrl_r+c"])
def test_parse_hotkey_rejects_other_names_listing_the_allowed_ones(bad: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(bad))) as err:
        parse_hotkey(bad)
    assert "ctrl_r" in str(err.value) and "f12" in str(err.value)


def test_listener_rejects_an_invalid_key_before_touching_the_display() -> None:
    with pytest.raises(ConfigError, match="use one of"):
        HotkeyListener(lambda action, at: None, key="super_duper")


class _FakeEnumKey:
    name = "ctrl_r"


class _FakeKeyCode:
    def __init__(self, char: str | None, vk: int | None) -> None:
        self.char = char
        self.vk = vk


def test_key_name_of_pynput_like_keys() -> None:
    """Duck-typed stand-ins: importing pynput here would need an X display."""
    assert key_name(_FakeEnumKey()) == "ctrl_r"
    assert key_name(_FakeKeyCode("c", 99)) == "'c'"
    assert key_name(_FakeKeyCode(None, 65027)) == "<65027>"
    assert key_name(None) == "<unknown>"


def test_listener_without_a_display_is_a_clear_error() -> None:
    """In a fresh interpreter without DISPLAY (pynput picks its backend once, at import)."""
    code = (
        "from dictation.hotkey import HotkeyListener\n"
        "from dictation.errors import DictationError\n"
        "try:\n"
        "    HotkeyListener(print).start()\n"
        "except DictationError as e:\n"
        "    print('ERROR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert out.stdout.startswith("ERROR the global hotkey is not available here"), out.stderr
    assert "X11 session" in out.stdout and "dictation toggle" in out.stdout


def test_server_clock_keeps_the_spacing_of_key_events_that_arrive_late_and_bunched() -> None:
    """A busy listener receives a double tap (X server times 1000, 1050, 1130, 1180 ms) all at
    once, 2 s late: mapped to the local clock the taps keep their 50/80 ms spacing (so the
    detector sees a double tap, not an auto-repeat pair), and are placed at most as late as the
    least delayed event seen (here a probe key 5 ms late)."""
    from dictation.hotkey import ServerClock

    clock = ServerClock()
    assert clock.to_local(500, 100.505) == pytest.approx(100.505)  # the probe: 5 ms late
    times = [clock.to_local(ms, 102.7) for ms in (1000, 1050, 1130, 1180)]
    assert times == pytest.approx([101.005, 101.055, 101.135, 101.185])
    drv = Driver()
    drv.press(times[0])
    drv.release(times[1])
    drv.press(times[2])
    drv.release(times[3])
    drv.settle(times[3] + 0.1)
    assert drv.kinds == [Action.START]


def test_server_clock_survives_the_32_bit_wrap_and_never_goes_back() -> None:
    from dictation.hotkey import ServerClock

    clock = ServerClock()
    a = clock.to_local(2**32 - 100, 10.0)
    b = clock.to_local(50, 10.2)  # 150 ms later, after the wrap
    assert b - a == pytest.approx(0.15)
    c = clock.to_local(60, 10.21)  # a smaller offset: never maps before b
    assert c >= b
