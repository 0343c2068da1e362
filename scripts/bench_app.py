#!/usr/bin/env python3
"""Latency and footprint of the real desktop app, measured on the shared harness desktop.

Starts a harness session (virtual X display, tray host, virtual microphone, focused text box),
runs ``python -m dictation app`` in it with private XDG directories and an event log
(``DICTATION_EVENT_LOG``), then dictates each WAV ``--runs`` times: double-tap Right Ctrl
(keycode 105), play the WAV into the microphone, tap again, wait for the last text. Writes a
Markdown report (default ``reports/app-latency.md``):

* hotkey -> recording: the app's ``hotkey`` event to its ``recording_started`` event (first
  audio read); also the second tap sent (xdotool) -> ``hotkey``;
* word typed lag p50/p90: when a word was typed minus when it ended in the played audio
  (playback start = when ``desktop_session.sh play`` was started; word ends from
  :func:`dictation.bench.alignment.align_words` forced to the reference transcript);
* stop tap -> last character p50/p90: stop tap sent -> the ``finished`` event;
* idle CPU of the running app (utime + stime from /proc/PID/stat over ``--idle-s`` seconds,
  percent of one core), and memory (VmRSS, VmHWM);
* WER of the typed text per WAV (the project's scorer).

Progress goes to stderr. Linux only (procfs, the harness). Usage::

    python scripts/bench_app.py [--runs 5] [--wav ID ...] [--out reports/app-latency.md]
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
HARNESS = SHARED / "harness" / "desktop_session.sh"
DEV_SET = SHARED / "data" / "dev"
DEFAULT_WAVS = ("whisper-jfk", "ljspeech-lj001-0004", "ls-1089-134686-0001")
HOTKEY = "105"


def progress(message: str) -> None:
    print(f"bench_app: {message}", file=sys.stderr, flush=True)


def publish(out: Path, text: str) -> None:
    """Write the Markdown report ``text`` to ``out`` (folders made) and print it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    progress(f"wrote {out}")
    print(text)


# --------------------------------------------------------------------------- harness


class Desktop:
    """The harness session (``desktop_session.sh``), started and always stopped."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def __enter__(self) -> Desktop:
        out = subprocess.run([str(HARNESS), "start"], capture_output=True, text=True,
                             timeout=120, check=True)
        for line in out.stdout.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                key, value = words[1].split("=", 1)
                self.env[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([str(HARNESS), "stop"], capture_output=True, timeout=60,
                       env={**os.environ, **self.env})

    def run(self, *args: str, timeout: float = 60) -> str:
        out = subprocess.run([str(HARNESS), *args], capture_output=True, text=True,
                             timeout=timeout, check=True, env={**os.environ, **self.env})
        return out.stdout

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], check=True, timeout=30,
                       env={**os.environ, **self.env})


# --------------------------------------------------------------------------- app


@dataclass
class App:
    proc: subprocess.Popen[bytes]
    events_path: Path
    stderr_path: Path

    def events(self) -> list[dict[str, Any]]:
        from dictation.eventlog import read_events

        return read_events(self.events_path)

    def wait_event(self, name: str, after: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events()[after:]:
                if event["event"] == name:
                    return event
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {name!r} event from the app; its log:\n"
                                   + self.stderr_path.read_text(errors="replace")[-3000:])
            time.sleep(0.02)


def start_app(home: Path, desktop_env: dict[str, str], model: str) -> App:
    for sub in ("config/dictation", "data", "run"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(home / "run", 0o700)
    (home / "config" / "dictation" / "config.toml").write_text(
        f'[recognizer]\nmodel = "{model}"\n')
    env = {**os.environ, **desktop_env, "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_DATA_HOME": str(home / "data"), "XDG_RUNTIME_DIR": str(home / "run"),
           "DICTATION_EVENT_LOG": str(home / "events.jsonl"), "PYTHONPATH": str(REPO)}
    stderr_path = home / "app.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dictation", "app"], env=env, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
    app = App(proc, home / "events.jsonl", stderr_path)
    app.wait_event("ready", 0, timeout=120)
    return app


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def idle_cpu_percent(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


# --------------------------------------------------------------------------- words


def norm_word(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


@dataclass
class Utterance:
    id: str
    wav: Path
    transcript: str
    word_ends: list[tuple[str, float]] = field(default_factory=list)
    """(normalised word, end time in the audio, s) of the reference transcript."""


def load_utterances(ids: list[str]) -> list[Utterance]:
    rows = {}
    lines = (DEV_SET / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=False))
        rows[row["id"]] = row
    missing = [i for i in ids if i not in rows]
    if missing:
        raise SystemExit(f"not in {DEV_SET}/transcripts.tsv: {', '.join(missing)}")
    return [Utterance(i, DEV_SET / rows[i]["path"], rows[i]["transcript"]) for i in ids]


def align_references(utterances: list[Utterance], model: str) -> str:
    """Fill ``word_ends`` by forced alignment; returns how the times were obtained."""
    from dictation.asr.recognizer import load_recognizer
    from dictation.audio.files import load_audio

    try:
        from dictation.bench.alignment import reference_word_times
    except ImportError:
        return "unavailable"
    recognizer = load_recognizer(model, progress=False)
    for u in utterances:
        audio = load_audio(u.wav)
        timings = reference_word_times(recognizer, audio, u.transcript)
        u.word_ends = [(norm_word(t.word), float(t.end_s)) for t in timings]
    return f"forced alignment of the reference transcript ({model})"


def typed_words(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(normalised word, wall time it was typed) from ``typed`` events, in order."""
    words = []
    for e in events:
        if e["event"] == "typed":
            words += [(norm_word(w), e["t"]) for w in e["text"].split() if norm_word(w)]
    return words


