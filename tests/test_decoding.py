"""Greedy decoding with the real embedded tiny.en: correct transcripts on real speech, the same
transcripts as faster-whisper (CTranslate2), no-speech detection, forced prefixes and prompts,
plus unit tests of the small strategy objects."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from model_fixtures import (
    DEV_WAV_DIR,
    JFK_TEXT,
    JFK_WAV,
    read_wav,
    real_model_dir,
)

from dictation import SAMPLE_RATE
from dictation.asr.whisper.decoding import (
    DecodeOptions,
    RepetitionGuard,
    SuppressAtBegin,
    SuppressTokens,
    TimestampRules,
    compression_ratio,
    decode,
)
from dictation.asr.whisper.features import N_SAMPLES
from dictation.asr.whisper.loaders import LoadedModel, load_model

SCORING_DIR = DEV_WAV_DIR.parent.parent.parent / "scoring"
NO_SPEECH_THRESHOLD = 0.6
"""Whisper's default: above this no-speech probability a window counts as silence."""
FASTER_WHISPER_FILES = [
    # The four short files whose transcripts change with faster-whisper's own padding (see
    # test_greedy_transcript_equals_faster_whisper): the most sensitive to any difference.
    "ljspeech-lj001-0006.wav",
    "sb-spk1-snt2.wav",
    "sb-spk2-snt3.wav",
    "ls-1089-134686-0001.wav",
]


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def scorer() -> ModuleType:
    """../shared/scoring/score.py, the project's WER scorer."""
    if not (SCORING_DIR / "score.py").is_file():
        pytest.skip(f"scorer {SCORING_DIR / 'score.py'} is missing")
    sys.path.insert(0, str(SCORING_DIR))
    try:
        module = importlib.import_module("score")
    finally:
        sys.path.remove(str(SCORING_DIR))
    assert Path(str(module.__file__)).resolve() == (SCORING_DIR / "score.py").resolve()
    return module


@pytest.fixture(scope="module")
def real() -> LoadedModel:
    return load_model(real_model_dir(), "ct2")


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return read_wav(JFK_WAV)


@pytest.fixture(scope="module")
def jfk_result(real: LoadedModel, jfk: np.ndarray) -> Any:
    return decode(real, jfk, options=DecodeOptions(full_window=True))


@pytest.fixture(scope="module")
def faster_whisper_model() -> Any:
    faster_whisper = pytest.importorskip("faster_whisper")
    return faster_whisper.WhisperModel(str(real_model_dir()), device="cpu",
                                       compute_type="float32", cpu_threads=2)


def wer(scorer: ModuleType, reference: str, hypothesis: str) -> float:
    """Word error rate after the scorer's normalisation (case, punctuation, numbers)."""
    refs, hyps = [scorer.normalize_text(reference)], [scorer.normalize_text(hypothesis)]
    return float(scorer.score(refs, hyps)["wer"])


# --- real speech --------------------------------------------------------------------------------


def test_jfk_transcribes_correctly(jfk_result: Any, scorer: ModuleType) -> None:
    assert scorer.normalize_text(jfk_result.text) == scorer.normalize_text(JFK_TEXT)
    assert wer(scorer, JFK_TEXT, jfk_result.text) == 0.0
    assert jfk_result.text.startswith(" And so my fellow Americans")
    assert jfk_result.no_speech_prob < 0.1
    assert -0.5 < jfk_result.avg_logprob < 0
    assert jfk_result.compression_ratio < 2.4
    assert not jfk_result.repetition_cut
    assert jfk_result.audio_s == pytest.approx(11.0)


def test_jfk_short_window_transcribes_correctly(real: LoadedModel, jfk: np.ndarray,
                                                scorer: ModuleType) -> None:
    """full_window=False (audio + 1 s of silence, not 30 s) still gets every word."""
    result = decode(real, jfk, options=DecodeOptions(full_window=False))
    assert wer(scorer, JFK_TEXT, result.text) == 0.0


def test_result_tokens_are_the_text(real: LoadedModel, jfk_result: Any) -> None:
    tok = real.tokenizer
    assert jfk_result.tokens and all(t < tok.eot for t in jfk_result.tokens)
    assert tok.decode(jfk_result.tokens) == jfk_result.text


