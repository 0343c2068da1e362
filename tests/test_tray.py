"""Tray: icons per state, the menu built from the app's providers, and (marker ``e2e``) a real
GTK tray icon in the harness's tray host, clicked and driven through its menu with xdotool.

pystray picks its backend once per process, so every test that imports pystray runs in a child
process (this file or tests/harness_tray.py run as a script).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dictation.commands import Command
from dictation.icons import BADGE_COLOUR, STATE_COLOURS, state_icon
from dictation.tray import (
    SYSTEM_DEFAULT_MIC,
    MenuEntry,
    Tray,
    TrayActions,
    TrayState,
    build_menu,
    tooltip,
)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"


class Recorder:
    """App callbacks that record what the tray asked for."""

    def __init__(self, models: list[str] | None = None, mics: list[str] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.models = ["tiny.en", "base.en"] if models is None else models
        self.mics = ["USB Microphone", "pulse"] if mics is None else mics
        self.model = self.models[0] if self.models else ""
        self.mic: str | None = None
        self.recent: list[str] = []

    def actions(self) -> TrayActions:
        return TrayActions(
            post=lambda command, arg: self.calls.append((command.value, arg)),
            models=lambda: self.models,
            current_model=lambda: self.model,
            microphones=lambda: self.mics,
            current_microphone=lambda: self.mic,
            recent=lambda: self.recent,
            on_copy_text=lambda text: self.calls.append(("copy_text", text)),
        )


def test_recent_submenu_copies_the_text_chosen() -> None:
    app = Recorder()
    assert "Recent" not in [e.text for e in build_menu(app.actions(), TrayState.IDLE)]
    app.recent = ["Newest text.", "An older one with a_b and " + "x" * 60]
    recent = by_text(build_menu(app.actions(), TrayState.IDLE), "Recent").submenu
    assert [e.text for e in recent][0] == "Newest text."
    assert recent[1].text.endswith("…") and "a__b" in recent[1].text
    assert len(recent[1].text) <= 48 + 1
    assert recent[1].action is not None
    recent[1].action()
    assert app.calls == [("copy_text", app.recent[1])]


def by_text(entries: tuple[MenuEntry, ...], text: str) -> MenuEntry:
    return next(e for e in entries if e.text == text)


# --------------------------------------------------------------------------- icons


def test_each_state_has_its_own_icon() -> None:
    images = {s: np.asarray(state_icon(s.value)) for s in TrayState}
    for a in TrayState:
        assert images[a].shape == (64, 64, 4)
        for b in TrayState:
            if a != b:
                differing = np.any(images[a] != images[b], axis=-1).sum()
                assert differing > 100, f"{a} and {b} icons look alike"


def test_icon_colours_match_the_state() -> None:
    for state, colour in STATE_COLOURS.items():
        px = np.asarray(state_icon(state, 64))
        # the middle of the microphone's capsule, and a transparent corner
        assert tuple(px[20, 32]) == colour, state
        assert px[2, 2, 3] == 0
    badge = np.asarray(state_icon("error", 64))
    assert tuple(badge[50, 56]) == BADGE_COLOUR  # red badge beside the "!"
    assert badge[45, 48, :3].min() > 240  # the white "!" itself
    assert tuple(np.asarray(state_icon("listening", 64))[50, 56]) != BADGE_COLOUR


def test_icon_size_and_unknown_state() -> None:
    assert state_icon("idle", 22).size == (22, 22)
    with pytest.raises(ValueError, match="unknown tray state 'busy'"):
        state_icon("busy")


def test_tooltip_names_state_and_detail() -> None:
    assert tooltip("idle") == "Dictation: idle"
    assert tooltip(TrayState.ERROR, "microphone unplugged") == (
        "Dictation: error — microphone unplugged")


# --------------------------------------------------------------------------- menu


def test_menu_structure_comes_from_the_providers() -> None:
    rec = Recorder()
    rec.model, rec.mic = "base.en", "pulse"
    menu = build_menu(rec.actions(), TrayState.IDLE)
    assert [e.text for e in menu] == [
        "Start dictation", "Model", "Microphone", "----", "Copy last transcript",
        "Open settings", "----", "Quit",
    ]
    assert [e.default for e in menu].count(True) == 1 and menu[0].default
    models = by_text(menu, "Model").submenu
    assert [(e.text, e.checked, e.radio) for e in models] == [
        ("tiny.en", False, True), ("base.en", True, True)]
    mics = by_text(menu, "Microphone").submenu
    assert [(e.text, e.checked) for e in mics] == [
        (SYSTEM_DEFAULT_MIC, False), ("USB Microphone", False), ("pulse", True)]
    rec.mic = None
    mics = by_text(build_menu(rec.actions(), "idle"), "Microphone").submenu
    assert [e.checked for e in mics] == [True, False, False]


def test_start_stop_label_follows_the_state() -> None:
    actions = Recorder().actions()
    labels = {s: build_menu(actions, s)[0].text for s in TrayState}
    assert labels == {TrayState.IDLE: "Start dictation", TrayState.LISTENING: "Stop dictation",
                      TrayState.FINISHING: "Stop dictation", TrayState.ERROR: "Start dictation"}


def test_every_menu_item_reaches_its_app_callback() -> None:
    rec = Recorder()
    menu = build_menu(rec.actions(), TrayState.IDLE)
    for entry in menu:
        for item in entry.submenu or (entry,):
            if item.action is not None:
                item.action()
    assert rec.calls == [
        ("toggle", None), ("select_model", "tiny.en"), ("select_model", "base.en"),
        ("select_mic", None), ("select_mic", "USB Microphone"), ("select_mic", "pulse"),
        ("copy_last", None), ("open_settings", None), ("quit", None),
    ]


def test_no_models_shows_a_disabled_hint_and_broken_providers_do_not_break_the_menu() -> None:
    rec = Recorder(models=[])
    actions = rec.actions()

    def broken() -> list[str]:
        raise OSError("PortAudio gone")

    actions.microphones = broken
    menu = build_menu(actions, TrayState.IDLE)
    (hint,) = by_text(menu, "Model").submenu
    assert not hint.enabled and hint.action is None and not hint.selectable
    assert [e.text for e in by_text(menu, "Microphone").submenu] == [SYSTEM_DEFAULT_MIC]


def test_tray_state_and_guarded_actions_without_a_display(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """Before run() the Tray keeps its state; a failing app callback is logged, not raised."""
    rec = Recorder()
    actions = rec.actions()

    def broken(command: Command, arg: str | None) -> None:
        raise RuntimeError("clipboard unavailable")

    actions.post = broken
    tray = Tray(actions)
    assert tray.state is TrayState.IDLE and tray.backend == "" and not tray.has_menu
    tray.set_state("listening", "tiny.en")
    assert (tray.state, tray.detail) == (TrayState.LISTENING, "tiny.en")
    assert tray.image() is tray.icons[TrayState.LISTENING]
    menu = tray.menu_entries()
    assert menu[0].text == "Stop dictation"
    action = by_text(menu, "Copy last transcript").action
    assert action is not None
    action()
    assert "Copy last transcript" in caplog.text and "clipboard unavailable" in caplog.text
    with pytest.raises(ValueError):
        tray.set_state("sleeping")


def test_pystray_menu_conversion_calls_the_app() -> None:
    """The pystray objects the real backends render: run with pystray's backend-less base
    Icon ("dummy") in a child process, since pystray fixes its backend on first import."""
    out = subprocess.run([sys.executable, __file__, "child-dummy"], capture_output=True,
                         text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO), "PYSTRAY_BACKEND": "dummy"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["top"] == ["*Start dictation", "Model", "Microphone", "- - - -",
                             "Copy last transcript", "Open settings", "- - - -", "Quit"]
    assert report["models"] == [["tiny.en", True, True], ["base.en", False, True]]
    assert report["calls"] == [["toggle", None], ["select_model", "base.en"],
                               ["select_mic", None], ["quit", None]]


def _child_dummy() -> None:
    rec = Recorder()
    tray = Tray(rec.actions())
    icon = tray._create_icon()
    top = list(icon.menu)
    models = list(top[1].submenu)
    icon.menu(icon)  # the default action: what a left click does
    models[1](icon)
    list(top[2].submenu)[0](icon)
    top[-1](icon)
    print(json.dumps({
        "top": [("*" if i.default else "") + i.text for i in top],
        "models": [[i.text, i.checked, i.radio] for i in models],
        "calls": rec.calls,
    }))


# --------------------------------------------------------------------------- real tray (e2e)


class TrayApp:
    """tests/harness_tray.py's test tray app in a child process."""

    def __init__(self, events: Path, backend: str = "gtk") -> None:
        self.events = events
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYSTRAY_BACKEND": backend}
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "harness_tray.py"), "serve", str(events)],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)

    def read(self) -> list[list[Any]]:
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines()]

    def wait_event(self, event: list[Any], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while event not in self.read():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = ""
                if self.proc.poll() is not None and self.proc.stderr is not None:
                    err = self.proc.stderr.read()
                raise AssertionError(f"tray app never reported {event}; saw {self.read()} {err}")
            time.sleep(0.05)

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> str:
        """Stop the app (if still running); returns what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate()
        return err or ""


@pytest.fixture
def tray_desktop() -> Iterator[dict[str, str]]:
    """A harness session with the tray host and notification daemon (no text box)."""
    from harness import desktop_session

    with desktop_session(E2E_AUDIO="0", E2E_TEXTBOX="0") as env:
        yield env


def colour_pixels(png: Path, box: tuple[int, int, int, int], colour: tuple[int, ...]) -> int:
    """Pixels within 25 of `colour` (RGB) inside `box` (x, y, width, height) of a screenshot."""
    from PIL import Image

    x, y, w, h = box
    px = np.asarray(Image.open(png).convert("RGB"))[y : y + h, x : x + w].astype(int)
    return int((np.abs(px - np.array(colour[:3])).max(axis=-1) <= 25).sum())


@pytest.mark.e2e
def test_gtk_tray_icon_shows_state_and_its_menu_reaches_the_app(
    tray_desktop: dict[str, str], tmp_path: Path
) -> None:
    """A real GTK StatusIcon in trayer: the icon on screen changes with set_state(), a left click
    toggles dictation, and every menu item chosen with the mouse and keyboard reaches the app."""
    from harness import harness_screenshot
    from harness_tray import (
        DEMO_MICROPHONES,
        DEMO_MODELS,
        click_tray_icon,
        close_tray_menu,
        hover_tray_icon,
        menu_popups,
        open_tray_menu,
        select_tray_menu_item,
        tray_menu_entries,
        wait_for_tray_icon,
    )

    ARTIFACTS.mkdir(exist_ok=True)
    app = TrayApp(tmp_path / "events.jsonl")
    try:
        app.wait_event(["ready", "gtk"])
        icon = wait_for_tray_icon(pid=app.proc.pid)
        box = (icon.x, icon.y, icon.width, icon.height)
        assert icon.width >= 16 and icon.height >= 16

        shot = ARTIFACTS / "tray-idle.png"
        harness_screenshot(shot)
        assert colour_pixels(shot, box, STATE_COLOURS["idle"]) > 30
        assert colour_pixels(shot, box, STATE_COLOURS["listening"]) == 0

        app.command("state listening tiny.en")
        app.wait_event(["state", "listening"])
        shot = ARTIFACTS / "tray-listening.png"
        deadline = time.monotonic() + 5
        while True:  # the GTK main loop redraws the icon a moment after set_state()
            harness_screenshot(shot)
            if colour_pixels(shot, box, STATE_COLOURS["listening"]) > 30:
                break
            assert time.monotonic() < deadline, "the icon did not turn red"
            time.sleep(0.1)
        assert colour_pixels(shot, box, STATE_COLOURS["idle"]) == 0

        hover_tray_icon(icon)  # the tooltip names the state and detail
        harness_screenshot(ARTIFACTS / "tray-tooltip.png")

        click_tray_icon(icon, 1)
        app.wait_event(["toggle"])

        entries = tray_menu_entries(DEMO_MODELS, "tiny.en", DEMO_MICROPHONES, None, "listening")
        open_tray_menu(icon)
        harness_screenshot(ARTIFACTS / "tray-menu.png")
        assert len(menu_popups(app.proc.pid)) == 1
        close_tray_menu(icon)

        select_tray_menu_item(icon, ["Model", "small.en"], entries)
        app.wait_event(["model", "small.en"])
        select_tray_menu_item(icon, ["Microphone", "default"], entries)
        app.wait_event(["mic", "default"])
        select_tray_menu_item(icon, ["Microphone", SYSTEM_DEFAULT_MIC], entries)
        app.wait_event(["mic", None])
        select_tray_menu_item(icon, ["Copy last transcript"], entries)
        app.wait_event(["copy"])
        select_tray_menu_item(icon, ["Open settings"], entries)
        app.wait_event(["settings"])
        assert [e for e in app.read() if e[0] not in ("ready", "state")] == [
            ["toggle"], ["model", "small.en"], ["mic", "default"], ["mic", None], ["copy"],
            ["settings"]]

        select_tray_menu_item(icon, ["Quit"], entries)
        app.wait_event(["quit"])
        assert app.proc.wait(timeout=15) == 0
    finally:
        app.close()


@pytest.mark.e2e
def test_notification_reaches_the_desktop_notification_daemon(
    tray_desktop: dict[str, str], tmp_path: Path
) -> None:
    """With no PYSTRAY_BACKEND the tray picks gtk on an XEmbed-only tray host (no
    StatusNotifierWatcher on the bus), and Tray.notify() lands in dunst (read back with
    dunstctl)."""
    import shutil

    if shutil.which("dunstctl") is None:
        pytest.skip("dunstctl (dunst >= 1.5) is needed to read notifications back")
    app = TrayApp(tmp_path / "events.jsonl", backend="")
    try:
        app.wait_event(["ready", "gtk"])
        app.command("notify Microphone unplugged")
        app.wait_event(["notified"])
        deadline = time.monotonic() + 5
        seen = ""
        while "Microphone unplugged" not in seen and time.monotonic() < deadline:
            out = subprocess.run(["dunstctl", "history"], capture_output=True, text=True,
                                 env=os.environ.copy(), timeout=10)
            seen = out.stdout
            if "Microphone unplugged" not in seen:  # still on screen: not in history yet
                subprocess.run(["dunstctl", "close-all"], env=os.environ.copy(), timeout=10)
                time.sleep(0.1)
        assert "Microphone unplugged" in seen and "test notification" in seen
    finally:
        app.close()


@pytest.mark.e2e
def test_xorg_fallback_shows_the_icon_and_left_click_toggles(
    tray_desktop: dict[str, str], tmp_path: Path
) -> None:
    """pystray's xorg backend (used when PyGObject is missing) has no menu: the icon still
    appears, a left click runs the default item (Start/Stop; pystray 0.19.5 alone ignores
    clicks, the Tray enables them), and the missing menu is logged."""
    from harness_tray import click_tray_icon, menu_popups, wait_for_tray_icon

    app = TrayApp(tmp_path / "events.jsonl", backend="xorg")
    try:
        app.wait_event(["ready", "xorg"])
        for state in ("listening", "finishing", "idle"):  # each used to re-dock the icon
            app.command(f"state {state}")
            app.wait_event(["state", state])
        icon = wait_for_tray_icon(pid=None)
        click_tray_icon(icon, 1)
        app.wait_event(["toggle"])
        click_tray_icon(icon, 3)
        time.sleep(0.5)  # give a (wrongly) opening menu time to appear
        assert menu_popups() == []
    finally:
        stderr = app.close()
    assert "has no menu" in stderr


if __name__ == "__main__":
    if sys.argv[1:] == ["child-dummy"]:
        _child_dummy()