def word_lags(u: Utterance, events: list[dict[str, Any]], play_start: float) -> list[float]:
    """Typed time minus the word's end in the audio, for words matched to the reference."""
    typed = typed_words(events)
    ref = [w for w, _ in u.word_ends]
    matcher = difflib.SequenceMatcher(None, ref, [w for w, _ in typed], autojunk=False)
    lags = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            end = u.word_ends[block.a + k][1]
            lags.append(typed[block.b + k][1] - (play_start + end))
    return lags


def load_scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_score", SHARED / "scoring" / "score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    utterance: str
    tap_to_hotkey_s: float
    hotkey_to_recording_s: float
    stop_to_finished_s: float
    lags: list[float]
    text: str
    wer: float
    stop_tap: float
    """Wall-clock time the stop tap was sent."""


TAP_GAP_S = 0.6
"""Pause after a stop tap before the next double tap: taps within the double-tap window
(0.4 s) of the stop tap continue its gesture and are ignored by design."""


def dictate(desk: Desktop, app: App, u: Utterance, scorer: ModuleType, last_stop: float
            ) -> Run:
    desk.run("focus")
    desk.run("clear")
    time.sleep(max(0.0, last_stop + TAP_GAP_S - time.time()))
    mark = len(app.events())
    tap = time.time()
    desk.xdotool("key", "--delay", "80", HOTKEY, HOTKEY)
    hotkey = app.wait_event("hotkey", mark, timeout=10)
    recording = app.wait_event("recording_started", mark, timeout=10)
    play_start = time.time()
    desk.run("play", str(u.wav), timeout=600)
    time.sleep(0.3)
    stop = time.time()
    desk.xdotool("key", HOTKEY)
    app.wait_event("finished", mark, timeout=60)
    events = app.events()[mark:]
    finished = next(e for e in events if e["event"] == "finished")
    text = "".join(e["text"] for e in events if e["event"] == "typed")
    ref = scorer.normalize_text(u.transcript)
    hyp = scorer.normalize_text(text, digits_mode=scorer.is_digit_string(ref))
    return Run(u.id, hotkey["t"] - (tap + 0.08), recording["t"] - hotkey["t"],
               finished["t"] - stop, word_lags(u, events, play_start), text.strip(),
               float(scorer.score([ref], [hyp])["wer"]), stop)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def ms(value: float) -> str:
    return "n/a" if value != value else f"{1000 * value:.0f} ms"


