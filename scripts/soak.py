#!/usr/bin/env python3
"""Soak test: a long dictation into the real desktop app, next to a CPU hog; is anything lost?

Starts a harness session (``desktop_session.sh``: Xvfb, tray host, PulseAudio virtual
microphone, focused text box) and ``python -m dictation app`` in it with private XDG
directories and an event log, exactly as ``scripts/bench_app.py`` does (its ``Desktop``,
``start_app``, ``memory_kib``, ``cpu_seconds``, scorer loader and dev-set loader are imported
from it by path, not copied). ``--busy`` CPU-bound processes (``python -c 'while True: pass'``)
run beside the app the whole time and are always killed at the end.

The dictation is ONE long dictation by default (``--dictations N`` splits the run into N
equal ones, double tap to start, one tap to stop, like a user dictating a long document in a
few sittings): the dev-set WAVs are played into the virtual microphone back to back, in a
seeded shuffled order that changes every pass, with a pause of ``--pause-min``..``--pause-max``
seconds between them, until ``--minutes`` have passed. Every ``--sample-s`` seconds it samples
and prints one line to stderr:

* the app's memory (VmRSS, RssAnon, RssFile, VmHWM from ``/proc/PID/status``), threads, open
  file descriptors;
* the app's CPU (utime + stime, percent of one core) and the busy process's;
* the app's own recognizer lag, from its ``commit`` events: wall time of the commit minus the
  wall time at which the audio the recognizer had consumed (``audio_time_s``, the stream
  position) was captured (stream origin = the ``recording_started`` event minus the samples it
  read). It is the backlog plus the tick's decode and typing time;
* events about lost or late audio (``audio_dropped``, ``gap``, ``back_pressure``, ``held``,
  ``error``, an unexpected ``finished``) and the app's log lines about spilled or dropped
  audio, warnings and errors.

At the end it reads the app's transcript journal (``$XDG_DATA_HOME/dictation/journal.jsonl``
under the app's private data dir: one JSON line per recognised segment, see
:mod:`dictation.output.journal`) and the text box, aligns their words to the references of
the played utterances in play order (a minimal edit alignment, so each hypothesis word lands
in the utterance it belongs to), and scores them with the project's scorer
(``../shared/scoring/score.py``). Targets, each with a verdict in the report:

* RSS growth from ``--warmup-minutes`` (5) to the end of the dictation < ``--rss-growth-pct``
  (5 %);
* nothing lost: no ``audio_dropped``/``gap`` event, no journal error, and every played
  utterance has words in the journal (one with no reference word found is listed as lost);
* recognizer lag bounded: max < ``--lag-limit-s`` (10 s) and the p90 of the last third of the
  run no more than 1 s above the p90 of the first third (no upward drift). The delay from a
  WAV's playback end to its last typed word is reported too.

Writes a Markdown report (``--out``, default ``reports/soak.md``) with the figures, a
per-minute timeline, the command and the load average at start and end; ``--workdir DIR``
keeps the app's files (journal, events, log, samples.tsv) there. Not run in CI: it takes
``--minutes`` plus about a minute, on a Linux machine with the harness installed
(``../shared/harness/desktop_session.sh install``). Usage::

    python scripts/soak.py [--minutes 30] [--busy 1] [--dictations 1] [--out reports/soak.md]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

SCRIPTS = Path(__file__).resolve().parent


def _load_sibling(name: str) -> ModuleType:
    """``scripts/NAME.py`` as module ``NAME`` (once; registered so its dataclasses work)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench_app = _load_sibling("bench_app")
app_footprint = _load_sibling("app_footprint")  # its memory(): RssAnon, RssFile, Threads

if TYPE_CHECKING:
    from bench_app import App, Desktop, Utterance

REPO: Path = bench_app.REPO
SAMPLE_RATE = 16000
ALERT_EVENTS = ("audio_dropped", "gap", "held", "error", "scratch_refused", "spoken_stop")
"""Events listed as alerts (``back_pressure`` is counted per sample instead)."""
LOG_ALERT = re.compile(r"spill|dropp|behind|lost|ERROR|WARNING|CRITICAL|Traceback",
                       re.IGNORECASE)
LOG_QUIET = re.compile(r"s behind: back-pressure level \d")
"""Log lines that repeat a ``back_pressure`` event: not listed as alerts."""


