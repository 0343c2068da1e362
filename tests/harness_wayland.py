"""The shared Wayland harness (../shared/harness/wayland: headless sway, a focused GTK 3 text
window, wtype, wl-clipboard, grim, swaybar, dunst) for end-to-end tests.

:func:`wayland_session` starts one and always stops it. Unlike the X11 harness it does not
take over ``os.environ`` unless asked (``export=True``): the e2e tests run both harnesses at
once (the virtual microphone is the X11 harness's PulseAudio), and both scripts use
``E2E_SESSION_DIR``, so the Wayland one keeps its variables in :attr:`WaylandDesktop.env`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import HARNESS_DIR, parse_exports

WAYLAND_SCRIPT = HARNESS_DIR / "wayland" / "wayland_session.sh"
_NOT_INHERITED = ("E2E_SESSION_DIR", "DISPLAY", "WAYLAND_DISPLAY", "SWAYSOCK", "I3SOCK",
                  "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "E2E_TEXT_FILE")


def wayland_skip_reason() -> str | None:
    """Why the sway harness cannot run here (None: it can)."""
    if not WAYLAND_SCRIPT.is_file():
        return f"Wayland harness not found at {WAYLAND_SCRIPT}"
    missing = [tool for tool in ("sway", "swaymsg", "wtype", "wl-copy", "wl-paste", "grim",
                                 "foot") if shutil.which(tool) is None]
    if missing:
        return f"Wayland harness needs {', '.join(missing)}: run {WAYLAND_SCRIPT} install"
    return None


@dataclass
class WaylandDesktop:
    """A running sway session; ``env`` holds its variables (WAYLAND_DISPLAY, SWAYSOCK,
    XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS, E2E_TEXT_FILE, ...) and no DISPLAY."""

    env: dict[str, str]

    def run(self, *args: str, timeout: float = 30.0) -> str:
        proc = subprocess.run([str(WAYLAND_SCRIPT), *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env)
        if proc.returncode != 0:
            raise RuntimeError(f"wayland_session.sh {' '.join(args)} failed "
                               f"({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc.stdout

    def text(self) -> str:
        """What the GTK text window holds now."""
        return Path(self.env["E2E_TEXT_FILE"]).read_text(encoding="utf-8")

    def clear(self) -> None:
        self.run("clear")

    def focus(self) -> None:
        """Give the text window the keyboard focus again (waits until it has it)."""
        self.run("focus")

    def key(self, *combos: str) -> None:
        """Press key combos through wtype (the harness pads them for GTK)."""
        self.run("key", *combos)

    def bind(self, combo: str, command: str) -> None:
        """A sway binding (a desktop shortcut) running the shell ``command``."""
        self.run("bind", combo, command)

    def screenshot(self, png: str | Path) -> None:
        self.run("screenshot", str(png))

    def swaymsg(self, *args: str) -> str:
        return subprocess.run(["swaymsg", *args], capture_output=True, text=True, check=True,
                              timeout=10, env=self.env).stdout

    def clipboard(self) -> str | None:
        done = subprocess.run(["wl-paste", "--no-newline"], capture_output=True, timeout=10,
                              env=self.env)
        return done.stdout.decode() if done.returncode == 0 else None

    def wait_text(self, expected: str, timeout: float = 10.0) -> str:
        """Poll the text window until it equals ``expected`` (or ``timeout`` s); the last."""
        deadline = time.monotonic() + timeout
        got = self.text()
        while got != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            got = self.text()
        return got


@contextmanager
def wayland_session(export: bool = False, **knobs: str) -> Iterator[WaylandDesktop]:
    """Start the sway harness (``knobs`` such as ``E2E_TRAY="1"`` go to ``start``); with
    ``export`` its variables are put into ``os.environ`` for the duration (DISPLAY removed).
    Always stops it. Skips the calling test when sway/wtype/... are not installed."""
    reason = wayland_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    # the X11 harness' variables and knobs (E2E_TEXTBOX=0 ...) are not this session's
    base = {k: v for k, v in os.environ.items()
            if k not in _NOT_INHERITED and not k.startswith("E2E_")}
    base.update(knobs)
    proc = subprocess.run([str(WAYLAND_SCRIPT), "start"], capture_output=True, text=True,
                          timeout=60, env=base)
    if proc.returncode != 0:
        raise RuntimeError(f"wayland_session.sh start failed:\n{proc.stderr[-3000:]}")
    desktop = WaylandDesktop({**base, **parse_exports(proc.stdout)})
    saved = os.environ.copy()
    try:
        if export:
            os.environ.clear()
            os.environ.update(desktop.env)
        yield desktop
    finally:
        if export:
            os.environ.clear()
            os.environ.update(saved)
        subprocess.run([str(WAYLAND_SCRIPT), "stop"], capture_output=True, timeout=30,
                       env=desktop.env)


@contextmanager
def foot_terminal(desktop: WaylandDesktop, out: Path, app_id: str = "foot"
                  ) -> Iterator[int]:
    """A foot terminal (focused: sway focuses new windows) whose shell copies every character
    it receives into ``out`` (no line buffering); yields its sway con id."""
    proc = subprocess.Popen(["foot", "--app-id", app_id, "sh", "-c",
                             f"stty -icanon; exec cat > '{out}'"],
                            env={**desktop.env, "LC_ALL": "C.UTF-8"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        con = None
        while con is None:
            for line in desktop.run("windows").splitlines():
                fields = line.split()
                if len(fields) >= 4 and fields[2] == str(proc.pid):
                    con = int(fields[0])
            if con is None:
                assert time.monotonic() < deadline, "foot did not open a window"
                time.sleep(0.1)
        while not out.exists():  # the shell is up once cat opened its output
            assert time.monotonic() < deadline, "foot's shell did not start"
            time.sleep(0.05)
        desktop.swaymsg(f"[con_id={con}] focus")
        yield con
    finally:
        proc.terminate()
        proc.wait(timeout=10)
