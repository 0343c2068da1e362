"""``dictation shortcut [--install]``: the desktop shortcut that runs ``dictation toggle``.

Wayland gives applications no global keys, so the desktop itself must run the app's control
command. :func:`plan` says what to bind for the detected desktop and where it goes;
:func:`install` writes it there without touching the user's own settings:

=========  ===============================================================================
desktop    where the binding goes
=========  ===============================================================================
sway       ``$XDG_CONFIG_HOME/dictation/sway-shortcut.conf`` (``bindsym``), included from a
           marked block at the end of ``$XDG_CONFIG_HOME/sway/config``; ``swaymsg reload``
i3         a marked block with the ``bindsym`` at the end of ``$XDG_CONFIG_HOME/i3/config``;
           ``i3-msg reload``
Hyprland   a marked block with a ``bind =`` line at the end of
           ``$XDG_CONFIG_HOME/hypr/hyprland.conf`` (Hyprland reloads it by itself)
GNOME      a custom keybinding of its own path (``.../custom-keybindings/dictation/``) added
           to the list with ``gsettings``; the user's other custom keybindings are kept
KDE        a launcher ``$XDG_DATA_HOME/applications/dictation-toggle.desktop`` and its
           ``_launch`` key in ``kglobalshortcutsrc`` (``kwriteconfig6``/``5``), group
           ``[services][dictation-toggle.desktop]`` only
=========  ===============================================================================

The marked block (:data:`BEGIN` ... :data:`END`) is replaced on every install; lines outside
it are never changed. A key combination the user's config already binds outside the block is
refused (pick another with ``--key``). If sway/i3 have no user config yet (they then read the
system one), the system config is copied first, as their documentation recommends, so that
adding the block does not replace the whole default configuration.

Import-light (standard library only): it runs from the command line.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dictation.errors import DictationError
from dictation.session import DesktopSession, detect

DEFAULT_KEY = "ctrl+alt+d"
BEGIN = "# >>> dictation shortcut (written by `dictation shortcut --install`) >>>"
END = "# <<< dictation shortcut <<<"
GNOME_SCHEMA = "org.gnome.settings-daemon.plugins.media-keys"
GNOME_PATH = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/dictation/"
KDE_DESKTOP_FILE = "dictation-toggle.desktop"
SYSTEM_CONFIGS = {"sway": Path("/etc/sway/config"), "i3": Path("/etc/i3/config")}

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class ShortcutError(DictationError):
    """The shortcut cannot be written (unknown desktop, a clash with the user's bindings)."""


@dataclass(frozen=True)
class Combo:
    """A key combination: modifiers (ctrl, alt, shift, super) and one key."""

    modifiers: tuple[str, ...]
    key: str

    @classmethod
    def parse(cls, text: str) -> Combo:
        parts = [p.strip().lower() for p in re.split(r"[+ ]", text) if p.strip()]
        if not parts:
            raise ShortcutError(f"empty key combination {text!r}")
        aliases = {"control": "ctrl", "mod1": "alt", "mod4": "super", "logo": "super",
                   "win": "super", "meta": "super"}
        mods = tuple(aliases.get(p, p) for p in parts[:-1])
        bad = [m for m in mods if m not in ("ctrl", "alt", "shift", "super")]
        if bad:
            raise ShortcutError(f"unknown modifier {bad[0]!r} in {text!r} (use ctrl, alt, "
                                "shift, super)")
        return cls(mods, parts[-1])

    def human(self) -> str:
        """E.g. ``Ctrl+Alt+D``."""
        return "+".join([*(m.capitalize() for m in self.modifiers), self.key.upper()])

    def sway(self) -> str:
        names = {"ctrl": "Ctrl", "alt": "Mod1", "shift": "Shift", "super": "Mod4"}
        return "+".join([*(names[m] for m in self.modifiers), self.key])

    def hyprland(self) -> tuple[str, str]:
        return " ".join(m.upper() for m in self.modifiers), self.key.upper()

    def gnome(self) -> str:
        names = {"ctrl": "<Control>", "alt": "<Alt>", "shift": "<Shift>", "super": "<Super>"}
        return "".join(names[m] for m in self.modifiers) + self.key

    def kde(self) -> str:
        names = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "super": "Meta"}
        return "+".join([*(names[m] for m in self.modifiers), self.key.upper()])


