"""Word timestamps by forced alignment: the numeric parts against brute-force references, and the
real tiny.en on real speech (JFK, two clips around a known silence, a 44 s file)."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from model_fixtures import (
    DEV_WAV_DIR,
    JFK_TEXT,
    JFK_WAV,
    read_wav,
    real_model_dir,
)

from dictation import SAMPLE_RATE
from dictation.asr.whisper.loaders import LoadedModel, load_model
from dictation.audio.vad import FRAME_SAMPLES, SileroVadNet, load_vad_net, speech_probabilities
from dictation.bench.alignment import (
    WordTiming,
    align_words,
    distribute_words,
    dtw_path,
    group_words,
    median_filter,
    reference_word_times,
    token_boundaries,
    trim_to_speech,
)

VAD_FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def tiny_en() -> LoadedModel:
    return load_model(real_model_dir(), "ct2", "tiny.en")


@pytest.fixture(scope="module")
def vad_net() -> SileroVadNet:
    return load_vad_net()


def dev_transcripts() -> dict[str, dict[str, str]]:
    path = DEV_WAV_DIR.parent / "transcripts.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    with path.open(newline="", encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}


def speech_runs_s(vad_net: SileroVadNet, audio: np.ndarray, min_frames: int = 5
                  ) -> list[tuple[float, float]]:
    """(start, end) seconds of runs of at least ``min_frames`` VAD speech frames (p >= 0.5):
    where the file has speech, measured independently of the alignment."""
    speech = speech_probabilities(vad_net, audio) >= 0.5
    runs = []
    for value, group in itertools.groupby(enumerate(speech), key=lambda x: bool(x[1])):
        frames = [i for i, _ in group]
        if value and len(frames) >= min_frames:
            runs.append((frames[0] * VAD_FRAME_S, (frames[-1] + 1) * VAD_FRAME_S))
    return runs


def assert_well_formed(words: list[WordTiming], duration_s: float) -> None:
    assert words
    for w in words:
        assert w.word and w.word == w.word.strip()
        assert 0.0 <= w.start_s <= w.end_s <= duration_s + 1e-6, w
    for a, b in itertools.pairwise(words):
        assert a.end_s <= b.start_s + 1e-9, (a, b)


# ------------------------------------------------------------------------- numeric building blocks


def reference_dtw(cost: np.ndarray) -> float:
    """Cost of the cheapest path: textbook O(N*M) DTW with explicit loops."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return float(acc[n, m])


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 12)),
              elements=st.floats(-5, 5, allow_nan=False)))
def test_dtw_path_is_a_cheapest_monotonic_path(cost: np.ndarray) -> None:
    rows, cols = dtw_path(cost)
    n, m = cost.shape
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (n - 1, m - 1)
    steps = set(zip(np.diff(rows).tolist(), np.diff(cols).tolist(), strict=True))
    assert steps <= {(1, 0), (0, 1), (1, 1)}
    assert cost[rows, cols].sum() == pytest.approx(reference_dtw(cost), abs=1e-9)


def test_dtw_path_follows_a_staircase() -> None:
    # three tokens spoken in frames 0-1, 2-4 and 5: a cheap block per token
    cost = np.ones((3, 6))
    cost[0, 0:2] = cost[1, 2:5] = cost[2, 5] = -1.0
    rows, cols = dtw_path(cost)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [
        (0, 0), (0, 1), (1, 2), (1, 3), (1, 4), (2, 5)]
    assert token_boundaries(-cost).tolist() == [0, 2, 5]


def test_median_filter_removes_spikes_and_reflects_edges() -> None:
    x = np.array([[1.0, 9.0, 1.0, 1.0, 1.0, 5.0, 5.0]])
    # reflected edges: [9, 1, 9, 1, 1, 1, 5, 5, 5]
    assert median_filter(x, 3).tolist() == [[9.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.0]]
    assert median_filter(x[:, :1], 7).tolist() == [[1.0]]  # too short: unchanged
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, 4)


def test_group_words_attaches_punctuation_without_timing_it() -> None:
    texts = [" And", " Americ", "ans", ",", " \"", "ask", "\"", " not", "."]
    starts = np.arange(len(texts), dtype=float)
    ends = starts + 1.0
    words = group_words(texts, starts, ends)
    assert words == [
        WordTiming("And", 0.0, 1.0),
        WordTiming("Americans,", 1.0, 3.0),  # the comma (3-4) does not extend the word
        WordTiming("\"ask\"", 5.0, 6.0),  # the opening quote joins the next word
        WordTiming("not.", 7.0, 8.0),
    ]


def test_distribute_words_follows_each_windows_transcript() -> None:
    words = ["it", "was", "the", "best", "of", "times", "it", "was", "the", "worst", "of",
             "times"]
    heard = [["It", "was", "the", "best", "of", "tides,"], ["it", "was", "worst", "of", "times."]]
    runs = distribute_words(words, heard)
    assert runs == [words[:6], words[6:]]  # "times" (heard as "tides") stays with its window


