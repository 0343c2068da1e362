#!/usr/bin/env python3
"""Latency of the real app on Wayland and on X11, measured in one run side by side.

A sibling of ``scripts/bench_app.py`` (whose harness, alignment, scoring and X11 dictation it
reuses). One X11 harness desktop runs throughout (its PulseAudio virtual microphone feeds both
apps); then:

* X11: ``python -m dictation app`` on the X display; each dictation is a double tap of Right
  Ctrl (xdotool), the WAV played, one tap to stop (:func:`bench_app.dictate`);
* Wayland: the same app on a headless sway session (../shared/harness/wayland) with
  ``ctrl+alt+d`` bound to ``dictation toggle``; each dictation is the shortcut pressed
  through wtype, the WAV played, the shortcut again.

Per desktop: shortcut/tap sent -> recording started (the app's ``recording_started`` event),
word typed lag p50/p90 (typed time - the word's end in the audio, forced alignment), stop sent
-> last text typed (``finished``) p50/p90, WER, and characters per second typed: the typing
back-end the app chose (XTEST / wtype) typing a fixed sentence word by word, as the app does,
into the focused text window, timed until the window shows all of it. Writes a Markdown report
(default ``reports/app-latency-wayland.md``). Usage::

    python scripts/bench_wayland.py [--runs 3] [--wav ID ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path[:0] = [str(SCRIPTS), str(REPO)]

import bench_app  # noqa: E402  (the sibling script)
from bench_app import Desktop, Run, Utterance, ms, pct, progress  # noqa: E402

WAYLAND = bench_app.SHARED / "harness" / "wayland" / "wayland_session.sh"
SHORTCUT = "ctrl+alt+d"
DEFAULT_WAVS = ("whisper-jfk", "ljspeech-lj001-0004")
TYPING_SAMPLE = ("The quick brown fox jumps over the lazy dog; naïve café, 3 × 4 = 12 ✓ "
                 "and so my fellow Americans, ask not what your country can do for you.")
"""Typed for the characters-per-second measure (word by word, as the app types)."""
TOGGLE_COMMANDS = {
    "cli": f"env PYTHONPATH={REPO} {sys.executable} -m dictation toggle",
    "socket": (f"env PYTHONPATH={REPO} {sys.executable} -c \"from dictation.control import "
               "send_command; send_command('toggle')\""),
}
"""What the Wayland shortcut runs (``--toggle``)."""
TOGGLE_WORDS = {"cli": "`dictation toggle` (a new CLI process)",
                "socket": "a bare control-socket client (`python -c` + "
                          "`dictation.control.send_command('toggle')`)"}
X_ONLY = ("DISPLAY", "E2E_SESSION_DIR", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
          "E2E_TEXT_FILE", "XAUTHORITY")


class WaylandDesk:
    """The sway harness (``wayland_session.sh``), started and always stopped."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def __enter__(self) -> WaylandDesk:
        base = {k: v for k, v in os.environ.items()
                if k not in X_ONLY and not k.startswith("E2E_")}
        base.update(E2E_TRAY="1", E2E_NOTIFY="1")
        out = subprocess.run([str(WAYLAND), "start"], capture_output=True, text=True,
                             timeout=120, check=True, env=base)
        exports = dict(words[1].split("=", 1) for words in map(shlex.split, out.stdout.splitlines())
                       if len(words) == 2 and words[0] == "export" and "=" in words[1])
        self.env = {**base, **exports}
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([str(WAYLAND), "stop"], capture_output=True, timeout=60, env=self.env)

    def run(self, *args: str, timeout: float = 60) -> str:
        return subprocess.run([str(WAYLAND), *args], capture_output=True, text=True,
                              timeout=timeout, check=True, env=self.env).stdout


def start_app(home: Path, env: dict[str, str], model: str, runtime_dir: str | None
              ) -> bench_app.App:
    """The app with private XDG dirs (``runtime_dir``: the control socket's place, the sway
    session's own on Wayland so that its shortcut reaches the app)."""
    for sub in ("config/dictation", "data", "run"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(home / "run", 0o700)
    (home / "config" / "dictation" / "config.toml").write_text(
        f'[recognizer]\nmodel = "{model}"\n')
    full = {**env, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "XDG_RUNTIME_DIR": runtime_dir or str(home / "run"),
            "DICTATION_EVENT_LOG": str(home / "events.jsonl"), "PYTHONPATH": str(REPO)}
    stderr_path = home / "app.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dictation", "app"], env=full, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
    app = bench_app.App(proc, home / "events.jsonl", stderr_path)
    app.wait_event("ready", 0, timeout=180)
    return app


def stop_app(app: bench_app.App) -> None:
    app.proc.terminate()
    try:
        app.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        app.proc.kill()


