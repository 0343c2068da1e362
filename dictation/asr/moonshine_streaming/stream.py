"""One audio stream through a shared Moonshine v2 model: the incremental encoder runs over the
whole stream, the decoder re-runs on the open segment only.

:class:`SegmentStream` is the per-stream state a streaming driver holds (no threads, no clock):
``feed(samples)`` advances the encoder (frames that became final are computed once and their
cross-attention keys/values kept), ``hypothesis()`` re-decodes the open segment from its
frozen frames plus the provisional tail, and ``start_segment()`` closes the open segment so the
next one starts at the current end of the audio (the encoder keeps its left context across
segments; the decoder's learned positions restart at 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dictation.asr.moonshine_streaming.model import (
    MoonshineStreaming,
    SegmentMemory,
    StreamingEncoder,
    greedy_tokens,
)

TOKENS_PER_SECOND_CAP = 6.5
"""Moonshine's documented ~6.5 tokens per second of speech: the token cap of a re-decode."""
ENCODER_FRAMES_PER_SECOND = 50


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

    def hypothesis(self) -> list[int]:
        """Greedy tokens of the open segment as the audio so far gives them (re-decoded)."""
        if self.segment_frames <= 0:
            return []
        kv = self.memory.with_tail(self._segment_tail())
        cap = max(1, round(TOKENS_PER_SECOND_CAP * self.segment_frames
                           / ENCODER_FRAMES_PER_SECOND))
        return greedy_tokens(self.model, kv, cap)

    def start_segment(self) -> None:
        """Close the open segment: the next one starts at the current end of the audio."""
        self.memory = SegmentMemory(self.model, start_frame=self.state.n_frames)
