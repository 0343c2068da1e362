"""Streaming session, segmenter and commit policy.

The session tests use the real embedded tiny.en model and real dev-set speech; the segmenter
and commit-policy tests drive the pure state machines directly.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stream_helpers import committed, feed_in_chunks

from dictation import SAMPLE_RATE
from dictation.asr.commit import LocalAgreement, Word, agreed_prefix, committed_end
from dictation.asr.draft import previous_continuation
from dictation.asr.driver import StreamingConfig
from dictation.asr.events import Commit, EndOfSegment, Event, Partial
from dictation.asr.recognizer import load_recognizer
from dictation.asr.replay import replay
from dictation.asr.whisper import decoder as streaming
from dictation.asr.whisper.decoder import WhisperStreamConfig, split_words
from dictation.asr.whisper.guards import trim_restart
from dictation.asr.whisper.recognizer import WhisperRecognizer as Recognizer
from dictation.audio.segmenter import SegmentEnd, Segmenter, SegmenterConfig, SegmentStart
from dictation.audio.vad import FRAME_SAMPLES

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
sys.path.insert(0, str(DEV.parent.parent / "scoring"))
from score import is_digit_string, normalize_text, score  # noqa: E402


def wav(name: str) -> np.ndarray:
    audio, rate = sf.read(DEV / "wav" / f"{name}.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    return np.asarray(audio)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    loaded = load_recognizer("tiny.en", threads=2)
    assert isinstance(loaded, Recognizer)
    return loaded


def reference(name: str) -> str:
    """The dev set's (normalised) transcript of ``name``."""
    with open(DEV / "transcripts.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return next(row["transcript"] for row in rows if row["id"] == name)


def run(recognizer: Recognizer, audio: np.ndarray, chunks: list[int],
        config: StreamingConfig | None = None) -> list[Event]:
    """Feed ``audio`` in chunks of the given sizes (cycled), then finish."""
    return feed_in_chunks(recognizer.open_session(config), audio, chunks)


# --- the session on real speech --------------------------------------------------------------

def test_jfk_streams_to_the_right_text(recognizer: Recognizer) -> None:
    audio = wav("whisper-jfk")
    events = list(t.event for t in replay(recognizer.open_session(), audio, trailing_silence_s=1.0))
    text = committed(events)
    ref = normalize_text("and so my fellow americans ask not what your country can do for you "
                         "ask what you can do for your country")
    assert score([ref], [normalize_text(text)])["wer"] <= 0.1, text
    commits = [e for e in events if isinstance(e, Commit)]
    # streaming: the first words are committed long before the end of the audio
    assert commits[0].audio_time_s < len(audio) / SAMPLE_RATE - 3.0
    assert any(isinstance(e, Partial) for e in events)
    assert isinstance(events[-1], EndOfSegment)
    assert not text.startswith(" ") and "  " not in text


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=1, max_value=12_000), min_size=1, max_size=6))
def test_commits_do_not_depend_on_chunking(recognizer: Recognizer, chunks: list[int]) -> None:
    """Chunk sizes from 1 sample to 0.75 s give exactly the same events as 0.1 s chunks."""
    audio = wav("sb-spk1-snt1")
    reference = run(recognizer, audio, [1600])
    assert run(recognizer, audio, chunks) == reference


KEEPING_UP = StreamingConfig(catch_up_s=4.0)
"""A session that never counts itself behind for chunks up to 3 s (catch-up skips decodes
only when the recognizer is behind, which a fed chunk of up to ``catch_up_s`` is not)."""


TENTH_SECOND_EVENTS: dict[str, list[Event]] = {}
"""Events of each file fed in 0.1 s chunks (computed once)."""


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["moonshine-digits-evmaki-02", "ljspeech-lj001-0004"]),
       chunks=st.lists(st.integers(min_value=320, max_value=3 * SAMPLE_RATE), min_size=1,
                       max_size=4))
def test_real_digit_strings_and_sentences_do_not_depend_on_chunking(
        recognizer: Recognizer, name: str, chunks: list[int]) -> None:
    """Chunks of 0.02 to 3 s (issue: ``--chunk 3`` once gave 18 digits for 7) give exactly
    the events of 0.1 s chunks, on a digit string said digit by digit and a read sentence."""
    audio = wav(name)
    if name not in TENTH_SECOND_EVENTS:
        TENTH_SECOND_EVENTS[name] = run(recognizer, audio, [1600], KEEPING_UP)
    assert run(recognizer, audio, chunks, KEEPING_UP) == TENTH_SECOND_EVENTS[name]


