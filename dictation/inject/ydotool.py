"""Type text with ``ydotool type`` (Linux uinput: works on any Wayland compositor, and X11).

ydotool sends raw evdev key codes for a US keyboard layout, so it types only ASCII (and
types wrong characters where the desktop uses another layout). Non-ASCII runs of the text are
pasted instead (wl-copy + Ctrl+V pressed through ydotool, :mod:`dictation.inject.wlclipboard`)
when wl-clipboard is there; otherwise non-ASCII text is refused before anything is typed.

This is the typing route on GNOME and KDE, whose compositors offer no virtual-keyboard
protocol: :data:`ENABLE_HINT` tells the user what to set up.

It talks to the ``ydotoold`` service through a socket: the
``YDOTOOL_SOCKET`` environment variable, else ``$XDG_RUNTIME_DIR/.ydotool_socket`` (ydotool
1.x), else ``/tmp/.ydotool_socket`` (ydotool 0.1.x).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dictation.errors import InjectionError
from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

NAME = "ydotool"

ENABLE_HINT = (
    "install ydotool (Debian/Ubuntu: apt install ydotool) and run its service ydotoold as a "
    "user that may write /dev/uinput (e.g. `sudo systemctl enable --now ydotool`, or a udev "
    "rule `KERNEL==\"uinput\", GROUP=\"input\", MODE=\"0660\"` and your user in the input "
    "group)")
"""What a GNOME/KDE user must enable so the app can type."""

KEY_CODES = {"ctrl": 29, "shift": 42, "alt": 56, "super": 125, "v": 47}
"""Linux input event codes (linux/input-event-codes.h) of the keys :func:`press_combo` uses."""


def socket_candidates(env: Mapping[str, str]) -> list[Path]:
    """Where ydotool looks for ydotoold's socket, first match wins."""
    if env.get("YDOTOOL_SOCKET"):
        return [Path(env["YDOTOOL_SOCKET"])]
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / ".ydotool_socket")
    candidates.append(Path("/tmp/.ydotool_socket"))
    return candidates


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def build_command(text: str) -> list[str]:
    """The ydotool command line that types ``text`` (prepared, ASCII)."""
    return ["ydotool", "type", "--", text]


def available(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None if ydotool can type here, else the reason (not installed, ydotoold not running)."""
    env = os.environ if env is None else env
    if which("ydotool") is None:
        return f"ydotool is not installed: {ENABLE_HINT}"
    candidates = socket_candidates(env)
    if not any(_is_socket(path) for path in candidates):
        where = " or ".join(str(path) for path in candidates)
        return (
            f"the ydotoold service is not running (no socket at {where}): {ENABLE_HINT}"
        )
    return None


def combo_command(combo: Sequence[str]) -> list[str]:
    """``ydotool key`` (1.x syntax, CODE:1 press, CODE:0 release) pressing ``combo``."""
    codes = [KEY_CODES[name.lower()] for name in combo]
    return ["ydotool", "key", *[f"{c}:1" for c in codes], *[f"{c}:0" for c in reversed(codes)]]


def press_combo(combo: Sequence[str], *, runner: Runner = subprocess.run) -> None:
    """Press a key combination such as ``("ctrl", "v")`` through ydotoold."""
    run_tool(combo_command(combo), what="pressing keys with ydotool", runner=runner)


def _runs(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into (is_ascii, run) pieces."""
    return [(run[0].isascii(), run) for run in re.findall(r"[\x00-\x7f]+|[^\x00-\x7f]+", text)]


def type_text(text: str, *, terminal: bool = False, runner: Runner = subprocess.run,
              paste: Callable[[str], None] | None = None) -> None:
    """Type ``text`` (NFC-normalised) into the focused window: ASCII with ``ydotool type``,
    other runs pasted (``paste``, default: wl-copy + Ctrl+V through ydotool when
    wl-clipboard is installed). Raises ``InjectionError`` when non-ASCII text cannot be pasted
    (before anything is typed) or ydotool fails."""
    text = prepare_text(text)
    if not text:
        return
    runs = _runs(text)
    foreign = sorted({ch for is_ascii, run in runs if not is_ascii for ch in run})
    if foreign and paste is None:
        paste = _default_paste(terminal, runner)
    if foreign and paste is None:
        raise InjectionError(
            f"ydotool can only type ASCII, and this text has {''.join(foreign)!r}: nothing was "
            "typed; install wl-clipboard so such text is pasted, or pick the 'wtype' typing "
            "backend if the compositor supports it"
        )
    for is_ascii, run in runs:
        if is_ascii:
            run_tool(build_command(run), what="typing with ydotool", runner=runner)
        else:
            assert paste is not None
            paste(run)


def _default_paste(terminal: bool, runner: Runner) -> Callable[[str], None] | None:
    if not os.environ.get("WAYLAND_DISPLAY") or shutil.which("wl-copy") is None \
            or shutil.which("wl-paste") is None:
        return None
    from dictation.inject import wlclipboard

    def press(combo: Sequence[str]) -> None:
        press_combo(combo, runner=runner)

    def paste(run: str) -> None:
        wlclipboard.paste(run, terminal=terminal, press=press, runner=runner)

    return paste
