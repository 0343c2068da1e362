"""Paste text on Wayland: put it on the clipboard with ``wl-copy``, press Ctrl+V (Ctrl+Shift+V in
terminals), and give the user's clipboard back only if nothing else changed it meanwhile.

One paste per call however long the text, and exact for any Unicode (the target application
reads UTF-8 from the clipboard), so terminals get whole phrases this way. The paste keys go
through wtype (wlroots compositors; padded for the GTK 3 shortcut quirk, see
:mod:`dictation.inject.wtype`) or, on GNOME and KDE, ydotool. ``wl-copy``/``wl-paste`` need no
keyboard focus (wlr-data-control, or the focused-window fallback of wl-clipboard).

The previous clipboard (its best format: UTF-8 text, else an image or another MIME type) is
read with ``wl-paste`` before and written back :data:`RESTORE_DELAY_S` after the paste, but
only while the clipboard still holds our text: when the user (or another program) copied
something in between, that newer content stays.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from dictation.errors import InjectionError
from dictation.inject.clipboard import ClipboardContent, _set_owner, choose_target
from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

log = logging.getLogger(__name__)

NAME = "wlclipboard"

TEXT_TYPE = "text/plain;charset=utf-8"
RESTORE_DELAY_S = 0.3
"""Seconds after the paste keys before the old clipboard is restored: the application reads
the clipboard only when it handles the key event."""
OWNERSHIP_TIMEOUT_S = 2.0
"""How long wl-copy may take to own the clipboard before the paste keys are pressed (s)."""
READ_TIMEOUT_S = 3.0
"""How long a clipboard owner may take to answer a read (seconds)."""

PasteKeys = Callable[[Sequence[str]], None]
"""Presses a key combo such as ``("ctrl", "shift", "v")`` in the focused window."""


def read_clipboard(*, runner: Runner = subprocess.run) -> ClipboardContent | None:
    """The clipboard's content in its best format, or None when it is empty (or holds nothing
    that can be restored)."""
    listed = run_tool(["wl-paste", "--list-types"], what="reading the clipboard",
                      runner=runner, timeout_s=READ_TIMEOUT_S, check=False)
    if listed.returncode != 0:  # "Nothing is copied"
        return None
    target = choose_target(listed.stdout.decode("utf-8", "replace").split())
    if target is None:
        return None
    done = run_tool(["wl-paste", "--no-newline", "--type", target],
                    what="reading the clipboard", runner=runner, timeout_s=READ_TIMEOUT_S)
    return ClipboardContent(target, done.stdout)


def write_clipboard(content: ClipboardContent | None, *, runner: Runner = subprocess.run) -> None:
    """Make ``content`` the clipboard (None: clear it). wl-copy stays in the background serving
    it until something else takes the clipboard."""
    if content is None:
        run_tool(["wl-copy", "--clear"], what="clearing the clipboard", runner=runner)
        return
    target = TEXT_TYPE if content.target in ("UTF8_STRING", "STRING", "TEXT") else content.target
    _set_owner(["wl-copy", "--type", target], content.data, "setting the clipboard", runner)


def paste_keys(env: Mapping[str, str] | None = None,
               which: Callable[[str], str | None] = shutil.which) -> tuple[PasteKeys | None, str]:
    """How the paste keys are pressed here: (wtype's or ydotool's ``press_combo``, its name),
    or (None, why neither works)."""
    from dictation.inject import wtype, ydotool

    why_wtype = wtype.available(env, which)
    if why_wtype is None:
        return wtype.press_combo, "wtype"
    why_ydotool = ydotool.available(env, which)
    if why_ydotool is None:
        return ydotool.press_combo, "ydotool"
    return None, f"no way to press the paste keys (wtype: {why_wtype}; ydotool: {why_ydotool})"


def available(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None if pasting works here, else the reason."""
    env = os.environ if env is None else env
    if not env.get("WAYLAND_DISPLAY"):
        return "not a Wayland session (WAYLAND_DISPLAY is not set)"
    missing = [tool for tool in ("wl-copy", "wl-paste") if which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (Debian/Ubuntu: apt install "
                "wl-clipboard)")
    press, why = paste_keys(env, which)
    return None if press is not None else why


def paste(
    text: str,
    *,
    terminal: bool,
    press: PasteKeys,
    runner: Runner = subprocess.run,
    restore_delay_s: float = RESTORE_DELAY_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Paste ``text`` (as given) with ``press`` (Ctrl+V, or Ctrl+Shift+V when ``terminal``);
    returns whether the previous clipboard was restored (False: something else took the
    clipboard meanwhile, and its content stays)."""
    previous = read_clipboard(runner=runner)
    data = text.encode()
    try:
        write_clipboard(ClipboardContent(TEXT_TYPE, data), runner=runner)
        deadline = clock() + OWNERSHIP_TIMEOUT_S
        while (now := read_clipboard(runner=runner)) is None or now.data != data:
            if clock() > deadline:
                raise InjectionError(
                    f"pasting failed: the clipboard did not take the text within "
                    f"{OWNERSHIP_TIMEOUT_S:g} s (is a clipboard manager rewriting it?)")
            sleep(0.01)
        press(("ctrl", "shift", "v") if terminal else ("ctrl", "v"))
        sleep(restore_delay_s)
    finally:
        current = read_clipboard(runner=runner)
        ours = current is not None and current.data == data
        if ours:
            write_clipboard(previous, runner=runner)
        else:
            log.info("the clipboard changed while pasting: the newer content is kept")
    return ours


def type_text(text: str, *, terminal: bool = False, runner: Runner = subprocess.run) -> None:
    """Paste ``text`` (NFC-normalised) into the focused Wayland window. Raises
    ``InjectionError``."""
    text = prepare_text(text)
    if not text:
        return
    press, why = paste_keys()
    if press is None:
        raise InjectionError(f"pasting failed: {why}")
    paste(text, terminal=terminal, press=press, runner=runner)
