"""``dictation bench``: accuracy, speed and latency of the recognizer on a speech set.

For each utterance of a set folder (see :func:`dictation.audio.files.read_dataset`):

- offline mode transcribes the whole file (:meth:`dictation.asr.session.Recognizer.transcribe`);
- stream mode feeds it through a :class:`~dictation.asr.session.Session` as if it were
  live (:func:`dictation.asr.replay.replay` with the real-time clock, 1 s of trailing silence,
  or with ``--clock simulated``: every decode runs, whatever the machine's load); the
  hypothesis is everything committed.

WER is computed with the project's scorer, ``../shared/scoring/score.py`` (imported by path: it
is the judge, so there is no fallback copy). Stream mode also measures, against word times from
forced alignment of the offline transcript (:mod:`dictation.bench.alignment`):

- per-word commit lag: when a word was committed minus when it ends in the audio;
- segment-end latency: when a segment's last words were committed minus when its speech ended.

The yardstick: when faster-whisper (the ``test`` extra) is installed and the model is in
CTranslate2 format, the same files are also transcribed offline by faster-whisper (int8, greedy,
the same threads) in the same run, each just before our own run of it, so the load of a shared
machine weighs on both alike; the report gives its RTF and our compute over its compute (wall
and CPU seconds), the numbers that hold from one machine (or one busy hour) to the next.

The report is Markdown, with the hypotheses beside it as a TSV (columns ``id``, ``hyp``) that
``score.py --hyps`` reads.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import math
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import torch

from dictation import SAMPLE_RATE
from dictation.asr.catalog import DEFAULT_MODEL_ID, resolve
from dictation.asr.driver import StreamingConfig
from dictation.asr.events import Commit, Partial
from dictation.asr.recognizer import default_threads, load_recognizer
from dictation.asr.replay import TimedEvent, replay
from dictation.asr.session import Recognizer
from dictation.audio.files import Utterance, load_audio, read_dataset
from dictation.bench.alignment import WordTiming, reference_word_times
from dictation.config import COMPUTE_TYPES, DEFAULT_COMPUTE, OFFLINE_COMPUTE
from dictation.errors import ConfigError, DictationError

Mode = Literal["offline", "stream"]

SCORER_ENV = "DICTATION_SCORER"
"""Environment variable naming the scorer script (overrides the default location)."""
DEFAULT_SCORER = Path(__file__).resolve().parents[3] / "shared" / "scoring" / "score.py"
"""``../shared/scoring/score.py`` beside the checkout."""
TRAILING_SILENCE_S = 1.0
"""Silence fed after each utterance in stream mode, seconds (a live microphone keeps going)."""
Clock = Literal["realtime", "simulated"]
CLOCKS: tuple[Clock, ...] = ("realtime", "simulated")
"""Stream mode's replay clocks (see :func:`run_bench`)."""


# ------------------------------------------------------------------------------------- scoring


def scorer_path(path: str | Path | None = None) -> Path:
    """The scorer script: ``path``, else $DICTATION_SCORER, else ../shared/scoring/score.py."""
    chosen = Path(path or os.environ.get(SCORER_ENV) or DEFAULT_SCORER).expanduser()
    if not chosen.is_file():
        raise ConfigError(
            f"WER scorer not found at {chosen}. The benchmark scores with the project's judge, "
            f"shared/scoring/score.py: pass --scorer PATH or set {SCORER_ENV}=PATH.")
    return chosen


def load_scorer(path: str | Path | None = None) -> ModuleType:
    """Import the scorer script (see :func:`scorer_path`) as a module."""
    script = scorer_path(path)
    spec = importlib.util.spec_from_file_location("dictation_bench_scorer", script)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import the WER scorer {script}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # anything the script raises on import makes it unusable
        raise ConfigError(f"the WER scorer {script} failed to load: {exc}") from exc
    for name in ("normalize_text", "is_digit_string", "score"):
        if not callable(getattr(module, name, None)):
            raise ConfigError(f"the WER scorer {script} has no function {name}()")
    return module


@dataclass(frozen=True)
class Scored:
    """Corpus WER as the scorer reports it, plus each utterance's own WER."""

    result: dict[str, Any]
    """wer, sub, del, ins, ref_words, n_utts, wer_by_condition (as score.py prints)."""
    per_utterance: list[float]


