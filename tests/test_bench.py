"""The benchmark: offline and streaming runs of the real tiny.en on a small set of dev files, WER
checked against the project's scorer run as a script, plus the lag bookkeeping on known events."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from model_fixtures import real_model_dir

from dictation.asr.events import Commit, EndOfSegment, Partial
from dictation.asr.replay import TimedEvent
from dictation.asr.whisper.loaders import load_model
from dictation.asr.whisper.recognizer import WhisperRecognizer
from dictation.audio.vad import load_vad_net
from dictation.bench.alignment import WordTiming
from dictation.bench.run import (
    BenchReport,
    add_bench_arguments,
    bench_main,
    commit_latency,
    default_report_path,
    load_scorer,
    match_words,
    run_bench,
    scorer_path,
    write_hyps_tsv,
)
from dictation.errors import ConfigError

SET_IDS = ["ljspeech-lj001-0008", "sb-spk2-snt6", "sb-spk2-snt3-noise5-5db"]
"""Three short files in three conditions; tiny.en gets the last two partly wrong (WER > 0)."""


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def scorer_script(shared_dir: Path) -> Path:
    path = shared_dir / "scoring" / "score.py"
    if not path.is_file():
        pytest.skip(f"scorer {path} is missing")
    return path


@pytest.fixture(scope="module")
def scorer(scorer_script: Path) -> ModuleType:
    return load_scorer(scorer_script)


@pytest.fixture(scope="module")
def tiny_set(dev_set_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of three dev utterances with their rows of transcripts.tsv."""
    root = tmp_path_factory.mktemp("set")
    lines = (dev_set_dir / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines[1:] if line.split("\t")[0] in SET_IDS]
    assert len(rows) == len(SET_IDS)
    (root / "wav").mkdir()
    for row in rows:
        rel = row.split("\t")[1]
        shutil.copy(dev_set_dir / rel, root / rel)
    (root / "transcripts.tsv").write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tiny_en() -> WhisperRecognizer:
    return WhisperRecognizer("tiny.en", load_model(real_model_dir(), "ct2", "tiny.en"),
                             load_vad_net())


def run_scorer_script(script: Path, set_dir: Path, hyps: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, str(script), "--set", str(set_dir), "--hyps",
                           str(hyps)], capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def assert_matches_scorer(report: BenchReport, script: Path, set_dir: Path) -> None:
    assert report.hyps_path is not None and report.hyps_path.is_file()
    expected = run_scorer_script(script, set_dir, report.hyps_path)
    assert expected["missing"] == 0
    for key in ("wer", "sub", "del", "ins", "ref_words", "n_utts", "wer_by_condition"):
        assert report.score[key] == expected[key], key


@pytest.mark.slow
def test_offline_bench_reports_the_scorers_wer(tiny_set: Path, tiny_en: WhisperRecognizer,
                                               scorer_script: Path, tmp_path: Path) -> None:
    report = run_bench(tiny_set, "tiny.en", report_path=tmp_path / "offline.md",
                       progress=False, threads=1, scorer=scorer_script, recognizer=tiny_en)
    assert report.mode == "offline" and len(report.utterances) == len(SET_IDS)
    assert_matches_scorer(report, scorer_script, tiny_set)
    assert report.wer > 0  # tiny.en mishears two of these: the comparison is not 0 == 0
    assert set(report.wer_by_condition) == {"read_audiobook", "read_prompt", "noisy_5db"}
    assert report.rtf > 0 and report.peak_rss_mib > 0 and report.torch_threads == 1
    text = (tmp_path / "offline.md").read_text(encoding="utf-8")
    for needle in ("| WER |", "| RTF |", "| Peak RSS |", "noisy_5db", "torch threads: 1",
                   *SET_IDS):
        assert needle in text
    assert report.hyps_path == tmp_path / "offline.hyps.tsv"


@pytest.mark.slow
def test_stream_bench_measures_commit_lag(tiny_set: Path, tiny_en: WhisperRecognizer,
                                          scorer_script: Path, tmp_path: Path) -> None:
    report = run_bench(tiny_set, "tiny.en", stream=True, report_path=tmp_path / "stream.md",
                       progress=False, threads=1, scorer=scorer_script, recognizer=tiny_en)
    assert report.mode == "stream"
    assert_matches_scorer(report, scorer_script, tiny_set)
    assert report.n_commits > 0 and 0 < report.partial_fraction < 1
    assert report.n_matched_words > 0 and report.n_matched_words <= report.n_committed_words
    lags = report.lags_s
    assert len(lags) == report.n_matched_words
    # a word can be committed slightly before its aligned end, never long before it, and never
    # after the end of the stream (audio + 1 s of silence + the last decode)
    assert all(math.isfinite(x) and -1.0 < x < 10.0 for x in lags), lags
    latencies = report.segment_latencies_s
    assert latencies and all(math.isfinite(x) and -1.0 < x < 10.0 for x in latencies)
    assert report.lag_p50_s is not None and report.lag_p90_s is not None
    assert report.lag_p50_s <= report.lag_p90_s
    assert report.peak_rss_mib > 0 and report.rtf > 0
    text = (tmp_path / "stream.md").read_text(encoding="utf-8")
    for needle in ("Commit lag p50 / p90", "Segment-end latency p50 / p90", "StreamingConfig("):
        assert needle in text


