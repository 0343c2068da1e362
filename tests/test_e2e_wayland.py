"""The real app end to end on a headless Wayland desktop (marker ``e2e``): sway from
../shared/harness/wayland with swaybar's StatusNotifierItem tray and dunst, the key binding
that ``dictation shortcut --install`` wrote (loaded by sway from the user's config), wtype
typing into the focused native GTK 3 window, a foot terminal, and the X11 harness's PulseAudio
virtual microphone fed with dev-set speech (the X display itself is not given to the app).
One app process serves the tests of this module, in file order. Skipped, with the reason,
when sway or Xvfb is not installed.

The app is started, waited for and read back with the X11 e2e module's helpers
(:mod:`test_e2e_app`): only the desktop differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import desktop_session
from harness_wayland import WaylandDesktop, foot_terminal, wayland_session
from test_e2e_app import (
    ARTIFACTS,
    JFK,
    REPLACEMENT,
    WER_TOLERANCE,
    RunningApp,
    app_env,
    colour_pixels,
    dev_transcript,
    ready_app,
    wer,
)
from test_e2e_app import dictate as x11_dictate

from dictation.eventlog import read_events

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHORT_WAV = SHARED / "data" / "dev" / "wav" / "ljspeech-lj001-0004.wav"
SHORTCUT = "ctrl+alt+d"
SHORTCUT_GAP_S = 0.5
"""Pause between two presses of the shortcut (sway runs each binding as a new process)."""
START_TIMEOUT_S = 120.0
"""Upper bound for shortcut -> recording: the shortcut starts a new `dictation toggle`
process, which takes seconds on a loaded 2-core machine (a bound, not a speed check)."""
FINISH_TIMEOUT_S = 180.0
"""Upper bound for stop shortcut -> the app finished (toggle process + the rest decoded)."""
X_ONLY = ("DISPLAY", "E2E_SESSION_DIR", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
          "E2E_TEXT_FILE", "XAUTHORITY")


@dataclass
class WaylandApp:
    app: RunningApp
    desk: WaylandDesktop
    shortcut_output: str
    """What `dictation shortcut --install` printed."""


def toggle_command() -> str:
    """What the shortcut runs: this checkout's `dictation toggle` (sway's environment has no
    PYTHONPATH)."""
    return f"env PYTHONPATH={REPO} {sys.executable} -m dictation toggle"


@pytest.fixture(scope="module")
def wl_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WaylandApp]:
    """Both harnesses, the shortcut installed into a user sway config that sway loads, and one
    `dictation app` on the Wayland side with a replacement rule."""
    if not JFK.is_file():
        pytest.skip(f"{JFK} is missing")
    home = tmp_path_factory.mktemp("wlapp")
    reference = subprocess.run(
        [sys.executable, "-m", "dictation", "transcribe", "--stream", str(JFK)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert reference.returncode == 0, reference.stderr
    ref_text = reference.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    for sub in ("config/dictation", "config/sway", "data", "run"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    sway_config = home / "config" / "sway" / "config"
    sway_config.write_text("# the user's own line\nfocus_follows_mouse no\n")
    pattern, replacement = REPLACEMENT
    (home / "config" / "dictation" / "config.toml").write_text(
        f'[[replacements]]\npattern = "{pattern}"\nreplacement = "{replacement}"\n',
        encoding="utf-8")
    installed = subprocess.run(
        [sys.executable, "-m", "dictation", "shortcut", "--install", "--key", SHORTCUT,
         "--command", toggle_command()], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home),
             "XDG_CONFIG_HOME": str(home / "config"), "XDG_CURRENT_DESKTOP": "sway",
             "XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-x"})
    assert installed.returncode == 0, installed.stderr
    with desktop_session(E2E_TRAY="0", E2E_NOTIFY="0", E2E_TEXTBOX="0", E2E_WM="none") as x_env, \
            wayland_session(E2E_TRAY="1", E2E_NOTIFY="1",
                            E2E_WL_SWAY_CONF=str(sway_config)) as desk:
        audio = {k: v for k, v in x_env.items() if k not in X_ONLY}
        env = app_env(home, {**os.environ, **audio, **desk.env})
        env.pop("DISPLAY", None)
        env["XDG_RUNTIME_DIR"] = desk.env["XDG_RUNTIME_DIR"]  # where sway's shortcut looks
        stderr_path = home / "app.stderr"
        with ready_app(["app"], env, stderr_path) as proc:
            app = RunningApp(proc, env, home, home / "events.jsonl", stderr_path,
                             home / "data" / "dictation" / "journal.jsonl", ref_text)
            yield WaylandApp(app, desk, installed.stdout)


_last_press = [0.0]


def press_shortcut(desk: WaylandDesktop) -> float:
    """Press the installed shortcut (through wtype, like a keyboard); returns when it was
    sent."""
    time.sleep(max(0.0, _last_press[0] + SHORTCUT_GAP_S - time.monotonic()))
    sent = time.monotonic()
    desk.key(SHORTCUT)
    _last_press[0] = time.monotonic()
    return sent


def dictate(wl: WaylandApp, wav: Path, read: Callable[[], str],
            during: Callable[[], None] | None = None
            ) -> tuple[list[tuple[float, str]], float, int]:
    """:func:`test_e2e_app.dictate` with the desktop shortcut to start and stop, polling
    ``read()``."""
    return x11_dictate(wl.app, wav, during, start=lambda: press_shortcut(wl.desk),
                       stop=lambda: press_shortcut(wl.desk), read=read,
                       start_timeout=START_TIMEOUT_S, finish_timeout=FINISH_TIMEOUT_S)


def settled(read: Callable[[], str], settle_s: float = 0.4, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    text, since = read(), time.monotonic()
    while time.monotonic() - since < settle_s and time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != text:
            text, since = now, time.monotonic()
    return text


def typed_text(app: RunningApp, mark: int, event: str = "typed") -> str:
    return "".join(e["text"] for e in read_events(app.events_path)[mark:] if e["event"] == event)


def test_shortcut_is_installed_and_status_names_the_wayland_routes(wl_app: WaylandApp) -> None:
    config = (wl_app.app.home / "config" / "sway" / "config").read_text()
    assert config.startswith("# the user's own line\nfocus_follows_mouse no\n")
    assert "include " in config and "bindsym Ctrl+Mod1+d exec" in wl_app.shortcut_output
    app = wl_app.app
    done = subprocess.run([sys.executable, "-m", "dictation", "status"], env=app.env,
                          capture_output=True, text=True, timeout=START_TIMEOUT_S, cwd=REPO)
    assert done.returncode == 0, done.stderr
    status = done.stdout.splitlines()
    assert status[0].startswith("idle model=moonshine-base-en")
    assert "session: wayland/sway" in status
    assert any(line.startswith("typing: wtype") for line in status), status
    assert any(line.startswith("terminals: paste (wlclipboard)") for line in status), status
    assert any(line.startswith("hotkey: desktop shortcut") for line in status), status
    assert any(line.startswith("focus latch: sway-ipc") for line in status), status


def test_shortcut_dictation_types_while_speaking_with_the_tray_in_swaybar(
        wl_app: WaylandApp) -> None:
    """The bound shortcut starts dictation; words are in the GTK window before playback ends;
    after the stop shortcut the whole transcript is there (WER as `transcribe --stream`); the
    replacement's non-ASCII text arrives exactly; swaybar shows the red (listening) icon."""
    from dictation.icons import STATE_COLOURS

    desk, app = wl_app.desk, wl_app.app
    desk.focus()
    desk.clear()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "wayland-tray-listening.png"
    bar = (0, 0, 1280, 40)  # swaybar at the top; its tray is at the right end
    red: list[int] = []

    def screenshot_once() -> None:
        if not red or red[-1] <= 20:
            desk.screenshot(shot)
            red.append(colour_pixels(shot, bar, STATE_COLOURS["listening"]))

    samples, ended, mark = dictate(wl_app, JFK, desk.text, during=screenshot_once)
    assert red and red[-1] > 20, f"no listening icon in swaybar's tray: {red}"
    early = [text for t, text in samples if t < ended and text.strip()]
    assert early and len(early[-1].split()) >= 5, f"too little before playback ended: {early}"
    text = settled(desk.text)
    pattern, replacement = REPLACEMENT
    assert replacement in text, text
    got = wer(text.replace(replacement, pattern), dev_transcript("whisper-jfk"))
    ref = wer(app.reference, dev_transcript("whisper-jfk"))
    assert got <= ref + WER_TOLERANCE, f"live {got:.3f} vs stream {ref:.3f}: {text}"
    assert typed_text(app, mark).strip() == text.strip()
    hotkey = [e for e in read_events(app.events_path)[mark:] if e["event"] == "hotkey"]
    assert hotkey == []  # started and stopped by the shortcut, not a key listener