def score_hypotheses(scorer: ModuleType, utterances: list[Utterance],
                     hyps: list[str]) -> Scored:
    """Score ``hyps`` against ``utterances`` exactly as ``score.py --set --hyps`` does:
    normalise both sides (digit-by-digit reading where the reference is a digit string),
    corpus-level edit counts, WER per condition (``-`` when the set has none)."""
    refs = [scorer.normalize_text(u.transcript) for u in utterances]
    norm = [scorer.normalize_text(h, digits_mode=scorer.is_digit_string(r))
            for r, h in zip(refs, hyps, strict=True)]
    conditions = [u.condition or "-" for u in utterances]
    result = dict(scorer.score(refs, norm))
    result["wer_by_condition"] = {
        c: scorer.score([r for r, k in zip(refs, conditions, strict=True) if k == c],
                        [h for h, k in zip(norm, conditions, strict=True) if k == c])["wer"]
        for c in sorted(set(conditions))}
    per_utt = [float(scorer.score([r], [h])["wer"]) if r.split() else float(bool(h.split()))
               for r, h in zip(refs, norm, strict=True)]
    return Scored(result, per_utt)


def write_hyps_tsv(path: Path, ids: list[str], hyps: list[str]) -> None:
    """Hypotheses as score.py reads them: tab-separated, header ``id<TAB>hyp``, one line each
    (tabs and line breaks inside a hypothesis become spaces)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id\thyp"] + [f"{i}\t{' '.join(h.split())}" for i, h in zip(ids, hyps, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------- lag matching


@dataclass(frozen=True)
class CommittedWord:
    word: str
    time_s: float
    """When the Commit holding the word reached the user, seconds from the stream start."""
    segment: int


def committed_words(events: list[TimedEvent]) -> list[CommittedWord]:
    """Every word of every Commit, in order, with the commit's time and segment."""
    return [CommittedWord(word, e.time_s, e.event.segment)
            for e in events if isinstance(e.event, Commit) for word in e.event.text.split()]


def match_words(committed: list[str], reference: list[str],
                normalise: Callable[[str], str]) -> list[tuple[int, int]]:
    """(committed index, reference index) pairs of the same words, in order: difflib on the
    words as ``normalise`` (the scorer's normalisation) spells them. A word that normalises to
    several ("1455" -> "fourteen fifty five") is paired with the reference word holding its
    last matched piece (where it ends); one that normalises to nothing is never paired."""
    def flatten(words: list[str]) -> tuple[list[str], list[int]]:
        flat, owner = [], []
        for index, word in enumerate(words):
            for piece in normalise(word).split():
                flat.append(piece)
                owner.append(index)
        return flat, owner

    a, a_owner = flatten(committed)
    b, b_owner = flatten(reference)
    last: dict[int, int] = {}
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            i, j = a_owner[block.a + k], b_owner[block.b + k]
            last[i] = max(j, last.get(i, j))
    return sorted(last.items())


@dataclass(frozen=True)
class Latency:
    lags_s: list[float]
    """Per matched word: commit time minus the word's end in the audio."""
    segment_latencies_s: list[float]
    """Per segment with matched words: its last commit time minus its speech end."""
    n_words: int
    n_matched: int


def commit_latency(events: list[TimedEvent], reference: list[WordTiming],
                   normalise: Callable[[str], str]) -> Latency:
    """Commit lag and segment-end latency of a stream's events against aligned reference words.

    A segment's speech end is the latest end of the reference words matched to its committed
    words; its latency is its last commit time minus that."""
    words = committed_words(events)
    pairs = match_words([w.word for w in words], [r.word for r in reference], normalise)
    lags = [words[i].time_s - reference[j].end_s for i, j in pairs]
    speech_end: dict[int, float] = {}
    for i, j in pairs:
        segment = words[i].segment
        speech_end[segment] = max(speech_end.get(segment, -math.inf), reference[j].end_s)
    last_commit: dict[int, float] = {}
    for e in events:
        if isinstance(e.event, Commit) and e.event.text.strip():
            last_commit[e.event.segment] = e.time_s
    segment_latencies = [last_commit[s] - end for s, end in sorted(speech_end.items())]
    return Latency(lags, segment_latencies, len(words), len(pairs))


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# ------------------------------------------------------------------------------------ results


