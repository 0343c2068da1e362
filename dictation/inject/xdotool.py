"""Type text on X11 with ``xdotool type`` (the fallback of :mod:`dictation.inject.xtest`).

xdotool types non-ASCII characters by binding them to a scratch keycode; that races with
the target application, so such text is typed slowly (:data:`UNICODE_KEY_DELAY_MS`).

The text goes to xdotool on stdin (``--file -``), not on its command line, so other local
users cannot read dictated text in the process list. ``--clearmodifiers`` is *not* used: it
releases held modifiers and presses them again afterwards, and that synthetic Ctrl press and
release would reach the app's own tap-detecting hotkey listener; the user is not holding keys
while dictating (the hotkey is a tap), so there is nothing to clear.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping

from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

NAME = "xdotool"

KEY_DELAY_MS = 12
"""xdotool's pause between keystrokes for ASCII text (milliseconds; its own default)."""
UNICODE_KEY_DELAY_MS = 80
"""Pause between keystrokes (ms) when the text has non-ASCII characters. xdotool binds each
such character to a scratch keycode and unbinds it right after the key release; a client that
has not handled the key by then types nothing or the wrong character. Measured on Xvfb + Tk:
12 ms lost characters in most runs, 40 ms in 2 of 12, 60 ms in none of 12."""


def key_delay_ms(text: str) -> int:
    """The keystroke delay (milliseconds) that types ``text`` reliably."""
    return KEY_DELAY_MS if text.isascii() else UNICODE_KEY_DELAY_MS


def build_command(text: str) -> list[str]:
    """The xdotool command line for ``text``; the text itself is written to its stdin."""
    return ["xdotool", "type", "--delay", str(key_delay_ms(text)), "--file", "-"]


def available(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None if xdotool can type here, else the reason (not installed, no X display)."""
    env = os.environ if env is None else env
    if not env.get("DISPLAY"):
        return "no X11 display (DISPLAY is not set)"
    if which("xdotool") is None:
        return "xdotool is not installed (Debian/Ubuntu: apt install xdotool)"
    return None


def type_text(text: str, *, terminal: bool = False, runner: Runner = subprocess.run) -> None:
    """Type ``text`` (NFC-normalised) into the focused X11 window with xdotool. ``terminal``
    changes nothing (key events type the same into terminals). Raises ``InjectionError`` if
    xdotool is missing, hangs or exits non-zero."""
    del terminal
    text = prepare_text(text)
    if not text:
        return
    run_tool(
        build_command(text), what="typing with xdotool", input_bytes=text.encode(), runner=runner
    )


def erase(count: int, *, runner: Runner = subprocess.run) -> None:
    """Press BackSpace ``count`` times in the focused X11 window with xdotool."""
    if count > 0:
        run_tool(["xdotool", "key", "--repeat", str(count), "--delay", str(KEY_DELAY_MS),
                  "BackSpace"], what="deleting with xdotool", runner=runner)
