"""Type text on X11 by pasting it: set the clipboard, press Ctrl+V, restore the clipboard.

Fast (one paste per call, however long the text) and exact, but it briefly replaces the
user's clipboard: the previous content (its best single format: text, else an image or other
MIME type) is saved with xclip (or xsel, text only) and put back :data:`RESTORE_DELAY_S` after
the paste. Terminals paste with Ctrl+Shift+V (``terminal=True``). The paste keys go through
XTEST. :func:`copy_to_clipboard` is the "rescue" path: it leaves text on the clipboard for the
user to paste (X11, Wayland via wl-copy, macOS via pbcopy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dictation.errors import InjectionError
from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

NAME = "clipboard"

RESTORE_DELAY_S = 0.3
"""Wait after the paste keys before restoring the old clipboard (seconds): the application
requests the clipboard content only when it handles the key event."""
OWNERSHIP_TIMEOUT_S = 2.0
"""How long to wait for xclip/xsel to own the clipboard before pressing the paste keys (s)."""
READ_TIMEOUT_S = 3.0
"""How long a clipboard owner may take to answer a read (seconds)."""

_TEXT_TARGET = "UTF8_STRING"
_PREFERRED_TARGETS = (_TEXT_TARGET, "text/plain;charset=utf-8", "image/png")


@dataclass(frozen=True)
class ClipboardContent:
    """One format of the clipboard: its X selection target (``UTF8_STRING``, ``image/png``,
    ...) and the bytes."""

    target: str
    data: bytes


def _tool(which: Callable[[str], str | None]) -> str:
    for tool in ("xclip", "xsel"):
        if which(tool) is not None:
            return tool
    raise InjectionError(
        "no X11 clipboard tool: install xclip (Debian/Ubuntu: apt install xclip) or xsel"
    )


def available(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None if clipboard pasting can be used here, else the reason."""
    env = os.environ if env is None else env
    if not env.get("DISPLAY"):
        return "no X11 display (DISPLAY is not set)"
    if which("xclip") is None and which("xsel") is None:
        return "neither xclip nor xsel is installed (Debian/Ubuntu: apt install xclip)"
    try:
        from dictation.inject import xtest  # python-xlib: not installed off Linux
    except ImportError as exc:
        return f"python-xlib cannot be imported: {exc}"
    return xtest.available(env)


def choose_target(targets: list[str]) -> str | None:
    """The format worth saving from the clipboard's advertised ``targets``: UTF-8 text first,
    then PNG, another MIME type, then legacy ``STRING``; None if nothing is restorable."""
    for target in _PREFERRED_TARGETS:
        if target in targets:
            return target
    for target in targets:
        if "/" in target:
            return target
    return "STRING" if "STRING" in targets else None


def read_clipboard(
    *, runner: Runner = subprocess.run, which: Callable[[str], str | None] = shutil.which
) -> ClipboardContent | None:
    """The clipboard's content in its best format, or None if the clipboard is empty (or
    holds nothing that can be restored)."""
    tool = _tool(which)
    if tool == "xsel":
        done = run_tool(
            ["xsel", "--clipboard", "--output"],
            what="reading the clipboard",
            runner=runner,
            timeout_s=READ_TIMEOUT_S,
        )
        return ClipboardContent(_TEXT_TARGET, done.stdout) if done.stdout else None
    base = ["xclip", "-selection", "clipboard", "-o", "-t"]
    listed = run_tool(
        [*base, "TARGETS"],
        what="reading the clipboard",
        runner=runner,
        timeout_s=READ_TIMEOUT_S,
        check=False,
    )
    if listed.returncode != 0:  # nobody owns the clipboard
        return None
    target = choose_target(listed.stdout.decode("utf-8", "replace").split())
    if target is None:
        return None
    done = run_tool(
        [*base, target], what="reading the clipboard", runner=runner, timeout_s=READ_TIMEOUT_S
    )
    return ClipboardContent(target, done.stdout)