@dataclass
class UtteranceResult:
    """One utterance of a run."""

    id: str
    condition: str
    duration_s: float
    reference: str
    hyp: str
    processing_s: float
    """Wall-clock seconds of recognition (offline: transcription; stream: feed/finish calls)."""
    wer: float = 0.0
    n_commits: int = 0
    n_partials: int = 0
    n_events: int = 0
    lags_s: list[float] = field(default_factory=list)
    segment_latencies_s: list[float] = field(default_factory=list)
    n_committed_words: int = 0
    n_matched_words: int = 0
    decode_s: float = 0.0
    """Stream mode: seconds the session spent decoding (the rest of processing is VAD)."""
    cpu_s: float = 0.0
    """CPU seconds (all threads of the process) of the same calls as ``processing_s``."""
    yardstick_s: float | None = None
    """Wall-clock seconds faster-whisper took to transcribe the file (None: no yardstick)."""
    yardstick_cpu_s: float | None = None
    yardstick_hyp: str = ""


@dataclass
class BenchReport:
    """Outcome of :func:`run_bench` (times in seconds, memory in MiB)."""

    mode: Mode
    model_id: str
    set_dir: Path
    utterances: list[UtteranceResult]
    score: dict[str, Any]
    """The scorer's result: wer, sub, del, ins, ref_words, n_utts, wer_by_condition."""
    audio_s: float
    processing_s: float
    peak_rss_mib: float
    settings: str
    torch_threads: int
    cpu_count: int
    torch_version: str
    date: str
    limited: bool = False
    compute: str = DEFAULT_COMPUTE
    """How the model computed ("int8" or "float32")."""
    yardstick: str = ""
    """What the yardstick is, or why there is none."""
    yardstick_score: dict[str, Any] | None = None
    """The scorer's result for the yardstick's hypotheses."""
    clock: Clock = "realtime"
    """Stream mode's replay clock (see :func:`run_bench`)."""
    report_path: Path | None = None
    hyps_path: Path | None = None

    @property
    def wer(self) -> float:
        return float(self.score["wer"])

    @property
    def wer_by_condition(self) -> dict[str, float]:
        return dict(self.score["wer_by_condition"])

    @property
    def rtf(self) -> float:
        """Processing seconds per second of audio (below 1: faster than real time)."""
        return self.processing_s / self.audio_s if self.audio_s else 0.0

    @property
    def cpu_s(self) -> float:
        return sum(u.cpu_s for u in self.utterances)

    @property
    def yardstick_s(self) -> float | None:
        """faster-whisper's wall seconds on the same files (None without the yardstick)."""
        times = [u.yardstick_s for u in self.utterances]
        return None if not times or None in times else sum(t for t in times if t is not None)

    @property
    def yardstick_cpu_s(self) -> float | None:
        times = [u.yardstick_cpu_s for u in self.utterances]
        return None if not times or None in times else sum(t for t in times if t is not None)

    @property
    def yardstick_rtf(self) -> float | None:
        y = self.yardstick_s
        return None if y is None or not self.audio_s else y / self.audio_s

    @property
    def yardstick_ratio(self) -> float | None:
        """Our processing seconds over faster-whisper's, same files, same run."""
        y = self.yardstick_s
        return None if not y else self.processing_s / y

    @property
    def yardstick_cpu_ratio(self) -> float | None:
        """Our CPU seconds over faster-whisper's."""
        y = self.yardstick_cpu_s
        return None if not y else self.cpu_s / y

    @property
    def lags_s(self) -> list[float]:
        return [x for u in self.utterances for x in u.lags_s]

    @property
    def segment_latencies_s(self) -> list[float]:
        return [x for u in self.utterances for x in u.segment_latencies_s]

    @property
    def lag_p50_s(self) -> float | None:
        return percentile(self.lags_s, 50)

    @property
    def lag_p90_s(self) -> float | None:
        return percentile(self.lags_s, 90)

    @property
    def segment_latency_p50_s(self) -> float | None:
        return percentile(self.segment_latencies_s, 50)

    @property
    def segment_latency_p90_s(self) -> float | None:
        return percentile(self.segment_latencies_s, 90)

    @property
    def n_commits(self) -> int:
        return sum(u.n_commits for u in self.utterances)

    @property
    def partial_fraction(self) -> float:
        """Partial events over all events (Partial, Commit, EndOfSegment)."""
        events = sum(u.n_events for u in self.utterances)
        return sum(u.n_partials for u in self.utterances) / events if events else 0.0

    @property
    def n_committed_words(self) -> int:
        return sum(u.n_committed_words for u in self.utterances)

    @property
    def n_matched_words(self) -> int:
        return sum(u.n_matched_words for u in self.utterances)


