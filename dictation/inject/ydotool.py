"""Type text with ``ydotool type`` (Linux uinput: works on any Wayland compositor, and X11).

ydotool sends raw evdev key codes for a US keyboard layout, so it types only ASCII (and
types wrong characters where the desktop uses another layout); non-ASCII text is refused
before anything is typed. It talks to the ``ydotoold`` service through a socket: the
``YDOTOOL_SOCKET`` environment variable, else ``$XDG_RUNTIME_DIR/.ydotool_socket`` (ydotool
1.x), else ``/tmp/.ydotool_socket`` (ydotool 0.1.x).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from dictation.errors import InjectionError
from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

NAME = "ydotool"


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
        return "ydotool is not installed (Debian/Ubuntu: apt install ydotool)"
    candidates = socket_candidates(env)
    if not any(_is_socket(path) for path in candidates):
        where = " or ".join(str(path) for path in candidates)
        return (
            f"the ydotoold service is not running (no socket at {where}): start ydotoold "
            "(it needs write access to /dev/uinput)"
        )
    return None


def type_text(text: str, *, terminal: bool = False, runner: Runner = subprocess.run) -> None:
    """Type ``text`` (NFC-normalised, ASCII only) into the focused window. ``terminal`` changes
    nothing. Raises ``InjectionError`` for non-ASCII text or a failing ydotool."""
    del terminal
    text = prepare_text(text)
    if not text:
        return
    foreign = sorted({ch for ch in text if not ch.isascii()})
    if foreign:
        raise InjectionError(
            f"ydotool can only type ASCII, and this text has {''.join(foreign)!r}: nothing was "
            "typed; pick the 'wtype' typing backend if the compositor supports it, or paste "
            "the text from the clipboard"
        )
    run_tool(build_command(text), what="typing with ydotool", runner=runner)