@pytest.mark.parametrize("name", FASTER_WHISPER_FILES)
def test_greedy_transcript_equals_faster_whisper(real: LoadedModel, faster_whisper_model: Any,
                                                 name: str) -> None:
    """Same checkpoint, same greedy search, same text. faster-whisper pads the audio with only
    160 samples and then pads the log-mel with zeros to 3000 frames, whereas Whisper (and
    features_for_window) pad the audio with zeros to 30 s before the STFT; the zero-padded audio
    is given to faster-whisper so that both see Whisper's features. (Unpadded, 7 of the 30
    short dev files differ in a word or a comma, including these four.)"""
    audio = read_wav(DEV_WAV_DIR / name)
    assert len(audio) < N_SAMPLES
    segments, _ = faster_whisper_model.transcribe(
        np.pad(audio, (0, N_SAMPLES - len(audio))), beam_size=1, temperature=0.0,
        without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
    expected = "".join(segment.text for segment in segments).strip()
    ours = decode(real, audio, options=DecodeOptions(full_window=True)).text.strip()
    assert expected
    assert ours == expected


def test_word_timestamps_keep_the_alignment_heads(real: LoadedModel, jfk: np.ndarray,
                                                  jfk_result: Any) -> None:
    result = decode(real, jfk, options=DecodeOptions(word_timestamps=True))
    assert result.text == jfk_result.text
    assert result.cross_attention is not None
    assert result.cross_attention.shape == (len(real.model.alignment_heads),
                                            len(result.tokens) + 1, 1500)
    assert torch.allclose(result.cross_attention.sum(-1), torch.tensor(1.0), atol=1e-4)
    assert jfk_result.cross_attention is None


# --- silence and noise --------------------------------------------------------------------------


def silence() -> np.ndarray:
    return np.zeros(3 * SAMPLE_RATE, dtype=np.float32)


def white_noise() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)


@pytest.mark.parametrize("full_window", [True, False])
@pytest.mark.parametrize("make_audio", [silence, white_noise], ids=["silence", "noise"])
def test_no_speech_is_flagged(real: LoadedModel, jfk_result: Any, full_window: bool,
                              make_audio: Any) -> None:
    """3 s of digital silence or white noise (std 0.1): tiny.en still emits a word (" you",
    " You", " I'm going to go."), so what tells the caller to drop it is no_speech_prob above
    Whisper's 0.6 threshold (measured 0.84-0.99), against 0.03 on real speech."""
    result = decode(real, make_audio(), options=DecodeOptions(full_window=full_window))
    assert result.text.strip() == "" or result.no_speech_prob > NO_SPEECH_THRESHOLD, (
        f"{result.text!r} with no_speech_prob {result.no_speech_prob:.3f}")
    assert jfk_result.no_speech_prob < NO_SPEECH_THRESHOLD / 6


# --- forced prefix and prompt -------------------------------------------------------------------


def test_prefix_of_the_first_words_is_kept(real: LoadedModel, jfk: np.ndarray,
                                           jfk_result: Any) -> None:
    tok = real.tokenizer
    prefix = tok.encode(" And so my")
    result = decode(real, jfk, prefix=prefix)
    assert result.tokens[: len(prefix)] == prefix
    assert result.text.startswith(" And so my fellow Americans")
    assert result.text == jfk_result.text


def test_prefix_forces_words_the_model_would_not_choose(real: LoadedModel,
                                                       jfk: np.ndarray) -> None:
    tok = real.tokenizer
    prefix = tok.encode(" Ask not")  # the audio starts with "And so my fellow Americans"
    result = decode(real, jfk, prefix=prefix)
    assert result.tokens[: len(prefix)] == prefix
    assert result.text.startswith(" Ask not what your country can do for you")


def test_prefix_that_is_the_whole_transcript_adds_nothing(real: LoadedModel, jfk: np.ndarray,
                                                          jfk_result: Any) -> None:
    """Streaming re-decodes a window with the text already committed as the prefix; when that
    text already covers the audio, the decoder must be free to end at once.
    BUG: SuppressAtBegin forbids end-of-text as the first token after the prefix, so
    ' Ah!' is appended to the complete JFK transcript."""
    result = decode(real, jfk, prefix=jfk_result.tokens)
    assert result.text == jfk_result.text


def test_timestamp_mode_gives_the_same_text_without_timestamp_tokens(
        real: LoadedModel, jfk: np.ndarray, scorer: ModuleType) -> None:
    result = decode(real, jfk, options=DecodeOptions(full_window=False, timestamps=True))
    assert all(t < real.tokenizer.eot for t in result.tokens)
    assert real.tokenizer.decode(result.tokens) == result.text
    assert wer(scorer, JFK_TEXT, result.text) == 0.0


