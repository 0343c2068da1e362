"""What a model family supplies to the streaming driver: a decoder of one of two shapes.

The driver (:mod:`dictation.asr.driver`) owns everything families share: VAD gating, segments,
the decode cadence, catch-up, the commit policy and the events. A family plugs in a decoder with
the split of whisper.cpp: the decoder object holds the model, shared and read-only (one per
loaded model, any number of streams); everything that changes while one stream is transcribed
lives in a per-stream *state* object that the decoder creates (``new_state``) and the driver
hands back on every call. Positions are absolute sample indices of the stream (16 kHz); audio
is mono float32.

Two shapes:

- :class:`RedecodingDecoder` (Whisper, Moonshine v1): every decode transcribes the open
  segment from its start (with earlier segments as context if the family wants), returning a
  :class:`Hypothesis` of the whole segment. Words are committed when successive hypotheses
  agree (:class:`~dictation.asr.commit.LocalAgreement`).
- :class:`MonotoneDecoder` (cache-aware CTC/transducer, Moonshine v2 streaming): WeNet's
  ``forward_chunk(x, state) -> (y, state)``. Each call gets only the samples that arrived since
  the previous one; output frames beyond the model's look-ahead are final, so words it marks
  final are committed at once (:class:`~dictation.asr.commit.FinalWords`), never revised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from dictation.asr.commit import Word

StateT = TypeVar("StateT")


@dataclass(frozen=True)
class Hypothesis:
    """The open segment's transcript as the decoder has it now."""

    words: list[Word]
    """From the segment's start: its committed words (as the decoder now hears them) first."""
    final: int | None = None
    """How many leading ``words`` are final and never change (monotone decoders). None: the
    decoder cannot tell; the commit policy decides by agreement of successive hypotheses."""


@dataclass(frozen=True)
class ClosedSegment:
    """A segment the driver closed, kept while a decoder may use it as context."""

    start: int
    """Absolute sample index of its first sample."""
    end: int
    """One past its last sample."""
    words: list[Word]
    """Its committed words."""


@dataclass(frozen=True)
class SegmentView:
    """What a re-decoding decoder may read about the open segment (read-only)."""

    index: int
    """Segment number in the stream, from 0."""
    start: int
    """Absolute sample index of the segment's first sample."""
    end: int
    """Decode the audio up to this absolute sample (exclusive)."""
    committed: list[Word]
    """Words of this segment already committed (never retracted)."""
    speech_samples: int
    """Samples of the segment the VAD took for speech so far."""
    closed: Sequence[ClosedSegment]
    """Earlier closed segments whose audio is still kept (the latest ``context_s`` of the
    stream), oldest first."""
    audio: Callable[[int, int], np.ndarray]
    """``audio(a, b)``: the stream's samples from absolute index ``a`` to ``b`` (float32, 16 kHz),
    for ``a`` at or after the oldest kept segment's start."""


class RedecodingDecoder(Protocol[StateT]):
    """Decodes the open segment's audio from its start at every update (see module doc)."""

    @property
    def context_s(self) -> float:
        """How far back closed segments (audio and words) must be kept for it, seconds."""
        ...

    def new_state(self) -> StateT:
        """Fresh per-stream state (e.g. the text of earlier segments for a prompt)."""
        ...

    def decode(self, segment: SegmentView, state: StateT, final: bool) -> Hypothesis | None:
        """The segment's hypothesis from the audio up to ``segment.end``; None when what it
        heard is not speech (nothing is committed from this decode). ``final``: the segment
        has ended and this hypothesis is committed whole."""
        ...

    def segment_closed(self, segment: ClosedSegment, state: StateT) -> None:
        """The driver closed ``segment`` with these committed words (update ``state``)."""
        ...


@dataclass(frozen=True)
class ChunkOutput:
    """Output ``y`` of :meth:`MonotoneDecoder.forward_chunk`."""

    final: list[Word]
    """Words that became final with this chunk, in order (never revised)."""
    tentative: list[Word]
    """The words after all final ones as the model hears them now (within its look-ahead); the
    next chunk may change them. Shown as a partial, never committed from here."""


@runtime_checkable
class MonotoneDecoder(Protocol[StateT]):
    """WeNet-style streaming decoder: ``forward_chunk(x, state) -> (y, new_state)``.

    The driver creates a state when a segment opens (the model starts an utterance: empty
    caches, offset 0), feeds each new piece of the segment's audio once, in order, and at the
    segment's end calls :meth:`finish` so that the frames held back for look-ahead are decoded
    too. Output depends only on the audio, not on how it was cut into chunks. (The driver tells
    the two shapes apart by this protocol: an object with ``forward_chunk`` is monotone.)"""

    def new_state(self) -> StateT:
        """State of a new utterance (segment)."""
        ...

    def forward_chunk(self, x: np.ndarray, state: StateT) -> tuple[ChunkOutput, StateT]:
        """``x``: (n,) float32 samples at 16 kHz that follow the previous chunk (n may be 0 or
        not a multiple of the model's frame); returns the output and the new state."""
        ...

    def finish(self, state: StateT) -> tuple[ChunkOutput, StateT]:
        """End of the utterance: everything still held back becomes final."""
        ...
