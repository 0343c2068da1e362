"""Streaming session: PCM chunks of any size in, :mod:`dictation.events` out.

The session owns per-stream state only (VAD state, open segment, commits); the model and the VAD
network are shared and read-only. It is driven by :meth:`StreamingSession.feed`, so tests and the
benchmark control "now" exactly: every decode sees only the audio fed so far.

Per fed chunk:
1. VAD (Silero, 32 ms frames) -> :class:`~dictation.segmenter.Segmenter` boundaries.
2. A closed segment is decoded once more with everything committed as the forced prefix; all of
   it is committed (hallucination guards may drop a segment that is not speech).
3. The open segment is re-decoded every ``decode_interval_s`` of new audio (forced prefix = its
   committed words, prompt = earlier segments' text); :class:`~dictation.commit.LocalAgreement`
   turns agreeing hypotheses into commits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dictation import SAMPLE_RATE
from dictation.commit import LocalAgreement, Word
from dictation.decoding import DecodeOptions, DecodeResult, decode
from dictation.events import Commit, EndOfSegment, Event, Partial
from dictation.loaders import LoadedModel
from dictation.segmenter import SegmentEnd, Segmenter, SegmenterConfig, SegmentStart
from dictation.vad import FRAME_SAMPLES, SileroVadNet, VadStream

HALLUCINATIONS = frozenset({
    "thank you", "thank you very much", "thanks", "thanks for watching",
    "thank you for watching", "thank you so much for watching", "you", "bye", "the end",
    "so", "okay", "oh", "subtitles by the amara org community", "please subscribe",
})
"""Whole-segment outputs Whisper is known to invent from noise or silence (normalised)."""


@dataclass(frozen=True)
class StreamingConfig:
    """Knobs of a streaming session (defaults chosen with ``dictation bench --stream``)."""

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    decode: DecodeOptions = field(
        default_factory=lambda: DecodeOptions(full_window=False))
    decode_interval_s: float = 0.3
    """Re-decode the open segment after this much new audio, seconds."""
    agreement: int = 2
    """Hypotheses that must agree on a word before it is committed (LocalAgreement-n)."""
    min_speech_s: float = 0.25
    """Speech (VAD frames) a segment needs before anything of it is committed, seconds."""
    condition_on_previous: bool = True
    """Give the text of earlier segments to the decoder as a prompt."""
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    """A hypothesis with no-speech probability above the first and average log-probability
    below the second is taken as non-speech (Whisper's rule)."""


def normalise_for_guard(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def is_repeat(committed: list[Word], continuation: list[Word]) -> bool:
    """True when ``continuation`` starts by repeating a run of the committed words: the
    sentence restarts (its first word is the segment's first word) or at least two words recur."""
    if not committed or not continuation:
        return False
    done = [normalise_for_guard(w.text) for w in committed]
    new = [normalise_for_guard(w.text) for w in continuation]
    if new[0] == done[0]:
        return True
    run = min(len(new), 3)
    if run < 2:
        return False
    return any(done[i: i + run] == new[:run] for i in range(len(done) - run + 1))


def split_words(tokens: list[int], token_text: Callable[[int], str]) -> list[Word]:
    """Group tokens into words: a token whose text starts with a space begins a new word."""
    words: list[tuple[list[int], str]] = []
    for token in tokens:
        piece = token_text(token)
        if not words or piece.startswith(" "):
            words.append(([token], piece))
        else:
            words[-1][0].append(token)
            words[-1] = (words[-1][0], words[-1][1] + piece)
    return [Word(tuple(t), text) for t, text in words]


@dataclass
class _OpenSegment:
    index: int
    start: int
    """Absolute sample index of the segment's first sample."""
    policy: LocalAgreement
    words: list[Word] = field(default_factory=list)
    """Latest hypothesis."""
    committed: list[Word] = field(default_factory=list)
    last_decode_end: int = 0
    speech_samples: int = 0


class StreamingSession:
    """One dictation stream. Not thread-safe: feed it from one thread."""

    def __init__(self, loaded: LoadedModel, vad: SileroVadNet,
                 config: StreamingConfig | None = None) -> None:
        self.loaded = loaded
        self.config = config or StreamingConfig()
        self.vad = VadStream(vad)
        self.segmenter = Segmenter(self.config.segmenter)
        self.audio = np.zeros(0, dtype=np.float32)
        self.audio_start = 0
        """Absolute sample index of ``self.audio[0]``."""
        self.position = 0
        """Samples fed so far."""
        self.vad_position = 0
        self.segment: _OpenSegment | None = None
        self.n_segments = 0
        self.history: list[int] = []
        """Committed tokens of closed segments (the prompt of later decodes)."""
        self.committed_text = ""
        self.last_partial = ""
        self.decode_seconds = 0.0
        """Wall-clock seconds spent decoding (for the benchmark's real-time simulation)."""
        self._token_text = loaded.tokenizer.token_text

    # -- public API -------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self.position / SAMPLE_RATE

    def feed(self, pcm: np.ndarray) -> list[Event]:
        """Add 16 kHz mono float32 samples (any count) and return the events they cause."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        self.audio = np.concatenate([self.audio, pcm])
        self.position += len(pcm)
        events: list[Event] = []
        while self.vad_position + FRAME_SAMPLES <= self.position:
            frame = self._slice(self.vad_position, self.vad_position + FRAME_SAMPLES)
            prob = self.vad.probability(frame)
            self.vad_position += FRAME_SAMPLES
            if self.segment is not None and prob >= self.config.segmenter.threshold:
                self.segment.speech_samples += FRAME_SAMPLES
            for boundary in self.segmenter.push(prob, self.vad_position, FRAME_SAMPLES):
                events += self._on_boundary(boundary)
        if self.segment is not None:
            events += self._maybe_decode()
        self._trim()
        return events

    def finish(self) -> list[Event]:
        """End of stream: decode and commit whatever is open."""
        events: list[Event] = []
        for boundary in self.segmenter.flush(self.position):
            events += self._on_boundary(boundary)
        return events

    # -- internals --------------------------------------------------------------------------
    def _slice(self, start: int, end: int) -> np.ndarray:
        return self.audio[start - self.audio_start: end - self.audio_start]

    def _trim(self) -> None:
        pre_roll = int(self.config.segmenter.pre_roll_s * SAMPLE_RATE)
        keep_from = self.position - pre_roll - 2 * FRAME_SAMPLES
        if self.segment is not None:
            keep_from = min(keep_from, self.segment.start)
        keep_from = min(keep_from, self.vad_position)
        if keep_from > self.audio_start:
            self.audio = self.audio[keep_from - self.audio_start:]
            self.audio_start = keep_from

    def _on_boundary(self, boundary: SegmentStart | SegmentEnd) -> list[Event]:
        if isinstance(boundary, SegmentStart):
            self.segment = _OpenSegment(index=self.n_segments, start=boundary.start,
                                        policy=LocalAgreement(self.config.agreement),
                                        last_decode_end=boundary.start)
            self.n_segments += 1
            return []
        return self._close(boundary)

    def _decode(self, segment: _OpenSegment, end: int) -> DecodeResult:
        """Decode the segment's audio up to ``end`` with its committed words forced. If the
        continuation copies earlier text (a known failure of prompting Whisper), decode again
        without the prompt."""
        audio = self._slice(segment.start, end)
        prefix = [t for w in segment.committed for t in w.tokens]
        started = time.perf_counter()
        result = decode(self.loaded, audio, prompt=self._prompt(), prefix=prefix,
                        options=self.config.decode)
        if self._prompt() and self._copies_history(result, len(prefix)):
            result = decode(self.loaded, audio, prefix=prefix, options=self.config.decode)
        self.decode_seconds += time.perf_counter() - started
        segment.last_decode_end = end
        return result

    def _prompt(self) -> list[int] | None:
        return self.history if self.config.condition_on_previous and self.history else None

    def _copies_history(self, result: DecodeResult, n_prefix: int) -> bool:
        """True when at least three consecutive new words also occur in the prompt."""
        new = [normalise_for_guard(w.text)
               for w in split_words(result.tokens[n_prefix:], self._token_text)]
        old = normalise_for_guard(self.loaded.tokenizer.decode(self.history)).split()
        return any(new[i: i + 3] == old[j: j + 3] for i in range(len(new) - 2)
                   for j in range(len(old) - 2))

    def _is_non_speech(self, result: DecodeResult, segment: _OpenSegment) -> bool:
        c = self.config
        if segment.committed:
            return False
        if (result.no_speech_prob > c.no_speech_threshold
                and result.avg_logprob < c.logprob_threshold):
            return True
        if normalise_for_guard(result.text) in HALLUCINATIONS:
            return (result.no_speech_prob > 0.2 or result.avg_logprob < -0.7
                    or segment.speech_samples < 1.0 * SAMPLE_RATE)
        return not normalise_for_guard(result.text)

    def _maybe_decode(self) -> list[Event]:
        segment = self.segment
        assert segment is not None
        c = self.config
        due = self.position - segment.last_decode_end >= c.decode_interval_s * SAMPLE_RATE
        heard_more = self.segmenter.last_speech_end > segment.last_decode_end
        if not (due and heard_more) or segment.speech_samples < c.min_speech_s * SAMPLE_RATE:
            return []
        result = self._decode(segment, self.position)
        if self._is_non_speech(result, segment):
            return []
        segment.words = split_words(result.tokens, self._token_text)
        ongoing = self.segmenter.silence_samples == 0
        n = segment.policy.update(segment.words, speech_ongoing=ongoing)
        return self._commit(segment, n) + self._partial(segment)

    def _final_words(self, segment: _OpenSegment, boundary: SegmentEnd) -> list[Word]:
        """The segment's final hypothesis. The latest one is reused when no speech came after
        it (decoding again with all of it forced as prefix invites Whisper to repeat itself);
        otherwise the closed segment is decoded once more, keeping only a continuation that is
        not a repetition of the committed text nor a known hallucination."""
        if segment.words and segment.last_decode_end >= boundary.speech_end:
            return segment.words
        result = self._decode(segment, boundary.end)
        if self._is_non_speech(result, segment):
            return []
        words = split_words(result.tokens, self._token_text)
        continuation = words[len(segment.committed):]
        if is_repeat(segment.committed, continuation) or (
                segment.committed and normalise_for_guard(
                    "".join(w.text for w in continuation)) in HALLUCINATIONS):
            return segment.committed
        return words

    def _close(self, boundary: SegmentEnd) -> list[Event]:
        segment = self.segment
        self.segment = None
        if segment is None:
            return []
        events: list[Event] = []
        if segment.speech_samples >= self.config.min_speech_s * SAMPLE_RATE:
            words = self._final_words(segment, boundary)
            events += self._commit(segment, segment.policy.commit_all(words), words)
        text = "".join(w.text for w in segment.committed).strip()
        self.history += [t for w in segment.committed for t in w.tokens]
        self.last_partial = ""
        events.append(EndOfSegment(text=text, audio_time_s=self.time_s, segment=segment.index))
        return events

    def _commit(self, segment: _OpenSegment, n: int, words: list[Word] | None = None
                ) -> list[Event]:
        words = segment.words if words is None else words
        new = words[len(segment.committed): n]
        if not new:
            return []
        text = "".join(w.text for w in new)
        if not self.committed_text:
            text = text.lstrip()
        elif not segment.committed:
            text = " " + text.lstrip()
        segment.committed = segment.committed + new
        self.committed_text += text
        return [Commit(text=text, audio_time_s=self.time_s, segment=segment.index)]

    def _partial(self, segment: _OpenSegment) -> list[Event]:
        text = "".join(w.text for w in segment.words).strip()
        if text == self.last_partial:
            return []
        self.last_partial = text
        return [Partial(text=text, audio_time_s=self.time_s, segment=segment.index)]
