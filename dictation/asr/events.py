"""Events emitted by a streaming session (see :mod:`dictation.asr.driver`).

``audio_time_s`` is the stream position (seconds of audio fed so far) when the event was emitted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Partial:
    """The whole current hypothesis of the open segment (committed + tentative); may change."""

    text: str
    audio_time_s: float
    segment: int


@dataclass(frozen=True)
class Commit:
    """New final text. ``text`` is exactly what to append to everything committed before it,
    including a leading space where one is needed; it is never retracted."""

    text: str
    audio_time_s: float
    segment: int


@dataclass(frozen=True)
class EndOfSegment:
    """The open segment closed (trailing silence, maximum length, or end of stream).
    ``text`` is the segment's whole committed text."""

    text: str
    audio_time_s: float
    segment: int


Event = Partial | Commit | EndOfSegment
