"""One audio stream through a shared Moonshine v2 model: the incremental encoder runs over the
whole stream, the decoder re-runs on the open segment only.

:func:`decode_segment` is greedy decoding with Moonshine's safeguards, the rules of the v1
family (:mod:`dictation.asr.moonshine.decoding`: a token cap from the audio length, no
end-of-text first when the VAD found speech, the repetition guard), after an optional forced
prefix (the segment's committed tokens).

:class:`SegmentStream` is the per-stream state a streaming driver holds (no threads, no clock):
``feed(samples)`` advances the encoder (frames that became final are computed once and their
cross-attention keys/values kept), ``hypothesis()`` re-decodes the open segment from its
frozen frames plus the provisional tail, and ``start_segment()`` closes the open segment so the
next one starts at the current end of the audio (the encoder keeps its left context across
segments; the decoder's learned positions restart at 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dictation import SAMPLE_RATE
from dictation.asr.moonshine.decoding import (
    MoonshineDecodeOptions,
    NoEndOfTextFirst,
    RepetitionGuard,
    token_cap,
)
from dictation.asr.moonshine_streaming.model import (
    MoonshineStreaming,
    SegmentMemory,
    StreamingEncoder,
)

ENCODER_FRAMES_PER_SECOND = 50
"""Moonshine v2's encoder frame rate (20 ms frames)."""
SAMPLES_PER_ENCODER_FRAME = SAMPLE_RATE // ENCODER_FRAMES_PER_SECOND


@torch.no_grad()
def decode_segment(model: MoonshineStreaming, cross_kv: list[tuple[Tensor, Tensor]],
                   n_frames: int, *, prefix: Sequence[int] = (), speech_found: bool = True,
                   options: MoonshineDecodeOptions | None = None) -> list[int]:
    """Greedy tokens (forced ``prefix`` first; no start/end token) of one segment of
    ``n_frames`` encoder frames whose cross-attention keys/values are ``cross_kv``.

    The token cap counts the prefix and follows the audio length (:func:`token_cap`);
    end-of-text is refused as the first generated token when ``speech_found`` and there is no
    prefix (:class:`NoEndOfTextFirst`); a loop at the end is cut to one copy, never into the
    prefix (:class:`RepetitionGuard`)."""
    options = options or MoonshineDecodeOptions()
    dims = model.dims
    prefix = list(prefix)
    cap = min(token_cap(n_frames * SAMPLES_PER_ENCODER_FRAME, options.tokens_per_second,
                        options.min_tokens), dims.n_pos - 1)
    rules = ([NoEndOfTextFirst(dims.eos_token)]
             if speech_found and options.forbid_eot_first_with_speech and not prefix else [])
    guard = RepetitionGuard(options.repetition_max_ngram, options.repetition_min_repeats,
                            options.repetition_min_tokens)
    tokens = torch.tensor([[dims.bos_token, *prefix]])
    cache = None
    generated: list[int] = []
    while len(prefix) + len(generated) < cap:
        logits, cache = model.logits(tokens, cross_kv, cache)
        row = logits[0, -1].clone()
        for rule in rules:
            rule.apply(row, generated)
        token = int(row.argmax())
        if token == dims.eos_token:
            break
        generated.append(token)
        if guard.loop(prefix + generated) is not None:
            return max(guard.cut(prefix + generated), prefix, key=len)
        tokens = torch.tensor([[token]])
    return prefix + generated


class SegmentStream:
    """Per-stream state: encoder state, the open segment's memory and where it starts."""

    def __init__(self, model: MoonshineStreaming) -> None:
        self.model = model
        self.encoder = StreamingEncoder(model)
        self.state = self.encoder.initial_state()
        self.memory = SegmentMemory(model, start_frame=0)

    @property
    def segment_frames(self) -> int:
        """Encoder frames (20 ms each) of the open segment, final and provisional."""
        return self.state.n_frames - self.memory.start_frame

    @torch.no_grad()
    def feed(self, samples: Tensor) -> None:
        """Append 16 kHz samples, shape (n,) or (1, n)."""
        frozen, self.state = self.encoder.forward_chunk(samples.reshape(1, -1), self.state)
        first = self.state.n_frozen - frozen.shape[1]  # absolute index of frozen[:, 0]
        skip = max(self.memory.start_frame - first, 0)
        self.memory.extend(frozen[:, skip:])

    def _segment_tail(self) -> Tensor:
        tail = self.encoder.tail(self.state)
        skip = max(self.memory.start_frame - self.state.n_frozen, 0)
        return tail[:, skip:]

    def hypothesis(self, prefix: Sequence[int] = (), speech_found: bool = True,
                   options: MoonshineDecodeOptions | None = None) -> list[int]:
        """Tokens of the open segment as the audio so far gives them, re-decoded after the
        forced ``prefix`` (see :func:`decode_segment`)."""
        if self.segment_frames <= 0:
            return []
        kv = self.memory.with_tail(self._segment_tail())
        return decode_segment(self.model, kv, self.segment_frames, prefix=prefix,
                              speech_found=speech_found, options=options)

    def start_segment(self) -> None:
        """Close the open segment: the next one starts at the current end of the audio."""
        self.memory = SegmentMemory(self.model, start_frame=self.state.n_frames)