def default_command() -> str:
    """``dictation toggle`` with the full path of this installation's entry point (desktop
    shortcuts often run without the user's shell PATH)."""
    exe = shutil.which("dictation")
    if exe is None:
        return f"{shlex.quote(sys.executable)} -m dictation toggle"
    return f"{shlex.quote(exe)} toggle"


@dataclass(frozen=True)
class Plan:
    """What to bind for one desktop: ``lines`` (what goes into the config / the settings),
    ``where`` (the files or settings written), ``manual`` (how to do it by hand)."""

    desktop: str
    combo: Combo
    command: str
    lines: tuple[str, ...]
    where: str
    manual: str

    def describe(self) -> str:
        return "\n".join([f"desktop: {self.desktop}", f"shortcut: {self.combo.human()} -> "
                          f"{self.command}", f"goes into: {self.where}", "", *self.lines, "",
                          self.manual])


def _config_home(env: Mapping[str, str]) -> Path:
    value = env.get("XDG_CONFIG_HOME", "")
    return Path(value) if os.path.isabs(value) else Path(env.get("HOME", "~")).expanduser() / \
        ".config"


def _data_home(env: Mapping[str, str]) -> Path:
    value = env.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path(env.get("HOME", "~")).expanduser() / \
        ".local" / "share"


def wm_config_path(desktop: str, env: Mapping[str, str]) -> Path:
    """The user's config file of sway, i3 or Hyprland (the first existing of the places they
    read, else the XDG one)."""
    home = Path(env.get("HOME", "~")).expanduser()
    xdg = _config_home(env)
    candidates = {
        "sway": [xdg / "sway" / "config", home / ".sway" / "config"],
        "i3": [xdg / "i3" / "config", home / ".i3" / "config"],
        "hyprland": [xdg / "hypr" / "hyprland.conf"],
    }[desktop]
    return next((p for p in candidates if p.is_file()), candidates[0])


def plan(session: DesktopSession, *, key: str = DEFAULT_KEY, command: str | None = None,
         env: Mapping[str, str] | None = None) -> Plan:
    """The binding for ``session``'s desktop (see the module docstring)."""
    env = os.environ if env is None else env
    combo = Combo.parse(key)
    command = command or default_command()
    desktop = session.desktop
    if desktop == "sway":
        include = _config_home(env) / "dictation" / "sway-shortcut.conf"
        return Plan("sway", combo, command, (f"bindsym {combo.sway()} exec {command}",),
                    f"{include}, included from {wm_config_path('sway', env)}",
                    "By hand: add that line to your sway config, then `swaymsg reload`.")
    if desktop == "i3":
        return Plan("i3", combo, command,
                    (f"bindsym {combo.sway()} exec --no-startup-id {command}",),
                    str(wm_config_path("i3", env)),
                    "By hand: add that line to your i3 config, then `i3-msg reload`.")
    if desktop == "hyprland":
        mods, hkey = combo.hyprland()
        return Plan("hyprland", combo, command, (f"bind = {mods}, {hkey}, exec, {command}",),
                    str(wm_config_path("hyprland", env)),
                    "By hand: add that line to hyprland.conf (Hyprland reloads it).")
    if desktop == "gnome":
        return Plan("gnome", combo, command,
                    ("name: Dictation", f"command: {command}", f"binding: {combo.gnome()}"),
                    f"gsettings {GNOME_SCHEMA} custom-keybindings ({GNOME_PATH})",
                    "By hand: Settings > Keyboard > View and Customise Shortcuts > Custom "
                    "Shortcuts > +, with that command and shortcut.")
    if desktop == "kde":
        desktop_file = _data_home(env) / "applications" / KDE_DESKTOP_FILE
        return Plan("kde", combo, command, (f"Exec={command}", f"_launch={combo.kde()}"),
                    f"{desktop_file} and kglobalshortcutsrc [services][{KDE_DESKTOP_FILE}]",
                    "By hand: System Settings > Shortcuts > Add New > Command or Script, with "
                    "that command and shortcut.")
    raise ShortcutError(
        f"no known way to add a shortcut on this desktop ({session.label()}): bind "
        f"`{command}` to a key in your desktop's keyboard settings (sway, i3, Hyprland, GNOME "
        "and KDE are supported; override the detection with --desktop)")


