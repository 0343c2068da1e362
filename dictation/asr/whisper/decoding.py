"""Greedy Whisper decoding of one window of audio, composed of small strategy objects.

The orchestrator (:func:`decode`) encodes the audio, builds the initial token sequence
(previous-text prompt, start-of-transcript, optional forced prefix), then runs a greedy loop in
which :class:`LogitFilter` objects shape each step's logits and :class:`RepetitionGuard` stops
runaway loops. The result carries what callers need to reject hallucinations (no-speech
probability, average log-probability).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from dictation import SAMPLE_RATE
from dictation.asr.draft import DraftedLogits
from dictation.asr.whisper.features import HOP_LENGTH, N_FRAMES, features_for_window
from dictation.asr.whisper.loaders import LoadedModel

TIMESTAMP_S = 0.02
"""Seconds per step of Whisper's timestamp tokens (<|0.00|>, <|0.02|>, ...)."""


@dataclass(frozen=True)
class DecodeOptions:
    """Knobs of one greedy decode."""

    full_window: bool = True
    """Encode the audio padded to Whisper's 30 s window (as trained). False encodes only the
    audio plus ``tail_padding_s`` of silence: several times faster for short audio."""
    tail_padding_s: float = 5.0
    """Silence appended when ``full_window`` is False, seconds."""
    min_window_s: float = 10.0
    """Shortest window encoded when ``full_window`` is False, seconds (short windows make
    Whisper loop instead of ending the text)."""
    max_prompt_tokens: int = 120
    """At most this many tokens of previous text are given as the prompt."""
    max_tokens_per_second: float = 12.0
    """Output length cap relative to the audio length (English speech is about 3-4 tokens/s)."""
    suppress_blank: bool = True
    timestamps: bool = False
    """Decode in Whisper's timestamp mode: the text comes in phrases between timestamp tokens
    (0.02 s steps from the window's start), and a forced prefix may carry them to tell the
    decoder which audio its words cover. Timestamps are not part of the result's tokens."""
    word_timestamps: bool = False
    """Keep the alignment heads' cross-attention so :mod:`dictation.bench.alignment`
    can time words."""
    repetition_max_ngram: int = 8
    """Repetition guard (:class:`RepetitionGuard`): loops of up to this many tokens are
    detected, tokens ..."""
    repetition_max_repeats: int = 3
    """... once they repeat this many times in a row, occurrences."""


@dataclass
class DecodeResult:
    """Output of :func:`decode`. ``tokens`` are the text tokens of the forced prefix and what
    followed it, without special or timestamp tokens."""

    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    audio_s: float
    repetition_cut: bool = False
    loop_start: int | None = None
    """When the output looped (``repetition_cut``): the index in ``tokens`` where the one
    occurrence kept of the repeated tokens starts."""
    cross_attention: Tensor | None = field(default=None, repr=False)
    """(alignment heads, len(tokens) + 1, encoder frames) when ``word_timestamps``; the extra row
    is the end-of-text step."""
    sequence: list[int] = field(default_factory=list)
    """The forced prefix and the generated tokens as the decoder saw them (timestamps
    included, end-of-text not): a later decode's ``draft`` is what follows its prefix here."""


def compression_ratio(text: str) -> float:
    """Length of ``text`` over its zlib-compressed length: above ~2.4 means repetitive."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class LogitFilter:
    """Shapes the logits (n_vocab,) of one greedy step in place."""

    def apply(self, logits: Tensor, generated: list[int]) -> None:
        raise NotImplementedError


class SuppressTokens(LogitFilter):
    """Never emit the given tokens (symbols the model should avoid, special tokens)."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = torch.tensor(sorted(set(tokens)), dtype=torch.long)

    def apply(self, logits: Tensor, generated: list[int]) -> None:
        logits[self.tokens] = float("-inf")