@pytest.mark.parametrize("chunk_s", [0.02, 3.0])
def test_a_digit_string_fed_in_big_or_tiny_chunks_keeps_its_digits(
        recognizer: Recognizer, chunk_s: float) -> None:
    """With the default catch-up, 3 s chunks skip intermediate decodes (the session counts
    itself behind): the digits typed are still the digits said, none looped or doubled."""
    name = "moonshine-digits-evmaki-02"
    events = run(recognizer, wav(name), [int(chunk_s * SAMPLE_RATE)])
    assert normalize_text(committed(events), digits_mode=True) == normalize_text(reference(name))


def test_commits_are_append_only_and_partials_extend_them(recognizer: Recognizer) -> None:
    """A commit is never retracted: every partial of a segment starts with what that segment
    committed before it, and the end-of-segment text equals the segment's commits."""
    audio = np.concatenate([wav("ljspeech-lj001-0002"), np.zeros(SAMPLE_RATE, np.float32),
                            wav("sb-spk2-snt5")])
    events = run(recognizer, audio, [2000])
    by_segment: dict[int, str] = {}
    for event in events:
        so_far = by_segment.get(event.segment, "")
        if isinstance(event, Commit):
            by_segment[event.segment] = so_far + event.text
        elif isinstance(event, Partial):
            assert normalize_text(event.text).startswith(normalize_text(so_far))
        else:
            assert event.text == so_far.strip()
    assert len(by_segment) >= 2
    # the second segment's text is separated from the first by exactly one space
    text = committed(events)
    assert "  " not in text and text == text.strip()