# -------------------------------------------------------------------------------------- running


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def default_report_path(mode: Mode, model_id: str, report_dir: str | Path = "reports") -> Path:
    """``<report_dir>/bench-<mode>-<model>.md`` (a model path is named by its folder)."""
    name = Path(model_id).name or model_id
    return Path(report_dir) / f"bench-{mode}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.md"


def hyps_path_for(report_path: Path) -> Path:
    """The hypotheses TSV written beside a report: ``X.md`` -> ``X.hyps.tsv``."""
    return report_path.with_suffix(".hyps.tsv")


class _Progress:
    """One-line progress on stderr: ``[i/n] id``."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.width = total, enabled, 0

    def show(self, index: int, text: str) -> None:
        if not self.enabled:
            return
        line = f"[{index}/{self.total}] {text}"
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def done(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()


YARDSTICK_WARMUP_S = 2.0
"""Silence the yardstick transcribes once before it is timed, seconds."""


class Yardstick:
    """faster-whisper transcribing a file offline: CTranslate2 int8, greedy (beam 1,
    temperature 0 without fallback), English, no VAD filter, ``threads`` CPU threads."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                  cpu_threads=threads)
        self.description = (f"faster-whisper (CTranslate2 int8, greedy: beam 1, temperature 0, "
                            f"English, {threads} threads) on {model_dir}")

    def transcribe(self, audio: np.ndarray) -> str:
        segments, _ = self.model.transcribe(audio, beam_size=1, temperature=0.0, language="en",
                                            vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()

    def timed(self, audio: np.ndarray) -> tuple[str, float, float]:
        """(text, wall seconds, CPU seconds) of one transcription."""
        wall, cpu = time.perf_counter(), time.process_time()
        text = self.transcribe(audio)
        return text, time.perf_counter() - wall, time.process_time() - cpu


def load_yardstick(model_id: str, threads: int) -> tuple[Yardstick | None, str]:
    """The yardstick for ``model_id`` and its description, or None and why there is none
    (faster-whisper not installed, or the model not in CTranslate2 format)."""
    if importlib.util.find_spec("faster_whisper") is None:
        return None, ("none: faster-whisper is not installed (the `test` extra: "
                      "pip install -e '.[test]'), so no ratio is reported")
    try:
        resolved = resolve(model_id, download=False, progress=False)
    except DictationError as exc:
        return None, f"none: {exc}"
    if resolved.format != "ct2":
        return None, (f"none: {model_id} is in {resolved.format} format; faster-whisper "
                      "reads CTranslate2 models only")
    yardstick = Yardstick(resolved.path, threads)
    yardstick.transcribe(np.zeros(int(YARDSTICK_WARMUP_S * SAMPLE_RATE), dtype=np.float32))
    return yardstick, yardstick.description


def _run_offline(recognizer: Recognizer, utt: Utterance,
                 audio: np.ndarray) -> UtteranceResult:
    started, cpu = time.perf_counter(), time.process_time()
    hyp = recognizer.transcribe(audio)
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return UtteranceResult(utt.id, utt.condition or "-", len(audio) / SAMPLE_RATE,
                           utt.transcript, hyp, elapsed, cpu_s=cpu_s)


def _run_stream(recognizer: Recognizer, utt: Utterance, audio: np.ndarray,
                config: StreamingConfig, chunk_s: float, normalise: Callable[[str], str],
                progress: Callable[[str], None], clock: Clock) -> UtteranceResult:
    session = recognizer.open_session(config)
    started, cpu = time.perf_counter(), time.process_time()
    events = list(replay(session, audio, chunk_s=chunk_s, realtime=clock == "realtime",
                         trailing_silence_s=TRAILING_SILENCE_S))
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    hyp = "".join(e.event.text for e in events if isinstance(e.event, Commit)).strip()
    progress("aligning the offline transcript")
    offline = recognizer.transcribe(audio)
    reference = reference_word_times(recognizer, audio, offline)
    latency = commit_latency(events, reference, normalise)
    return UtteranceResult(
        utt.id, utt.condition or "-", len(audio) / SAMPLE_RATE, utt.transcript, hyp, elapsed,
        n_commits=sum(isinstance(e.event, Commit) for e in events),
        n_partials=sum(isinstance(e.event, Partial) for e in events),
        n_events=len(events), lags_s=latency.lags_s,
        segment_latencies_s=latency.segment_latencies_s, n_committed_words=latency.n_words,
        n_matched_words=latency.n_matched, decode_s=session.decode_seconds, cpu_s=cpu_s)


def run_bench(set_dir: str | Path, model_id: str = DEFAULT_MODEL_ID, stream: bool = False,
              report_path: str | Path | None = None, limit: int | None = None,
              progress: bool = True, *, threads: int | None = None,
              config: StreamingConfig | None = None, chunk_s: float = 0.1,
              scorer: str | Path | None = None, recognizer: Recognizer | None = None,
              compute: str = DEFAULT_COMPUTE, yardstick: bool = True,
              clock: Clock = "realtime") -> BenchReport:
    """Benchmark ``model_id`` on the set folder ``set_dir`` and write the Markdown report to
    ``report_path`` (default ``reports/bench-<mode>-<model>.md``) with the hypotheses TSV
    beside it (``.hyps.tsv``).

    stream: streaming session with the real-time replay clock instead of offline transcription.
    limit: only the first ``limit`` utterances (WER is then over those only).
    threads: torch intra-op threads (default: half the cores, 1 to 4), set for the whole process.
    config: the streaming settings (default :class:`StreamingConfig()`).
    chunk_s: audio per feed in stream mode, seconds (the microphone block size).
    scorer: the score.py to use (default: see :func:`scorer_path`).
    recognizer: an already loaded recognizer (skips resolving ``model_id``, which then only
    names it; ``compute`` should then say how it was loaded).
    compute: "int8" or "float32" (see :func:`~dictation.asr.whisper.loaders.set_compute`).
    yardstick: also time faster-whisper on the same files (see :func:`load_yardstick`).
    clock: stream mode's replay clock: "realtime" (audio arrives while a decode runs, so a
    slow machine skips decodes as the app would) or "simulated" (every decode runs: compute
    and WER do not depend on the machine's load; lags then leave the decode time out).
    """
    score_module = load_scorer(scorer)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    utterances = read_dataset(set_dir)
    limited = limit is not None and limit < len(utterances)
    utterances = utterances[:limit] if limit is not None else utterances
    mode: Mode = "stream" if stream else "offline"
    config = config or StreamingConfig()
    if recognizer is None:  # loaded the way the app loads it (same inference settings)
        recognizer = load_recognizer(model_id, progress=progress, threads=threads,
                                     compute=compute)
    torch.set_num_threads(threads or default_threads())
    recognizer.warm_up()  # first calls pay one-time setup costs
    ruler, ruler_text = (load_yardstick(model_id, torch.get_num_threads()) if yardstick
                         else (None, "none: not asked for"))

    bar = _Progress(len(utterances), progress)
    results: list[UtteranceResult] = []
    for index, utt in enumerate(utterances, start=1):
        bar.show(index, utt.id)
        audio = load_audio(utt.path)
        measured = ruler.timed(audio) if ruler is not None else None
        if stream:
            def stage(text: str, index: int = index, utt_id: str = utt.id) -> None:
                bar.show(index, f"{utt_id} ({text})")

            result = _run_stream(recognizer, utt, audio, config, chunk_s,
                                 score_module.normalize_text, stage, clock)
        else:
            result = _run_offline(recognizer, utt, audio)
        if measured is not None:
            result.yardstick_hyp, result.yardstick_s, result.yardstick_cpu_s = measured
        results.append(result)
    bar.done()

    scored = score_hypotheses(score_module, utterances, [r.hyp for r in results])
    for result, wer in zip(results, scored.per_utterance, strict=True):
        result.wer = wer
    ruler_score = (score_hypotheses(score_module, utterances,
                                    [r.yardstick_hyp for r in results]).result
                   if ruler is not None else None)
    settings = (repr(recognizer.open_session(config).config) if stream
                else recognizer.offline_settings)
    report = BenchReport(
        mode=mode, model_id=model_id, set_dir=Path(set_dir), utterances=results,
        score=scored.result, audio_s=sum(r.duration_s for r in results),
        processing_s=sum(r.processing_s for r in results), peak_rss_mib=peak_rss_mib(),
        settings=settings, torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count() or 1, torch_version=torch.__version__,
        date=datetime.now().astimezone().isoformat(timespec="seconds"), limited=limited,
        compute=compute, yardstick=ruler_text, yardstick_score=ruler_score, clock=clock)
    report.report_path = Path(report_path) if report_path else default_report_path(mode,
                                                                                    model_id)
    report.hyps_path = hyps_path_for(report.report_path)
    write_hyps_tsv(report.hyps_path, [r.id for r in results], [r.hyp for r in results])
    report.report_path.parent.mkdir(parents=True, exist_ok=True)
    report.report_path.write_text(render_markdown(report), encoding="utf-8")
    return report


# ------------------------------------------------------------------------------------ reporting


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def summary_rows(report: BenchReport) -> list[tuple[str, str]]:
    """(metric, value) pairs of the headline table."""
    s = report.score
    rows = [
        ("WER", f"{report.wer:.2%} ({s['sub']} sub, {s['del']} del, {s['ins']} ins / "
                f"{s['ref_words']} words)"),
        ("RTF", f"{report.rtf:.3f} ({report.processing_s:.1f} s for {report.audio_s:.1f} s "
                "of audio)"),
        ("Peak RSS", f"{report.peak_rss_mib:.0f} MiB"),
        ("Utterances", str(len(report.utterances))),
        ("Compute", report.compute),
    ]
    y_rtf = report.yardstick_rtf
    if y_rtf is None or report.yardstick_score is None:
        rows.append(("faster-whisper yardstick", report.yardstick or "none"))
    else:
        rows += [
            ("faster-whisper RTF (offline int8 greedy, same files, same run)",
             f"{y_rtf:.3f} (WER {float(report.yardstick_score['wer']):.2%})"),
            ("Compute / faster-whisper (wall; CPU seconds)",
             f"{report.yardstick_ratio:.2f} x; {report.yardstick_cpu_ratio:.2f} x"),
        ]
    if report.mode == "stream":
        matched = report.n_matched_words
        rows += [
            ("Commit lag p50 / p90", f"{_seconds(report.lag_p50_s)} / "
                                     f"{_seconds(report.lag_p90_s)}"),
            ("Segment-end latency p50 / p90", f"{_seconds(report.segment_latency_p50_s)} / "
                                              f"{_seconds(report.segment_latency_p90_s)}"),
            ("Words timed (matched to alignment)", f"{matched} of {report.n_committed_words} "
                                                   "committed"),
            ("Segments timed", str(len(report.segment_latencies_s))),
            ("Commits", str(report.n_commits)),
            ("Partial events (share of all events)", f"{report.partial_fraction:.1%}"),
        ]
    return rows


def render_markdown(report: BenchReport) -> str:
    """The report: headline table, WER per condition, settings, machine, per-utterance table."""
    title = f"# Benchmark: {report.mode}, {report.model_id}, {report.set_dir}"
    out = [title, "", "| Metric | Value |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in summary_rows(report)]
    out += ["", "## WER per condition", "", "| Condition | WER |", "|---|---|"]
    out += [f"| {c} | {w:.2%} |" for c, w in report.wer_by_condition.items()]
    out += ["", "## Settings", "", f"- mode: {report.mode}", f"- model: {report.model_id}",
            f"- compute: {report.compute}", f"- settings: `{report.settings}`",
            f"- yardstick: {report.yardstick}"]
    if report.mode == "stream":
        out += [f"- replay: {report.clock} clock, {TRAILING_SILENCE_S:g} s trailing silence; "
                "RTF is the wall time of the session's feed/finish calls (VAD + decoding) over the "
                "utterance's own audio seconds",
                "- commit lag: commit time of a word minus its end in the audio (forced "
                "alignment of the offline transcript, words matched with difflib; negative = "
                "committed before the aligned end)",
                "- segment-end latency: last commit of a segment minus the latest aligned end "
                "of its matched words"]
    if report.limited:
        out.append(f"- limited to the first {len(report.utterances)} utterances: WER is over "
                   "those only (score.py on the whole set would count the rest as missing)")
    out += ["", "## Machine", "", f"- CPU cores: {report.cpu_count}",
            f"- torch threads: {report.torch_threads}",
            f"- torch: {report.torch_version}; Python {platform.python_version()}; "
            f"{platform.machine()} {platform.system()}",
            f"- date: {report.date}"]
    if report.hyps_path is not None:
        out += [f"- hypotheses: `{report.hyps_path.name}` (score with `python score.py --set "
                f"{report.set_dir} --hyps {report.hyps_path.name}`)"]
    out += ["", "## Utterances", ""]
    if report.mode == "stream":
        out += ["| id | condition | duration | WER | RTF | lag p50 | commits | hyp |",
                "|---|---|---|---|---|---|---|---|"]
        for u in report.utterances:
            rtf = u.processing_s / u.duration_s if u.duration_s else 0.0
            out.append(f"| {u.id} | {u.condition} | {u.duration_s:.1f} s | {u.wer:.1%} | "
                       f"{rtf:.2f} | {_seconds(percentile(u.lags_s, 50))} | {u.n_commits} | "
                       f"{_cell(u.hyp)} |")
    else:
        out += ["| id | condition | duration | WER | RTF | hyp |", "|---|---|---|---|---|---|"]
        for u in report.utterances:
            rtf = u.processing_s / u.duration_s if u.duration_s else 0.0
            out.append(f"| {u.id} | {u.condition} | {u.duration_s:.1f} s | {u.wer:.1%} | "
                       f"{rtf:.2f} | {_cell(u.hyp)} |")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------- CLI


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dictation bench`` (for the CLI's subcommand parser)."""
    parser.add_argument("--set", required=True, dest="set_dir", metavar="DIR",
                        help="speech set folder holding transcripts.tsv and its audio")
    parser.add_argument("--model", default=DEFAULT_MODEL_ID, metavar="ID",
                        help=f"model id from the catalogue or a model folder "
                             f"(default {DEFAULT_MODEL_ID})")
    parser.add_argument("--stream", action="store_true",
                        help="stream each file through a live session (real-time clock) and "
                             "measure commit lag; default: offline transcription")
    parser.add_argument("--report", metavar="PATH", default=None,
                        help="Markdown report to write (default "
                             "REPORT_DIR/bench-<mode>-<model>.md); the hypotheses TSV goes "
                             "beside it")
    parser.add_argument("--report-dir", metavar="DIR", default="reports",
                        help="folder of the default report path (default ./reports)")
    parser.add_argument("--limit", type=int, metavar="N", default=None,
                        help="only the first N utterances")
    parser.add_argument("--threads", type=int, metavar="N", default=None,
                        help="torch threads (default: half the CPU cores this process may "
                             "use, 1 to 4)")
    parser.add_argument("--compute", choices=COMPUTE_TYPES, default=None,
                        help=f"model arithmetic (default {DEFAULT_COMPUTE} with --stream, as "
                             f"the app; {OFFLINE_COMPUTE} offline)")
    parser.add_argument("--clock", choices=CLOCKS, default="realtime",
                        help="--stream replay clock: realtime (decodes skipped when the "
                             "machine falls behind, as live) or simulated (every decode runs; "
                             "compute independent of the load) (default realtime)")
    parser.add_argument("--no-yardstick", action="store_true",
                        help="do not time faster-whisper on the same files")
    parser.add_argument("--scorer", metavar="PATH", default=None,
                        help=f"WER scorer script (default ${SCORER_ENV} or "
                             "../shared/scoring/score.py)")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def bench_main(args: argparse.Namespace) -> int:
    """Run ``dictation bench`` from parsed arguments; prints the headline numbers and where the
    report is. Returns the exit status (1 with a message on stderr when it cannot run)."""
    mode: Mode = "stream" if args.stream else "offline"
    report_path = args.report or default_report_path(mode, args.model, args.report_dir)
    if args.threads is not None and args.threads < 1:
        print("error: --threads must be at least 1", file=sys.stderr)
        return 1
    try:
        report = run_bench(args.set_dir, args.model, stream=args.stream,
                           report_path=report_path, limit=args.limit, progress=not args.quiet,
                           threads=args.threads, scorer=args.scorer,
                           compute=args.compute or (DEFAULT_COMPUTE if args.stream
                                                    else OFFLINE_COMPUTE),
                           yardstick=not args.no_yardstick, clock=args.clock)
    except DictationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, value in summary_rows(report):
        print(f"{name}: {value}")
    print(f"report: {report.report_path}")
    print(f"hypotheses: {report.hyps_path}")
    return 0