def report(runs: list[Run], idle: list[float], memory: dict[str, int], args: argparse.Namespace,
           timing_source: str, load: tuple[float, float], wall_s: float) -> str:
    lags = [lag for r in runs for lag in r.lags]
    rows = [
        ("2nd tap sent -> hotkey event", [r.tap_to_hotkey_s for r in runs]),
        ("hotkey event -> recording started", [r.hotkey_to_recording_s for r in runs]),
        ("word typed lag (typed - word end in audio)", lags),
        ("stop tap sent -> last text typed", [r.stop_to_finished_s for r in runs]),
    ]
    lines = [
        "# Desktop app latency (scripts/bench_app.py)",
        "",
        f"The real app (`python -m dictation app`, model `{args.model}`) on the shared harness "
        "desktop: Xvfb + trayer, PulseAudio virtual microphone, focused Tk text box, keys "
        "injected with xdotool (keycode 105 = Right Ctrl), typing through XTEST.",
        f"{len(runs)} dictations ({args.runs} runs x {len(args.wav)} WAVs: "
        f"{', '.join(args.wav)}); bench wall time {wall_s:.0f} s. Machine: {os.cpu_count()} "
        f"CPU cores, load average {load[0]:.2f} before / {load[1]:.2f} after (other work on "
        "the machine slows decoding: compare numbers taken under similar load).",
        "",
        "| measure | p50 | p90 | n |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in rows:
        lines.append(f"| {name} | {ms(pct(values, 50))} | {ms(pct(values, 90))} | "
                     f"{len(values)} |")
    lines += [
        "",
        f"- Idle CPU of the app process (utime+stime over {args.idle_s:g} s, % of one core): "
        + ", ".join(f"{c:.2f} %" for c in idle) + " (after start-up; after the dictations).",
        f"- Memory after the dictations: VmRSS {memory.get('VmRSS', 0) / 1024:.0f} MiB, "
        f"peak VmHWM {memory.get('VmHWM', 0) / 1024:.0f} MiB.",
        f"- Word end times: {timing_source}; playback start = when `desktop_session.sh play` "
        "was started (the harness measured ~5 ms mic latency); a word's typed time is the "
        "`typed` event after the injector returned.",
        "",
        "| run | WAV | hotkey -> rec | word lag p50 | stop -> last text | WER | typed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(runs):
        text = r.text if len(r.text) <= 70 else r.text[:67] + "..."
        lines.append(f"| {i + 1} | {r.utterance} | {ms(r.hotkey_to_recording_s)} | "
                     f"{ms(pct(r.lags, 50))} | {ms(r.stop_to_finished_s)} | {r.wer:.3f} | "
                     f"{text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="dictations per WAV (default 5)")
    parser.add_argument("--wav", nargs="+", default=list(DEFAULT_WAVS), metavar="ID",
                        help="dev-set ids to dictate (default: %(default)s)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--idle-s", type=float, default=10.0,
                        help="seconds of idle CPU measurement (default 10)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "app-latency.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    utterances = load_utterances(args.wav)
    progress(f"aligning {len(utterances)} reference transcripts")
    timing_source = align_references(utterances, args.model)
    scorer = load_scorer()
    runs: list[Run] = []
    idle: list[float] = []
    with Desktop() as desk, tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        progress("desktop up; starting the app")
        app = start_app(Path(tmp), desk.env, args.model)
        try:
            progress(f"app ready (pid {app.proc.pid}); idle CPU over {args.idle_s:g} s")
            idle.append(idle_cpu_percent(app.proc.pid, args.idle_s))
            total = args.runs * len(utterances)
            for _ in range(args.runs):
                for u in utterances:
                    result = dictate(desk, app, u, scorer,
                                     runs[-1].stop_tap if runs else 0.0)
                    runs.append(result)
                    progress(f"[{len(runs)}/{total}] {u.id}: hotkey->rec "
                             f"{ms(result.hotkey_to_recording_s)}, word lag p50 "
                             f"{ms(pct(result.lags, 50))}, stop->last "
                             f"{ms(result.stop_to_finished_s)}, WER {result.wer:.3f}")
            time.sleep(2.0)
            idle.append(idle_cpu_percent(app.proc.pid, args.idle_s))
            memory = memory_kib(app.proc.pid)
        finally:
            app.proc.terminate()
            try:
                app.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                app.proc.kill()
    text = report(runs, idle, memory, args, timing_source, (load_before, os.getloadavg()[0]),
                  time.monotonic() - started)
    publish(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