def test_silence_and_noise_type_nothing(recognizer: Recognizer) -> None:
    rng = np.random.default_rng(0)
    silence = np.zeros(3 * SAMPLE_RATE, np.float32)
    noise = (0.05 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    for audio in (silence, noise):
        assert committed(run(recognizer, audio, [1600])) == ""


def test_pre_roll_keeps_a_word_that_starts_before_speech_is_detected(
        recognizer: Recognizer) -> None:
    """The first word survives even when the stream starts right at it (no leading silence)."""
    audio = wav("sb-spk1-snt1")
    first = int(np.argmax(np.abs(audio) > 0.02))
    text = committed(run(recognizer, audio[max(0, first - 800):], [1600]))
    assert normalize_text(text).split()[0] == "the", text


def test_no_runaway_repetition(recognizer: Recognizer) -> None:
    audio = wav("moonshine-beckett")
    words = normalize_text(committed(run(recognizer, audio, [1600]))).split()
    ref = normalize_text("ever tried ever failed no matter try again fail again fail better")
    assert len(words) <= len(ref.split()) + 3


@pytest.mark.parametrize("name", ["moonshine-digits-petewarden-03",
                                  "moonshine-digits-evmaki-05"])
def test_a_digit_string_said_digit_by_digit_is_written_once(recognizer: Recognizer,
                                                           name: str) -> None:
    """Every digit is its own segment (the pauses are longer than the endpoint). Decoded alone,
    tiny.en doubled digits ("0 3 0 8 2 2 4"), and with the earlier digits forced as a plain
    prefix it looped ("1. 2. 1. 2. 1"); with them as timestamp-anchored context it writes the
    string once."""
    events = run(recognizer, wav(name), [1600])
    assert sum(isinstance(e, EndOfSegment) for e in events) >= 4
    ref = normalize_text(reference(name))
    assert is_digit_string(ref)
    assert normalize_text(committed(events), digits_mode=True) == ref


def test_decodes_hear_earlier_segments_with_their_words_anchored(
        recognizer: Recognizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each decode's forced prefix: earlier segments' committed words between timestamps, then
    the open segment's start timestamp and its committed words; the audio spans at most
    ``context_s``. With ``context_s = 0`` a segment is decoded alone."""
    calls: list[tuple[int, list[int]]] = []
    real_decode = streaming.decode

    def spy(loaded: Any, audio: np.ndarray, prompt: list[int] | None = None,
            prefix: list[int] | None = None, options: Any = None,
            draft: list[int] | None = None) -> Any:
        calls.append((len(audio), list(prefix or [])))
        return real_decode(loaded, audio, prompt=prompt, prefix=prefix, options=options,
                           draft=draft)

    monkeypatch.setattr(streaming, "decode", spy)
    tok = recognizer.loaded.tokenizer
    audio = wav("moonshine-digits-petewarden-03")
    config = StreamingConfig(decoder=WhisperStreamConfig(context_s=4.0))
    text = committed(run(recognizer, audio, [1600], config))

    assert all(prefix[0] >= tok.timestamp_begin for _, prefix in calls)
    with_context = [(n, p) for n, p in calls if sum(t >= tok.timestamp_begin for t in p) >= 3]
    assert len(with_context) >= len(calls) // 2
    assert all(n <= 4.0 * SAMPLE_RATE for n, _ in with_context)
    for _, prefix in with_context:
        stamps = [t for t in prefix if t >= tok.timestamp_begin]
        assert stamps == sorted(stamps) and len(stamps) % 2 == 1  # pairs, then the open start
        words = tok.decode([t for t in prefix if t < tok.eot])
        assert normalize_text(words, digits_mode=True) in normalize_text(text, digits_mode=True)

    calls.clear()
    run(recognizer, audio, [1600], StreamingConfig(decoder=WhisperStreamConfig(context_s=0.0)))
    assert calls and all(prefix[0] == tok.timestamp_begin  # <|0.00|>: the segment's start
                         and sum(t >= tok.timestamp_begin for t in prefix) == 1
                         for _, prefix in calls)


def test_the_vocabulary_opens_every_prompt(recognizer: Recognizer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """With a vocabulary, each decode's prompt starts with it (before the earlier text, which
    keeps its own budget); without one, the prompt is the earlier text alone."""
    prompts: list[list[int]] = []
    real_decode = streaming.decode

    def spy(loaded: Any, audio: np.ndarray, prompt: list[int] | None = None,
            prefix: list[int] | None = None, options: Any = None,
            draft: list[int] | None = None) -> Any:
        prompts.append(list(prompt or []))
        return real_decode(loaded, audio, prompt=prompt, prefix=prefix, options=options,
                           draft=draft)

    monkeypatch.setattr(streaming, "decode", spy)
    tok = recognizer.loaded.tokenizer
    vocab = tok.encode(" Gutenberg, woodcutters.")
    audio = wav("moonshine-digits-petewarden-03")
    plain = committed(run(recognizer, audio, [1600]))
    assert prompts and not any(p[:len(vocab)] == vocab for p in prompts)
    prompts.clear()
    committed(run(recognizer, audio, [1600],
                  StreamingConfig(vocabulary=("Gutenberg", "woodcutters"))))
    assert prompts and all(p[:len(vocab)] == vocab for p in prompts)
    assert plain


@pytest.mark.parametrize("case", ["repeat", "drop"])
def test_live_chunkings_that_once_repeated_or_dropped_a_phrase(
        recognizer: Recognizer, case: str) -> None:
    """Chunk sizes recorded from the live app (tests/data) once made the session commit
    "Americans. And so my fellow Americans." or never commit "your country can do for you"."""
    import json

    rec = json.loads((Path(__file__).parent / "data" / f"jfk_live_chunks_{case}.json").read_text())
    audio = np.concatenate([np.zeros(rec["lead_silence_samples"], np.float32), wav("whisper-jfk"),
                            np.zeros(rec["trailing_silence_samples"], np.float32)])
    text = normalize_text(committed(run(recognizer, audio, rec["chunks"])))
    assert text.count("fellow") == 1, text
    ref = normalize_text("and so my fellow americans ask not what your country can do for you "
                         "ask what you can do for your country")
    result = score([ref], [text])
    assert result["del"] <= 1 and result["wer"] <= 0.25, (text, result)


def test_trim_restart_cuts_a_hypothesis_that_starts_the_segment_over() -> None:
    done = words("and so my fellow")
    hyp = words("and so my fellow americans and so my fellow americans")
    assert [w.key for w in trim_restart(done, hyp)] == ["and", "so", "my", "fellow", "americans"]
    # a phrase that only begins like the committed words is kept
    done = words("it was the age of wisdom")
    hyp = words("it was the age of wisdom it was the age of foolishness")
    assert trim_restart(done, hyp) == hyp
    done = words("it was the season of")
    hyp = words("it was the season of light it was the season of darkness")
    assert trim_restart(done, hyp) == hyp
    # ... while the copy is still under way it is cut (a later hypothesis brings it back)
    hyp = words("it was the season of light it was the season of")
    assert [w.key for w in trim_restart(done, hyp)][-1] == "light"
    # one committed word repeated by itself
    assert [w.key for w in trim_restart(words("2"), words("2 2"))] == ["2"]
    assert trim_restart(words("1"), words("1 1 8")) == words("1 1 8")
    # a hypothesis that ends with the segment's first word again is kept
    assert trim_restart(words("we had"), words("we had everything before us we")) == words(
        "we had everything before us we")


# --- segmenter -------------------------------------------------------------------------------

def push_all(seg: Segmenter, probs: list[float]) -> list[SegmentStart | SegmentEnd]:
    out: list[SegmentStart | SegmentEnd] = []
    for i, p in enumerate(probs):
        out += seg.push(p, (i + 1) * FRAME_SAMPLES, FRAME_SAMPLES)
    return out


def test_segmenter_opens_with_pre_roll_and_closes_after_silence() -> None:
    cfg = SegmenterConfig(endpoint_silence_s=0.32, pre_roll_s=0.064, post_roll_s=0.0)
    frames = [0.0] * 10 + [0.9] * 20 + [0.1] * 20
    boundaries = push_all(Segmenter(cfg), frames)
    assert boundaries[0] == SegmentStart(10 * FRAME_SAMPLES - 2 * FRAME_SAMPLES)
    end = boundaries[1]
    assert isinstance(end, SegmentEnd) and not end.forced
    assert end.speech_end == 30 * FRAME_SAMPLES
    assert len(boundaries) == 2


def test_segmenter_hysteresis_keeps_a_dip_inside_the_segment() -> None:
    cfg = SegmenterConfig(threshold=0.5, release=0.35, endpoint_silence_s=0.2)
    frames = [0.9] * 10 + [0.4] * 10 + [0.9] * 10  # 0.4 is below threshold but above release
    assert len(push_all(Segmenter(cfg), frames)) == 1


def test_segmenter_cuts_long_speech_at_the_quietest_frame() -> None:
    cfg = SegmenterConfig(max_segment_s=2.0, cut_search_s=1.0)
    frames = [0.9] * 200
    frames[50] = 0.6  # the quietest frame inside the last second before 2 s
    boundaries = push_all(Segmenter(cfg), frames)
    cut = boundaries[1]
    assert isinstance(cut, SegmentEnd) and cut.forced and cut.end == 51 * FRAME_SAMPLES
    assert boundaries[2] == SegmentStart(51 * FRAME_SAMPLES)


def test_segmenter_flush_closes_an_open_segment() -> None:
    seg = Segmenter()
    push_all(seg, [0.9] * 5)
    assert seg.flush(5 * FRAME_SAMPLES) == [SegmentEnd(5 * FRAME_SAMPLES, False,
                                                       5 * FRAME_SAMPLES)]
    assert seg.flush(6 * FRAME_SAMPLES) == []


# --- commit policy ---------------------------------------------------------------------------

def words(text: str) -> list[Word]:
    return [Word((i,), " " + w) for i, w in enumerate(text.split())]


def test_local_agreement_commits_what_two_hypotheses_share() -> None:
    policy = LocalAgreement(2)
    assert policy.update(words("the cat"), speech_ongoing=True) == []
    new = policy.update(words("the cat sat"), speech_ongoing=True)
    assert [w.text for w in new] == [" the", " cat"]
    # the last word is held back while speech goes on, even when both agree on it
    assert policy.update(words("the cat sat on"), speech_ongoing=True)[0].text == " sat"
    # in a pause everything agreed is committed
    assert [w.text for w in policy.update(words("the cat sat on"), False)] == [" on"]


def test_local_agreement_never_retracts_and_skips_changed_committed_words() -> None:
    policy = LocalAgreement(2)
    policy.update(words("wood cutters of the"), False)
    policy.update(words("wood cutters of the"), False)
    assert [w.key for w in policy.committed] == ["wood", "cutters", "of", "the"]
    # the decoder now merges two committed words: the tail starts after "the" all the same
    hyp = words("woodcutters of the netherlands")
    assert [w.key for w in policy.tail(hyp)] == ["netherlands"]
    assert [w.key for w in policy.commit_all(hyp)] == ["netherlands"]


def test_committed_end_and_agreed_prefix() -> None:
    assert committed_end(words("a b"), words("a b c")) == 2
    assert committed_end(words("a b c"), words("x b c d")) == 3
    assert committed_end([], words("a")) == 0
    assert agreed_prefix([words("a b c"), words("a B. c")]) == 3
    assert agreed_prefix([words("a b"), words("a c")]) == 1


def test_split_words_joins_punctuation_and_subwords() -> None:
    pieces = {1: " Hello", 2: ",", 3: " wor", 4: "ld", 5: "."}
    out = split_words([1, 2, 3, 4, 5], pieces.__getitem__)
    assert [w.text for w in out] == [" Hello,", " world."]


def test_the_draft_is_the_previous_decode_of_the_same_segment_after_its_prefix() -> None:
    previous = (16000, [50, 7, 8, 9, 60])
    assert previous_continuation(previous, 16000, [50, 7]) == [8, 9, 60]
    assert previous_continuation(previous, 16000, [50, 7, 8, 9, 60]) == []
    assert previous_continuation(previous, 32000, [50, 7]) == []  # another segment
    assert previous_continuation(previous, 16000, [51, 7]) == []  # prefix moved
    assert previous_continuation(None, 16000, [50]) == []


def test_streaming_config_defaults_are_sane() -> None:
    cfg = StreamingConfig()
    assert cfg.agreement >= 2 and 0 < cfg.decode_interval_s < cfg.segmenter.endpoint_silence_s * 4