def test_trim_to_speech_keeps_the_longest_run_of_speech() -> None:
    probs = np.zeros(100)
    probs[10:20] = 0.9  # speech 0.32-0.64 s
    probs[60:90] = 0.9  # speech 1.92-2.88 s
    words = [WordTiming("a", 0.0, 1.5), WordTiming("b", 1.5, 3.2), WordTiming("c", 1.0, 1.5)]
    trimmed = trim_to_speech(words, probs, margin_frames=0)
    assert trimmed[0] == WordTiming("a", pytest.approx(0.32), pytest.approx(0.64))
    assert trimmed[1] == WordTiming("b", pytest.approx(1.92), pytest.approx(2.88))
    assert trimmed[2] == words[2]  # no speech inside: unchanged


# ------------------------------------------------------------------------------- real speech


@pytest.mark.slow
@pytest.mark.parametrize("forced", [False, True], ids=["transcribed", "forced"])
def test_jfk_words_fall_where_they_are_spoken(tiny_en: LoadedModel, vad_net: SileroVadNet,
                                             forced: bool) -> None:
    audio = read_wav(JFK_WAV)
    duration = len(audio) / SAMPLE_RATE
    words = align_words(tiny_en, audio, JFK_TEXT if forced else None, vad_net=vad_net)
    assert_well_formed(words, duration)
    if forced:
        assert [w.word for w in words] == JFK_TEXT.split()
    names = [w.word.strip(",.").lower() for w in words]
    americans, ask = words[names.index("americans")], words[names.index("ask")]
    runs = speech_runs_s(vad_net, audio)
    # the first pause of the speech lies between "Americans" and "ask"
    pause_start, pause_end = runs[0][1], runs[1][0]
    assert pause_end - pause_start > 0.5
    assert americans.end_s <= pause_start + 0.3
    assert ask.start_s >= pause_end - 0.3
    # the last word ends with the speech
    speech_end = runs[-1][1]
    assert abs(words[-1].end_s - speech_end) <= 1.0, (words[-1], speech_end)


@pytest.mark.slow
@pytest.mark.parametrize("forced", [False, True], ids=["transcribed", "forced"])
def test_words_stay_on_their_side_of_a_silence(tiny_en: LoadedModel, vad_net: SileroVadNet,
                                               forced: bool) -> None:
    refs = dev_transcripts()
    first_id, second_id = "ljspeech-lj001-0002", "sb-spk1-snt5"
    first = read_wav(DEV_WAV_DIR / f"{first_id}.wav")
    second = read_wav(DEV_WAV_DIR / f"{second_id}.wav")
    gap_s = 2.0
    audio = np.concatenate([first, np.zeros(int(gap_s * SAMPLE_RATE), np.float32), second])
    silence_start = len(first) / SAMPLE_RATE
    silence_end = silence_start + gap_s
    first_text, second_text = refs[first_id]["reference_raw"], refs[second_id]["reference_raw"]
    words = align_words(tiny_en, audio, f"{first_text} {second_text}" if forced else None,
                        vad_net=vad_net)
    assert_well_formed(words, len(audio) / SAMPLE_RATE)
    n_first = len(first_text.split())
    names = [w.word.strip(",.").lower() for w in words]
    assert names[n_first - 1] == "modern" and names[n_first] == "sunday", names
    assert words[n_first - 1].end_s <= silence_start + 0.3
    assert words[n_first].start_s >= silence_end - 0.3


@pytest.mark.slow
def test_long_file_is_aligned_per_window(tiny_en: LoadedModel, vad_net: SileroVadNet) -> None:
    refs = dev_transcripts()
    audio = read_wav(DEV_WAV_DIR / "moonshine-two-cities.wav")
    duration = len(audio) / SAMPLE_RATE
    assert duration > 30.0
    text = refs["moonshine-two-cities"]["reference_raw"]
    words = align_words(tiny_en, audio, text, vad_net=vad_net)
    assert_well_formed(words, duration)
    # nothing lost or repeated at the cut (the standalone dash joins the word before it)
    assert " ".join(w.word for w in words) == " ".join(text.split())
    assert words[-1].end_s > 35.0  # the second window is timed from its own offset
    runs = speech_runs_s(vad_net, audio)
    assert abs(words[-1].end_s - runs[-1][1]) <= 1.0
    assert abs(words[0].start_s - runs[0][0]) <= 1.0


def test_empty_text_has_no_words(tiny_en: LoadedModel) -> None:
    audio = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert align_words(tiny_en, audio, "  ", trim=False) == []


def test_a_family_without_an_aligner_is_timed_by_the_embedded_whisper() -> None:
    """Commit lag of a Moonshine session needs word times too: the bench's reference comes
    from the embedded tiny.en for any recognizer that is not a Whisper one."""

    class OtherFamily:  # not a WhisperRecognizer: no aligner of its own
        pass

    audio = read_wav(JFK_WAV)
    words = reference_word_times(OtherFamily(), audio, JFK_TEXT)  # type: ignore[arg-type]
    assert [w.word for w in words] == JFK_TEXT.split()
    assert all(a.end_s <= b.end_s for a, b in itertools.pairwise(words))
    assert reference_word_times(OtherFamily(), audio, " ") == []  # type: ignore[arg-type]
