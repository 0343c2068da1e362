"""Moonshine's streaming decoder, a re-decoding family: every decode transcribes the open
segment from its start (Moonshine's encoder costs what the audio is long, so a short segment
is cheap), with the segment's committed words forced as the decoder prefix, so the decoder
knows which text is already typed and goes on from there. The result is split into words for
the commit policy (LocalAgreement, :mod:`dictation.asr.commit`).

:class:`MoonshineStreamDecoder` has the shape of the family-neutral driver's re-decoding
decoder (``new_state``, ``segment_closed``, ``context_s``); :meth:`MoonshineStreamDecoder.words`
is its ``decode`` without the driver's ``Hypothesis`` wrapper (``Hypothesis(words)``, or None
when it returns None). The model is shared and read-only; Moonshine v1 keeps no text between
segments, so the per-stream state is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dictation.asr.commit import Word
from dictation.asr.moonshine.decoding import MoonshineDecodeOptions, decode
from dictation.asr.moonshine.loaders import LoadedMoonshine
from dictation.asr.moonshine.tokenizer import SPACE_PIECE, MoonshineTokenizer


@dataclass(frozen=True)
class MoonshineStreamConfig:
    """Moonshine's streaming settings."""

    decode: MoonshineDecodeOptions = field(default_factory=MoonshineDecodeOptions)


@dataclass
class MoonshineStreamState:
    """Per-stream state: none is needed (each segment is decoded on its own)."""


class SegmentAudio(Protocol):
    """What the decoder reads about the open segment (the driver's segment view)."""

    @property
    def start(self) -> int:
        """Absolute sample index of the segment's first sample."""
        ...

    @property
    def end(self) -> int:
        """Decode the audio up to this absolute sample (exclusive)."""
        ...

    @property
    def committed(self) -> list[Word]:
        """Words of this segment already committed."""
        ...

    @property
    def speech_samples(self) -> int:
        """Samples of the segment the VAD took for speech so far."""
        ...

    @property
    def audio(self) -> Callable[[int, int], np.ndarray]:
        """``audio(a, b)``: the stream's samples from absolute index a to b."""
        ...


def split_words(tokens: list[int], tokenizer: MoonshineTokenizer) -> list[Word]:
    """Group tokens into words: a piece starting with "▁" (a space) begins a new word. A word's
    text keeps its leading space, so joined texts give the typed text."""
    groups: list[list[int]] = []
    for token in tokens:
        if not groups or tokenizer.piece(token).startswith(SPACE_PIECE):
            groups.append([token])
        else:
            groups[-1].append(token)
    words = []
    for group in groups:
        space = " " if tokenizer.piece(group[0]).startswith(SPACE_PIECE) else ""
        words.append(Word(tuple(group), space + tokenizer.decode(group)))
    return words


class MoonshineStreamDecoder:
    """Re-decoding decoder over a loaded Moonshine model (shared, read-only)."""

    context_s = 0.0
    """Earlier segments are not decoded with the open one."""

    def __init__(self, loaded: LoadedMoonshine, config: MoonshineStreamConfig | None = None
                 ) -> None:
        self.loaded = loaded
        self.config = config or MoonshineStreamConfig()

    def new_state(self) -> MoonshineStreamState:
        return MoonshineStreamState()

    def segment_closed(self, segment: object, state: MoonshineStreamState) -> None:
        """Nothing to keep: Moonshine v1 decodes each segment alone."""

    def words(self, segment: SegmentAudio, state: MoonshineStreamState,
              final: bool) -> list[Word] | None:
        """The open segment's words from its start (committed words first, as forced); None
        when nothing was heard and nothing is committed."""
        audio = segment.audio(segment.start, segment.end)
        prefix = [t for w in segment.committed for t in w.tokens]
        result = decode(self.loaded, audio, speech_found=segment.speech_samples > 0,
                        prefix=prefix, options=self.config.decode)
        if not result.tokens:
            return None
        return split_words(result.tokens, self.loaded.tokenizer)
