"""Greedy Moonshine decoding of one stretch of audio (at most ~25 s), with Moonshine's
safeguards as named rules, composed by one orchestrator (:func:`decode`).

Rules (each a small object or pure function with its own unit test):
- :func:`token_cap`: at most ``tokens_per_second`` (Moonshine's ~6.5) tokens per second of
  audio, never fewer than ``min_tokens``: the model otherwise invents text after the speech ends.
- :class:`NoEndOfTextFirst`: end-of-text is not allowed as the first token when the VAD found
  speech in the audio (Moonshine often ends at once on isolated digits and short words).
- :class:`RepetitionGuard`: stops a loop (an n-gram repeated at the end of the output) and
  keeps one occurrence.
Cutting long inputs at quiet points is the caller's part (see
:mod:`dictation.asr.moonshine.transcribe`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from dictation import SAMPLE_RATE
from dictation.asr.draft import DraftedLogits
from dictation.asr.moonshine.loaders import LoadedMoonshine
from dictation.asr.moonshine.model import MIN_SAMPLES


@dataclass(frozen=True)
class MoonshineDecodeOptions:
    """Knobs of one greedy Moonshine decode."""

    tokens_per_second: float = 6.5
    """Token cap per second of audio (Moonshine's own rule of thumb; English speech is about
    3-4 tokens per second)."""
    min_tokens: int = 6
    """The token cap never goes below this, so a short word with its punctuation fits."""
    forbid_eot_first_with_speech: bool = True
    """Apply :class:`NoEndOfTextFirst` when the caller says the VAD found speech."""
    repetition_max_ngram: int = 8
    """Longest repeated n-gram (tokens) the repetition guard looks for."""
    repetition_min_repeats: int = 3
    """A loop needs at least this many copies in a row..."""
    repetition_min_tokens: int = 12
    """...covering at least this many tokens (so "no, no, no" is speech, not a loop)."""


@dataclass(frozen=True)
class MoonshineResult:
    """Output of :func:`decode`: the text tokens (forced prefix included, no <s>/</s>)."""

    tokens: list[int]
    text: str
    audio_s: float
    stop: str
    """Why decoding stopped: "end_of_text", "token_cap" or "repetition"."""
    avg_logprob: float
    sequence: list[int] = field(default_factory=list)
    """The context, prefix and generated tokens as the decoder saw them after <s> (before any
    repetition cut): a later decode's ``draft`` is what follows its context and prefix here."""


def token_cap(n_samples: int, tokens_per_second: float = 6.5, min_tokens: int = 6) -> int:
    """Most tokens to generate for ``n_samples`` of 16 kHz audio."""
    return max(min_tokens, math.ceil(n_samples / SAMPLE_RATE * tokens_per_second))


class NoEndOfTextFirst:
    """Forbids end-of-text as the first generated token (only when speech was found)."""

    def __init__(self, eos: int) -> None:
        self.eos = eos

    def apply(self, logits: Tensor, generated: list[int]) -> None:
        """Shape the step's logits (n_vocab,) in place."""
        if not generated:
            logits[self.eos] = float("-inf")


class RepetitionGuard:
    """Detects a loop: the same n-gram (1..max_ngram tokens) repeated at least ``min_repeats``
    times in a row, and over at least ``min_tokens`` tokens, at the end of the output."""

    def __init__(self, max_ngram: int = 8, min_repeats: int = 3, min_tokens: int = 12) -> None:
        self.max_ngram, self.min_repeats, self.min_tokens = max_ngram, min_repeats, min_tokens

    def loop(self, tokens: list[int]) -> tuple[int, int] | None:
        """(n-gram length, repeats) of a loop ending the output, or None."""
        for n in range(1, self.max_ngram + 1):
            repeats = max(self.min_repeats, math.ceil(self.min_tokens / n))
            span = n * repeats
            if len(tokens) < span:
                continue
            tail = tokens[-span:]
            if all(tail[i] == tail[i % n] for i in range(span)):
                return n, repeats
        return None

    def cut(self, tokens: list[int]) -> list[int]:
        """``tokens`` with the looping n-gram kept once (unchanged when there is no loop)."""
        found = self.loop(tokens)
        if found is None:
            return tokens
        n, repeats = found
        return tokens[: len(tokens) - n * (repeats - 1)]


