"""Voice-activity segmentation: per-frame speech probabilities -> segment boundaries.

A pure state machine (no audio, no model): the streaming session feeds it one VAD probability per
frame with the frame's end position in samples; it answers with :class:`SegmentStart` and
:class:`SegmentEnd` boundaries. Hysteresis: speech starts at ``threshold`` and only counts as
silence below ``release``. A segment ends after ``endpoint_silence_s`` of silence, or is cut at
``max_segment_s`` at the quietest frame of its last ``cut_search_s`` seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from dictation import SAMPLE_RATE


@dataclass(frozen=True)
class SegmenterConfig:
    threshold: float = 0.5
    """Speech probability that opens a segment."""
    release: float = 0.35
    """Below this probability a frame counts as silence."""
    endpoint_silence_s: float = 0.3
    """Trailing silence that closes a segment, seconds."""
    pre_roll_s: float = 0.3
    """Audio kept before the first speech frame, seconds (a word's onset is often quiet)."""
    post_roll_s: float = 0.2
    """Audio kept after the last speech frame, seconds."""
    max_segment_s: float = 20.0
    """Longest segment, seconds (Whisper sees at most 30 s)."""
    cut_search_s: float = 3.0
    """Window before the maximum length in which a forced cut picks the quietest frame, s."""


@dataclass(frozen=True)
class SegmentStart:
    start: int
    """First sample of the segment (pre-roll included)."""


@dataclass(frozen=True)
class SegmentEnd:
    end: int
    """One past the last sample of the segment."""
    forced: bool
    """True when cut at the maximum length (speech goes on in the next segment)."""
    speech_end: int
    """One past the last frame that was speech."""


Boundary = SegmentStart | SegmentEnd


class Segmenter:
    """Feed :meth:`push` the probability of consecutive frames; it returns the boundaries."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        self.in_segment = False
        self.start = 0
        self.last_speech_end = 0
        self.previous_end = 0
        self.silence_samples = 0
        self.recent: deque[tuple[int, float]] = deque()

    def push(self, prob: float, frame_end: int, frame_samples: int) -> list[Boundary]:
        """One frame's speech probability; ``frame_end`` is one past its last sample."""
        c = self.config
        frame_start = frame_end - frame_samples
        self.recent.append((frame_end, prob))
        while self.recent and self.recent[0][0] < frame_end - c.cut_search_s * SAMPLE_RATE:
            self.recent.popleft()
        if not self.in_segment:
            if prob < c.threshold:
                return []
            self.in_segment = True
            self.start = max(self.previous_end, frame_start - int(c.pre_roll_s * SAMPLE_RATE), 0)
            self.last_speech_end, self.silence_samples = frame_end, 0
            return [SegmentStart(self.start)]
        if prob >= c.release:
            self.last_speech_end, self.silence_samples = frame_end, 0
        else:
            self.silence_samples += frame_samples
        if self.silence_samples >= c.endpoint_silence_s * SAMPLE_RATE:
            end = min(frame_end, self.last_speech_end + int(c.post_roll_s * SAMPLE_RATE))
            return [self._close(end, forced=False)]
        if frame_end - self.start >= c.max_segment_s * SAMPLE_RATE:
            quiet_end = min(self.recent, key=lambda item: item[1])[0]
            cut = quiet_end if quiet_end > self.start else frame_end
            closed = self._close(cut, forced=True)
            self.in_segment, self.start = True, cut
            self.last_speech_end, self.silence_samples = frame_end, 0
            return [closed, SegmentStart(cut)]
        return []

    def flush(self, position: int) -> list[Boundary]:
        """End of stream at sample ``position``: close an open segment."""
        return [self._close(position, forced=False)] if self.in_segment else []

    def _close(self, end: int, forced: bool) -> SegmentEnd:
        self.in_segment = False
        self.previous_end = end
        self.recent.clear()
        return SegmentEnd(end, forced, min(end, self.last_speech_end))
