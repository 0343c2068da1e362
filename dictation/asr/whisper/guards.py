"""Whisper's guards: named pure functions that keep what Whisper invents out of the text.

Whisper transcribes whatever it is given, and on silence, noise or a very short stretch of
speech it tends to produce text that was never said: stock phrases from its training subtitles
("Thank you.", "Thanks for watching!"), copies of its prompt, a loop back over audio it has
already transcribed, or the same tokens over and over. Each guard below detects one of these;
every threshold is a field of :class:`GuardConfig` with its unit. The streaming decoder
(:mod:`dictation.asr.whisper.decoder`) and offline transcription
(:mod:`dictation.asr.whisper.transcribe`) apply them.

Two guards live elsewhere: the decoder's own repetition guard
(:class:`dictation.asr.whisper.decoding.RepetitionGuard`: the same n-gram ``max_repeats`` times in
a row stops the greedy loop, see :func:`drop_decoder_loop` for what streaming keeps of it), and
the driver's minimum speech (:func:`dictation.asr.driver.has_min_speech`), which is not
Whisper's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dictation import SAMPLE_RATE
from dictation.asr.commit import Word
from dictation.asr.whisper.decoding import DecodeResult

HALLUCINATIONS = frozenset({
    "thank you", "thank you very much", "thanks", "thanks for watching",
    "thank you for watching", "thank you so much for watching", "you", "bye", "the end",
    "so", "okay", "oh", "subtitles by the amara org community", "please subscribe",
})
"""Whole-segment outputs Whisper is known to invent from noise or silence (normalised)."""


@dataclass(frozen=True)
class GuardConfig:
    """Thresholds of Whisper's guards."""

    no_speech_threshold: float = 0.6
    """No-speech rule: a decode whose no-speech probability (0..1) is above this ..."""
    logprob_threshold: float = -1.0
    """... and whose average log-probability per token (nats) is below this (or that rests on
    little speech, see ``short_speech_s``) is not speech (Whisper's rule)."""
    short_speech_s: float = 1.0
    """Less VAD speech than this in a segment, seconds, is weak evidence for any text."""
    stock_no_speech_prob: float = 0.2
    """A stock phrase is taken as invented when its no-speech probability (0..1) is above
    this ..."""
    stock_logprob: float = -0.7
    """... or its average log-probability per token (nats) is below this, or it is short."""
    prompt_copy_words: int = 3
    """Prompt copy: this many consecutive words of the new text also in the prompt, words."""
    prompt_copy_tokens: int = 120
    """How much of the prompt's end is searched for a copy, tokens."""


DEFAULT_GUARDS = GuardConfig()


def normalise_for_guard(text: str) -> str:
    """Lower case, letters, digits and apostrophes only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def is_short_speech(speech_samples: int, config: GuardConfig = DEFAULT_GUARDS) -> bool:
    """Short speech: the segment holds less than ``short_speech_s`` of VAD speech (16 kHz
    samples)."""
    return speech_samples < config.short_speech_s * SAMPLE_RATE


def is_no_speech(result: DecodeResult, short: bool = False,
                 config: GuardConfig = DEFAULT_GUARDS) -> bool:
    """No-speech rule (Whisper's): the no-speech probability is above ``no_speech_threshold``
    and the text is unconfident (average log-probability below ``logprob_threshold``) or
    ``short`` (little speech behind it)."""
    return result.no_speech_prob > config.no_speech_threshold and (
        result.avg_logprob < config.logprob_threshold or short)


def is_weak_stock_phrase(result: DecodeResult, short: bool = False,
                         config: GuardConfig = DEFAULT_GUARDS) -> bool:
    """Weak stock phrase: the whole result is a phrase Whisper invents from noise
    (:data:`HALLUCINATIONS`) and the evidence for it is weak: some no-speech probability, low
    confidence, or ``short`` (little speech behind it)."""
    return normalise_for_guard(result.text) in HALLUCINATIONS and (
        short or result.no_speech_prob > config.stock_no_speech_prob
        or result.avg_logprob < config.stock_logprob)


def is_non_speech_window(result: DecodeResult, config: GuardConfig = DEFAULT_GUARDS) -> bool:
    """Offline guard for a whole window: the no-speech probability alone is above
    ``no_speech_threshold``, or it is a weak stock phrase."""
    return result.no_speech_prob > config.no_speech_threshold or is_weak_stock_phrase(
        result, config=config)


def is_non_speech_segment(result: DecodeResult, *, committed: bool, with_context: bool,
                          speech_samples: int, config: GuardConfig = DEFAULT_GUARDS) -> bool:
    """Streaming guard for a decode of the open segment: True when the segment, with nothing
    ``committed`` yet, holds no speech: by the no-speech rule (only without context: context
    audio is speech), a weak stock phrase, or no text at all. Once words are committed the
    segment is speech."""
    if committed:
        return False
    short = is_short_speech(speech_samples, config)
    if not with_context and is_no_speech(result, short, config):
        return True
    if is_weak_stock_phrase(result, short=short, config=config):
        return True
    return not normalise_for_guard(result.text)


def copies_prompt(prompt_text: str, text: str, config: GuardConfig = DEFAULT_GUARDS) -> bool:
    """Prompt copy (a known failure of prompting Whisper): ``prompt_copy_words`` consecutive
    words of ``text`` also occur in ``prompt_text`` (the decoded end of the prompt)."""
    n = config.prompt_copy_words
    new = normalise_for_guard(text).split()
    old = normalise_for_guard(prompt_text).split()
    runs = {tuple(old[j: j + n]) for j in range(len(old) - n + 1)}
    return any(tuple(new[i: i + n]) in runs for i in range(len(new) - n + 1))


def drop_decoder_loop(tokens: list[int], n_context: int, loop_start: int | None) -> list[int]:
    """Decoder loop dropped whole: the open segment's tokens (``tokens`` after the first
    ``n_context``, the context segments' words) without a loop the decoder's repetition guard
    stopped at ``loop_start``. A loop is where the decoder ran past what it heard ("3. 0. 0. 0."
    for a lone "3"), so all of it goes, unless it is all the segment has ("1. 1. 1." for "1":
    then the one occurrence the decoder kept stays)."""
    if loop_start is not None and loop_start > n_context:
        return tokens[n_context: loop_start]
    return tokens[n_context:]


def trim_restart(committed: list[Word], words: list[Word]) -> list[Word]:
    """Restart trim: cut a hypothesis where, after the committed words, it starts the segment
    over: from some word on it only repeats the segment's first words (at least two of them, or
    the one committed word). That is Whisper looping back over audio it has already
    transcribed, e.g. "And so my fellow | Americans. And so my fellow Americans." or "2 | 2"; a
    phrase that only begins like the segment ("It was the season of light. It was the season of
    darkness.") is kept."""
    k = len(committed)
    keys = [w.key for w in words]
    for i in range(k, len(keys) - min(k, 2) + 1):
        if k and keys[i:] == keys[: len(keys) - i]:
            return words[:i]
    return words


def drop_final_stock_phrase(committed: list[Word], words: list[Word]) -> list[Word]:
    """Final stock-phrase drop: at a segment's end, a continuation of committed words that is
    only a stock phrase ("... Thank you.") is invented from the trailing silence; the committed
    words are the final hypothesis then."""
    continuation = words[len(committed):]
    if committed and normalise_for_guard("".join(w.text for w in continuation)) in HALLUCINATIONS:
        return committed
    return words