def test_foot_terminal_receives_phrases_by_paste(wl_app: WaylandApp, tmp_path: Path) -> None:
    desk, app = wl_app.desk, wl_app.app
    subprocess.run(["wl-copy", "--", "the user's clipboard"], check=True, timeout=10,
                   env=desk.env)
    out = tmp_path / "foot.txt"
    with foot_terminal(desk, out):
        _, _, mark = dictate(wl_app, SHORT_WAV, lambda: out.read_text(encoding="utf-8"))
        received = settled(lambda: out.read_text(encoding="utf-8"))
    typed = typed_text(app, mark)
    assert typed.strip() and received == typed
    commits = [e for e in read_events(app.events_path)[mark:] if e["event"] == "commit"]
    typed_events = [e for e in read_events(app.events_path)[mark:] if e["event"] == "typed"]
    assert len(typed_events) < len(commits), "phrases, not word by word"
    assert desk.clipboard() == "the user's clipboard"


@pytest.mark.xfail(strict=False, reason=(
    "known race on Wayland: wtype cannot address a window, so the focus can move between the "
    "sway IPC check and the key event; one character reached the new window in 2 of ~6 runs "
    "(issue 8/10: needs a compositor-side route)"))
def test_focus_moved_mid_dictation_sends_nothing_to_the_new_window(
        wl_app: WaylandApp, tmp_path: Path) -> None:
    """swaymsg moves the focus to a foot terminal once words arrive: nothing reaches it, the
    rest is held (journal, clipboard) and a notification says so."""
    desk, app = wl_app.desk, wl_app.app
    out = tmp_path / "other.txt"
    with foot_terminal(desk, out) as other:
        desk.focus()
        desk.clear()
        switched: list[float] = []

        def switch_when_words_arrive() -> None:
            if not switched and desk.text().strip():
                desk.swaymsg(f"[con_id={other}] focus")
                switched.append(time.monotonic())

        _, _, mark = dictate(wl_app, JFK, desk.text, during=switch_when_words_arrive)
        assert switched, "no words arrived before the speech ended"
        time.sleep(0.5)
        assert out.read_text(encoding="utf-8") == ""
    held = typed_text(app, mark, "held")
    assert held.rstrip(" .!?").endswith("country")
    assert settled(desk.text).strip() == typed_text(app, mark).strip()
    from dictation.output.journal import JournalEntry

    entries = [JournalEntry.from_json(line)
               for line in app.journal.read_text(encoding="utf-8").splitlines()]
    mine = [e for e in entries if e.session == entries[-1].session]
    assert any(not e.typed for e in mine)
    assert " ".join(held.split()) in " ".join(e.text for e in mine)
    assert desk.clipboard() == held.strip()
    # the user was told through the notification service (dunst on the session bus)
    subprocess.run(["dunstctl", "close-all"], check=True, timeout=10, env=desk.env)
    history = subprocess.run(["dunstctl", "history"], capture_output=True, text=True,
                             check=True, timeout=10, env=desk.env).stdout
    assert "The focus moved" in history, history[-2000:]