def _set_owner(command: list[str], data: bytes, what: str, runner: Runner) -> None:
    # The tool forks a child that keeps serving the clipboard and inherits stdout/stderr:
    # pipes would make us wait for that child, so stderr goes to a file.
    with tempfile.TemporaryFile() as err:
        try:
            run_tool(
                command,
                what=what,
                input_bytes=data,
                runner=runner,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        except InjectionError as exc:
            err.seek(0)
            detail = err.read().decode("utf-8", "replace").strip()
            raise InjectionError(f"{exc}: {detail}" if detail else str(exc)) from exc


def write_clipboard(
    content: ClipboardContent | None,
    *,
    runner: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
) -> None:
    """Make ``content`` the clipboard (None: empty it). xclip/xsel stay in the background
    serving it until something else takes the clipboard."""
    tool = _tool(which)
    what = "setting the clipboard"
    if tool == "xsel":
        if content is None:
            run_tool(["xsel", "--clipboard", "--clear"], what=what, runner=runner)
        else:
            _set_owner(["xsel", "--clipboard", "--input"], content.data, what, runner)
        return
    content = content or ClipboardContent(_TEXT_TARGET, b"")
    _set_owner(
        ["xclip", "-selection", "clipboard", "-t", content.target, "-i"],
        content.data,
        what,
        runner,
    )


def _wait_for_clipboard(
    expected: ClipboardContent,
    runner: Runner,
    which: Callable[[str], str | None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    # xclip/xsel take the clipboard in their forked child, possibly after the parent exited.
    deadline = clock() + OWNERSHIP_TIMEOUT_S
    while read_clipboard(runner=runner, which=which) != expected:
        if clock() > deadline:
            raise InjectionError(
                f"pasting failed: the clipboard did not take the text within "
                f"{OWNERSHIP_TIMEOUT_S:g} s (is a clipboard manager rewriting it?)"
            )
        sleep(0.01)


def type_text(
    text: str,
    *,
    terminal: bool = False,
    restore_delay_s: float = RESTORE_DELAY_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Paste ``text`` (NFC-normalised) into the focused X11 window: Ctrl+V, or Ctrl+Shift+V
    when ``terminal``. The previous clipboard is restored afterwards, also on failure."""
    from Xlib import XK

    from dictation.inject import xtest

    text = prepare_text(text)
    if not text:
        return
    which = shutil.which
    runner: Runner = subprocess.run
    previous = read_clipboard(runner=runner, which=which)
    ours = ClipboardContent(_TEXT_TARGET, text.encode())
    try:
        write_clipboard(ours, runner=runner, which=which)
        _wait_for_clipboard(ours, runner, which, clock, sleep)
        keys = [XK.XK_Control_L, XK.XK_Shift_L, XK.XK_v] if terminal else [XK.XK_Control_L, XK.XK_v]
        with xtest.open_typer() as typer:
            typer.press_combo(keys)
        sleep(restore_delay_s)
    finally:
        write_clipboard(previous, runner=runner, which=which)


def copy_to_clipboard(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    runner: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
) -> None:
    """Leave ``text`` (NFC-normalised) on the clipboard for the user to paste: wl-copy on
    Wayland, xclip/xsel on X11, pbcopy on macOS. Raises ``InjectionError`` if no tool works."""
    env = os.environ if env is None else env
    data = unicodedata.normalize("NFC", text).encode()
    what = "copying the text to the clipboard"
    if platform == "darwin":
        run_tool(["pbcopy"], what=what, input_bytes=data, runner=runner)
    elif env.get("WAYLAND_DISPLAY") and which("wl-copy") is not None:
        _set_owner(["wl-copy"], data, what, runner)
    elif env.get("DISPLAY"):
        write_clipboard(ClipboardContent(_TEXT_TARGET, data), runner=runner, which=which)
    else:
        raise InjectionError(
            "cannot copy the text to the clipboard: no X11 display, and no Wayland "
            "session with wl-copy (Debian/Ubuntu: apt install wl-clipboard)"
        )
