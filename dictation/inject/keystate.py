"""Whether the user holds a modifier key right now (X11), so typed text never turns into
shortcuts: a letter typed while the user's finger is on Right Ctrl (the stop tap) is Ctrl+letter
to the target application (Ctrl+A, Ctrl+W ...).

:class:`ModifierWatch` keeps one X connection (use it from one thread) and reads the keyboard's
key bitmap (``QueryKeymap``, one round trip) against the keycodes bound to Shift, Control, Mod1
(Alt), Mod4 (Super) and Mod5 (AltGr). Caps Lock and Num Lock are latched, not held, and are
ignored. Where there is no X display (Wayland, macOS, Windows) nothing is known and
:meth:`ModifierWatch.held` is always False.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from dictation.errors import FocusLost

log = logging.getLogger(__name__)

_HELD_ROWS = (0, 2, 3, 5, 6, 7)
"""Rows of the X modifier mapping that are held keys: Shift, Control, Mod1, Mod3, Mod4, Mod5."""


class ModifierWatch:
    """Tells whether a modifier key is down, and waits until none is."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._env = os.environ if env is None else env
        self._clock = clock
        self._sleep = sleep
        self._display: Any = None
        self._keycodes: frozenset[int] = frozenset()
        self._unavailable = False

    def _connect(self) -> bool:
        if self._display is not None:
            return True
        if self._unavailable:
            return False
        name = self._env.get("DISPLAY", "")
        if not name or self._env.get("WAYLAND_DISPLAY"):
            self._unavailable = True
            return False
        try:
            from Xlib.display import Display

            display = Display(name)
            mapping = display.get_modifier_mapping()
        except Exception as exc:  # no Xlib, no server: the state is unknown
            log.info("cannot watch modifier keys: %s", exc)
            self._unavailable = True
            return False
        self._display = display
        self._keycodes = frozenset(code for row in _HELD_ROWS for code in mapping[row] if code)
        return True

    def held(self) -> bool:
        """Whether any Shift/Ctrl/Alt/Super/AltGr key is down now (False when unknown)."""
        if not self._connect():
            return False
        try:
            keymap = self._display.query_keymap()
        except Exception as exc:  # the connection broke: reconnect next time
            log.info("modifier query failed: %s", exc)
            self.close()
            return False
        return any(keymap[code >> 3] >> (code & 7) & 1 for code in self._keycodes)

    def wait_released(self, timeout_s: float = 1.0, poll_s: float = 0.01) -> bool:
        """Wait up to ``timeout_s`` seconds until no modifier is held; True when none is."""
        deadline = self._clock() + timeout_s
        while self.held():
            if self._clock() >= deadline:
                return False
            self._sleep(poll_s)
        return True

    def close(self) -> None:
        display, self._display = self._display, None
        if display is not None:
            with contextlib.suppress(Exception):  # already broken
                display.close()


class GuardedXTestTyping:
    """XTEST typing (:mod:`dictation.inject.xtest`) that never presses a key while the user
    holds a modifier: before each character it waits until ``watch`` sees none held (at most
    ``timeout_s`` seconds, then it types anyway). One X connection per call. Given the target
    ``window``, it types each character only while the focus is inside it (see
    :mod:`dictation.inject.xtest`)."""

    name = "xtest"
    guards_focus = True
    """type_text(window=...) checks the focus for every character."""

    def __init__(self, watch: ModifierWatch, timeout_s: float = 1.0) -> None:
        self.watch = watch
        self.timeout_s = timeout_s

    def erase(self, count: int) -> None:
        """Press BackSpace ``count`` times, each once the user holds no modifier."""
        from dictation.inject.xtest import erase

        for _ in range(count):
            self.watch.wait_released(self.timeout_s)
            erase(1)

    def type_text(self, text: str, terminal: bool = False, window: int | None = None) -> None:
        """Type ``text`` (NFC-normalised) into the focused window (with ``window``: only while
        the focus is inside it, else :class:`~dictation.errors.FocusLost`); raises
        InjectionError."""
        from dictation.inject.text import prepare_text
        from dictation.inject.xtest import open_typer

        del terminal  # key events type the same into terminals
        text = prepare_text(text)
        if not text:
            return
        with open_typer() as typer:
            for typed, ch in enumerate(text):
                self.watch.wait_released(self.timeout_s)
                try:
                    typer.type_text(ch, window)
                except FocusLost as exc:
                    raise FocusLost(str(exc), typed) from exc
