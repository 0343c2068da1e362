"""The family-neutral streaming driver: PCM chunks of any size in, :mod:`dictation.asr.events`
out. It implements :class:`dictation.asr.session.Session` around a family's decoder
(:mod:`dictation.asr.decoder`) and knows no model family.

The driver owns per-stream state only (VAD state, audio buffer, open segment, commits, the
decoder's state); the decoder's model and the VAD network are shared and read-only. It is driven
by :meth:`StreamingDriver.feed`, so tests and the benchmark control "now" exactly: every decode
sees only the audio fed so far.

Per fed chunk:

1. VAD (32 ms frames) -> :class:`~dictation.audio.segmenter.Segmenter` boundaries. Segments end
   at pauses (``endpoint_silence_s``) or at ``max_segment_s``.
2. Once the open segment holds ``min_speech_s`` of speech it is decoded on a fixed grid, every
   ``decode_interval_s`` of new audio, and as soon as a pause of ``settle_silence_s`` follows
   speech, never twice without new speech. When the recognizer fell behind by ``catch_up_s``
   those decodes are skipped until it catches up.
3. A decode yields a :class:`~dictation.asr.decoder.Hypothesis`; the commit policy turns it into
   commits (:class:`~dictation.asr.commit.LocalAgreement` for a re-decoding decoder,
   :class:`~dictation.asr.commit.FinalWords` for a monotone one), the rest is a partial.
4. When the segment closes, its final hypothesis is committed whole (a re-decoding decoder
   reuses its latest hypothesis when no speech came after it; a monotone one is flushed), and
   an :class:`~dictation.asr.events.EndOfSegment` follows.

Commits carry exactly the text to append: the first commit of the stream has no leading space,
a later segment's first commit exactly one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dictation import SAMPLE_RATE
from dictation.asr.commit import CommitPolicy, FinalWords, LocalAgreement, Word
from dictation.asr.decoder import (
    ClosedSegment,
    Hypothesis,
    MonotoneDecoder,
    RedecodingDecoder,
    SegmentView,
)
from dictation.asr.events import Commit, EndOfSegment, Event, Partial
from dictation.audio.segmenter import SegmentEnd, Segmenter, SegmenterConfig, SegmentStart
from dictation.audio.vad import FRAME_SAMPLES


@dataclass(frozen=True)
class StreamingConfig:
    """Knobs of a streaming session (defaults chosen with ``dictation bench --stream``)."""

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    decode_interval_s: float = 0.4
    """Re-decode the open segment after this much new audio, seconds (and as soon as a pause
    of ``settle_silence_s`` follows speech)."""
    catch_up_s: float = 1.0
    """When more than this much fed audio is still unprocessed (the recognizer fell behind),
    intermediate decodes are skipped until it catches up, seconds. Below it the events do not
    depend on how the audio is chunked."""
    agreement: int = 2
    """Hypotheses that must agree on a word before it is committed (LocalAgreement-n;
    re-decoding decoders only)."""
    settle_silence_s: float = 0.2
    """The newest hypothesis' last word is held back until this much silence follows it, s
    (the audio may end inside a word); a pause this long also triggers a decode."""
    min_speech_s: float = 0.25
    """Speech (VAD frames) a segment needs before it is decoded at all, seconds."""
    vocabulary: tuple[str, ...] = ()
    """Words and phrases the user expects (the replacements of their vocabulary rules, e.g.
    "GitHub"): a family that can bias recognition towards them does (Whisper: the prompt)."""
    decoder: Any = None
    """The model family's decoder settings (e.g.
    :class:`dictation.asr.whisper.decoder.WhisperStreamConfig`); None: the family's defaults.
    The session's :attr:`StreamingDriver.config` holds the settings in effect."""


class FrameVad(Protocol):
    """Per-stream voice activity detector (e.g. :class:`dictation.audio.vad.VadStream`)."""

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of the next ``FRAME_SAMPLES`` (512) samples of the stream."""
        ...


def has_min_speech(speech_samples: int, min_speech_s: float) -> bool:
    """Minimum speech: a segment is decoded (and committed) only once the VAD took at least
    ``min_speech_s`` seconds of it for speech; clicks and breaths stay unwritten."""
    return speech_samples >= min_speech_s * SAMPLE_RATE


def decode_due(since_last_decode: int, silence_samples: int, heard_more: bool,
               config: StreamingConfig) -> bool:
    """Decode cadence: decode when ``decode_interval_s`` of audio passed since the last decode
    of the segment, or a pause of ``settle_silence_s`` has begun, and speech was heard since
    (re-decoding a pause only invites repetitions). Sample counts at 16 kHz."""
    due = since_last_decode >= config.decode_interval_s * SAMPLE_RATE
    settled = silence_samples >= config.settle_silence_s * SAMPLE_RATE
    return (due or settled) and heard_more


def is_behind(unprocessed_samples: int, catch_up_s: float) -> bool:
    """Catch-up: the recognizer is behind when at least ``catch_up_s`` of fed audio waits."""
    return unprocessed_samples >= catch_up_s * SAMPLE_RATE


@dataclass
class _OpenSegment:
    index: int
    start: int
    """Absolute sample index of the segment's first sample."""
    policy: CommitPolicy
    words: list[Word] = field(default_factory=list)
    """Latest hypothesis."""
    last_decode_end: int = 0
    """Audio up to this absolute sample has been decoded (a monotone decoder got it)."""
    speech_samples: int = 0
    state: Any = None
    """A monotone decoder's state for this segment."""

    @property
    def committed(self) -> list[Word]:
        return self.policy.committed