def test_bench_times_faster_whisper_on_the_same_files(tiny_set: Path, tiny_en: WhisperRecognizer,
                                                      scorer_script: Path,
                                                      tmp_path: Path) -> None:
    """The yardstick: faster-whisper transcribes every file in the same run; the report gives
    its RTF, its WER and our compute over its compute."""
    pytest.importorskip("faster_whisper")
    report = run_bench(tiny_set, "tiny.en", report_path=tmp_path / "offline.md",
                       progress=False, threads=1, scorer=scorer_script, recognizer=tiny_en,
                       compute="float32")
    assert all(u.yardstick_s is not None and u.yardstick_s > 0 for u in report.utterances)
    assert all(u.yardstick_hyp for u in report.utterances)
    assert report.yardstick_score is not None and report.yardstick_score["ref_words"] > 0
    assert report.yardstick_ratio == pytest.approx(report.processing_s / report.yardstick_s)
    assert report.yardstick_cpu_ratio is not None and report.yardstick_cpu_ratio > 0
    text = (tmp_path / "offline.md").read_text(encoding="utf-8")
    for needle in ("faster-whisper RTF", "Compute / faster-whisper", "| Compute | float32 |",
                   "CTranslate2 int8, greedy"):
        assert needle in text


def test_bench_without_faster_whisper_says_so(tiny_set: Path, tiny_en: WhisperRecognizer,
                                              scorer_script: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the test extra the bench runs, reports no ratio and says why (faster-whisper is
    hidden from the import system here; it is installed in the test environment)."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == "faster_whisper" else real_find_spec(name, *a))
    report = run_bench(tiny_set, "tiny.en", report_path=tmp_path / "offline.md",
                       progress=False, threads=1, scorer=scorer_script, recognizer=tiny_en,
                       compute="float32", limit=1)
    assert report.yardstick_ratio is None and report.yardstick_rtf is None
    text = (tmp_path / "offline.md").read_text(encoding="utf-8")
    assert "faster-whisper is not installed" in text


# ---------------------------------------------------------------------------- bookkeeping units


def test_hyps_tsv_is_read_by_the_scorer(tiny_set: Path, scorer_script: Path, scorer: ModuleType,
                                        tmp_path: Path) -> None:
    hyps = ["Has never\tbeen\nsurpassed.", 'Can "pairs" lack full flavor', ""]
    path = tmp_path / "hyps.tsv"
    write_hyps_tsv(path, SET_IDS, hyps)
    result = run_scorer_script(scorer_script, tiny_set, path)
    assert result["n_utts"] == 3 and result["missing"] == 0
    # the first hypothesis is right once its tab and line break became spaces
    assert result["wer_by_condition"]["read_audiobook"] == 0.0  # type: ignore[index]


def test_match_words_normalises_like_the_scorer(scorer: ModuleType) -> None:
    committed = ["The", "Guttenburg", "or", "42-line", "Bible", "of", "1455."]
    reference = ["the", "Gutenberg,", "or", "forty", "two", "line", "Bible", "of", "about",
                 "fourteen", "fifty", "five"]
    pairs = match_words(committed, reference, scorer.normalize_text)
    # "42-line" ends with "line", "1455." with "five"
    assert pairs == [(0, 0), (2, 2), (3, 5), (4, 6), (5, 7), (6, 11)]


def test_commit_latency_from_known_events(scorer: ModuleType) -> None:
    reference = [WordTiming("Hello", 0.2, 0.6), WordTiming("world.", 0.7, 1.1),
                 WordTiming("Again", 3.0, 3.4), WordTiming("here.", 3.5, 3.9)]
    events = [
        TimedEvent(Partial("Hello", 0.7, 0), 0.75),
        TimedEvent(Commit("Hello", 0.9, 0), 1.0),
        TimedEvent(Commit(" world.", 1.6, 0), 1.8),
        TimedEvent(EndOfSegment("Hello world.", 1.6, 0), 1.8),
        TimedEvent(Commit(" Again here.", 4.2, 1), 4.5),
        TimedEvent(Commit(" extra", 4.2, 1), 4.6),  # not in the reference: not timed
        TimedEvent(EndOfSegment("Again here. extra", 4.2, 1), 4.6),
    ]
    latency = commit_latency(events, reference, scorer.normalize_text)
    assert latency.n_words == 5 and latency.n_matched == 4
    assert latency.lags_s == pytest.approx([0.4, 0.7, 1.1, 0.6])
    # segment 1's last commit (4.6) minus the end of its last timed word (3.9)
    assert latency.segment_latencies_s == pytest.approx([0.7, 0.7])


def test_missing_scorer_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--scorer"):
        scorer_path(tmp_path / "nowhere.py")
    script = tmp_path / "score.py"
    script.write_text("def normalize_text(t, digits_mode=False):\n    return t\n",
                      encoding="utf-8")
    monkeypatch.setenv("DICTATION_SCORER", str(script))
    assert scorer_path() == script
    with pytest.raises(ConfigError, match="no function is_digit_string"):
        load_scorer()


def test_default_report_path_names_mode_and_model() -> None:
    assert default_report_path("stream", "tiny.en") == Path("reports/bench-stream-tiny.en.md")
    assert default_report_path("offline", "/models/my model/", "out") == Path(
        "out/bench-offline-my_model.md")


def test_bench_main_reports_a_missing_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          scorer_script: Path) -> None:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--set", str(tmp_path / "no-set"), "--quiet",
                              "--scorer", str(scorer_script)])
    assert bench_main(args) == 1
    err = capsys.readouterr().err
    assert "no-set" in err and "transcripts.tsv" in err