# --------------------------------------------------------------------------- files


def replace_block(text: str, block_lines: Sequence[str]) -> str:
    """``text`` with the marked block replaced by ``block_lines`` (appended when absent)."""
    lines = text.splitlines()
    block = [BEGIN, *block_lines, END]
    if BEGIN in lines:
        start = lines.index(BEGIN)
        if END not in lines[start:]:
            raise ShortcutError(f"the marked block has no end line ({END!r}): fix the file "
                                "by hand, nothing was changed")
        lines[start:lines.index(END, start) + 1] = block
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += block
    return "\n".join(lines) + "\n"


def outside_block(text: str) -> list[str]:
    """The lines of ``text`` that are the user's (not in the marked block)."""
    out, inside = [], False
    for line in text.splitlines():
        if line == BEGIN:
            inside = True
        elif line == END:
            inside = False
        elif not inside:
            out.append(line)
    return out


def _norm_combo(text: str) -> str:
    return "+".join(sorted(p.lower().replace("control", "ctrl").replace("mod1", "alt")
                           .replace("mod4", "super") for p in text.split("+")))


def clashes(user_lines: Sequence[str], plan_: Plan) -> list[str]:
    """The user's own lines that already bind ``plan_``'s combination (sway/i3/Hyprland)."""
    wanted = _norm_combo(plan_.combo.sway())
    found = []
    for line in user_lines:
        words = line.split()
        if plan_.desktop in ("sway", "i3") and words[:1] in (["bindsym"], ["bindcode"]):
            combo = next((w for w in words[1:] if not w.startswith("--")), "")
            if _norm_combo(combo) == wanted:
                found.append(line.strip())
        elif plan_.desktop == "hyprland" and re.match(r"\s*bind\w*\s*=", line):
            fields = [f.strip() for f in line.split("=", 1)[1].split(",")]
            if len(fields) >= 2:
                mods = "+".join(m for m in fields[0].split() if m)
                combo = f"{mods}+{fields[1]}" if mods else fields[1]
                if _norm_combo(combo) == wanted:
                    found.append(line.strip())
    return found


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file (keeps the file's mode; new files
    0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(f".{path.name}.dictation-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _install_wm(plan_: Plan, env: Mapping[str, str], block: Sequence[str]) -> list[str]:
    config = wm_config_path(plan_.desktop, env)
    notes = []
    if config.is_file():
        text = config.read_text(encoding="utf-8")
    elif plan_.desktop in SYSTEM_CONFIGS and SYSTEM_CONFIGS[plan_.desktop].is_file():
        text = SYSTEM_CONFIGS[plan_.desktop].read_text(encoding="utf-8")
        notes.append(f"{config} did not exist: started it from {SYSTEM_CONFIGS[plan_.desktop]}")
    else:
        text = ""
    found = clashes(outside_block(text), plan_)
    if found:
        raise ShortcutError(f"{config} already binds {plan_.combo.sway()}: {found[0]!r}; "
                            "pick another combination with --key")
    _write_private(config, replace_block(text, block))
    notes.append(f"wrote the marked block into {config}")
    return notes


def _run(runner: Runner, command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        done = runner(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        raise ShortcutError(f"cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise ShortcutError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done


def parse_gvariant_strings(text: str) -> list[str]:
    """A GVariant string array as gsettings prints it (``@as []``, ``['/a/', '/b/']``)."""
    text = text.strip()
    if text.startswith("@as"):
        text = text[3:].strip()
    value = ast.literal_eval(text) if text else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ShortcutError(f"unexpected gsettings value {text!r}")
    return value


def _install_gnome(plan_: Plan, runner: Runner) -> list[str]:
    current = parse_gvariant_strings(
        _run(runner, ["gsettings", "get", GNOME_SCHEMA, "custom-keybindings"]).stdout)
    if GNOME_PATH not in current:
        _run(runner, ["gsettings", "set", GNOME_SCHEMA, "custom-keybindings",
                      str([*current, GNOME_PATH])])
    schema = f"{GNOME_SCHEMA}.custom-keybinding:{GNOME_PATH}"
    for key, value in (("name", "Dictation"), ("command", plan_.command),
                       ("binding", plan_.combo.gnome())):
        _run(runner, ["gsettings", "set", schema, key, value])
    return [f"added the custom keybinding {GNOME_PATH} ({len(current)} of yours kept)"]


def _install_kde(plan_: Plan, env: Mapping[str, str], runner: Runner,
                 which: Callable[[str], str | None]) -> list[str]:
    desktop_file = _data_home(env) / "applications" / KDE_DESKTOP_FILE
    _write_private(desktop_file, "\n".join([
        "[Desktop Entry]", "Type=Application", "Name=Dictation: start/stop",
        f"Exec={plan_.command}", "NoDisplay=true", "X-KDE-GlobalAccel-CommandShortcut=true",
        ""]))
    tool = which("kwriteconfig6") or which("kwriteconfig5")
    if tool is None:
        raise ShortcutError("kwriteconfig6/kwriteconfig5 not found: " + plan_.manual)
    _run(runner, [tool, "--file", "kglobalshortcutsrc", "--group", "services", "--group",
                  KDE_DESKTOP_FILE, "--key", "_launch", plan_.combo.kde()])
    return [f"wrote {desktop_file} and its shortcut in kglobalshortcutsrc; log out and in "
            "(or restart kglobalaccel) for KDE to pick it up"]


def install(plan_: Plan, *, env: Mapping[str, str] | None = None,
            runner: Runner = subprocess.run,
            which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Write ``plan_`` where its desktop reads it (module docstring); returns what was done."""
    env = os.environ if env is None else env
    if plan_.desktop == "sway":
        include = _config_home(env) / "dictation" / "sway-shortcut.conf"
        _write_private(include, "\n".join([
            "# written by `dictation shortcut --install`; rerun it to change", *plan_.lines,
            ""]))
        notes = _install_wm(plan_, env, [f"include {include}"])
        if env.get("SWAYSOCK") and which("swaymsg"):
            _run(runner, ["swaymsg", "reload"])
            notes.append("reloaded sway")
        return notes
    if plan_.desktop == "i3":
        notes = _install_wm(plan_, env, plan_.lines)
        if env.get("I3SOCK") and which("i3-msg"):
            _run(runner, ["i3-msg", "reload"])
            notes.append("reloaded i3")
        return notes
    if plan_.desktop == "hyprland":
        return _install_wm(plan_, env, plan_.lines)
    if plan_.desktop == "gnome":
        return _install_gnome(plan_, runner)
    if plan_.desktop == "kde":
        return _install_kde(plan_, env, runner, which)
    raise ShortcutError(f"cannot install a shortcut for {plan_.desktop}")


def main(install_it: bool, key: str, command: str | None, desktop: str | None) -> int:
    """``dictation shortcut``: print the plan; with ``install_it`` write it."""
    session = detect()
    if desktop:
        session = DesktopSession(session.kind, desktop)  # type: ignore[arg-type]
    the_plan = plan(session, key=key, command=command)
    print(the_plan.describe())
    if install_it:
        for note in install(the_plan):
            print(f"installed: {note}")
    return 0