def dictate_wayland(wl: WaylandDesk, app: bench_app.App, u: Utterance, x: Desktop,
                    scorer: ModuleType, last_stop: float) -> tuple[Run, float]:
    """One dictation by the shortcut; returns the run and shortcut sent -> recording (s)."""
    wl.run("focus")
    wl.run("clear")
    time.sleep(max(0.0, last_stop + 0.5 - time.time()))
    mark = len(app.events())
    sent = time.time()
    wl.run("key", SHORTCUT)
    recording = app.wait_event("recording_started", mark, timeout=15)
    play_start = time.time()
    x.run("play", str(u.wav), timeout=600)
    time.sleep(0.3)
    stop = time.time()
    wl.run("key", SHORTCUT)
    app.wait_event("finished", mark, timeout=60)
    events = app.events()[mark:]
    finished = next(e for e in events if e["event"] == "finished")
    text = "".join(e["text"] for e in events if e["event"] == "typed")
    ref = scorer.normalize_text(u.transcript)
    hyp = scorer.normalize_text(text, digits_mode=scorer.is_digit_string(ref))
    run = Run(u.id, float("nan"), float("nan"), finished["t"] - stop,
              bench_app.word_lags(u, events, play_start), text.strip(),
              float(scorer.score([ref], [hyp])["wer"]), stop)
    return run, recording["t"] - sent


_TYPING_PROBE = r"""
import re, sys, time
from pathlib import Path
from dictation.inject import choose_backend
text = sys.argv[1]
out = Path(sys.argv[2])
injector = choose_backend("auto")
started = time.perf_counter()
for piece in re.findall(r"\s*\S+|\s+", text):
    injector.type_text(piece)
typed = time.perf_counter() - started
deadline = time.monotonic() + 30
while out.read_text(encoding="utf-8") != text and time.monotonic() < deadline:
    time.sleep(0.005)
shown = time.perf_counter() - started
ok = out.read_text(encoding="utf-8") == text
print(injector.name, typed, shown, ok)
"""


def typing_rate(env: dict[str, str], clear: Any, focus: Any) -> dict[str, Any]:
    """The chosen typing back-end typing :data:`TYPING_SAMPLE` word by word into the focused
    text window: characters per second until the window shows it all."""
    focus()
    clear()
    done = subprocess.run([sys.executable, "-c", _TYPING_PROBE, TYPING_SAMPLE,
                           env["E2E_TEXT_FILE"]], capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO, check=True)
    name, typed, shown, ok = done.stdout.split()
    return {"backend": name, "chars": len(TYPING_SAMPLE), "typed_s": float(typed),
            "shown_s": float(shown), "exact": ok == "True",
            "cps": len(TYPING_SAMPLE) / float(shown)}


@dataclass
class Side:
    name: str
    start_lags: list[float]
    runs: list[Run]
    typing: dict[str, Any]


