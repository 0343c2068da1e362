"""Drive a tray icon on the harness desktop (trayer + a GTK StatusIcon) like a user would.

Functions here need ``os.environ`` to point at a harness session (``harness.desktop_session``):

    icon = wait_for_tray_icon(pid=app.pid)
    click_tray_icon(icon, button=1)                      # the default action (Start/Stop)
    entries = tray_menu_entries(models=["tiny.en", "base.en"], current_model="tiny.en")
    select_tray_menu_item(icon, ["Model", "base.en"], entries)

Menus are driven with the keyboard (Down / Right / Return), so ``entries`` must describe the
menu as the app shows it: `tray_menu_entries` builds it with `dictation.tray.build_menu` from the
same lists the app's providers return. GTK skips separators and disabled items when moving with
Down, and Right on a submenu item opens the submenu with its first item selected.

Run as a script, this file is a small tray app for tests: ``python tests/harness_tray.py serve
EVENTS.jsonl`` shows a `dictation.tray.Tray` whose callbacks append JSON lines to EVENTS.jsonl
(["ready", backend], ["toggle"], ["model", id], ["mic", name|null], ["copy"], ["settings"],
["quit"]); stdin commands "state NAME [DETAIL]" and "notify TITLE" exercise set_state/notify.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dictation.commands import Command
from dictation.tray import MenuEntry, TrayActions, TrayState, build_menu

POLL_S = 0.05


@dataclass(frozen=True)
class TrayIcon:
    """An icon window embedded in the tray host; x, y are its root coordinates (pixels)."""

    window: int
    wm_class: str
    pid: int | None
    x: int
    y: int
    width: int
    height: int


def _display() -> Any:
    from Xlib import display

    return display.Display(os.environ["DISPLAY"])


def _pid(d: Any, win: Any) -> int | None:
    prop = win.get_full_property(d.intern_atom("_NET_WM_PID"), 0)
    return int(prop.value[0]) if prop is not None and len(prop.value) else None


def tray_icons() -> list[TrayIcon]:
    """Every XEmbed icon window inside the harness's tray host (trayer)."""
    from Xlib import X

    d = _display()
    try:
        root = d.screen().root
        xembed = d.intern_atom("_XEMBED_INFO")
        found: list[TrayIcon] = []

        def walk(win: Any, in_panel: bool) -> None:
            for child in win.query_tree().children:
                cls = child.get_wm_class()
                panel = in_panel or (cls is not None and cls[0] == "panel")
                if panel and child.get_full_property(xembed, X.AnyPropertyType) is not None:
                    g = child.get_geometry()
                    pos = child.translate_coords(root, 0, 0)
                    found.append(TrayIcon(child.id, cls[0] if cls else "", _pid(d, child),
                                          -pos.x, -pos.y, g.width, g.height))
                else:
                    walk(child, panel)

        walk(root, False)
        return found
    finally:
        d.close()


