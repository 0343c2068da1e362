"""Type text on Wayland with ``wtype`` (virtual-keyboard protocol: wlroots compositors such as
Sway and Hyprland; GNOME and KDE do not offer it, use :mod:`dictation.inject.ydotool` there).

wtype uploads a keymap holding exactly the characters it types, so any Unicode character is
typed. Newline and tab are sent as the Return and Tab keys (``-k``) between text chunks; text
chunks follow ``--`` so a leading ``-`` is not read as an option.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping

from dictation.errors import InjectionError
from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

NAME = "wtype"

_KEY_NAMES = {"\n": "Return", "\t": "Tab"}


def build_commands(text: str) -> list[list[str]]:
    """The wtype invocations that type ``text`` (prepared), in order: one per text chunk and
    one per newline/tab key."""
    commands: list[list[str]] = []
    for chunk in re.split(r"([\n\t])", text):
        if chunk in _KEY_NAMES:
            commands.append(["wtype", "-k", _KEY_NAMES[chunk]])
        elif chunk:
            commands.append(["wtype", "--", chunk])
    return commands


def available(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None if wtype can be tried here, else the reason (no Wayland session, not installed).
    Whether the compositor supports the virtual-keyboard protocol shows only when typing."""
    env = os.environ if env is None else env
    if not env.get("WAYLAND_DISPLAY"):
        return "not a Wayland session (WAYLAND_DISPLAY is not set)"
    if which("wtype") is None:
        return "wtype is not installed (Debian/Ubuntu: apt install wtype)"
    return None


def type_text(text: str, *, terminal: bool = False, runner: Runner = subprocess.run) -> None:
    """Type ``text`` (NFC-normalised) into the focused Wayland window. ``terminal`` changes
    nothing. Raises ``InjectionError`` (with a hint when the compositor lacks the protocol)."""
    del terminal
    text = prepare_text(text)
    for command in build_commands(text):
        try:
            run_tool(command, what="typing with wtype", runner=runner)
        except InjectionError as exc:
            if "virtual keyboard protocol" in str(exc):
                raise InjectionError(
                    f"{exc}. This compositor (e.g. GNOME, KDE) cannot take wtype's keys: "
                    "pick the 'ydotool' typing backend (needs the ydotoold service)"
                ) from exc
            raise