def report(sides: list[Side], args: argparse.Namespace, timing: str,
           load: tuple[float, float], wall_s: float) -> str:
    lines = [
        "# App latency on Wayland and X11 (scripts/bench_wayland.py)",
        "",
        f"The real app (`python -m dictation app`, model `{args.model}`) in one bench run: "
        "X11 = Xvfb + trayer, Right Ctrl double tap by xdotool, typing through XTEST; "
        f"Wayland = headless sway 1.7 + swaybar, `ctrl+alt+d` bound to {TOGGLE_WORDS[args.toggle]} "
        "and pressed through wtype, typing through wtype. Both hear the same PulseAudio virtual "
        f"microphone. {args.runs} runs x {len(args.wav)} WAVs ({', '.join(args.wav)}) per "
        f"desktop; wall time {wall_s:.0f} s; {os.cpu_count()} CPU cores, load average "
        f"{load[0]:.2f} before / {load[1]:.2f} after (a shared machine: compare the two "
        "columns, not against other reports).",
        "",
        "| measure | " + " | ".join(s.name for s in sides) + " |",
        "| --- | " + " | ".join("---" for _ in sides) + " |",
    ]

    def row(name: str, values: list[list[float]]) -> str:
        return f"| {name} | " + " | ".join(
            f"{ms(pct(v, 50))} / {ms(pct(v, 90))} (n={len(v)})" for v in values) + " |"

    lines.append(row("shortcut/tap sent -> recording started, p50 / p90",
                     [s.start_lags for s in sides]))
    lines.append(row("word typed lag, p50 / p90",
                     [[lag for r in s.runs for lag in r.lags] for s in sides]))
    lines.append(row("stop sent -> last character typed, p50 / p90",
                     [[r.stop_to_finished_s for r in s.runs] for s in sides]))
    lines.append("| characters per second typed (word by word, until shown) | " + " | ".join(
        f"{s.typing['cps']:.0f} ({s.typing['backend']}, {s.typing['chars']} chars in "
        f"{1000 * s.typing['shown_s']:.0f} ms, exact: {s.typing['exact']})" for s in sides)
        + " |")
    lines.append("| WER per dictation, mean | " + " | ".join(
        f"{sum(r.wer for r in s.runs) / max(1, len(s.runs)):.3f}" for s in sides) + " |")
    lines += ["", f"Word end times: {timing}. On X11 the start includes the double tap "
              "(second tap sent -> recording); on Wayland it includes starting the process the "
              "shortcut runs (Python start, imports, control socket).", ""]
    for s in sides:
        lines += [f"## {s.name}", "", "| run | WAV | word lag p50 | stop -> last | WER | typed |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for i, r in enumerate(s.runs):
            text = r.text if len(r.text) <= 70 else r.text[:67] + "..."
            lines.append(f"| {i + 1} | {r.utterance} | {ms(pct(r.lags, 50))} | "
                         f"{ms(r.stop_to_finished_s)} | {r.wer:.3f} | "
                         f"{text.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="dictations per WAV and desktop")
    parser.add_argument("--wav", nargs="+", default=list(DEFAULT_WAVS), metavar="ID")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "app-latency-wayland.md")
    parser.add_argument("--toggle", choices=tuple(TOGGLE_COMMANDS), default="cli",
                        help="what the Wayland shortcut runs: `dictation toggle` (cli) or a "
                             "bare control-socket client (socket: the app's side alone)")
    parser.add_argument("--desktops", nargs="+", choices=("x11", "wayland"),
                        default=["x11", "wayland"])
    args = parser.parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    utterances = bench_app.load_utterances(args.wav)
    progress(f"aligning {len(utterances)} reference transcripts")
    timing = bench_app.align_references(utterances, args.model)
    scorer = bench_app.load_scorer()
    sides: list[Side] = []
    retries: list[str] = []
    with Desktop() as x, tempfile.TemporaryDirectory(prefix="bench-wl-") as tmp:
        if "x11" in args.desktops:
            run_x11(x, Path(tmp), utterances, scorer, args, sides, retries)
        if "wayland" in args.desktops:
            run_wayland(x, Path(tmp), utterances, scorer, args, sides)
    text = report(sides, args, timing, (load_before, os.getloadavg()[0]),
                  time.monotonic() - started)
    if retries:
        text += "\nRepeated after a failure: " + "; ".join(retries) + "\n"
    bench_app.publish(args.out, text)
    return 0


def run_x11(x: Desktop, tmp: Path, utterances: list[Utterance], scorer: ModuleType,
            args: argparse.Namespace, sides: list[Side], retries: list[str]) -> None:
    progress("X11: starting the app")
    app = start_app(tmp / "x11", {**os.environ, **x.env}, args.model, None)
    runs: list[Run] = []
    try:
        for _ in range(args.runs):
            for u in utterances:
                try:
                    runs.append(bench_app.dictate(x, app, u, scorer,
                                                  runs[-1].stop_tap if runs else 0.0))
                except RuntimeError as exc:  # e.g. a double tap lost on a busy machine
                    retries.append(f"X11 {u.id}: {str(exc).splitlines()[0]}")
                    progress(f"X11 {u.id} failed ({retries[-1]}); once more")
                    time.sleep(1.0)
                    runs.append(bench_app.dictate(x, app, u, scorer, time.time()))
                progress(f"X11 {u.id}: stop->last {ms(runs[-1].stop_to_finished_s)}")
    finally:
        stop_app(app)
    typing = typing_rate({**os.environ, **x.env}, lambda: x.run("clear"),
                         lambda: x.run("focus"))
    sides.append(Side("X11", [r.tap_to_hotkey_s + 0.08 + r.hotkey_to_recording_s
                              for r in runs], runs, typing))


def run_wayland(x: Desktop, tmp: Path, utterances: list[Utterance], scorer: ModuleType,
                args: argparse.Namespace, sides: list[Side]) -> None:
    audio = {k: v for k, v in x.env.items() if k not in X_ONLY}
    with WaylandDesk() as wl:
        wl.run("bind", SHORTCUT, TOGGLE_COMMANDS[args.toggle])
        env = {k: v for k, v in {**os.environ, **audio, **wl.env}.items() if k != "DISPLAY"}
        progress("Wayland: starting the app")
        app = start_app(tmp / "wayland", env, args.model, wl.env["XDG_RUNTIME_DIR"])
        runs: list[Run] = []
        lags: list[float] = []
        try:
            for _ in range(args.runs):
                for u in utterances:
                    run, lag = dictate_wayland(wl, app, u, x, scorer,
                                               runs[-1].stop_tap if runs else 0.0)
                    runs.append(run)
                    lags.append(lag)
                    progress(f"Wayland {u.id}: shortcut->rec {ms(lag)}, stop->last "
                             f"{ms(run.stop_to_finished_s)}")
        finally:
            stop_app(app)
        typing = typing_rate(env, lambda: wl.run("clear"), lambda: wl.run("focus"))
        sides.append(Side(f"Wayland (sway, shortcut runs {args.toggle})", lags, runs,
                          typing))


if __name__ == "__main__":
    sys.exit(main())