class StreamingDriver:
    """One dictation stream over a family's decoder. Not thread-safe: feed it from one thread.

    decoder: a :class:`~dictation.asr.decoder.RedecodingDecoder` or a
    :class:`~dictation.asr.decoder.MonotoneDecoder` (told apart by ``forward_chunk``).
    vad: this stream's VAD. config: the settings in effect (exposed as :attr:`config`)."""

    def __init__(self, decoder: RedecodingDecoder[Any] | MonotoneDecoder[Any], vad: FrameVad,
                 config: StreamingConfig | None = None) -> None:
        self.config = config or StreamingConfig()
        self.monotone: MonotoneDecoder[Any] | None = None
        self.redecoding: RedecodingDecoder[Any] | None = None
        self.decoder_state: Any = None
        """The re-decoding decoder's per-stream state (a monotone decoder's is per segment)."""
        if isinstance(decoder, MonotoneDecoder):
            self.monotone = decoder
        else:
            self.redecoding = decoder
            self.decoder_state = decoder.new_state()
        self.vad = vad
        self.segmenter = Segmenter(self.config.segmenter)
        self.audio = np.zeros(0, dtype=np.float32)
        self.audio_start = 0
        """Absolute sample index of ``self.audio[0]``."""
        self.position = 0
        """Samples fed so far."""
        self.vad_position = 0
        self.processed = 0
        """Samples the session has acted on (VAD frames; everything after finish())."""
        self.segment: _OpenSegment | None = None
        self.n_segments = 0
        self.recent: list[ClosedSegment] = []
        """Closed segments that may still serve as context, oldest first."""
        self.committed_text = ""
        self.last_partial = ""
        self.decode_seconds = 0.0
        """Wall-clock seconds spent in the decoder."""

    @property
    def time_s(self) -> float:
        """Stream position (s) of the audio processed so far: events carry it."""
        return self.processed / SAMPLE_RATE

    @property
    def context_s(self) -> float:
        """How long closed segments are kept for the decoder as context, seconds."""
        return self.redecoding.context_s if self.redecoding is not None else 0.0

    def feed(self, pcm: np.ndarray) -> list[Event]:
        """Add 16 kHz mono float32 samples (any count) and return the events they cause.

        Work happens at fixed stream positions (every VAD frame; decodes on a grid of
        ``decode_interval_s``), so the events do not depend on how the audio is chunked."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        self.audio = np.concatenate([self.audio, pcm])
        self.position += len(pcm)
        events: list[Event] = []
        while self.vad_position + FRAME_SAMPLES <= self.position:
            frame = self._slice(self.vad_position, self.vad_position + FRAME_SAMPLES)
            prob = self.vad.probability(frame)
            self.vad_position = self.processed = self.vad_position + FRAME_SAMPLES
            if self.segment is not None and prob >= self.config.segmenter.threshold:
                self.segment.speech_samples += FRAME_SAMPLES
            for boundary in self.segmenter.push(prob, self.vad_position, FRAME_SAMPLES):
                events += self._on_boundary(boundary)
            if self.segment is not None:
                events += self._maybe_decode(self.segment)
        self._trim()
        return events

    def finish(self) -> list[Event]:
        """End of stream: decode and commit whatever is open."""
        events: list[Event] = []
        self.processed = self.position
        for boundary in self.segmenter.flush(self.position):
            events += self._on_boundary(boundary)
        return events

    # -- audio buffer -----------------------------------------------------------------------
    def _slice(self, start: int, end: int) -> np.ndarray:
        return self.audio[start - self.audio_start: end - self.audio_start]

    def _trim(self) -> None:
        """Keep the open segment, the pre-roll a new one may need and the closed segments that
        may still be decoded as context."""
        pre_roll = int(self.config.segmenter.pre_roll_s * SAMPLE_RATE)
        keep_from = min(self.position - pre_roll - 2 * FRAME_SAMPLES, self.vad_position)
        if self.segment is not None:
            keep_from = min(keep_from, self.segment.start)
        horizon = self.vad_position - int(self.context_s * SAMPLE_RATE)
        self.recent = [s for s in self.recent if s.start >= horizon]
        if self.recent:
            keep_from = min(keep_from, self.recent[0].start)
        if keep_from > self.audio_start:
            self.audio = self.audio[keep_from - self.audio_start:]
            self.audio_start = keep_from

    # -- segments ---------------------------------------------------------------------------
    def _on_boundary(self, boundary: SegmentStart | SegmentEnd) -> list[Event]:
        if isinstance(boundary, SegmentStart):
            self.segment = self._open(boundary.start)
            return []
        return self._close(boundary)

    def _open(self, start: int) -> _OpenSegment:
        self.n_segments += 1
        if self.monotone is not None:
            return _OpenSegment(index=self.n_segments - 1, start=start, policy=FinalWords(),
                                last_decode_end=start, state=self.monotone.new_state())
        return _OpenSegment(index=self.n_segments - 1, start=start,
                            policy=LocalAgreement(self.config.agreement), last_decode_end=start)

    def _maybe_decode(self, segment: _OpenSegment) -> list[Event]:
        c = self.config
        heard_more = self.segmenter.last_speech_end > segment.last_decode_end
        if not decode_due(self.vad_position - segment.last_decode_end,
                          self.segmenter.silence_samples, heard_more, c):
            return []
        if is_behind(self.position - self.vad_position, c.catch_up_s):
            return []
        if not has_min_speech(segment.speech_samples, c.min_speech_s):
            return []
        hypothesis = self._decode(segment, self.vad_position, final=False)
        if hypothesis is None:
            return []
        segment.words = hypothesis.words
        ongoing = self.segmenter.silence_samples < c.settle_silence_s * SAMPLE_RATE
        agreed = (hypothesis.words if hypothesis.final is None
                  else hypothesis.words[: hypothesis.final])
        new = segment.policy.update(agreed, speech_ongoing=ongoing)
        return self._commit(segment, new) + self._partial(segment)

    def _close(self, boundary: SegmentEnd) -> list[Event]:
        segment, self.segment = self.segment, None
        if segment is None:
            return []
        events: list[Event] = []
        if has_min_speech(segment.speech_samples, self.config.min_speech_s):
            events += self._commit(segment, segment.policy.commit_all(
                self._final_words(segment, boundary)))
        text = "".join(w.text for w in segment.committed).strip()
        closed = ClosedSegment(segment.start, boundary.end, segment.committed)
        if self.redecoding is not None:
            self.redecoding.segment_closed(closed, self.decoder_state)
        self.recent.append(closed)
        self.last_partial = ""
        events.append(EndOfSegment(text=text, audio_time_s=self.time_s, segment=segment.index))
        return events

    def _final_words(self, segment: _OpenSegment, boundary: SegmentEnd) -> list[Word]:
        """The segment's final hypothesis. A re-decoding decoder's latest one is reused when no
        speech came after it; otherwise the decoder is asked once more (a monotone one is
        given the rest of the audio and flushed)."""
        if (self.redecoding is not None and segment.words
                and segment.last_decode_end >= boundary.speech_end):
            return segment.words
        hypothesis = self._decode(segment, boundary.end, final=True)
        return [] if hypothesis is None else hypothesis.words

    # -- decoding ---------------------------------------------------------------------------
    def _decode(self, segment: _OpenSegment, end: int, final: bool) -> Hypothesis | None:
        """Ask the decoder for the segment's hypothesis from the audio up to ``end``."""
        started = time.perf_counter()
        if self.redecoding is not None:
            view = SegmentView(index=segment.index, start=segment.start, end=end,
                               committed=segment.committed,
                               speech_samples=segment.speech_samples, closed=self.recent,
                               audio=self._slice)
            hypothesis = self.redecoding.decode(view, self.decoder_state, final)
        else:
            hypothesis = self._forward(segment, end, final)
        self.decode_seconds += time.perf_counter() - started
        segment.last_decode_end = max(segment.last_decode_end, end)
        return hypothesis

    def _forward(self, segment: _OpenSegment, end: int, final: bool) -> Hypothesis:
        """Feed a monotone decoder the segment's audio it has not had yet (up to ``end``),
        flushing it when ``final``; the hypothesis is all final words, then the tentative."""
        assert self.monotone is not None
        x = self._slice(segment.last_decode_end, max(end, segment.last_decode_end))
        y, segment.state = self.monotone.forward_chunk(x, segment.state)
        done = segment.committed + y.final
        tentative = y.tentative
        if final:
            y, segment.state = self.monotone.finish(segment.state)
            done, tentative = done + y.final, []
        return Hypothesis(words=done + tentative, final=len(done))

    # -- events -----------------------------------------------------------------------------
    def _commit(self, segment: _OpenSegment, new: list[Word]) -> list[Event]:
        if not new:
            return []
        text = "".join(w.text for w in new)
        if not self.committed_text:
            text = text.lstrip()
        elif len(segment.committed) == len(new):  # the segment's first commit
            text = " " + text.lstrip()
        self.committed_text += text
        return [Commit(text=text, audio_time_s=self.time_s, segment=segment.index)]

    def _partial(self, segment: _OpenSegment) -> list[Event]:
        """The committed words of the segment followed by the rest of the latest hypothesis."""
        words = segment.committed + segment.policy.tail(segment.words)
        text = "".join(w.text for w in words).strip()
        if text == self.last_partial:
            return []
        self.last_partial = text
        return [Partial(text=text, audio_time_s=self.time_s, segment=segment.index)]