def progress(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- app outputs


class EventTail:
    """The app's event log, read incrementally (the file grows to megabytes in a soak, so it
    is not re-read whole like :meth:`bench_app.App.events`). Thread safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()
        self.state: str | None = None
        """The last ``state`` event's state."""

    def poll(self) -> int:
        """Read what was appended; returns the number of events so far."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read()
            except FileNotFoundError:
                return len(self.events)
            self._offset += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)
                if event.get("event") == "state":
                    self.state = event.get("state")
            return len(self.events)

    def wait(self, name: str, after: int, proc: subprocess.Popen[bytes],
             timeout: float) -> dict[str, Any]:
        """The first ``name`` event at index >= ``after``; RuntimeError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.poll()
            for event in self.events[after:count]:
                if event["event"] == name:
                    return event
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {name!r} event from the app within {timeout:g} s")
            time.sleep(0.05)


class LogTail:
    """New lines of the app's stderr log that match :data:`LOG_ALERT`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_alerts(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # whole lines only
        self._offset += end
        lines = data[:end].decode("utf-8", "replace").splitlines()
        return [line.strip() for line in lines if LOG_ALERT.search(line)]


def status_extra(pid: int) -> dict[str, int]:
    """RssAnon, RssFile (KiB; ``app_footprint.memory`` gives MiB) and the open fd count."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            values[key] = int(rest.split()[0])
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return values


# --------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float
    """Seconds since the first dictation started."""
    rss_kib: int
    anon_kib: int
    file_kib: int
    hwm_kib: int
    threads: int
    fds: int
    cpu_pct: float
    busy_cpu_pct: float
    lag_max_s: float | None
    """Largest recognizer lag of the commits since the previous sample."""
    commits: int
    played: int
    load1: float
    pressure: int = 0
    """``back_pressure`` events since the previous sample."""
    backlog_max_s: float = 0.0
    """Largest backlog those events reported."""
    alerts: list[str] = field(default_factory=list)


@dataclass
class Play:
    utterance: Utterance
    pass_no: int
    start: float
    end: float


class Sampler(threading.Thread):
    """Samples the app every ``period`` seconds until :meth:`stop`; prints each sample."""

    def __init__(self, app: App, tail: EventTail, busy: list[subprocess.Popen[bytes]],
                 plays: list[Play], t0: float, period: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.app, self.tail, self.busy, self.plays = app, tail, busy, plays
        self.t0, self.period = t0, period
        self.samples: list[Sample] = []
        self.lags: list[tuple[float, float]] = []
        """(wall time, recognizer lag s) of every commit."""
        self.alerts: list[tuple[float, str]] = []
        self.unexpected_stops = 0
        self.dictating = True
        """Set by the player: a ``finished`` event while True is unexpected."""
        self._origin: float | None = None
        self._seen = 0
        self._logs = LogTail(app.stderr_path)
        self._halt = threading.Event()
        self._cpu = (time.monotonic(), bench_app.cpu_seconds(app.proc.pid),
                     self._busy_cpu())

    def _busy_cpu(self) -> float:
        total = 0.0
        for p in self.busy:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += bench_app.cpu_seconds(p.pid)
        return total

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def run(self) -> None:
        while not self._halt.wait(self.period):
            if self.app.proc.poll() is not None:
                progress(f"the app exited (code {self.app.proc.returncode})")
                return
            try:
                self.sample()
            except (FileNotFoundError, ProcessLookupError):
                return  # the app is gone

    def scan_events(self) -> tuple[list[float], list[str], list[float]]:
        """Lags of the new commits, alerts from the new events, and the backlogs of the new
        ``back_pressure`` events."""
        count = self.tail.poll()
        lags: list[float] = []
        alerts: list[str] = []
        backlogs: list[float] = []
        for e in self.tail.events[self._seen:count]:
            name = e["event"]
            if name == "recording_started":
                self._origin = e["t"] - e.get("samples", 0) / SAMPLE_RATE
            elif name == "commit" and self._origin is not None:
                lag = e["t"] - (self._origin + e["audio_time_s"])
                lags.append(lag)
                self.lags.append((e["t"], lag))
            elif name == "finished":
                self._origin = None
                if self.dictating:
                    self.unexpected_stops += 1
                    alerts.append("event finished (dictation ended without a stop tap)")
            elif name == "back_pressure":
                backlogs.append(float(e.get("backlog_s", 0.0)))
            if name in ALERT_EVENTS:
                fields = {k: v for k, v in e.items() if k not in ("event", "t")}
                alerts.append(f"event {name} {json.dumps(fields, ensure_ascii=False)}")
        self._seen = count
        return lags, alerts, backlogs

    def sample(self) -> Sample:
        pid = self.app.proc.pid
        lags, alerts, backlogs = self.scan_events()
        alerts += [f"log {line}" for line in self._logs.new_alerts()
                   if not LOG_QUIET.search(line)]
        now = time.time()
        for a in alerts:
            self.alerts.append((now - self.t0, a))
        mono, cpu, busy = time.monotonic(), bench_app.cpu_seconds(pid), self._busy_cpu()
        m0, c0, b0 = self._cpu
        self._cpu = (mono, cpu, busy)
        mem = bench_app.memory_kib(pid)
        extra = status_extra(pid)
        threads = app_footprint.memory(pid).get("Threads", 0)
        s = Sample(now - self.t0, mem.get("VmRSS", 0), extra.get("RssAnon", 0),
                   extra.get("RssFile", 0), mem.get("VmHWM", 0), threads, extra["fds"],
                   100 * (cpu - c0) / (mono - m0), 100 * (busy - b0) / (mono - m0),
                   max(lags) if lags else None, len(lags), len(self.plays),
                   os.getloadavg()[0], len(backlogs), max(backlogs, default=0.0), alerts)
        self.samples.append(s)
        lag = "   -  " if s.lag_max_s is None else f"{s.lag_max_s:5.2f}s"
        progress(f"t={s.t:6.0f}s rss {s.rss_kib / 1024:6.1f} MiB (anon {s.anon_kib / 1024:6.1f},"
                 f" hwm {s.hwm_kib / 1024:6.1f}) thr {s.threads} fds {s.fds} | cpu "
                 f"{s.cpu_pct:3.0f}% busy {s.busy_cpu_pct:3.0f}% | lag max {lag} "
                 f"({s.commits} commits) | back-pressure {s.pressure} (backlog max "
                 f"{s.backlog_max_s:.1f}s) | played {s.played} | load {s.load1:.2f}"
                 + (f" | ALERT {'; '.join(alerts)}" if alerts else ""))
        return s


# --------------------------------------------------------------------------- the dictation


TAP_GAP_S: float = bench_app.TAP_GAP_S


def start_dictation(desk: Desktop, app: App, tail: EventTail, last_stop: float) -> float:
    """Double tap; returns the ``recording_started`` time."""
    time.sleep(max(0.0, last_stop + TAP_GAP_S - time.time()))
    mark = tail.poll()
    desk.xdotool("key", "--delay", "80", bench_app.HOTKEY, bench_app.HOTKEY)
    return float(tail.wait("recording_started", mark, app.proc, timeout=15)["t"])


def stop_dictation(desk: Desktop, app: App, tail: EventTail) -> tuple[float, float]:
    """One tap (again if the app did not take it); returns (tap time, ``finished`` time)."""
    mark = tail.poll()
    tap = time.time()
    desk.xdotool("key", bench_app.HOTKEY)
    try:
        tail.wait("stopped", mark, app.proc, timeout=10)
    except RuntimeError:
        progress("no 'stopped' event 10 s after the stop tap: tapping again")
        time.sleep(TAP_GAP_S)
        desk.xdotool("key", bench_app.HOTKEY)
    finished = tail.wait("finished", mark, app.proc, timeout=900)
    return tap, float(finished["t"])


@dataclass
class Dictation:
    started: float
    """``recording_started`` wall time."""
    stop_tap: float = 0.0
    finished: float = 0.0


def dictate_loop(desk: Desktop, app: App, tail: EventTail, sampler: Sampler,
                 utterances: list[Utterance], plays: list[Play], dictations: list[Dictation],
                 args: argparse.Namespace, rng: random.Random) -> None:
    """Play the WAVs until ``--minutes`` passed, in ``--dictations`` dictations."""
    t0 = dictations[0].started
    total_s = 60.0 * args.minutes
    boundaries = [t0 + total_s * k / args.dictations for k in range(1, args.dictations)]
    pass_no = 0
    while True:
        pass_no += 1
        order = list(utterances)
        rng.shuffle(order)
        for u in order:
            now = time.time()
            if now - t0 >= total_s:
                return
            if app.proc.poll() is not None:
                raise RuntimeError(f"the app exited (code {app.proc.returncode})")
            tail.poll()
            if boundaries and now >= boundaries[0]:
                boundaries.pop(0)
                time.sleep(1.0)  # trailing silence before the stop tap
                sampler.dictating = False
                d = dictations[-1]
                d.stop_tap, d.finished = stop_dictation(desk, app, tail)
                progress(f"dictation {len(dictations)} stopped; "
                         f"stop tap -> finished {d.finished - d.stop_tap:.2f} s")
                dictations.append(Dictation(start_dictation(desk, app, tail, d.stop_tap)))
                sampler.dictating = True
                progress(f"dictation {len(dictations)} started")
            elif tail.state not in (None, "listening"):
                progress("the app is not listening (an unexpected stop): double tap again")
                dictations[-1].finished = dictations[-1].stop_tap = time.time()
                dictations.append(Dictation(start_dictation(desk, app, tail, time.time())))
            start = time.time()
            desk.run("play", str(u.wav), timeout=600)
            plays.append(Play(u, pass_no, start, time.time()))
            time.sleep(rng.uniform(args.pause_min, args.pause_max))
        progress(f"pass {pass_no} over the {len(utterances)} WAVs done "
                 f"({len(plays)} played)")


# --------------------------------------------------------------------------- alignment


def align(ref: list[str], hyp: list[str]) -> list[int]:
    """For each hypothesis word, the index of the reference word a minimal edit alignment
    pairs it with (match or substitution), or -1 (an insertion). Row-wise dynamic programming
    in numpy: a soak has thousands of words on each side."""
    n, m = len(ref), len(hyp)
    if not n or not m:
        return [-1] * m
    vocab: dict[str, int] = {}
    r = np.array([vocab.setdefault(w, len(vocab)) for w in ref])
    h = np.array([vocab.setdefault(w, len(vocab)) for w in hyp])
    back = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 up (deletion), 2 left
    back[0, 1:] = 2
    back[1:, 0] = 1
    idx = np.arange(m + 1)
    prev = idx.copy()
    for i in range(1, n + 1):
        diag = prev[:-1] + (h != r[i - 1])
        up = prev[1:] + 1
        row = np.empty(m + 1, dtype=prev.dtype)
        row[0] = i
        row[1:] = np.minimum(diag, up)
        best = np.minimum.accumulate(row - idx) + idx  # insertions (moves left)
        back[i, 1:] = np.where(best[1:] < row[1:], 2, np.where(diag <= up, 0, 1))
        prev = best
    out = [-1] * m
    i, j = n, m
    while i > 0 or j > 0:
        op = back[i, j]
        if op == 0:
            out[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif op == 1:
            i -= 1
        else:
            j -= 1
    return out


_DIGITS_TOKEN = re.compile(r"^[\d.,:;!?-]*\d[\d.,:;!?-]*$")


def token_words(token: str, scorer: ModuleType) -> list[str]:
    """Normalised words of one typed token, for alignment only: a numeral that is no year is
    read digit by digit (the dev set's digit strings); scoring uses the scorer's rules."""
    digits = re.sub(r"\D", "", token)
    year = len(digits) == 4 and 1100 <= int(digits) <= 2099
    digit_mode = bool(_DIGITS_TOKEN.match(token)) and len(digits) >= 2 and not year
    return str(scorer.normalize_text(token, digits_mode=digit_mode)).split()


@dataclass
class Attribution:
    tokens: list[str]
    per_utt: list[list[int]]
    """Token indices given to each played utterance, in order."""
    aligned: list[bool]
    """Whether a token was paired with a reference word (not an insertion)."""


def attribute(plays: list[Play], text_tokens: list[str], scorer: ModuleType) -> Attribution:
    """Give each hypothesis token to the played utterance it belongs to."""
    ref: list[str] = []
    ref_owner: list[int] = []
    for k, p in enumerate(plays):
        words = str(scorer.normalize_text(p.utterance.transcript)).split()
        ref += words
        ref_owner += [k] * len(words)
    words, word_tok = [], []
    for ti, tok in enumerate(text_tokens):
        for w in token_words(tok, scorer):
            words.append(w)
            word_tok.append(ti)
    pairs = align(ref, words)
    tok_utt = [-1] * len(text_tokens)
    aligned = [False] * len(text_tokens)
    for wi, ri in enumerate(pairs):
        if ri >= 0 and not aligned[word_tok[wi]]:
            tok_utt[word_tok[wi]] = ref_owner[ri]
            aligned[word_tok[wi]] = True
    last = next((u for u in tok_utt if u >= 0), 0)  # insertions join the utterance before
    for ti, u in enumerate(tok_utt):
        if u < 0:
            tok_utt[ti] = last
        last = tok_utt[ti]
    per_utt: list[list[int]] = [[] for _ in plays]
    for ti, u in enumerate(tok_utt):
        if plays and token_words(text_tokens[ti], scorer):
            per_utt[u].append(ti)
    return Attribution(text_tokens, per_utt, aligned)


@dataclass
class Scored:
    wer: dict[str, Any]
    hits: list[int]
    """Reference words found, per utterance."""
    ref_words: list[int]
    per_pass: dict[int, float]


def score_text(plays: list[Play], att: Attribution, scorer: ModuleType) -> Scored:
    refs, hyps, hits, sizes = [], [], [], []
    by_pass: dict[int, tuple[list[str], list[str]]] = {}
    for k, p in enumerate(plays):
        ref = str(scorer.normalize_text(p.utterance.transcript))
        raw = " ".join(att.tokens[t] for t in att.per_utt[k])
        hyp = str(scorer.normalize_text(raw, digits_mode=scorer.is_digit_string(ref)))
        s, d, _ = scorer.edit_ops(ref.split(), hyp.split())
        refs.append(ref)
        hyps.append(hyp)
        hits.append(len(ref.split()) - s - d)
        sizes.append(len(ref.split()))
        pr, ph = by_pass.setdefault(p.pass_no, ([], []))
        pr.append(ref)
        ph.append(hyp)
    per_pass = {n: float(scorer.score(r, h)["wer"]) for n, (r, h) in sorted(by_pass.items())}
    return Scored(scorer.score(refs, hyps), hits, sizes, per_pass)


def journal_tokens(path: Path) -> tuple[list[str], int, list[str]]:
    """Tokens of the journal's segment texts (in order), the number of entries, and the gap
    markers (``[gap: ...]`` entries)."""
    from dictation.output.journal import JournalEntry

    tokens: list[str] = []
    gaps: list[str] = []
    entries = 0
    if not path.exists():
        return tokens, entries, gaps
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = JournalEntry.from_json(line)
        except (ValueError, KeyError, TypeError):
            continue
        entries += 1
        if entry.text.startswith("[gap:") and not entry.typed:
            gaps.append(entry.text)
            continue
        tokens += entry.text.split()
    return tokens, entries, gaps


def typed_tokens(events: list[dict[str, Any]]) -> tuple[list[str], list[float]]:
    """Tokens of all ``typed`` texts (dictations one space apart) with the time each token's
    last character was typed."""
    text, times = "", []
    for e in events:
        if e["event"] == "typed":
            text += e["text"]
            times += [e["t"]] * len(e["text"])
        elif e["event"] == "finished":
            text += " "
            times.append(e["t"])
    tokens, token_times = [], []
    for match in re.finditer(r"\S+", text):
        tokens.append(match.group(0))
        token_times.append(times[match.end() - 1])
    return tokens, token_times


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    return float(bench_app.pct(values, q))


def secs(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f} s"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


@dataclass
class Result:
    args: argparse.Namespace
    command: str
    commit: str
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    samples: list[Sample]
    idle_before: dict[str, int]
    after_stop: dict[str, int]
    after_idle: dict[str, int]
    dictations: list[Dictation]
    plays: list[Play]
    lags: list[tuple[float, float]]
    alerts: list[tuple[float, str]]
    events: list[dict[str, Any]]
    journal: Scored
    journal_entries: int
    journal_gaps: list[str]
    textbox: Scored
    utt_lags: list[float | None]
    cpu_avg: tuple[float, float]
    warmup_min: float
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def rss_figures(r: Result) -> dict[str, Any]:
    t0 = r.dictations[0].started
    end_t = r.dictations[-1].stop_tap - t0
    during = [s for s in r.samples if s.t <= end_t] or r.samples
    warm = next((s for s in during if s.t >= 60 * r.warmup_min), during[-1])
    first, last = during[0], during[-1]
    after = [s for s in during if s.t >= warm.t]
    slope = float("nan")
    if len(after) >= 3:
        hours = np.array([s.t for s in after]) / 3600
        slope = float(np.polyfit(hours, np.array([s.rss_kib for s in after]) / 1024, 1)[0])
    return {"first": first, "warm": warm, "last": last,
            "growth_pct": 100 * (last.rss_kib - warm.rss_kib) / warm.rss_kib,
            "anon_growth_pct": 100 * (last.anon_kib - warm.anon_kib) / max(warm.anon_kib, 1),
            "slope_mib_h": slope, "max_hwm": max(s.hwm_kib for s in during)}


def lag_figures(r: Result) -> dict[str, Any]:
    t0 = r.dictations[0].started
    lags = [lag for _, lag in r.lags]
    span = max((t for t, _ in r.lags), default=t0) - t0
    first = [lag for t, lag in r.lags if t - t0 <= span / 3]
    last = [lag for t, lag in r.lags if t - t0 >= 2 * span / 3]
    return {"p50": pct(lags, 50), "p90": pct(lags, 90), "max": max(lags, default=float("nan")),
            "n": len(lags), "first_p90": pct(first, 90), "last_p90": pct(last, 90),
            "first_max": max(first, default=float("nan")),
            "last_max": max(last, default=float("nan"))}


def report(r: Result) -> str:
    a = r.args
    rss = rss_figures(r)
    lag = lag_figures(r)
    utt_lags = [x for x in r.utt_lags if x is not None]
    names = [e["event"] for e in r.events]
    dropped = [e for e in r.events if e["event"] == "audio_dropped"]
    dropped_s = sum(float(e.get("seconds", 0)) for e in dropped)
    pressure = [e for e in r.events if e["event"] == "back_pressure"]
    errors = [e for e in r.events if e["event"] == "error"]
    lost = [k for k, h in enumerate(r.journal.hits) if h == 0 and r.journal.ref_words[k]]
    partial = [k for k, h in enumerate(r.journal.hits)
               if h and h < 0.5 * r.journal.ref_words[k]]
    spill_lines = [m for _, m in r.alerts if m.startswith("log ") and "spill" in m.lower()]
    audio_s = sum(p.end - p.start for p in r.plays)
    played_ids = {p.utterance.id for p in r.plays}
    passes = max((p.pass_no for p in r.plays), default=0)
    rss_ok = rss["growth_pct"] < a.rss_growth_pct
    lost_ok = not lost and not dropped and not r.journal_gaps and not errors and bool(r.plays)
    lag_ok = (lag["max"] < a.lag_limit_s
              and not lag["last_p90"] > lag["first_p90"] + 1.0)
    dictation_s = r.dictations[-1].stop_tap - r.dictations[0].started
    how = ("one dictation" if len(r.dictations) == 1 else
           f"{len(r.dictations)} dictations")
    lines = [
        "# Soak: a long dictation into the running app (scripts/soak.py)",
        "",
        f"The real app (`python -m dictation app`, model `{a.model}`, code at `{r.commit}`) on "
        "the shared harness desktop (Xvfb, tray host, PulseAudio virtual microphone, focused "
        f"Tk text box), with {a.busy} CPU-bound busy process(es) (`python -c 'while True: "
        f"pass'`) beside it on this {os.cpu_count()}-core machine. {how.capitalize()} of "
        f"{dictation_s / 60:.1f} min: {len(r.plays)} dev-set WAVs ({len(played_ids)} distinct, "
        f"{passes} pass(es), each in a new shuffled order; {audio_s / 60:.1f} min of "
        f"audio) played back to back with {a.pause_min:g}-{a.pause_max:g} s pauses, sampled "
        f"every {a.sample_s:g} s. Wall time {r.wall_s / 60:.1f} min.",
        "",
        f"Command: `{r.command}`",
        "",
        f"Load average (1/5/15 min): {'/'.join(f'{x:.2f}' for x in r.load_start)} at start, "
        f"{'/'.join(f'{x:.2f}' for x in r.load_end)} at the end. App CPU during the "
        f"dictation: {r.cpu_avg[0]:.0f} % of one core on average; busy process(es): "
        f"{r.cpu_avg[1]:.0f} %.",
        "",
        "## Verdicts",
        "",
        "| target | result | verdict |",
        "| --- | --- | --- |",
        f"| RSS growth from {r.warmup_min:g} min to the end < {a.rss_growth_pct:g} % | "
        f"{rss['growth_pct']:+.1f} % ({mib(rss['warm'].rss_kib)} -> {mib(rss['last'].rss_kib)};"
        f" trend {rss['slope_mib_h']:+.1f} MiB/h) | {verdict(rss_ok)} |",
        f"| nothing lost (no dropped audio, no gap, no error, every utterance in the journal) "
        f"| {len(lost)} of {len(r.plays)} utterances with no word in the journal; "
        f"{len(dropped)} audio_dropped ({dropped_s:.1f} s), {len(r.journal_gaps)} journal gap "
        f"marks, {len(errors)} error events; journal WER {100 * r.journal.wer['wer']:.2f} % | "
        f"{verdict(lost_ok)} |",
        f"| recognizer lag bounded (max < {a.lag_limit_s:g} s, last-third p90 <= first-third "
        f"p90 + 1 s) | p50 {secs(lag['p50'])}, p90 {secs(lag['p90'])}, max {secs(lag['max'])}; "
        f"p90 first/last third {secs(lag['first_p90'])} / {secs(lag['last_p90'])} | "
        f"{verdict(lag_ok)} |",
        "",
        "## Figures",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| RSS idle before dictating | {mib(r.idle_before.get('VmRSS', 0))} |",
        f"| RSS first sample ({rss['first'].t:.0f} s) | {mib(rss['first'].rss_kib)} "
        f"(anon {mib(rss['first'].anon_kib)}) |",
        f"| RSS at {rss['warm'].t / 60:.1f} min (after warm-up) | {mib(rss['warm'].rss_kib)} "
        f"(anon {mib(rss['warm'].anon_kib)}) |",
        f"| RSS at the end of the dictation ({rss['last'].t / 60:.1f} min) | "
        f"{mib(rss['last'].rss_kib)} (anon {mib(rss['last'].anon_kib)}) |",
        f"| RSS growth after warm-up (RssAnon growth) | {rss['growth_pct']:+.2f} % "
        f"({rss['anon_growth_pct']:+.2f} %) |",
        f"| RSS trend after warm-up (least squares) | {rss['slope_mib_h']:+.1f} MiB/h |",
        f"| peak VmHWM during the dictation | {mib(rss['max_hwm'])} |",
        f"| RSS after the stop / after {a.idle_s:g} s idle | "
        f"{mib(r.after_stop.get('VmRSS', 0))} / {mib(r.after_idle.get('VmRSS', 0))} |",
        f"| threads / open fds (first -> last sample) | {rss['first'].threads} -> "
        f"{rss['last'].threads} / {rss['first'].fds} -> {rss['last'].fds} |",
        f"| recognizer lag (commit wall time - capture time of the audio consumed), n = "
        f"{lag['n']} commits | p50 {secs(lag['p50'])}, p90 {secs(lag['p90'])}, max "
        f"{secs(lag['max'])} |",
        f"| recognizer lag max first / last third | {secs(lag['first_max'])} / "
        f"{secs(lag['last_max'])} |",
        f"| playback end -> utterance's last typed word, n = {len(utt_lags)} | p50 "
        f"{secs(pct(utt_lags, 50))}, p90 {secs(pct(utt_lags, 90))}, max "
        f"{secs(max(utt_lags, default=float('nan')))} |",
        "| stop tap -> finished (last text typed) | "
        + ", ".join(secs(d.finished - d.stop_tap) for d in r.dictations) + " |",
        "| back_pressure events (level: count) | "
        + (", ".join(f"{lv}: {sum(1 for e in pressure if e.get('level') == lv)}"
                     for lv in sorted({int(e.get('level', 0)) for e in pressure})) or "none")
        + (f"; largest backlog reported {max(float(e.get('backlog_s', 0)) for e in pressure):.1f}"
           " s" if pressure else "") + " |",
        f"| audio_dropped events / seconds | {len(dropped)} / {dropped_s:.2f} s |",
        f"| spill log lines (audio spilled to the spool file) | {len(spill_lines)} |",
        f"| journal entries (segments) / gap marks | {r.journal_entries} / "
        f"{len(r.journal_gaps)} |",
        f"| journal WER (scorer, {r.journal.wer['ref_words']} words) | "
        f"{100 * r.journal.wer['wer']:.2f} % ({r.journal.wer['sub']} sub, "
        f"{r.journal.wer['del']} del, {r.journal.wer['ins']} ins) |",
        "| journal WER per pass | " + ", ".join(
            f"{n}: {100 * w:.2f} %" for n, w in r.journal.per_pass.items()) + " |",
        f"| text box WER | {100 * r.textbox.wer['wer']:.2f} % |",
        f"| utterances with no word in the journal / under half their words | {len(lost)} / "
        f"{len(partial)} |",
        f"| commits / typed events | {names.count('commit')} / {names.count('typed')} |",
        "",
        "For comparison: `reports/bench-stream-tiny.en.md` (the same dev set streamed offline, "
        "one utterance at a time, no busy process) has WER 4.98 %.",
        "",
    ]
    if lost or partial:
        lines += ["## Utterances lost or mostly lost in the journal", "",
                  "| # | pass | WAV | played at | words found | reference |",
                  "| --- | --- | --- | --- | --- | --- |"]
        t0 = r.dictations[0].started
        for k in sorted(lost + partial):
            p = r.plays[k]
            lines.append(f"| {k + 1} | {p.pass_no} | {p.utterance.id} | {p.start - t0:.0f} s | "
                         f"{r.journal.hits[k]}/{r.journal.ref_words[k]} | "
                         f"{p.utterance.transcript[:60]} |")
        lines.append("")
    lines += ["## Alerts (events and log lines about dropped, spilled or late audio)", ""]
    if r.alerts:
        for t, message in r.alerts[:40]:
            lines.append(f"- {t:.0f} s: `{message[:200]}`")
        if len(r.alerts) > 40:
            lines.append(f"- ... {len(r.alerts) - 40} more")
    else:
        lines.append("None.")
    lines += ["", "## Timeline (one sample a minute)", "",
              "| t | RSS | RssAnon | VmHWM | threads | app CPU | busy CPU | lag max | "
              "back-pressure events | load |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    shown, next_t = [], 0.0
    for s in r.samples:
        if s.t >= next_t:
            shown.append(s)
            next_t = s.t - s.t % 60 + 60
    if r.samples and shown[-1] is not r.samples[-1]:
        shown.append(r.samples[-1])
    for s in shown:
        minute = [x for x in r.samples if s.t - 60 < x.t <= s.t]
        window = [x.lag_max_s for x in minute if x.lag_max_s is not None]
        lines.append(f"| {s.t / 60:.1f} min | {mib(s.rss_kib)} | {mib(s.anon_kib)} | "
                     f"{mib(s.hwm_kib)} | {s.threads} | {s.cpu_pct:.0f} % | "
                     f"{s.busy_cpu_pct:.0f} % | {secs(max(window) if window else None)} | "
                     f"{sum(x.pressure for x in minute)} | {s.load1:.2f} |")
    lines += [
        "",
        "## How it is measured",
        "",
        "- Memory: VmRSS / RssAnon / VmHWM of the app process from `/proc/PID/status`; growth "
        f"compares the first sample at or after {r.warmup_min:g} min with the last sample "
        "before the stop tap (the app gives freed heap back with `malloc_trim` only when a "
        "dictation ends, so the figures during a dictation include freed but kept heap).",
        "- Recognizer lag: for every `commit` event, its wall time minus the wall time at which "
        "the audio the recognizer had consumed was captured; the stream origin is the "
        "`recording_started` event minus the samples it read (within the 50 ms drain period).",
        "- Playback end -> last typed word: the typed words (`typed` events) are aligned to the "
        "played references in order (minimal edit alignment); an utterance's lag is when its "
        "last aligned word was typed minus when `desktop_session.sh play` returned. It includes "
        "the 0.3 s endpoint silence that closes a segment.",
        "- Nothing lost: the journal (`$XDG_DATA_HOME/dictation/journal.jsonl` of the app) is "
        "aligned the same way; each utterance's share is scored with the project's scorer "
        "(digit references in digit mode). An utterance with no reference word found at its "
        "place is lost.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "dictation"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or "soak"
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="dictating time (default 30)")
    p.add_argument("--busy", type=int, default=1,
                   help="CPU-bound busy processes beside the app (default 1)")
    p.add_argument("--dictations", type=int, default=1,
                   help="split the run into this many dictations (default 1: one long one)")
    p.add_argument("--wav", nargs="+", metavar="ID",
                   help="dev-set ids to loop (default: all of ../shared/data/dev)")
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--pause-min", type=float, default=0.5, help="seconds (default 0.5)")
    p.add_argument("--pause-max", type=float, default=1.5, help="seconds (default 1.5)")
    p.add_argument("--sample-s", type=float, default=10.0, help="sampling period (default 10)")
    p.add_argument("--warmup-minutes", type=float, default=5.0,
                   help="RSS growth is measured from here (default 5; at most half the run)")
    p.add_argument("--rss-growth-pct", type=float, default=5.0, help="target (default 5)")
    p.add_argument("--lag-limit-s", type=float, default=10.0, help="target (default 10)")
    p.add_argument("--idle-s", type=float, default=10.0,
                   help="idle seconds after the stop before the last memory sample")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path,
                   help="keep the app's files (journal, events, log, samples) here")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "soak.md")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.dictations < 1 or args.busy < 0:
        p.error("--minutes > 0, --dictations >= 1 and --busy >= 0 please")
    return args


def all_dev_ids() -> list[str]:
    lines = (bench_app.DEV_SET / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[0] for line in lines[1:] if line.strip()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    pythonpath = os.environ.get("PYTHONPATH")
    command = (f"PYTHONPATH={pythonpath} " if pythonpath else "") + f"{sys.executable} " + (
        "scripts/soak.py ") + " ".join(
        shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    started = time.monotonic()
    load_start = os.getloadavg()
    utterances = bench_app.load_utterances(args.wav or all_dev_ids())
    scorer = bench_app.load_scorer()
    warmup = min(args.warmup_minutes, args.minutes / 2)
    rng = random.Random(args.seed)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        home, tmp = args.workdir.resolve(), None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="soak-")
        home = Path(tmp.name)
    os.environ["XDG_STATE_HOME"] = str(home / "state")  # the app's log file stays private
    busy: list[subprocess.Popen[bytes]] = []
    plays: list[Play] = []
    dictations: list[Dictation] = []
    try:
        with bench_app.Desktop() as desk:
            progress(f"desktop up; starting the app in {home}")
            app = bench_app.start_app(home, desk.env, args.model)
            tail = EventTail(app.events_path)
            try:
                progress(f"app ready (pid {app.proc.pid}); starting {args.busy} busy "
                         "process(es)")
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(args.busy)]
                time.sleep(3.0)
                idle_before = bench_app.memory_kib(app.proc.pid)
                desk.run("focus")
                desk.run("clear")
                dictations.append(Dictation(start_dictation(desk, app, tail, 0.0)))
                t0 = dictations[0].started
                cpu0 = (time.monotonic(), bench_app.cpu_seconds(app.proc.pid))
                sampler = Sampler(app, tail, busy, plays, t0, args.sample_s)
                busy0 = sampler._busy_cpu()
                sampler.start()
                progress(f"dictating for {args.minutes:g} min ({len(utterances)} WAVs a pass, "
                         f"{args.dictations} dictation(s)); a sample every {args.sample_s:g} s")
                try:
                    dictate_loop(desk, app, tail, sampler, utterances, plays, dictations,
                                 args, rng)
                    time.sleep(1.0)  # trailing silence before the stop tap
                    sampler.dictating = False
                    d = dictations[-1]
                    d.stop_tap, d.finished = stop_dictation(desk, app, tail)
                    cpu1 = (time.monotonic(), bench_app.cpu_seconds(app.proc.pid))
                    busy1 = sampler._busy_cpu()
                    progress(f"stopped; stop tap -> finished {d.finished - d.stop_tap:.2f} s")
                finally:
                    sampler.stop()
                sampler.sample()  # the events up to the end, memory right after the stop
                after_stop = bench_app.memory_kib(app.proc.pid)
                time.sleep(args.idle_s)
                after_idle = bench_app.memory_kib(app.proc.pid)
                box_text = desk.run("text")
            finally:
                for b in busy:
                    b.kill()
                    b.wait(10)
                app.proc.terminate()
                try:
                    app.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    app.proc.kill()
        load_end = os.getloadavg()
        progress("scoring the journal and the text box")
        tail.poll()
        events = tail.events
        tokens, entries, gaps = journal_tokens(home / "data" / "dictation" / "journal.jsonl")
        journal = score_text(plays, attribute(plays, tokens, scorer), scorer)
        box = score_text(plays, attribute(plays, box_text.split(), scorer), scorer)
        typed, typed_times = typed_tokens(events)
        att = attribute(plays, typed, scorer)
        utt_lags: list[float | None] = []
        for k, p in enumerate(plays):
            times = [typed_times[t] for t in att.per_utt[k] if att.aligned[t]]
            utt_lags.append(max(times) - p.end if times else None)
        span = cpu1[0] - cpu0[0]
        result = Result(
            args, command, git_commit(), load_start, load_end, sampler.samples, idle_before,
            after_stop, after_idle, dictations, plays, sampler.lags, sampler.alerts, events,
            journal, entries, gaps, box, utt_lags,
            (100 * (cpu1[1] - cpu0[1]) / span, 100 * (busy1 - busy0) / span), warmup,
            time.monotonic() - started)
        if args.workdir is not None:
            with open(home / "samples.tsv", "w", encoding="utf-8") as f:
                f.write("t\trss_kib\tanon_kib\tfile_kib\thwm_kib\tthreads\tfds\tcpu_pct\t"
                        "busy_cpu_pct\tlag_max_s\tcommits\tplayed\tload1\tback_pressure\n")
                for s in sampler.samples:
                    f.write(f"{s.t:.1f}\t{s.rss_kib}\t{s.anon_kib}\t{s.file_kib}\t{s.hwm_kib}\t"
                            f"{s.threads}\t{s.fds}\t{s.cpu_pct:.1f}\t{s.busy_cpu_pct:.1f}\t"
                            f"{'' if s.lag_max_s is None else f'{s.lag_max_s:.3f}'}\t"
                            f"{s.commits}\t{s.played}\t{s.load1:.2f}\t{s.pressure}\n")
            (home / "textbox.txt").write_text(box_text, encoding="utf-8")
    finally:
        for b in busy:  # also when the desktop failed to start
            if b.poll() is None:
                b.kill()
        if tmp is not None:
            shutil.rmtree(tmp.name, ignore_errors=True)
    text = report(result)
    bench_app.publish(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
