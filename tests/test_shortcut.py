"""`dictation shortcut [--install]`: the binding per desktop and how it is written.

sway, i3 and Hyprland configs are real files in a temporary XDG_CONFIG_HOME (the sway one is
also loaded by a real sway in test_e2e_wayland.py). GNOME's gsettings and KDE's kwriteconfig
cannot run here (no GNOME/KDE session): a fake process records the commands and keeps the
settings in a dict, and the tests say so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from dictation.session import DesktopSession
from dictation.shortcut import (
    BEGIN,
    END,
    GNOME_PATH,
    Combo,
    ShortcutError,
    install,
    parse_gvariant_strings,
    plan,
    replace_block,
)

CMD = "/usr/bin/dictation toggle"


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_DATA_HOME": str(tmp_path / "data")}


def no_tools(name: str) -> str | None:
    return None


@pytest.mark.parametrize(("desktop", "line"), [
    ("sway", f"bindsym Ctrl+Mod1+d exec {CMD}"),
    ("i3", f"bindsym Ctrl+Mod1+d exec --no-startup-id {CMD}"),
    ("hyprland", f"bind = CTRL ALT, D, exec, {CMD}"),
    ("gnome", "binding: <Control><Alt>d"),
    ("kde", "_launch=Ctrl+Alt+D"),
])
def test_plan_per_desktop(tmp_path: Path, desktop: Any, line: str) -> None:
    the_plan = plan(DesktopSession("wayland", desktop), command=CMD, env=env_for(tmp_path))
    assert line in the_plan.lines
    assert "Ctrl+Alt+D" in the_plan.describe()


def test_unknown_desktop_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ShortcutError, match="bind `/usr/bin/dictation toggle` to a key"):
        plan(DesktopSession("wayland", "other"), command=CMD, env=env_for(tmp_path))


def test_combo_parsing() -> None:
    assert Combo.parse("Super+Shift+F9") == Combo(("super", "shift"), "f9")
    assert Combo.parse("control+mod1+d").gnome() == "<Control><Alt>d"
    with pytest.raises(ShortcutError, match="unknown modifier 'hyper'"):
        Combo.parse("hyper+d")


def test_sway_install_keeps_user_lines_and_is_idempotent(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    config = tmp_path / "config" / "sway" / "config"
    config.parent.mkdir(parents=True)
    user = "set $mod Mod4\nbindsym $mod+Return exec foot\n"
    config.write_text(user)
    the_plan = plan(DesktopSession("wayland", "sway"), command=CMD, env=env)
    install(the_plan, env=env, which=no_tools)
    first = config.read_text()
    assert first.startswith(user)
    include = tmp_path / "config" / "dictation" / "sway-shortcut.conf"
    assert f"{BEGIN}\ninclude {include}\n{END}\n" in first
    assert f"bindsym Ctrl+Mod1+d exec {CMD}" in include.read_text()
    install(plan(DesktopSession("wayland", "sway"), key="super+F9", command=CMD, env=env),
            env=env, which=no_tools)
    assert config.read_text() == first  # same block, not a second one
    assert "bindsym Mod4+f9 exec" in include.read_text()


def test_sway_refuses_a_combination_the_user_binds(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    config = tmp_path / "config" / "sway" / "config"
    config.parent.mkdir(parents=True)
    config.write_text("bindsym --to-code Control+Mod1+D exec firefox\n")
    the_plan = plan(DesktopSession("wayland", "sway"), command=CMD, env=env)
    with pytest.raises(ShortcutError, match="already binds.*--key"):
        install(the_plan, env=env, which=no_tools)
    assert config.read_text() == "bindsym --to-code Control+Mod1+D exec firefox\n"


def test_hyprland_block_and_clash(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    config = tmp_path / "config" / "hypr" / "hyprland.conf"
    config.parent.mkdir(parents=True)
    config.write_text("bind = SUPER, Q, exec, kitty\n")
    install(plan(DesktopSession("wayland", "hyprland"), command=CMD, env=env), env=env)
    text = config.read_text()
    assert text.startswith("bind = SUPER, Q, exec, kitty\n")
    assert f"bind = CTRL ALT, D, exec, {CMD}" in text
    with pytest.raises(ShortcutError, match="already binds"):
        install(plan(DesktopSession("wayland", "hyprland"), key="super+q", command=CMD,
                     env=env), env=env)


def test_broken_block_is_left_alone() -> None:
    with pytest.raises(ShortcutError, match="no end line"):
        replace_block(f"a\n{BEGIN}\nb\n", ["x"])


class FakeGsettings:
    """gsettings as a fake process over a dict (GNOME cannot run here)."""

    def __init__(self, bindings: str) -> None:
        self.values: dict[tuple[str, str], str] = {
            ("org.gnome.settings-daemon.plugins.media-keys", "custom-keybindings"): bindings}
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        if command[1] == "get":
            return subprocess.CompletedProcess(command, 0,
                                               self.values[(command[2], command[3])] + "\n", "")
        self.values[(command[2], command[3])] = command[4]
        return subprocess.CompletedProcess(command, 0, "", "")


def test_gnome_adds_its_own_keybinding_and_keeps_the_users() -> None:
    mine = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/"
    fake = FakeGsettings(f"['{mine}']")
    the_plan = plan(DesktopSession("wayland", "gnome"), command=CMD, env={})
    install(the_plan, runner=fake)
    listed = fake.values[("org.gnome.settings-daemon.plugins.media-keys", "custom-keybindings")]
    assert parse_gvariant_strings(listed) == [mine, GNOME_PATH]
    schema = f"org.gnome.settings-daemon.plugins.media-keys.custom-keybinding:{GNOME_PATH}"
    assert fake.values[(schema, "command")] == CMD
    assert fake.values[(schema, "binding")] == "<Control><Alt>d"
    count = len(fake.commands)
    install(the_plan, runner=fake)  # again: the list is not extended twice
    assert parse_gvariant_strings(fake.values[
        ("org.gnome.settings-daemon.plugins.media-keys", "custom-keybindings")]) == [mine,
                                                                                    GNOME_PATH]
    assert len(fake.commands) == count + 4


def test_gvariant_empty_list() -> None:
    assert parse_gvariant_strings("@as []\n") == []


def test_kde_writes_launcher_and_only_its_group(tmp_path: Path) -> None:
    """kwriteconfig6 cannot run here (no KDE): the fake records its arguments."""
    calls: list[list[str]] = []

    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    env = env_for(tmp_path)
    the_plan = plan(DesktopSession("wayland", "kde"), command=CMD, env=env)
    install(the_plan, env=env, runner=runner,
            which=lambda n: "/usr/bin/kwriteconfig6" if n == "kwriteconfig6" else None)
    launcher = tmp_path / "data" / "applications" / "dictation-toggle.desktop"
    assert f"Exec={CMD}" in launcher.read_text()
    assert (launcher.stat().st_mode & 0o777) == 0o600
    assert calls == [["/usr/bin/kwriteconfig6", "--file", "kglobalshortcutsrc", "--group",
                      "services", "--group", "dictation-toggle.desktop", "--key", "_launch",
                      "Ctrl+Alt+D"]]
