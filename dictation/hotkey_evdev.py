"""The double-tap hotkey on Wayland from raw key events (/dev/input, python-evdev). Off by
default (``[hotkey] evdev = true`` turns it on).

Wayland gives applications no global keys, so the usual route is the desktop's own shortcut
running ``dictation toggle``. A desktop shortcut cannot be a double tap of a bare modifier;
this listener can: it reads every keyboard's evdev device (the user must be in the ``input``
group) and feeds the same :class:`~dictation.hotkey.DoubleTapDetector` as on X11.

Privacy cost: a process that can read /dev/input sees EVERY key typed on the machine, in every
application, passwords included. This listener looks only at key codes, keeps no record of
them and passes only the hotkey's own presses on; but anything running as a user in the
``input`` group has the same power, which is why it is off by default.

Event codes are Linux's (``linux/input-event-codes.h``); values 1 = press, 0 = release, 2 =
auto-repeat (treated as another press, so a held key stays a hold). The keys the app types
itself go through wtype's virtual keyboard (a Wayland protocol, not an evdev device) and are
not seen here; ydotool's uinput device is skipped by name.
"""

from __future__ import annotations

import logging
import re
import selectors
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from dictation.errors import DictationError
from dictation.hotkey import DEFAULT_HOTKEY, Action, DoubleTapDetector, HotkeyListener

log = logging.getLogger(__name__)

EV_KEY = 1
"""evdev event type of key events."""
KEY_CODES: dict[str, int] = {
    "ctrl_l": 29, "ctrl_r": 97, "shift_l": 42, "shift_r": 54, "alt_l": 56, "alt_r": 100,
    "alt_gr": 100, "cmd_l": 125, "cmd_r": 126, "menu": 127, "insert": 110, "pause": 119,
    "scroll_lock": 70,
    **{f"f{n}": 58 + n for n in range(1, 11)}, "f11": 87, "f12": 88,
    **{f"f{n}": 170 + n for n in range(13, 21)},
}
"""Hotkey name (:data:`dictation.hotkey.HOTKEY_NAMES`) -> Linux key code (``alt_gr`` is the
right Alt key, ``menu`` KEY_COMPOSE, the context-menu key)."""
POLL_SLACK_S = 0.001
"""Seconds after a poll deadline the listener's timer fires (and :func:`replay` polls)."""
SKIPPED_DEVICES = ("ydotoold virtual device",)
"""uinput devices of typing tools: the app's own keys, never the user's."""
INPUT_GROUP_HINT = ("add yourself to the input group (`sudo usermod -aG input $USER`, then log "
                    "out and in) or set hotkey.evdev = false and use a desktop shortcut")


class EvdevKey(NamedTuple):
    """A key as :func:`dictation.hotkey.key_name` reads it."""

    name: str


def key_name_of(code: int, hotkey: str) -> str:
    """The detector's name for evdev key ``code``: the hotkey's name for its code, else
    ``<evdev CODE>`` (any other key)."""
    return hotkey if code == KEY_CODES[hotkey] else f"<evdev {code}>"


def feed_event(detector: DoubleTapDetector, code: int, value: int, t: float) -> Action | None:
    """Feed one EV_KEY event (``value`` 1 press, 0 release, 2 auto-repeat) stamped ``t`` s."""
    name = key_name_of(code, detector.key)
    if value == 0:
        return detector.release(name, t)
    return detector.press(name, t)


_EVTEST_LINE = re.compile(r"Event: time (\d+)\.(\d+), type (\d+) \(\w+\), code (\d+) "
                          r"\(\w+\), value (-?\d+)")


def parse_evtest(text: str) -> Iterator[tuple[float, int, int, int]]:
    """(time_s, type, code, value) of each event line of ``evtest`` output (the format the
    tests' recorded sequences are in); SYN lines are skipped."""
    for line in text.splitlines():
        match = _EVTEST_LINE.search(line)
        if match is not None:
            sec, usec, typ, code, value = (int(g) for g in match.groups())
            yield sec + usec / 1e6, typ, code, value


