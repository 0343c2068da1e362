"""The double-tap hotkey: a pure tap detector and the pynput listener that feeds it.

Gesture (defaults; all times in seconds of the clock the events are stamped with):

* A *tap* is a press and release of the hotkey ALONE, held at most ``max_tap_s`` (0.35 s).
  Any other key pressed or released while the hotkey is down makes it a combination, not a tap.
  A longer press is a hold, not a tap. Keys held down *before* the hotkey and released after it
  produce no events in between, so they are not seen (X RECORD reports transitions only).
* While idle, two taps start dictation (:attr:`Action.START`) when the second tap's *press*
  comes at most ``double_tap_window_s`` (0.4 s) after the first tap's *release*, i.e. the
  window is the pause between the taps, independent of how long the second tap lasts. Any other
  key pressed between the two taps, or a hold/combination of the hotkey, cancels the pending
  first tap.
* While active, a single tap stops dictation (:attr:`Action.STOP`).
* A gesture fires at most one action: taps that continue the burst that fired it (each pressed
  within ``double_tap_window_s`` of the previous tap's release) are ignored. So a triple tap
  while idle is START (the third tap is ignored, it does not stop again), and a double tap while
  active is STOP (the second tap is not the first half of a new double tap).
* Auto-repeat never triggers: repeated presses without a release are a hold, and a release
  followed by a press of the hotkey within ``repeat_gap_s`` (0.02 s; humans need > 0.05 s)
  is a repeat pair, so the key never went up. Because of the latter, a tap is confirmed only
  ``repeat_gap_s`` after its release: by the next event, or by :meth:`DoubleTapDetector.poll`.
* Muted events (the app's own injected keystrokes) never count: while muted, other keys are
  ignored entirely and a hotkey press cannot become a tap.

:class:`DoubleTapDetector` is that state machine, with no threads and no pynput.
:class:`HotkeyListener` is the edge: a pynput listener thread that feeds it with
``time.monotonic()`` stamps and calls back with the actions. On X11 the stamps are the X
server's own event times mapped to that clock (:class:`ServerClock`), so a listener thread
that runs late on a busy machine neither squeezes two taps into an auto-repeat pair nor makes
a stop tap later than it was.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dictation.errors import ConfigError, DictationError

log = logging.getLogger(__name__)

DEFAULT_HOTKEY = "ctrl_r"

HOTKEY_NAMES: tuple[str, ...] = (
    "ctrl_r", "ctrl_l", "alt_r", "alt_l", "alt_gr", "shift_r", "shift_l", "cmd_r", "cmd_l",
    "menu", "insert", "pause", "scroll_lock",
    *(f"f{n}" for n in range(1, 21)),
)
"""Key names a hotkey may use (pynput ``Key`` member names). Keys that type text or toggle a
lock (letters, caps_lock, num_lock) are left out: tapping them twice would change the text."""

PROBE_KEY = "shift_r"
"""Harmless key tapped to find out when the listener really hears keys (``shift_l`` if the
hotkey is ``shift_r``)."""


MODIFIER_KEYS = frozenset({"shift", "shift_l", "shift_r", "ctrl", "ctrl_l", "ctrl_r", "alt",
                           "alt_l", "alt_r", "alt_gr", "cmd", "cmd_l", "cmd_r", "caps_lock",
                           "num_lock"})
"""Keys that change no text by themselves (not remembered as the user's last key)."""


class Action(enum.Enum):
    """What a hotkey gesture asks the app to do."""

    START = "start"
    STOP = "stop"


def parse_hotkey(name: str) -> str:
    """Return the canonical hotkey name for ``name`` (case and spaces ignored, ``-`` as ``_``);
    raise :class:`ConfigError` listing the allowed names if it is not one."""
    canonical = name.strip().lower().replace("-", "_").replace(" ", "_")
    if canonical not in HOTKEY_NAMES:
        raise ConfigError(f"unknown hotkey {name!r}; use one of: {', '.join(HOTKEY_NAMES)}")
    return canonical


class DoubleTapDetector:
    """Pure state machine turning timestamped key events into :class:`Action` s.

    Keys are strings (e.g. ``"ctrl_r"``, ``"'c'"``); only equality with the hotkey matters.
    Timestamps ``t`` are seconds on one monotonic clock and must not decrease.
    See the module docstring for the exact gesture rules.
    """

    def __init__(self, key: str = DEFAULT_HOTKEY, double_tap_window_s: float = 0.4,
                 max_tap_s: float = 0.35, repeat_gap_s: float = 0.02) -> None:
        if not 0 < repeat_gap_s < min(double_tap_window_s, max_tap_s):
            raise ValueError("need 0 < repeat_gap_s < min(double_tap_window_s, max_tap_s), got "
                             f"{repeat_gap_s}, {double_tap_window_s}, {max_tap_s}")
        self.key = key
        self.double_tap_window_s = double_tap_window_s
        self.max_tap_s = max_tap_s
        self.repeat_gap_s = repeat_gap_s
        self.active = False
        """Whether dictation is running (set by the app via :meth:`set_active`)."""
        self.muted = False
        """While True every event is treated as the app's own (see :meth:`mute_until`)."""
        self.mute_hotkey = True
        """Whether muting covers the hotkey itself. The app sets it False when its typing never
        presses the hotkey, so a user's tap while text is being typed still counts."""
        self._muted_until = float("-inf")
        self._down_since: float | None = None  # hotkey down since (press time), None when up
        self._clean = False  # the current press can still be a tap
        self._last_release: float | None = None  # of the hotkey
        self._unconfirmed: tuple[float, float] | None = None  # (press, release) of a fresh tap
        self._first_tap_release: float | None = None  # a lone first tap waiting for its second
        self._burst_release: float | None = None  # release of the last tap of a fired burst
        self._stop_at: float | None = None  # press of the tap that fired STOP (while active)
        self.action_at: float | None = None
        """Press time of the tap that completed the newest action (the second tap of START,
        the tap of STOP): when the user asked, however late the action is confirmed."""

    # --- inputs ---------------------------------------------------------------------------
    def set_active(self, active: bool) -> None:
        """Tell the detector whether dictation is running; a pending first tap is forgotten."""
        if active != self.active:
            self.active = active
            self._first_tap_release = None
        self._stop_at = None

    def mute_until(self, t: float) -> None:
        """Treat events stamped before ``t`` as the app's own (extends, never shortens)."""
        self._muted_until = max(self._muted_until, t)

    def is_muted(self, t: float) -> bool:
        """Whether an event stamped ``t`` is muted."""
        return self.muted or t < self._muted_until

    def press(self, key: str, t: float) -> Action | None:
        """A key went down at ``t``; returns the action it completes, if any."""
        muted = self.is_muted(t)
        if key != self.key:
            if muted:
                return None
            action = self._confirm()
            self._other_key()
            return action
        if self._last_release is not None and t - self._last_release < self.repeat_gap_s:
            # release + press pair of auto-repeat: the key never went up, it is held
            self._down_since = self._unconfirmed[0] if self._unconfirmed is not None else t
            self._unconfirmed = None
            self._clean = False
            return None
        action = self._confirm()
        if self._down_since is not None:  # repeated press without release: auto-repeat
            self._clean = False
            return action
        self._down_since = t
        self._clean = not (muted and self.mute_hotkey)
        return action

    def release(self, key: str, t: float) -> Action | None:
        """A key went up at ``t``; returns the action it completes, if any."""
        muted = self.is_muted(t)
        if key != self.key:
            if muted:
                return None
            action = self._confirm()
            if self._down_since is not None:
                self._clean = False
            return action
        action = self._confirm()
        if self._down_since is None:  # release of a press we never saw
            return action
        pressed, self._down_since = self._down_since, None
        self._last_release = t
        if self._clean and not (muted and self.mute_hotkey) and t - pressed <= self.max_tap_s:
            self._unconfirmed = (pressed, t)
        else:  # a hold or a combination breaks any gesture in progress
            self._first_tap_release = None
            self._burst_release = None
        return action

    def poll(self, t: float) -> Action | None:
        """Confirm a tap whose release is at least ``repeat_gap_s`` before ``t``."""
        if self._unconfirmed is not None and t - self._unconfirmed[1] >= self.repeat_gap_s:
            return self._confirm()
        return None

    def hold_since(self, t: float) -> float | None:
        """While active: the press time of a hotkey press at ``t`` that is, or may still become,
        the stop tap (held no longer than ``max_tap_s``, released but not yet confirmed, or the
        tap that fired STOP); None when there is none. Audio from then on must wait: it is
        after the stop if that press turns out to be the stop tap."""
        if not self.active:
            return None
        candidates = [self._stop_at]
        if self._unconfirmed is not None:
            candidates.append(self._unconfirmed[0])
        if self._down_since is not None and self._clean and t - self._down_since <= self.max_tap_s:
            candidates.append(self._down_since)
        return min((c for c in candidates if c is not None), default=None)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` can next confirm a tap (None: nothing to confirm)."""
        if self._unconfirmed is None:
            return None
        return self._unconfirmed[1] + self.repeat_gap_s

    def reset(self) -> None:
        """Forget every gesture in progress (keeps ``active`` and the mute settings)."""
        self._down_since = None
        self._clean = False
        self._last_release = None
        self._unconfirmed = None
        self._first_tap_release = None
        self._burst_release = None
        self._stop_at = None

    # --- internals ------------------------------------------------------------------------
    def _other_key(self) -> None:
        if self._down_since is not None:
            self._clean = False
        self._first_tap_release = None
        self._burst_release = None

    def _confirm(self) -> Action | None:
        if self._unconfirmed is None:
            return None
        pressed, released = self._unconfirmed
        self._unconfirmed = None
        return self._tap(pressed, released)

    def _tap(self, pressed: float, released: float) -> Action | None:
        window = self.double_tap_window_s
        if self._burst_release is not None and pressed - self._burst_release <= window:
            self._burst_release = released  # continues the burst that already fired
            return None
        self._burst_release = None
        if self.active:
            self._burst_release = released
            self._stop_at = self.action_at = pressed
            return Action.STOP
        if self._first_tap_release is not None and pressed - self._first_tap_release <= window:
            self._first_tap_release = None
            self._burst_release = released
            self.action_at = pressed
            return Action.START
        self._first_tap_release = released
        return None


class ServerClock:
    """Maps X server event times (milliseconds, 32 bits, wrapping after 49.7 days) to the
    local clock. Heuristic *earliest-arrival anchor*: an event reaches the listener after it
    happened, so ``arrival - server time`` is at least the clocks' true offset; the smallest
    value seen is taken as the offset. Mapped times never decrease and never lie after the
    arrival."""

    def __init__(self) -> None:
        self._offset: float | None = None
        self._last_raw: int | None = None
        self._wraps = 0
        self._last = float("-inf")

    def to_local(self, server_ms: int, arrived: float) -> float:
        """The local time (seconds) of an event stamped ``server_ms`` that arrived at
        ``arrived`` (local seconds)."""
        if self._last_raw is not None and server_ms < self._last_raw - 2**31:
            self._wraps += 1
        self._last_raw = server_ms
        server_s = (server_ms + self._wraps * 2**32) / 1000.0
        offset = arrived - server_s
        if self._offset is None or offset < self._offset:
            self._offset = offset
        self._last = max(self._last, min(arrived, server_s + self._offset))
        return self._last


def key_name(key: Any) -> str:
    """Name of a pynput key for :class:`DoubleTapDetector`: ``Key`` members by name
    (``"ctrl_r"``), characters quoted (``"'c'"``), others by virtual key (``"<65027>"``)."""
    if key is None:
        return "<unknown>"
    name = getattr(key, "name", None)  # pynput.keyboard.Key members (an Enum)
    if isinstance(name, str):
        return name
    char = getattr(key, "char", None)
    if char is not None:
        return repr(char)
    return f"<{getattr(key, 'vk', None)}>"


class HotkeyListener:
    """Global hotkey on X11 (and macOS/Windows) through a pynput keyboard listener thread.

    ``on_action(action, at)`` is called on the listener's thread (or a short timer thread) with
    each :class:`Action` and the press time of the tap that completed it (seconds of ``clock``,
    stamped when the listener heard the key); keep it quick (queue the work). Call
    :meth:`set_active` whenever dictation starts or stops, and wrap the app's own typing in
    :meth:`muted`.
    """

    def __init__(self, on_action: Callable[[Action, float], None], key: str = DEFAULT_HOTKEY,
                 double_tap_window_s: float = 0.4, max_tap_s: float = 0.35, *,
                 on_live: Callable[[], None] | None = None, probe_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = parse_hotkey(key)
        self.detector = DoubleTapDetector(self.key, double_tap_window_s, max_tap_s)
        self._on_action = on_action
        self._on_live = on_live
        self._probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._probe_key = "shift_l" if self.key == PROBE_KEY else PROBE_KEY
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._probe_heard = threading.Event()
        self._live = threading.Event()
        self._stopping = threading.Event()
        self._listener: Any = None
        self._readiness: threading.Thread | None = None
        self.error: DictationError | None = None
        """Why the listener never became live (None while starting or once live)."""
        self._last_key: str | None = None
        self._server_clock = ServerClock()
        self._event_ms: int | None = None  # X server time of the event being handled

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start listening; returns at once. :meth:`wait_live` tells when keys are heard.

        Raises :class:`DictationError` when there is no usable keyboard backend (no X display,
        Wayland) and :class:`ConfigError` when this platform has no such key."""
        keyboard = _pynput_keyboard()
        for name in (self.key, self._probe_key):
            if not hasattr(keyboard.Key, name):
                here = [n for n in HOTKEY_NAMES if hasattr(keyboard.Key, n)]
                raise ConfigError(f"hotkey {name!r} does not exist on this platform; use one "
                                  f"of: {', '.join(here)}")
        self._listener = self._stamped(keyboard.Listener)(on_press=self._on_press,
                                                          on_release=self._on_release)
        self._listener.daemon = True
        self._listener.start()
        self._readiness = threading.Thread(target=self._become_live, args=(keyboard,),
                                           name="hotkey-readiness", daemon=True)
        self._readiness.start()

    def _stamped(self, listener_class: Any) -> Any:
        """pynput's X11 listener, remembering each event's X server time for :meth:`_feed`
        (other platforms: the class as it is)."""
        if not hasattr(listener_class, "_handle_message"):
            return listener_class
        owner = self

        class StampedListener(listener_class):
            def _handle_message(self, display: Any, event: Any, injected: bool) -> None:
                owner._event_ms = getattr(event, "time", None)
                try:
                    super()._handle_message(display, event, injected)
                finally:
                    owner._event_ms = None

        return StampedListener

    def wait_live(self, timeout: float | None = None) -> bool:
        """Block until the listener provably hears keys (True) or ``timeout`` s pass (False)."""
        return self._live.wait(timeout)

    @property
    def live(self) -> bool:
        """Whether the listener provably hears keys."""
        return self._live.is_set()

    def stop(self) -> None:
        """Stop listening (idempotent); no callbacks are made afterwards."""
        self._stopping.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._listener is not None:
            self._listener.stop()
            if self._listener is not threading.current_thread():
                self._join_listener()
        if self._readiness is not None and self._readiness is not threading.current_thread():
            self._readiness.join(timeout=2)

    def _join_listener(self) -> None:
        """Wait for the listener thread to close its X connections (before the display may go).
        pynput's xorg listener only notices ``stop()`` at its next event (pynput PR #583), so
        give it one: a probe key tap."""
        listener = self._listener
        try:
            listener.join(timeout=0.2)
            if listener.is_alive():
                keyboard = _pynput_keyboard()
                probe = getattr(keyboard.Key, self._probe_key)
                controller = keyboard.Controller()
                controller.press(probe)
                controller.release(probe)
                listener.join(timeout=2)
        except Exception:  # pynput re-raises what its thread died of
            log.exception("hotkey listener thread failed")
        if listener.is_alive():
            log.warning("hotkey listener thread did not stop within 2 s")

    # --- app -> detector ------------------------------------------------------------------
    def set_active(self, active: bool) -> None:
        """Tell the hotkey whether dictation is running (idle: double tap starts; active: a
        single tap stops)."""
        with self._lock:
            self.detector.set_active(active)

    def take_last_key(self) -> str | None:
        """The last key (not a modifier, not the hotkey, not the app's own typing) the user
        pressed since the previous call, as :func:`key_name` names it; None: none."""
        with self._lock:
            key, self._last_key = self._last_key, None
        return key

    def hold_since(self) -> float | None:
        """See :meth:`DoubleTapDetector.hold_since` (now, on ``clock``)."""
        with self._lock:
            return self.detector.hold_since(self._clock())

    @contextlib.contextmanager
    def muted(self, tail_s: float = 0.25) -> Iterator[None]:
        """Mute the hotkey while the app types, and ``tail_s`` seconds after, so its own
        keystrokes (which X RECORD reports back a little later) never count."""
        with self._lock:
            self.detector.muted = True
        try:
            yield
        finally:
            with self._lock:
                self.detector.muted = False
                self.detector.mute_until(self._clock() + tail_s)

    # --- listener thread ------------------------------------------------------------------
    def _on_press(self, key: Any, injected: bool = False) -> None:
        self._feed(key, injected, pressed=True)

    def _on_release(self, key: Any, injected: bool = False) -> None:
        self._feed(key, injected, pressed=False)

    def _feed(self, key: Any, injected: bool, pressed: bool) -> None:
        # pynput >= 1.8 passes `injected`: True for keys typed by a pynput Controller of this
        # process (reported directly); they come back through X RECORD as injected=False too.
        if injected or self._stopping.is_set():
            return
        t = self._clock()
        if self._event_ms is not None:
            t = self._server_clock.to_local(int(self._event_ms), t)
        name = key_name(key)
        if not self._live.is_set():
            if name == self._probe_key:
                self._probe_heard.set()
            return
        with self._lock:
            if pressed and name != self.key and name not in MODIFIER_KEYS \
                    and not self.detector.is_muted(t):
                self._last_key = name
            feed = self.detector.press if pressed else self.detector.release
            action = feed(name, t)
            at = self.detector.action_at
            self._schedule_poll()
        self._emit(action, at)

    def _schedule_poll(self) -> None:
        """(Lock held) arrange a :meth:`DoubleTapDetector.poll` at its next deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.detector.next_deadline()
        if deadline is None or self._stopping.is_set():
            return
        self._timer = threading.Timer(max(0.0, deadline - self._clock()) + 0.001, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            action = self.detector.poll(self._clock())
            at = self.detector.action_at
            if action is None and self.detector.next_deadline() is not None:
                self._schedule_poll()  # woke a little early
        self._emit(action, at)

    def _emit(self, action: Action | None, at: float | None) -> None:
        if action is None or self._stopping.is_set():
            return
        try:
            self._on_action(action, self._clock() if at is None else at)
        except Exception:  # a failing callback must not kill the listener thread
            log.exception("hotkey action handler failed for %s", action)

    def _become_live(self, keyboard: Any) -> None:
        """pynput marks the xorg listener ready *before* it enables X RECORD, so keys sent right
        after ``wait()`` can be lost. Tap the probe key until one comes back through the
        listener, let the other probe taps drain, then report live."""
        # Listener.wait() has no timeout and never returns if the thread died starting up
        # (e.g. no X RECORD extension): wait on a helper thread and watch the listener.
        waiter = threading.Thread(target=self._listener.wait, name="hotkey-wait", daemon=True)
        waiter.start()
        while waiter.is_alive():
            waiter.join(0.05)
            if self._stopping.is_set():
                return
            if waiter.is_alive() and not self._listener.is_alive():
                self._fail("the keyboard listener stopped while starting (see the log above)")
                return
        if not keyboard.Listener.__module__.endswith("_xorg"):
            # win32/darwin listeners hear keys once ready, and report our own probe keys as
            # injected=True only, so probing would never succeed there
            self._go_live()
            return
        controller = keyboard.Controller()
        probe = getattr(keyboard.Key, self._probe_key)
        deadline = self._clock() + self._probe_timeout_s
        while not self._probe_heard.wait(0.05):
            if self._stopping.is_set():
                return
            if self._clock() > deadline or not self._listener.is_alive():
                self._fail(f"the keyboard listener heard none of its probe keys within "
                           f"{self._probe_timeout_s:g} s")
                return
            controller.press(probe)
            controller.release(probe)
        time.sleep(0.1)  # probe taps still in flight arrive now and are dropped (not live yet)
        self._go_live()

    def _fail(self, what: str) -> None:
        self.error = DictationError(f"{what}; the global hotkey cannot work in this session (on "
                                    "Wayland, bind `dictation toggle` to a desktop shortcut "
                                    "instead)")
        log.error("%s", self.error)

    def _go_live(self) -> None:
        if self._stopping.is_set():
            return
        self._live.set()
        log.info("hotkey listener live (key %s)", self.key)
        if self._on_live is not None:
            try:
                self._on_live()
            except Exception:
                log.exception("hotkey on_live callback failed")


def _pynput_keyboard() -> Any:
    """Import ``pynput.keyboard`` (it opens the X display on import)."""
    try:
        from pynput import keyboard
    except ImportError as exc:
        raise DictationError(
            f"the global hotkey is not available here: {str(exc).splitlines()[0]}. It needs an "
            "X11 session (DISPLAY set), macOS or Windows; on Wayland bind `dictation toggle` to "
            "a desktop shortcut instead") from exc
    return keyboard
