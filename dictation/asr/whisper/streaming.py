"""Streaming session: PCM chunks of any size in, :mod:`dictation.asr.events` out.

The session owns per-stream state only (VAD state, open segment, commits); the model and the VAD
network are shared and read-only. It is driven by :meth:`StreamingSession.feed`, so tests and the
benchmark control "now" exactly: every decode sees only the audio fed so far.

Per fed chunk:
1. VAD (Silero, 32 ms frames) -> :class:`~dictation.audio.segmenter.Segmenter` boundaries. Segments
   end at pauses (``endpoint_silence_s``) or at ``max_segment_s``.
2. The open segment is re-decoded every ``decode_interval_s`` of new speech and once a pause
   begins. Each decode hears the latest closed segments too (``context_s``): in Whisper's
   timestamp mode, the forced prefix is each context segment's committed words between the
   timestamps of where it lies in the window, then the open segment's start timestamp and its
   committed words, so the decoder knows which audio is already transcribed and goes on from
   there with the sentence around it in view; older text is the prompt.
   :class:`~dictation.asr.commit.LocalAgreement` turns agreeing hypotheses into commits.
3. A closed segment's last hypothesis (or, if speech came after it, one more decode) is
   committed whole. Guards drop what is not speech: Whisper's no-speech rule, stock phrases it
   invents from noise, copies of the prompt and restarts of the segment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from dictation import SAMPLE_RATE
from dictation.asr.commit import LocalAgreement, Word
from dictation.asr.events import Commit, EndOfSegment, Event, Partial
from dictation.asr.whisper.decoding import TIMESTAMP_S, DecodeOptions, DecodeResult, decode
from dictation.asr.whisper.features import CHUNK_SECONDS
from dictation.asr.whisper.loaders import LoadedModel
from dictation.audio.segmenter import SegmentEnd, Segmenter, SegmenterConfig, SegmentStart
from dictation.audio.vad import FRAME_SAMPLES, SileroVadNet, VadStream

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
    decode: DecodeOptions = field(default_factory=lambda: DecodeOptions(
        full_window=False, timestamps=True, max_prompt_tokens=48))
    """Timestamp mode (the context's words are anchored in time); a short prompt, as the
    context already gives the decoder the recent text."""
    decode_interval_s: float = 0.4
    """Re-decode the open segment after this much new audio, seconds (and as soon as a pause
    of ``settle_silence_s`` follows speech)."""
    catch_up_s: float = 1.0
    """When more than this much fed audio is still unprocessed (the recognizer fell behind),
    intermediate decodes are skipped until it catches up, seconds. Below it the events do not
    depend on how the audio is chunked."""
    agreement: int = 2
    """Hypotheses that must agree on a word before it is committed (LocalAgreement-n)."""
    settle_silence_s: float = 0.2
    """The newest hypothesis' last word is held back until this much silence follows it, s
    (the audio may end inside a word)."""
    min_speech_s: float = 0.25
    """Speech (VAD frames) a segment needs before it is decoded at all, seconds."""
    condition_on_previous: bool = True
    """Give the text of earlier segments to the decoder as a prompt."""
    context_s: float = 10.0
    """Earlier segments are decoded with the open one, their committed words forced as the
    prefix (anchored by timestamps), as long as all that audio spans at most this long,
    seconds: Whisper hears the sentence the open segment continues (a digit string, a sentence
    split at a short pause) instead of a fragment. 0 decodes each segment alone."""
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    """A hypothesis with no-speech probability above the first and average log-probability
    below the second is taken as non-speech (Whisper's rule)."""


def normalise_for_guard(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def is_weak_stock_phrase(result: DecodeResult, short: bool = False) -> bool:
    """True when the whole result is a phrase Whisper invents from noise (:data:`HALLUCINATIONS`)
    and the evidence for it is weak: some no-speech probability, low confidence, or ``short``
    (little speech behind it)."""
    return normalise_for_guard(result.text) in HALLUCINATIONS and (
        short or result.no_speech_prob > 0.2 or result.avg_logprob < -0.7)


def trim_restart(committed: list[Word], words: list[Word]) -> list[Word]:
    """Cut a hypothesis where, after the committed words, it starts the segment over: from
    some word on it only repeats the segment's first words (at least two of them, or the one
    committed word). That is Whisper looping back over audio it has already transcribed, e.g.
    "And so my fellow | Americans. And so my fellow Americans." or "2 | 2"; a phrase that only
    begins like the segment ("It was the season of light. It was the season of darkness.") is
    kept."""
    k = len(committed)
    keys = [w.key for w in words]
    for i in range(k, len(keys) - min(k, 2) + 1):
        if k and keys[i:] == keys[: len(keys) - i]:
            return words[:i]
    return words


def split_words(tokens: list[int], token_text: Callable[[int], str]) -> list[Word]:
    """Group tokens into words: a token whose text starts with a space begins a new word."""
    words: list[tuple[list[int], str]] = []
    for token in tokens:
        piece = token_text(token)
        if not words or piece.startswith(" "):
            words.append(([token], piece))
        else:
            words[-1] = (words[-1][0] + [token], words[-1][1] + piece)
    return [Word(tuple(t), text) for t, text in words]


@dataclass(frozen=True)
class _ClosedSegment:
    start: int
    """Absolute sample index of the segment's first sample."""
    end: int
    """One past its last sample."""
    words: list[Word]
    """Its committed words."""


@dataclass
class _OpenSegment:
    index: int
    start: int
    """Absolute sample index of the segment's first sample."""
    policy: LocalAgreement
    words: list[Word] = field(default_factory=list)
    """Latest hypothesis."""
    last_decode_end: int = 0
    speech_samples: int = 0

    @property
    def committed(self) -> list[Word]:
        return self.policy.committed


@dataclass(frozen=True)
class _Decoded:
    """A decode of the open segment with the context segments' words taken off."""

    result: DecodeResult
    """Its ``tokens`` and ``text`` are the open segment's (committed words included)."""
    with_context: bool
    """Earlier segments' audio was decoded with it."""


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
        self.processed = 0
        """Samples the session has acted on (VAD frames; everything after finish())."""
        self.segment: _OpenSegment | None = None
        self.n_segments = 0
        self.history: list[int] = []
        """Committed tokens of closed segments (the prompt of later decodes)."""
        self.recent: list[_ClosedSegment] = []
        """Closed segments that may still serve as context, oldest first."""
        self.committed_text = ""
        self.last_partial = ""
        self.decode_seconds = 0.0
        """Wall-clock seconds spent decoding."""
        self._token_text = loaded.tokenizer.token_text

    @property
    def time_s(self) -> float:
        """Stream position (s) of the audio processed so far: events carry it."""
        return self.processed / SAMPLE_RATE

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
        horizon = self.vad_position - int(self.config.context_s * SAMPLE_RATE)
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
        return _OpenSegment(index=self.n_segments - 1, start=start,
                            policy=LocalAgreement(self.config.agreement), last_decode_end=start)

    def _maybe_decode(self, segment: _OpenSegment) -> list[Event]:
        c = self.config
        due = self.vad_position - segment.last_decode_end >= c.decode_interval_s * SAMPLE_RATE
        # a pause has begun: decode it at once, so its words are committed without waiting
        settled = self.segmenter.silence_samples >= c.settle_silence_s * SAMPLE_RATE
        # re-decoding a pause with everything forced as the prefix only invites repetitions
        heard_more = self.segmenter.last_speech_end > segment.last_decode_end
        if not ((due or settled) and heard_more):
            return []
        if self.position - self.vad_position >= c.catch_up_s * SAMPLE_RATE:
            return []
        if segment.speech_samples < c.min_speech_s * SAMPLE_RATE:
            return []
        decoded = self._decode(segment, self.vad_position)
        if self._is_non_speech(decoded, segment):
            return []
        segment.words = trim_restart(segment.committed,
                                     split_words(decoded.result.tokens, self._token_text))
        ongoing = self.segmenter.silence_samples < c.settle_silence_s * SAMPLE_RATE
        new = segment.policy.update(segment.words, speech_ongoing=ongoing)
        return self._commit(segment, new) + self._partial(segment)

    def _close(self, boundary: SegmentEnd) -> list[Event]:
        segment, self.segment = self.segment, None
        if segment is None:
            return []
        events: list[Event] = []
        if segment.speech_samples >= self.config.min_speech_s * SAMPLE_RATE:
            events += self._commit(segment, segment.policy.commit_all(
                self._final_words(segment, boundary)))
        text = "".join(w.text for w in segment.committed).strip()
        self.history += [t for w in segment.committed for t in w.tokens]
        self.recent.append(_ClosedSegment(segment.start, boundary.end, segment.committed))
        self.last_partial = ""
        events.append(EndOfSegment(text=text, audio_time_s=self.time_s, segment=segment.index))
        return events

    def _final_words(self, segment: _OpenSegment, boundary: SegmentEnd) -> list[Word]:
        """The segment's final hypothesis: the latest one when no speech came after it;
        otherwise one more decode, cut where it starts the segment over, keeping a continuation
        of committed words only if it is not a stock hallucination."""
        if segment.words and segment.last_decode_end >= boundary.speech_end:
            return segment.words
        decoded = self._decode(segment, boundary.end)
        if self._is_non_speech(decoded, segment):
            return []
        words = trim_restart(segment.committed,
                             split_words(decoded.result.tokens, self._token_text))
        continuation = words[len(segment.committed):]
        if segment.committed and normalise_for_guard(
                "".join(w.text for w in continuation)) in HALLUCINATIONS:
            return segment.committed
        return words

    # -- decoding and guards ----------------------------------------------------------------
    def _decode(self, segment: _OpenSegment, end: int) -> _Decoded:
        """Decode the open segment's audio up to ``end``, preceded by the context segments'
        (:meth:`_context`), with their committed words and the segment's forced as the prefix
        and earlier text as the prompt. If the continuation copies the prompt (a known failure
        of prompting Whisper), decode again without the prompt."""
        context = self._context(segment, end)
        origin = context[0].start if context else segment.start
        audio = self._slice(origin, end)
        prefix = self._prefix(context, segment, origin)
        n_context = sum(len(w.tokens) for c in context for w in c.words)
        n_forced = n_context + sum(len(w.tokens) for w in segment.committed)
        prompt: list[int] = []
        if self.config.condition_on_previous:
            prompt = self.history[:len(self.history) - n_context]
        started = time.perf_counter()
        result = decode(self.loaded, audio, prompt=prompt, prefix=prefix,
                        options=self.config.decode)
        if prompt and self._copies(prompt, result.tokens[n_forced:]):
            result = decode(self.loaded, audio, prefix=prefix, options=self.config.decode)
        self.decode_seconds += time.perf_counter() - started
        segment.last_decode_end = end
        own = result.tokens[n_context:]
        if result.loop_start is not None and result.loop_start > n_context:
            # a loop is where the decoder ran past what it heard ("3. 0. 0. 0." for a lone
            # "3"): drop it whole, unless it is all the segment has ("1. 1. 1." for "1")
            own = result.tokens[n_context: result.loop_start]
        return _Decoded(replace(result, tokens=own, text=self.loaded.tokenizer.decode(own)),
                        with_context=bool(context))

    def _context(self, segment: _OpenSegment, end: int) -> list[_ClosedSegment]:
        """The closed segments decoded with the open one: the latest ones that fit, with the
        open segment's audio up to ``end``, into ``context_s`` (and into one window with its
        padding). None without timestamps (the decoder could not tell where their words
        end)."""
        c = self.config
        if not c.decode.timestamps:
            return []
        span = min(c.context_s, CHUNK_SECONDS - c.decode.tail_padding_s)
        horizon = end - int(span * SAMPLE_RATE)
        return [s for s in self.recent if s.start >= horizon and s.words]

    def _prefix(self, context: list[_ClosedSegment], segment: _OpenSegment,
                origin: int) -> list[int]:
        """The forced decoder prefix: the committed words of the context segments and of the
        open one. In timestamp mode each segment's words sit between timestamps of where the
        segment lies in the decoded audio (from sample ``origin``; the open segment's phrase is
        only opened), so the decoder knows which audio they cover and goes on from there."""
        own = [t for w in segment.committed for t in w.tokens]
        if not self.config.decode.timestamps:
            return own
        first = self.loaded.tokenizer.timestamp_begin

        def stamp(sample: int) -> int:
            return first + round((sample - origin) / SAMPLE_RATE / TIMESTAMP_S)

        prefix: list[int] = []
        for closed in context:
            prefix += [stamp(closed.start), *(t for w in closed.words for t in w.tokens),
                       stamp(closed.end)]
        return [*prefix, stamp(segment.start), *own]

    def _copies(self, prompt: list[int], tokens: list[int]) -> bool:
        """True when three consecutive words of ``tokens`` also occur in the ``prompt``."""
        new = normalise_for_guard(self.loaded.tokenizer.decode(tokens)).split()
        old = normalise_for_guard(self.loaded.tokenizer.decode(prompt[-120:])).split()
        runs = {tuple(old[j: j + 3]) for j in range(len(old) - 2)}
        return any(tuple(new[i: i + 3]) in runs for i in range(len(new) - 2))

    def _is_non_speech(self, decoded: _Decoded, segment: _OpenSegment) -> bool:
        """True when the segment, with nothing committed yet, holds no speech: by Whisper's
        no-speech rule (only without context: context audio is speech), a weakly supported
        stock phrase, or no text at all."""
        c, result = self.config, decoded.result
        if segment.committed:
            return False
        short = segment.speech_samples < SAMPLE_RATE
        if not decoded.with_context and result.no_speech_prob > c.no_speech_threshold and (
                result.avg_logprob < c.logprob_threshold or short):
            return True
        if is_weak_stock_phrase(result, short=short):
            return True
        return not normalise_for_guard(result.text)

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