def replay(detector: DoubleTapDetector, events: Iterable[tuple[float, int, int, int]]
           ) -> list[tuple[float, Action]]:
    """Run recorded ``events`` through ``detector`` (its poll deadlines honoured between
    events, as the listener's timer does); returns the (time, action) pairs it fired."""
    fired: list[tuple[float, Action]] = []
    for t, typ, code, value in events:
        deadline = detector.next_deadline()
        if deadline is not None and deadline + POLL_SLACK_S <= t:
            action = detector.poll(deadline + POLL_SLACK_S)
            if action is not None:
                fired.append((deadline + POLL_SLACK_S, action))
        if typ != EV_KEY:
            continue
        action = feed_event(detector, code, value, t)
        if action is not None:
            fired.append((t, action))
    deadline = detector.next_deadline()
    if deadline is not None:
        action = detector.poll(deadline + POLL_SLACK_S)
        if action is not None:
            fired.append((deadline + POLL_SLACK_S, action))
    return fired


def _evdev() -> Any:
    try:
        import evdev
    except ImportError as exc:
        raise DictationError(
            "hotkey.evdev needs python-evdev (pip install 'dictation[evdev]' or "
            "apt install python3-evdev)") from exc
    return evdev


def open_keyboards(evdev: Any, paths: Iterable[str] | None = None) -> list[Any]:
    """The readable evdev devices that have the letter keys (keyboards); raises
    :class:`DictationError` saying what to do when none can be read."""
    paths = list(evdev.list_devices() if paths is None else paths)
    if not paths:
        raise DictationError("no /dev/input devices are visible; " + INPUT_GROUP_HINT)
    keyboards, denied = [], 0
    for path in paths:
        try:
            device = evdev.InputDevice(path)
        except PermissionError:
            denied += 1
            continue
        except OSError as exc:
            log.info("cannot open %s: %s", path, exc)
            continue
        keys = device.capabilities().get(EV_KEY, [])
        if device.name in SKIPPED_DEVICES or 30 not in keys:  # 30: KEY_A
            device.close()
            continue
        keyboards.append(device)
    if not keyboards:
        why = (f"{denied} input devices are not readable by this user" if denied
               else "no keyboard among the input devices")
        raise DictationError(f"the evdev hotkey cannot work: {why}; {INPUT_GROUP_HINT}")
    return keyboards


class EvdevHotkeyListener(HotkeyListener):
    """:class:`~dictation.hotkey.HotkeyListener` fed from /dev/input instead of pynput: same
    detector, timers, :meth:`muted` and :meth:`set_active`; live as soon as the devices are
    open."""

    def __init__(self, on_action: Callable[[Action, float], None], key: str = DEFAULT_HOTKEY,
                 double_tap_window_s: float = 0.4, max_tap_s: float = 0.35, *,
                 paths: Iterable[str] | None = None) -> None:
        super().__init__(on_action, key, double_tap_window_s, max_tap_s)
        self._paths = paths
        self._devices: list[Any] = []
        self._thread: threading.Thread | None = None
        self.device_names: list[str] = []

    def start(self) -> None:
        """Open the keyboards and start reading; raises :class:`DictationError` (no
        python-evdev, no readable keyboard) with what to do."""
        if self.key not in KEY_CODES:
            raise DictationError(f"hotkey {self.key!r} has no evdev key code")
        self._devices = open_keyboards(_evdev(), self._paths)
        self.device_names = [str(d.name) for d in self._devices]
        self._thread = threading.Thread(target=self._read, name="hotkey-evdev", daemon=True)
        self._thread.start()
        self._go_live()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        for device in self._devices:
            device.close()
        self._devices = []

    def _read(self) -> None:
        with selectors.DefaultSelector() as selector:
            for device in self._devices:
                selector.register(device.fd, selectors.EVENT_READ, device)
            while not self._stopping.is_set():
                for ready, _ in selector.select(timeout=0.2):
                    try:
                        events = list(ready.data.read())
                    except OSError:  # unplugged
                        selector.unregister(ready.fd)
                        continue
                    for event in events:
                        if event.type == EV_KEY:
                            name = key_name_of(event.code, self.key)
                            self._feed(EvdevKey(name), False, pressed=event.value != 0)