def test_timestamped_prefix_tells_the_decoder_which_audio_is_transcribed(
        real: LoadedModel, jfk: np.ndarray) -> None:
    """The streaming session's prefix: earlier words between the timestamps of the audio they
    cover, then the timestamp where the new audio starts. The decoder goes on from there
    instead of transcribing the covered audio again. (The first 3.3 s of the JFK clip are "And
    so my fellow Americans,"; "ask not" starts at about 4.1 s.)"""
    tok = real.tokenizer
    first = tok.encode(" And so my fellow Americans,")

    def stamp(seconds: float) -> int:
        return tok.timestamp_begin + round(seconds / 0.02)

    prefix = [stamp(0.0), *first, stamp(3.3), stamp(3.8)]
    options = DecodeOptions(full_window=False, timestamps=True)
    result = decode(real, jfk, prefix=prefix, options=options)
    assert result.tokens[: len(first)] == first  # the forced words, timestamps dropped
    continuation = tok.decode(result.tokens[len(first):]).lower()
    assert continuation.startswith(" ask not what your country can do for you")
    assert "fellow" not in continuation


@pytest.mark.parametrize("draft_kind", ["exact", "longer audio", "wrong from the middle",
                                        "garbage", "beyond the end"])
def test_a_draft_changes_nothing_but_the_cost(real: LoadedModel, jfk: np.ndarray,
                                              draft_kind: str) -> None:
    """A streaming re-decode gets its previous hypothesis as the draft: whatever the draft
    says, the result is the greedy decode's (the draft only saves decoder calls). Drafts: the
    same decode's sequence, the sequence of a decode of 3 s less audio, that sequence with a
    word changed halfway, random tokens, and the sequence followed by more text."""
    tok = real.tokenizer
    options = DecodeOptions(full_window=False, timestamps=True)
    prefix = [tok.timestamp_begin, *tok.encode(" And so my fellow")]
    plain = decode(real, jfk, prefix=prefix, options=options)
    shorter = decode(real, jfk[: len(jfk) - 3 * SAMPLE_RATE], prefix=prefix, options=options)
    continuation = plain.sequence[len(prefix):]
    assert continuation and plain.sequence[: len(prefix)] == prefix
    half = len(continuation) // 2
    draft = {
        "exact": continuation,
        "longer audio": shorter.sequence[len(prefix):],
        "wrong from the middle": [*continuation[:half], *tok.encode(" banana"),
                                  *continuation[half + 1:]],
        "garbage": [int(t) for t in np.random.default_rng(0).integers(0, tok.eot, 12)],
        "beyond the end": [*continuation, *tok.encode(" and more words")],
    }[draft_kind]
    result = decode(real, jfk, prefix=prefix, options=options, draft=draft)
    assert result.tokens == plain.tokens
    assert result.sequence == plain.sequence
    assert result.avg_logprob == pytest.approx(plain.avg_logprob, abs=1e-3)


def test_timestamps_and_word_timestamps_do_not_mix(real: LoadedModel, jfk: np.ndarray) -> None:
    with pytest.raises(ValueError, match="word timestamps"):
        decode(real, jfk[:SAMPLE_RATE], options=DecodeOptions(timestamps=True,
                                                              word_timestamps=True))


def test_prompt_tokens_are_accepted(real: LoadedModel, jfk: np.ndarray,
                                    scorer: ModuleType) -> None:
    tok = real.tokenizer
    result = decode(real, jfk, prompt=tok.encode(" President Kennedy's inaugural address."))
    assert wer(scorer, JFK_TEXT, result.text) == 0.0
    assert result.no_speech_prob < 0.1


def test_prompt_steers_the_style(real: LoadedModel, jfk: np.ndarray, scorer: ModuleType) -> None:
    """The prompt really reaches the decoder: an upper-case prompt gives an upper-case
    transcript of the same words."""
    tok = real.tokenizer
    result = decode(real, jfk, prompt=tok.encode(" AND SO MY FELLOW AMERICANS"))
    assert result.text == result.text.upper()
    assert wer(scorer, JFK_TEXT, result.text) == 0.0


def test_overlong_prompt_is_cut_to_max_prompt_tokens(real: LoadedModel, jfk: np.ndarray) -> None:
    """1000 prompt tokens would overflow the 448-token decoder context; only the last
    max_prompt_tokens are used."""
    tok = real.tokenizer
    prompt = tok.encode(" and so on") * 334
    assert len(prompt) > real.model.dims.n_text_ctx
    result = decode(real, jfk, prompt=prompt, options=DecodeOptions(max_prompt_tokens=50))
    assert result.tokens