def wait_for_tray_icon(pid: int | None = None, timeout: float = 10.0,
                       min_size: int = 2) -> TrayIcon:
    """The first tray icon (of process `pid` when given) once the tray host has laid it out
    (both sides at least `min_size` pixels: just docked, trayer reports it 1 pixel wide);
    AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        icons = [i for i in tray_icons() if (pid is None or i.pid == pid)
                 and i.width >= min_size and i.height >= min_size]
        if icons:
            return icons[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no tray icon{f' of pid {pid}' if pid else ''} in the tray "
                                 f"host within {timeout} s (icons: {tray_icons()})")
        time.sleep(POLL_S)


def menu_popups(pid: int | None = None) -> list[int]:
    """Window ids of the popup menus now shown (of process `pid` when given)."""
    return _shown_windows("_NET_WM_WINDOW_TYPE_POPUP_MENU", pid)


def tooltips(pid: int | None = None) -> list[int]:
    """Window ids of the tooltips now shown (of process `pid` when given)."""
    return _shown_windows("_NET_WM_WINDOW_TYPE_TOOLTIP", pid)


def _shown_windows(window_type: str, pid: int | None) -> list[int]:
    from Xlib import X

    d = _display()
    try:
        popup_type = d.intern_atom(window_type)
        wtype = d.intern_atom("_NET_WM_WINDOW_TYPE")
        shown = []
        for win in d.screen().root.query_tree().children:
            try:
                if win.get_attributes().map_state != X.IsViewable:
                    continue
                prop = win.get_full_property(wtype, X.AnyPropertyType)
                if prop is None or popup_type not in prop.value:
                    continue
                if pid is None or _pid(d, win) == pid:
                    shown.append(win.id)
            except Exception:  # the window went away while we looked
                continue
        return shown
    finally:
        d.close()


def _wait_popups(count: int, pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(menu_popups(pid)) != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} open menu(s), see {len(menu_popups(pid))}")
        time.sleep(POLL_S)


def _xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=30, env=os.environ.copy())


def click_tray_icon(icon: TrayIcon, button: int = 1) -> None:
    """Click the middle of the icon (1 = left: the default action, 3 = right: the menu)."""
    _xdotool("mousemove", "--window", str(icon.window), str(icon.width // 2),
             str(icon.height // 2), "click", str(button))


def hover_tray_icon(icon: TrayIcon, timeout: float = 5.0) -> int:
    """Rest the pointer on the icon until its tooltip shows; returns the tooltip's window."""
    _xdotool("mousemove", "--window", str(icon.window), "1", "1")
    _xdotool("mousemove", "--window", str(icon.window), str(icon.width // 2),
             str(icon.height // 2))
    deadline = time.monotonic() + timeout
    while not (shown := tooltips(icon.pid)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no tooltip within {timeout} s of hovering the tray icon")
        time.sleep(POLL_S)
    return shown[0]


def open_tray_menu(icon: TrayIcon, timeout: float = 5.0) -> None:
    """Right-click the icon and wait until its menu is shown."""
    click_tray_icon(icon, 3)
    _wait_popups(1, icon.pid, timeout)


def close_tray_menu(icon: TrayIcon, timeout: float = 5.0) -> None:
    """Escape out of every open menu level."""
    while menu_popups(icon.pid):
        _xdotool("key", "Escape")
        time.sleep(0.1)
        if timeout <= 0:
            raise AssertionError("the tray menu does not close")
        timeout -= 0.1


def menu_keys(entries: Sequence[MenuEntry], path: Sequence[str]) -> list[list[str]]:
    """Key presses that reach `path` (labels, outermost first) in a freshly opened menu, one
    list per menu level; the last level ends with Return. Raises KeyError for a missing or
    disabled label."""
    levels: list[list[str]] = []
    items = tuple(entries)
    for depth, label in enumerate(path):
        selectable = [e for e in items if e.selectable]
        index = next((i for i, e in enumerate(selectable) if e.text == label), None)
        if index is None:
            raise KeyError(f"{label!r} is not a selectable item of "
                           f"{[e.text for e in items if not e.is_separator]}")
        entry = selectable[index]
        last = depth == len(path) - 1
        # a fresh top-level menu has nothing selected (Down selects the first item); an opened
        # submenu starts on its first item
        downs = index + 1 if depth == 0 else index
        if last:
            if entry.submenu:
                raise KeyError(f"{label!r} opens a submenu; name an item inside it")
            levels.append(["Down"] * downs + ["Return"])
        else:
            if not entry.submenu:
                raise KeyError(f"{label!r} has no submenu")
            levels.append(["Down"] * downs + ["Right"])
            items = entry.submenu
    return levels


def select_tray_menu_item(icon: TrayIcon, path: Sequence[str], entries: Sequence[MenuEntry],
                          timeout: float = 5.0) -> None:
    """Open the icon's menu and activate the item at `path`, e.g. ["Model", "base.en"]; returns
    once the menu has closed."""
    levels = menu_keys(entries, path)
    open_tray_menu(icon, timeout)
    for depth, keys in enumerate(levels):
        for key in keys:
            _xdotool("key", key)
            time.sleep(0.05)  # GTK handles each key before the next arrives
        if keys[-1] == "Right":
            _wait_popups(depth + 2, icon.pid, timeout)
    _wait_popups(0, icon.pid, timeout)


def tray_menu_entries(models: Sequence[str] = (), current_model: str = "",
                      microphones: Sequence[str] = (), current_microphone: str | None = None,
                      state: TrayState | str = TrayState.IDLE) -> tuple[MenuEntry, ...]:
    """The menu the app shows for these provider values (actions do nothing)."""

    def nothing(*_: object) -> None:
        return None

    return build_menu(
        TrayActions(post=nothing,
                    models=lambda: list(models), current_model=lambda: current_model,
                    microphones=lambda: list(microphones),
                    current_microphone=lambda: current_microphone),
        state,
    )


# --------------------------------------------------------------------------- test tray app

DEMO_MODELS = ["tiny.en", "base.en", "small.en"]
DEMO_MICROPHONES = ["pulse", "default"]


def serve(events_path: str) -> None:
    """Run a Tray whose callbacks log to `events_path` (see the module docstring)."""
    from dictation.tray import Tray

    lock = threading.Lock()
    current: dict[str, str | None] = {"model": "tiny.en", "mic": None}

    def record(*event: object) -> None:
        with lock, open(events_path, "a") as f:
            f.write(json.dumps(event) + "\n")

    def select_model(model: str) -> None:
        current["model"] = model
        record("model", model)

    def select_mic(mic: str | None) -> None:
        current["mic"] = mic
        record("mic", mic)

    def quit_app() -> None:
        record("quit")
        tray.stop()

    def post(command: Command, arg: str | None) -> None:
        if command is Command.SELECT_MODEL and arg is not None:
            select_model(arg)
        elif command is Command.SELECT_MIC:
            select_mic(arg)
        elif command is Command.QUIT:
            quit_app()
        else:
            record({Command.TOGGLE: "toggle", Command.COPY_LAST: "copy",
                    Command.OPEN_SETTINGS: "settings"}[command])

    tray = Tray(TrayActions(
        post=post,
        models=lambda: list(DEMO_MODELS), current_model=lambda: current["model"] or "",
        microphones=lambda: list(DEMO_MICROPHONES), current_microphone=lambda: current["mic"],
    ))

    def commands(t: Tray) -> None:
        record("ready", t.backend)
        for line in sys.stdin:
            words = line.split(maxsplit=2)
            if words and words[0] == "state":
                t.set_state(words[1], words[2].strip() if len(words) > 2 else "")
                record("state", words[1])
            elif words and words[0] == "notify":
                t.notify(" ".join(words[1:]).strip(), "test notification")
                record("notified")

    tray.run(lambda t: threading.Thread(target=commands, args=(t,), daemon=True).start())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} serve EVENTS.jsonl")