@torch.inference_mode()
def encode(loaded: LoadedMoonshine, audio: np.ndarray) -> Tensor:
    """Encoder states (1, T, d_model) of 16 kHz mono float32 ``audio`` (audio shorter than
    the stem's minimum is padded with silence to one frame)."""
    samples = np.ascontiguousarray(audio, np.float32)
    if len(samples) < MIN_SAMPLES:
        samples = np.pad(samples, (0, MIN_SAMPLES - len(samples)))
    return loaded.model.encoder(torch.from_numpy(samples)[None])


@torch.inference_mode()
def decode(loaded: LoadedMoonshine, audio: np.ndarray, *, speech_found: bool = True,
           prefix: list[int] | None = None, context: list[int] | None = None,
           options: MoonshineDecodeOptions | None = None,
           encoder_out: Tensor | None = None, draft: list[int] | None = None) -> MoonshineResult:
    """Greedy transcript of ``audio`` (16 kHz mono float32).

    speech_found: the VAD found speech in ``audio`` (enables :class:`NoEndOfTextFirst`).
    prefix: text tokens forced after <s> (text already committed); they count toward the cap.
    context: text tokens of earlier audio at the start of ``audio``, forced before ``prefix``
        (not counted toward the cap, not in the result); end-of-text first is forbidden after
        them as without them.
    encoder_out: the encoder states of ``audio`` when the caller already has them.
    draft: tokens the continuation is expected to start with (the streaming decoder's previous
        hypothesis, :attr:`MoonshineResult.sequence` past ``context + prefix``; see
        :mod:`dictation.asr.draft`): the result is the greedy decode's either way."""
    options = options or MoonshineDecodeOptions()
    model, dims = loaded.model, loaded.dims
    prefix = list(prefix or [])
    context = list(context or [])
    states = encoder_out if encoder_out is not None else encode(loaded, audio)
    cache = model.decoder.new_cache(states)
    cap = min(token_cap(len(audio), options.tokens_per_second, options.min_tokens),
              dims.max_decoder_positions - 1 - len(context))
    rules = []
    if speech_found and options.forbid_eot_first_with_speech and not prefix:
        rules.append(NoEndOfTextFirst(dims.eos_token_id))
    guard = RepetitionGuard(options.repetition_max_ngram, options.repetition_min_repeats,
                            options.repetition_min_tokens)
    initial = [dims.bos_token_id, *context, *prefix]
    draft = list(draft or [])[: max(0, cap - len(prefix) - 1)]
    hidden = model.decoder.hidden(torch.tensor([initial + draft]), cache)
    rows = model.decoder.logits(hidden[0, len(initial) - 1:])  # context and prefix need none
    drafted = DraftedLogits(rows, draft, len(initial),
                            lambda token: model.decoder(torch.tensor([[token]]), cache)[0, -1],
                            cache.truncate)
    generated: list[int] = []
    sum_logprob = 0.0
    stop = "token_cap"
    while len(prefix) + len(generated) < cap:
        logits = drafted.next()
        for rule in rules:
            rule.apply(logits, generated)
        logprobs = logits.log_softmax(-1)
        token = int(logprobs.argmax())
        sum_logprob += float(logprobs[token])
        if token == dims.eos_token_id:
            stop = "end_of_text"
            break
        generated.append(token)
        if guard.loop(prefix + generated) is not None:
            stop = "repetition"
            break
        drafted.generated(token)
    tokens = prefix + generated
    if stop == "repetition":
        tokens = max(guard.cut(tokens), prefix, key=len)  # never cut into the forced prefix
    return MoonshineResult(tokens=tokens, text=loaded.tokenizer.decode(tokens),
                           audio_s=len(audio) / SAMPLE_RATE, stop=stop,
                           avg_logprob=sum_logprob / max(1, len(generated) + 1),
                           sequence=[*context, *prefix, *generated])
