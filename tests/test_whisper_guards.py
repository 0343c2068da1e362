"""Whisper's guards (dictation.asr.whisper.guards), each on its own, and how the streaming
decoder (dictation.asr.whisper.decoder) applies them.

The guard tests are pure: decode results are built by hand. The decoder tests use the real
tiny.en tokenizer with a scripted ``decode`` in place of the network (the decode results to
react to are what is under test; the real model's streaming is tested in test_streaming.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from model_fixtures import real_model_dir

from dictation import SAMPLE_RATE
from dictation.asr.commit import Word
from dictation.asr.decoder import ClosedSegment, SegmentView
from dictation.asr.whisper import decoder as whisper_decoder
from dictation.asr.whisper.decoder import (
    WhisperStreamConfig,
    WhisperStreamDecoder,
    WhisperStreamState,
)
from dictation.asr.whisper.decoding import DecodeResult
from dictation.asr.whisper.guards import (
    HALLUCINATIONS,
    GuardConfig,
    copies_prompt,
    drop_decoder_loop,
    drop_final_stock_phrase,
    is_no_speech,
    is_non_speech_segment,
    is_non_speech_window,
    is_short_speech,
    is_weak_stock_phrase,
    normalise_for_guard,
    trim_restart,
)
from dictation.asr.whisper.loaders import LoadedModel, load_model


def result(text: str = " Hello there.", no_speech_prob: float = 0.0, avg_logprob: float = -0.2,
           tokens: list[int] | None = None, loop_start: int | None = None) -> DecodeResult:
    return DecodeResult(tokens=tokens or [], text=text, avg_logprob=avg_logprob,
                        no_speech_prob=no_speech_prob, compression_ratio=1.0, audio_s=1.0,
                        repetition_cut=loop_start is not None, loop_start=loop_start)


def words(text: str) -> list[Word]:
    return [Word((i,), " " + w) for i, w in enumerate(text.split())]


# --- the guards --------------------------------------------------------------------------------

def test_normalise_for_guard_keeps_letters_digits_and_apostrophes() -> None:
    assert normalise_for_guard("  Thank you, Sir!  It's 3 p.m.") == "thank you sir it's 3 p m"
    assert normalise_for_guard("...") == ""
    assert all(normalise_for_guard(p) == p for p in HALLUCINATIONS)


def test_short_speech_is_below_short_speech_s() -> None:
    assert is_short_speech(SAMPLE_RATE - 1) and not is_short_speech(SAMPLE_RATE)
    assert not is_short_speech(SAMPLE_RATE // 2 + 1, GuardConfig(short_speech_s=0.5))


def test_no_speech_rule_needs_the_probability_and_low_confidence_or_short_speech() -> None:
    assert is_no_speech(result(no_speech_prob=0.9, avg_logprob=-1.5))
    assert not is_no_speech(result(no_speech_prob=0.9, avg_logprob=-0.5))
    assert is_no_speech(result(no_speech_prob=0.9, avg_logprob=-0.5), short=True)
    assert not is_no_speech(result(no_speech_prob=0.6, avg_logprob=-1.5))  # strictly above
    assert not is_no_speech(result(no_speech_prob=0.9, avg_logprob=-1.5),
                            config=GuardConfig(no_speech_threshold=0.95))
    assert not is_no_speech(result(no_speech_prob=0.9, avg_logprob=-1.5),
                            config=GuardConfig(logprob_threshold=-2.0))


def test_weak_stock_phrase_is_a_stock_phrase_with_weak_evidence() -> None:
    confident = dict(no_speech_prob=0.1, avg_logprob=-0.3)
    assert not is_weak_stock_phrase(result(" Thank you.", **confident))
    assert is_weak_stock_phrase(result(" Thank you.", **confident), short=True)
    assert is_weak_stock_phrase(result(" Thank you.", no_speech_prob=0.3, avg_logprob=-0.3))
    assert is_weak_stock_phrase(result(" Thanks for watching!", no_speech_prob=0.1,
                                       avg_logprob=-0.8))
    # other text is never a stock phrase, however weak
    assert not is_weak_stock_phrase(result(" Thank you all.", no_speech_prob=0.9), short=True)
    assert not is_weak_stock_phrase(result(" Thank you.", no_speech_prob=0.3),
                                    config=GuardConfig(stock_no_speech_prob=0.5))
    assert is_weak_stock_phrase(result(" Thank you.", **confident),
                                config=GuardConfig(stock_logprob=-0.2))


def test_non_speech_window_offline() -> None:
    assert is_non_speech_window(result(" Hello there.", no_speech_prob=0.7, avg_logprob=-0.1))
    assert is_non_speech_window(result(" Bye.", no_speech_prob=0.3))
    assert not is_non_speech_window(result(" Bye.", no_speech_prob=0.1, avg_logprob=-0.2))
    assert not is_non_speech_window(result(" Hello there.", no_speech_prob=0.5))


def test_non_speech_segment_streaming() -> None:
    silent = result(" Hello.", no_speech_prob=0.9, avg_logprob=-1.5)
    long = 2 * SAMPLE_RATE
    assert is_non_speech_segment(silent, committed=False, with_context=False,
                                 speech_samples=long)
    # decoded with context (earlier speech in the window) the no-speech rule does not apply ...
    assert not is_non_speech_segment(silent, committed=False, with_context=True,
                                     speech_samples=long)
    # ... and once words are committed the segment is speech, whatever a decode says
    assert not is_non_speech_segment(result(" Thank you.", no_speech_prob=0.9), committed=True,
                                     with_context=False, speech_samples=100)
    # a stock phrase on little speech, or no text at all
    assert is_non_speech_segment(result(" you", avg_logprob=-0.1), committed=False,
                                 with_context=True, speech_samples=SAMPLE_RATE // 2)
    assert not is_non_speech_segment(result(" you", avg_logprob=-0.1), committed=False,
                                     with_context=True, speech_samples=long)
    assert is_non_speech_segment(result(" ..."), committed=False, with_context=True,
                                 speech_samples=long)


def test_copies_prompt_finds_three_words_of_the_prompt_in_a_row() -> None:
    prompt = " It was the best of times, it was the worst of times."
    assert copies_prompt(prompt, " and the worst of times again")
    assert not copies_prompt(prompt, " the worst day")  # two words only
    assert copies_prompt(prompt, " the worst day", GuardConfig(prompt_copy_words=2))
    assert not copies_prompt("", " anything at all")


def test_decoder_loop_is_dropped_whole_unless_it_is_all_the_segment_has() -> None:
    context, own, loop = [1, 2], [10, 11], [12, 12, 12]
    tokens = context + own + loop
    assert drop_decoder_loop(tokens, n_context=2, loop_start=4) == own
    # the loop starts where the segment starts: keep what the decoder kept of it
    assert drop_decoder_loop(context + loop, n_context=2, loop_start=2) == loop
    assert drop_decoder_loop(tokens, n_context=2, loop_start=None) == own + loop


def test_restart_trim() -> None:
    assert [w.key for w in trim_restart(words("2"), words("2 2"))] == ["2"]
    hyp = words("and so my fellow americans and so my")
    assert [w.key for w in trim_restart(words("and so"), hyp)][-1] == "americans"
    assert trim_restart([], words("go go go")) == words("go go go")  # nothing committed yet


def test_final_stock_phrase_drop() -> None:
    done = words("we had everything")
    assert drop_final_stock_phrase(done, done + words("thank you")) == done
    assert drop_final_stock_phrase(done, done + words("before us")) == done + words("before us")
    # with nothing committed it is the non-speech guard's call
    assert drop_final_stock_phrase([], words("thank you")) == words("thank you")


# --- the streaming decoder applies them ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_en() -> LoadedModel:
    return load_model(real_model_dir(), "ct2", "tiny.en")


class ScriptedDecode:
    """Stands in for decoding.decode: returns queued results, records the calls."""

    def __init__(self, *results: DecodeResult) -> None:
        self.results = list(results)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, loaded: Any, audio: np.ndarray, prompt: list[int] | None = None,
                 prefix: list[int] | None = None, options: Any = None,
                 draft: list[int] | None = None) -> DecodeResult:
        self.calls.append({"samples": len(audio), "prompt": list(prompt or []),
                           "prefix": list(prefix or []), "draft": list(draft or []),
                           "full_window": options.full_window})
        return self.results.pop(0)


def view(committed: list[Word] | None = None, closed: list[ClosedSegment] | None = None,
         speech_s: float = 2.0) -> SegmentView:
    audio = np.zeros(20 * SAMPLE_RATE, dtype=np.float32)
    return SegmentView(index=1, start=4 * SAMPLE_RATE, end=6 * SAMPLE_RATE,
                       committed=committed or [], speech_samples=int(speech_s * SAMPLE_RATE),
                       closed=closed or [], audio=lambda a, b: audio[a:b])


def text_result(tok: Any, text: str, **kw: Any) -> DecodeResult:
    tokens = tok.encode(text)
    return replace(result(text, **kw), tokens=tokens)


def test_decoder_retries_without_the_prompt_when_it_is_copied(
        tiny_en: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tiny_en.tokenizer
    state = WhisperStreamState(history=tok.encode(" It was the best of times."))
    script = ScriptedDecode(text_result(tok, " It was the best of times."),
                            text_result(tok, " It was the age of wisdom."))
    monkeypatch.setattr(whisper_decoder, "decode", script)
    decoder = WhisperStreamDecoder(tiny_en, WhisperStreamConfig(context_s=0.0))
    hyp = decoder.decode(view(), state, final=False)
    assert hyp is not None and "".join(w.text for w in hyp.words) == " It was the age of wisdom."
    assert script.calls[0]["prompt"] == state.history and script.calls[1]["prompt"] == []
    assert script.calls[0]["prefix"] == script.calls[1]["prefix"] == [tok.timestamp_begin]


def test_decoder_drops_a_loop_and_takes_non_speech_for_none(
        tiny_en: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tiny_en.tokenizer
    three, zero = tok.encode(" 3."), tok.encode(" 0.")
    looped = replace(result(" 3. 0. 0."), tokens=three + zero, loop_start=len(three))
    script = ScriptedDecode(looped, result(" Hello.", no_speech_prob=0.9, avg_logprob=-2.0))
    monkeypatch.setattr(whisper_decoder, "decode", script)
    decoder = WhisperStreamDecoder(tiny_en, WhisperStreamConfig(condition_on_previous=False))
    hyp = decoder.decode(view(), decoder.new_state(), final=False)
    assert hyp is not None and [w.text for w in hyp.words] == [" 3."] and hyp.final is None
    assert decoder.decode(view(), decoder.new_state(), final=False) is None


@pytest.mark.parametrize("retry", [True, False])
def test_a_loop_in_a_short_window_is_decoded_again_in_the_full_window(
        tiny_en: LoadedModel, monkeypatch: pytest.MonkeyPatch, retry: bool) -> None:
    tok = tiny_en.tokenizer
    digits = tok.encode(" 0. 1. 8. 9.")
    looped = replace(result(" 0. 1. 0. 1. 0. 1."), tokens=tok.encode(" 0. 1. 0. 1. 0. 1."),
                     repetition_cut=True, loop_start=4)
    script = ScriptedDecode(looped, replace(result(" 0. 1. 8. 9."), tokens=digits))
    monkeypatch.setattr(whisper_decoder, "decode", script)
    decoder = WhisperStreamDecoder(tiny_en, WhisperStreamConfig(
        condition_on_previous=False, loop_retry_full_window=retry))
    hyp = decoder.decode(view(), decoder.new_state(), final=False)
    assert hyp is not None
    if retry:
        assert [c["full_window"] for c in script.calls] == [False, True]
        assert "".join(w.text for w in hyp.words) == " 0. 1. 8. 9."
    else:
        assert len(script.calls) == 1 and "8" not in "".join(w.text for w in hyp.words)


def test_decoder_hears_context_and_drops_a_final_stock_phrase(
        tiny_en: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tiny_en.tokenizer
    earlier = [Word(tuple(tok.encode(" Four")), " Four")]
    closed = [ClosedSegment(start=3 * SAMPLE_RATE, end=3 * SAMPLE_RATE + 8000, words=earlier)]
    done = [Word(tuple(tok.encode(" we")), " we"), Word(tuple(tok.encode(" had")), " had")]
    own = [t for w in done for t in w.tokens] + tok.encode(" Thank you.")
    script = ScriptedDecode(replace(result(), tokens=list(earlier[0].tokens) + own))
    monkeypatch.setattr(whisper_decoder, "decode", script)
    decoder = WhisperStreamDecoder(tiny_en)
    state = decoder.new_state()
    decoder.segment_closed(closed[0], state)
    assert state.history == list(earlier[0].tokens)
    hyp = decoder.decode(view(committed=done, closed=closed), state, final=True)
    assert hyp is not None and [w.text for w in hyp.words] == [" we", " had"]
    call = script.calls[0]
    assert call["samples"] == 3 * SAMPLE_RATE  # from the context segment's start to the end
    assert call["prompt"] == []  # the only earlier text is in the context, not the prompt
    ts = tok.timestamp_begin
    assert call["prefix"] == [ts, *earlier[0].tokens, ts + 25, ts + 50,
                              *(t for w in done for t in w.tokens)]