class SuppressAtBegin(LogitFilter):
    """No blank and no end-of-text as the first generated token."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens

    def apply(self, logits: Tensor, generated: list[int]) -> None:
        if not generated:
            logits[self.tokens] = float("-inf")


class TimestampRules(LogitFilter):
    """Whisper's timestamp grammar (greedy form of openai/whisper's ``ApplyTimestampRules``):
    timestamps come in pairs around phrases (an opening one before text, a closing one after
    it, which is followed by the next opening one or end-of-text), never decrease and never pass
    the end of the audio; when the timestamps together are likelier than any text token, a
    timestamp is taken. ``generated`` here is the whole sequence after the start-of-transcript
    tokens: forced prefix plus generated tokens."""

    def __init__(self, timestamp_begin: int, eot: int, last_timestamp: int) -> None:
        self.begin, self.eot, self.last = timestamp_begin, eot, last_timestamp

    def apply(self, logits: Tensor, generated: list[int]) -> None:
        begin = self.begin
        logits[self.last + 1:] = float("-inf")
        last_was = bool(generated) and generated[-1] >= begin
        penultimate_was = len(generated) < 2 or generated[-2] >= begin
        if last_was:
            if penultimate_was:  # a phrase was just opened: text must follow
                logits[begin:] = float("-inf")
            else:  # a phrase was just closed: the next opens or the transcript ends
                logits[: self.eot] = float("-inf")
        stamps = [t for t in generated if t >= begin]
        if stamps:  # never back in time; a closing stamp may open the next phrase
            floor = stamps[-1] if last_was and not penultimate_was else stamps[-1] + 1
            logits[begin: floor] = float("-inf")
        # "the timestamps' total probability beats the best text token": both sides share the
        # softmax normaliser, so compare the logits themselves (no full log_softmax per step)
        if logits[begin:].logsumexp(-1) > logits[:begin].max():
            logits[:begin] = float("-inf")


class RepetitionGuard:
    """Detects a loop: the same n-gram (1..max_ngram tokens) repeated ``max_repeats`` times in a
    row at the end of the output. :meth:`cut` returns the output with the repeats removed."""

    def __init__(self, max_ngram: int = 8, max_repeats: int = 3) -> None:
        self.max_ngram, self.max_repeats = max_ngram, max_repeats

    def _loop(self, tokens: list[int]) -> tuple[int, int] | None:
        for n in range(1, self.max_ngram + 1):
            span = n * self.max_repeats
            if len(tokens) < span:
                break
            tail = tokens[-span:]
            if all(tail[i] == tail[i % n] for i in range(span)):
                return n, span
        return None

    def looping(self, tokens: list[int]) -> bool:
        return self._loop(tokens) is not None

    def cut(self, tokens: list[int], keep_one: bool = True) -> list[int]:
        """Drop the repeats of the looping n-gram after its first occurrence (or, without
        ``keep_one``, that occurrence too)."""
        loop = self._loop(tokens)
        if loop is None:
            return tokens
        n, span = loop
        return tokens[: len(tokens) - span + (n if keep_one else 0)]


def encode_audio(loaded: LoadedModel, audio: np.ndarray, options: DecodeOptions) -> Tensor:
    """Encoder output (1, T, n_audio_state) of up to 30 s of 16 kHz audio."""
    n_frames = N_FRAMES
    if not options.full_window:
        samples = max(len(audio) + int(options.tail_padding_s * SAMPLE_RATE),
                      int(options.min_window_s * SAMPLE_RATE))
        n_frames = min(N_FRAMES, 2 * ((samples // HOP_LENGTH + 1) // 2))
    mel = features_for_window(audio, loaded.model.dims.n_mels, n_frames)
    return loaded.model.encoder(mel[None])


@torch.inference_mode()
def decode(loaded: LoadedModel, audio: np.ndarray, prompt: list[int] | None = None,
           prefix: list[int] | None = None, options: DecodeOptions | None = None,
           draft: list[int] | None = None) -> DecodeResult:
    """Greedy transcript of ``audio`` (16 kHz mono float32, at most 30 s).

    prompt: tokens of earlier text, given after <|startofprev|> as context.
    prefix: tokens forced at the start of this transcript (text already committed).
    draft: tokens the continuation is expected to start with (a streaming decoder's previous
    hypothesis of the same audio, :attr:`DecodeResult.sequence` past the prefix; see
    :mod:`dictation.asr.draft`): the result is the greedy decode's either way."""
    options = options or DecodeOptions()
    tok, model = loaded.tokenizer, loaded.model
    prefix = list(prefix or [])
    eot = tok.eot  # a tokenizer lookup: not once per step
    audio_s = len(audio) / SAMPLE_RATE
    cache = model.decoder.new_cache(encode_audio(loaded, audio, options))

    initial: list[int] = []
    if prompt:
        max_prompt = min(options.max_prompt_tokens, model.dims.n_text_ctx // 2 - 1)
        initial = [tok.sot_prev, *prompt[-max_prompt:]]
    sot_index = len(initial)
    initial += [*tok.sot_sequence] if options.timestamps else [*tok.sot_sequence,
                                                               tok.no_timestamps]
    prompt_len = len(initial)
    initial += prefix

    if options.timestamps and options.word_timestamps:
        raise ValueError("word timestamps need a decode without timestamp tokens")
    first_timestamp = tok.timestamp_begin
    last_special = first_timestamp if options.timestamps else model.dims.n_vocab
    specials = [t for t in range(tok.eot + 1, last_special)]
    filters: list[LogitFilter] = [SuppressTokens([*loaded.suppress_tokens, *specials])]
    if options.timestamps:
        last_stamp = first_timestamp + min(round(audio_s / TIMESTAMP_S), model.dims.n_audio_ctx)
        filters.append(TimestampRules(first_timestamp, tok.eot, last_stamp))
    if options.suppress_blank:
        begin = [*loaded.suppress_at_begin, *tok.encode(" "), tok.eot]
        if prefix:  # the forced prefix may already be the whole transcript: allow ending at once
            begin = [t for t in begin if t != tok.eot]
        filters.append(SuppressAtBegin(begin))
    guard = RepetitionGuard(options.repetition_max_ngram, options.repetition_max_repeats)
    max_new = int(options.max_tokens_per_second * audio_s) + 8
    max_new = min(max_new, model.dims.n_text_ctx // 2 - len(prefix))
    forced_text = [t for t in prefix if t < eot]

    heads = model.alignment_heads
    rows: list[Tensor] = []

    def step(tokens: list[int]) -> Tensor:
        """Run ``tokens``; return the hidden state of each (logits only where needed)."""
        hidden, weights = model.decoder.hidden(torch.tensor([tokens]), cache,
                                               want_cross_weights=options.word_timestamps)
        if weights:
            rows.append(torch.stack([weights[layer][0, head] for layer, head in heads]))
        return hidden[0]

    room = model.dims.n_text_ctx - len(initial) - 1
    draft = [] if options.word_timestamps else list(draft or [])[: max(0, min(max_new, room))]
    first = step(initial + draft)
    no_speech_prob = float(model.decoder.logits(first[sot_index]).softmax(-1)[tok.no_speech])
    generated: list[int] = []
    sum_logprob = 0.0
    drafted = DraftedLogits(model.decoder.logits(first[len(initial) - 1:]), draft, len(initial),
                            lambda token: model.decoder.logits(step([token])[-1]),
                            cache.truncate)
    repetition_cut = False
    loop_start: int | None = None
    for _ in range(max(0, max_new)):
        last = drafted.next()
        for f in filters:
            f.apply(last, prefix + generated if options.timestamps else generated)
        logprobs = last.log_softmax(-1)
        token = int(logprobs.argmax())
        sum_logprob += float(logprobs[token])
        if token == eot:
            break
        generated.append(token)
        tokens = forced_text + [t for t in generated if t < eot]
        if token < eot and guard.looping(tokens):
            repetition_cut = True
            break
        drafted.generated(token)
    tokens = forced_text + [t for t in generated if t < eot]
    if repetition_cut:
        loop_start = max(len(guard.cut(tokens, keep_one=False)), len(forced_text))
        tokens = max(guard.cut(tokens), forced_text, key=len)  # never cut into the prefix
    text = tok.decode(tokens)
    cross = None
    if rows:
        # rows[0] holds the prompt positions; keep the rows that predict each output token
        full = torch.cat(rows, dim=1)
        cross = full[:, prompt_len - 1: prompt_len + len(tokens)]
    return DecodeResult(tokens=tokens, text=text,
                        avg_logprob=sum_logprob / max(1, len(generated) + 1),
                        no_speech_prob=no_speech_prob, compression_ratio=compression_ratio(text),
                        audio_s=audio_s, repetition_cut=repetition_cut, loop_start=loop_start,
                        cross_attention=cross, sequence=prefix + generated)