# --- strategy objects ---------------------------------------------------------------------------


def test_repetition_guard_detects_loops_at_the_end() -> None:
    guard = RepetitionGuard(max_ngram=4, max_repeats=3)
    assert not guard.looping([])
    assert not guard.looping([1, 2, 3, 4, 5, 6])
    assert not guard.looping([7, 7])  # two repeats are fine
    assert guard.looping([5, 7, 7, 7])  # a unigram three times
    assert guard.looping([9, 1, 2, 1, 2, 1, 2])  # a bigram three times
    assert guard.looping([1, 2, 3, 4] * 3)  # the longest n-gram watched
    assert not guard.looping([1, 2, 3, 4, 5] * 3)  # longer than max_ngram
    assert not guard.looping([7, 7, 7, 8])  # the loop has ended
    assert not guard.looping([1, 2, 1, 2, 1, 3])


def test_repetition_guard_cut_keeps_one_occurrence() -> None:
    guard = RepetitionGuard(max_ngram=4, max_repeats=3)
    assert guard.cut([5, 7, 7, 7]) == [5, 7]
    assert guard.cut([9, 1, 2, 1, 2, 1, 2]) == [9, 1, 2]
    assert guard.cut([0, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]) == [0, 1, 2, 3, 4]
    assert guard.cut([9, 1, 2, 1, 2, 1, 2], keep_one=False) == [9]
    unchanged = [1, 2, 3]
    assert guard.cut(unchanged) == unchanged


def test_compression_ratio_flags_repetitive_text() -> None:
    assert compression_ratio("") == 0.0
    assert compression_ratio(JFK_TEXT) < 2.4
    assert compression_ratio(" thank you" * 40) > 2.4


def test_suppress_tokens_masks_every_step() -> None:
    logits = torch.zeros(10)
    SuppressTokens([3, 1, 3]).apply(logits, generated=[4, 5])
    assert torch.isinf(logits[[1, 3]]).all() and torch.isfinite(logits[[0, 2, 4]]).all()


def test_suppress_at_begin_masks_only_the_first_step() -> None:
    first, later = torch.zeros(10), torch.zeros(10)
    SuppressAtBegin([2, 9]).apply(first, generated=[])
    SuppressAtBegin([2, 9]).apply(later, generated=[4])
    assert torch.isinf(first[[2, 9]]).all() and torch.isfinite(first[:2]).all()
    assert torch.isfinite(later).all()



# --- timestamp grammar (token ids: text < 5 = end-of-text < 6.. = timestamps) ---------------

EOT, BEGIN, LAST = 5, 6, 12


def allowed(generated: list[int], logits: list[float] | None = None) -> set[int]:
    """Tokens left possible; by default text token 0 and end-of-text are the likeliest, so the
    grammar alone decides."""
    scores = torch.tensor(logits if logits is not None else [10.0, 0, 0, 0, 0, 10.0] + [0.0] * 8)
    TimestampRules(BEGIN, EOT, LAST).apply(scores, generated)
    return {i for i in range(len(scores)) if torch.isfinite(scores[i])}


def test_timestamp_rules_pair_the_timestamps_around_text() -> None:
    # after an opening timestamp (text before it): text must follow
    assert allowed([BEGIN, 1, 2, BEGIN + 2, BEGIN + 3]) == {0, 1, 2, 3, 4, EOT}
    # after text: more text, end-of-text or a closing timestamp not before the last one
    assert allowed([BEGIN + 2, 1]) == {0, 1, 2, 3, 4, EOT} | set(range(BEGIN + 3, LAST + 1))
    # after a closing timestamp: the next phrase opens (same time allowed) or the text ends
    assert allowed([BEGIN, 1, BEGIN + 4]) == {EOT} | set(range(BEGIN + 4, LAST + 1))


def test_timestamp_rules_never_pass_the_end_of_the_audio() -> None:
    assert max(allowed([BEGIN, 1])) == LAST


def test_timestamp_rules_take_a_timestamp_when_together_they_are_likelier() -> None:
    # text token 1 is the single likeliest, but the timestamps together outweigh it
    logits = [0.0, 2.0, 0.0, 0.0, 0.0, 0.0] + [1.5] * 8
    assert allowed([BEGIN, 1], logits) <= set(range(BEGIN, LAST + 1))
    logits = [0.0, 5.0, 0.0, 0.0, 0.0, 0.0] + [1.5] * 8
    assert 1 in allowed([BEGIN, 1], logits)
