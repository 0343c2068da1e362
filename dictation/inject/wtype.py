"""Type text on Wayland with ``wtype`` (virtual-keyboard protocol: wlroots compositors such as
Sway and Hyprland; GNOME and KDE do not offer it, use :mod:`dictation.inject.ydotool` there).

wtype uploads a keymap holding exactly the characters it types, so any Unicode character is
typed exactly (measured on the harness: 'héllo wörld ✓ 日本 🎉', 50 of 50 runs). Newline and tab
are sent as the Return and Tab keys (``-k``) between text chunks; text chunks follow ``--`` so
a leading ``-`` is not read as an option.

Key combinations (:func:`combo_command`, used to paste) are padded with the release of a key
never pressed (``-p F24``): GTK 3 ignores a shortcut on the highest keycode of wtype's keymap,
which is where wtype puts the last key it uses, so ``wtype -M ctrl -k v -m ctrl`` pastes
nothing into GTK apps while ``wtype -M ctrl -k v -m ctrl -p F24`` does (harness README).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence

from dictation.errors import InjectionError
from dictation.inject.process import Runner, run_tool
from dictation.inject.text import prepare_text

NAME = "wtype"

_KEY_NAMES = {"\n": "Return", "\t": "Tab"}
GTK_PAD_KEY = "F24"
"""Released (never pressed) after every combo: one more key in wtype's keymap, so the combo's
own key is not the keymap's last (GTK 3 shortcut quirk)."""
_MODIFIERS = {"ctrl": "ctrl", "control": "ctrl", "shift": "shift", "alt": "alt",
              "super": "logo", "logo": "logo", "altgr": "altgr"}

NO_PROTOCOL_HINT = (
    "this compositor (e.g. GNOME, KDE) cannot take wtype's keys: pick the 'ydotool' typing "
    "backend (needs the ydotoold service)")


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


def combo_command(combo: Sequence[str]) -> list[str]:
    """The wtype command pressing ``combo`` (modifiers then one key, e.g. ``("ctrl", "shift",
    "v")``): modifiers down, the key tapped, modifiers up in reverse order, then the GTK pad
    (see the module docstring)."""
    *mods, key = combo
    try:
        names = [_MODIFIERS[m.lower()] for m in mods]
    except KeyError as exc:
        raise ValueError(f"unknown modifier {exc.args[0]!r} in {combo!r}") from None
    command = ["wtype"]
    for name in names:
        command += ["-M", name]
    command += ["-k", key]
    for name in reversed(names):
        command += ["-m", name]
    return [*command, "-p", GTK_PAD_KEY]


def available(
    env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which
) -> str | None:
    """None if wtype can be tried here, else the reason (no Wayland session, a desktop known
    to lack the virtual-keyboard protocol, not installed)."""
    from dictation.session import detect

    env = os.environ if env is None else env
    if not env.get("WAYLAND_DISPLAY"):
        return "not a Wayland session (WAYLAND_DISPLAY is not set)"
    session = detect(env, "linux")
    if not session.virtual_keyboard:
        name = {"gnome": "GNOME", "kde": "KDE"}[session.desktop]
        return f"{name} has no virtual-keyboard protocol for wtype"
    if which("wtype") is None:
        return "wtype is not installed (Debian/Ubuntu: apt install wtype)"
    return None


def _run(command: list[str], runner: Runner) -> None:
    try:
        run_tool(command, what="typing with wtype", runner=runner)
    except InjectionError as exc:
        if "virtual keyboard protocol" in str(exc):
            raise InjectionError(f"{exc}. {NO_PROTOCOL_HINT[0].upper()}{NO_PROTOCOL_HINT[1:]}"
                                 ) from exc
        raise


def type_text(text: str, *, terminal: bool = False, runner: Runner = subprocess.run) -> None:
    """Type ``text`` (NFC-normalised) into the focused Wayland window. ``terminal`` changes
    nothing. Raises ``InjectionError`` (with a hint when the compositor lacks the protocol)."""
    del terminal
    for command in build_commands(prepare_text(text)):
        _run(command, runner)


def erase(count: int, *, runner: Runner = subprocess.run) -> None:
    """Press BackSpace ``count`` times in the focused Wayland window (one wtype run)."""
    if count > 0:
        _run(["wtype", *(["-k", "BackSpace"] * count)], runner)


def press_combo(combo: Sequence[str], *, runner: Runner = subprocess.run) -> None:
    """Press a key combination (e.g. ``("ctrl", "v")``) in the focused window."""
    _run(combo_command(combo), runner)
