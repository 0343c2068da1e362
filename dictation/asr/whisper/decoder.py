"""Whisper's streaming decoder: a re-decoding decoder (:class:`dictation.asr.decoder.
RedecodingDecoder`) for the driver of :mod:`dictation.asr.driver`.

Each decode transcribes the open segment from its start and hears the latest closed segments
too (``context_s``): in Whisper's timestamp mode the forced prefix is each context segment's
committed words between the timestamps of where it lies in the window, then the open segment's
start timestamp and its committed words, so the decoder knows which audio is already
transcribed and goes on from there with the sentence around it in view; older text is the
prompt. The previous decode's continuation is the draft (:mod:`dictation.asr.draft`: one
batched decoder call checks it, the greedy result is unchanged). If the continuation copies
the prompt, the decode is repeated without it; a decode that loops is repeated in the full
30-s window, and a loop that remains is dropped whole. The guards of
:mod:`dictation.asr.whisper.guards` decide what is not speech and trim restarts.

The model (:class:`~dictation.asr.whisper.loaders.LoadedModel`) is shared and read-only; the
per-stream state (:class:`WhisperStreamState`) is the committed text of closed segments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from dictation import SAMPLE_RATE
from dictation.asr.commit import Word
from dictation.asr.decoder import ClosedSegment, Hypothesis, SegmentView
from dictation.asr.draft import previous_continuation
from dictation.asr.whisper.decoding import TIMESTAMP_S, DecodeOptions, DecodeResult, decode
from dictation.asr.whisper.features import CHUNK_SECONDS
from dictation.asr.whisper.guards import (
    GuardConfig,
    copies_prompt,
    drop_decoder_loop,
    drop_final_stock_phrase,
    is_non_speech_segment,
    trim_restart,
)
from dictation.asr.whisper.loaders import LoadedModel

VOCABULARY_PROMPT_TOKENS = 48
"""Most prompt tokens the user's vocabulary takes (on top of the earlier text's)."""


@dataclass(frozen=True)
class WhisperStreamConfig:
    """Whisper's streaming settings (``StreamingConfig.decoder``)."""

    decode: DecodeOptions = field(default_factory=lambda: DecodeOptions(
        full_window=False, timestamps=True, max_prompt_tokens=48))
    """Timestamp mode (the context's words are anchored in time); a short prompt, as the
    context already gives the decoder the recent text."""
    condition_on_previous: bool = True
    """Give the text of earlier segments to the decoder as a prompt."""
    context_s: float = 10.0
    """Earlier segments are decoded with the open one, their committed words forced as the
    prefix (anchored by timestamps), as long as all that audio spans at most this long,
    seconds: Whisper hears the sentence the open segment continues (a digit string, a sentence
    split at a short pause) instead of a fragment. 0 decodes each segment alone."""
    guards: GuardConfig = field(default_factory=GuardConfig)
    """Thresholds of the guards against invented text."""
    loop_retry_full_window: bool = True
    """A decode of a short window that loops (the decoder's repetition guard stopped it) is
    decoded again in Whisper's full 30-s window, as trained, and that result is used: short
    windows save most of the encoder's work but make Whisper loop more often (digit strings
    above all). Costs one full-window decode per loop."""


def vocabulary_prompt(vocabulary: Sequence[str], encode: Callable[[str], list[int]],
                      max_tokens: int = VOCABULARY_PROMPT_TOKENS) -> list[int]:
    """The prompt tokens of ``vocabulary`` (:attr:`dictation.asr.driver.StreamingConfig.
    vocabulary`): the phrases as one comma-separated sentence (" GitHub, Cline."), as many
    whole phrases as fit in ``max_tokens``. Given to the decoder at the start of the prompt,
    before the earlier text, it makes Whisper spell those words so."""
    tokens: list[int] = []
    for phrase in (p.strip() for p in vocabulary):
        if not phrase:
            continue
        piece = encode(("," if tokens else "") + " " + phrase)
        if len(tokens) + len(piece) + 1 > max_tokens:
            break
        tokens += piece
    return tokens + encode(".") if tokens else []


@dataclass
class WhisperStreamState:
    """Per-stream state of :class:`WhisperStreamDecoder`."""

    history: list[int] = field(default_factory=list)
    """Committed tokens of the closed segments, oldest first (the prompt of later decodes)."""
    last_decode: tuple[int, list[int]] | None = None
    """The open segment's start sample and the token sequence (:attr:`DecodeResult.sequence`)
    of its latest decode: the next decode's draft."""


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


class WhisperStreamDecoder:
    """Re-decoding decoder over a loaded Whisper model (shared, read-only)."""

    def __init__(self, loaded: LoadedModel, config: WhisperStreamConfig | None = None,
                 vocabulary: Sequence[str] = ()) -> None:
        self.loaded = loaded
        self.config = config or WhisperStreamConfig()
        self._vocabulary = vocabulary_prompt(vocabulary, loaded.tokenizer.encode)
        self._options = replace(self.config.decode, max_prompt_tokens=(
            self.config.decode.max_prompt_tokens + len(self._vocabulary)))
        """The decode options, with room in the prompt for the vocabulary."""

    @property
    def context_s(self) -> float:
        return self.config.context_s

    def new_state(self) -> WhisperStreamState:
        return WhisperStreamState()

    def segment_closed(self, segment: ClosedSegment, state: WhisperStreamState) -> None:
        state.history += [t for w in segment.words for t in w.tokens]
        state.last_decode = None

    def decode(self, segment: SegmentView, state: WhisperStreamState,
               final: bool) -> Hypothesis | None:
        """The segment's hypothesis, or None when the guards take it for non-speech. Cut
        where it starts the segment over; at the end, a stock-phrase continuation is
        dropped."""
        result, with_context = self._decode(segment, state)
        if is_non_speech_segment(result, committed=bool(segment.committed),
                                 with_context=with_context,
                                 speech_samples=segment.speech_samples,
                                 config=self.config.guards):
            return None
        words = trim_restart(segment.committed,
                             split_words(result.tokens, self.loaded.tokenizer.token_text))
        if final:
            words = drop_final_stock_phrase(segment.committed, words)
        return Hypothesis(words)

    def _decode(self, segment: SegmentView,
                state: WhisperStreamState) -> tuple[DecodeResult, bool]:
        """Decode the open segment's audio up to ``segment.end``, preceded by the context
        segments' (:meth:`_context`), with their committed words and the segment's forced as
        the prefix and earlier text as the prompt; retried without the prompt when it copies
        the prompt. Returns the result with only the open segment's tokens and text, and
        whether context audio was decoded with it."""
        c, tok = self.config, self.loaded.tokenizer
        context = self._context(segment)
        origin = context[0].start if context else segment.start
        audio = segment.audio(origin, segment.end)
        prefix = self._prefix(context, segment, origin)
        n_context = sum(len(w.tokens) for s in context for w in s.words)
        n_forced = n_context + sum(len(w.tokens) for w in segment.committed)
        earlier: list[int] = []
        if c.condition_on_previous:
            earlier = state.history[:len(state.history) - n_context]
        n_earlier = min(len(earlier), c.decode.max_prompt_tokens)
        prompt = self._vocabulary + earlier[len(earlier) - n_earlier:]
        result = decode(self.loaded, audio, prompt=prompt, prefix=prefix, options=self._options,
                        draft=previous_continuation(state.last_decode, segment.start, prefix))
        if earlier and copies_prompt(tok.decode(earlier[-c.guards.prompt_copy_tokens:]),
                                     tok.decode(result.tokens[n_forced:]), c.guards):
            prompt = self._vocabulary
            result = decode(self.loaded, audio, prompt=prompt, prefix=prefix,
                            options=self._options)
        if self._loop_retry(result):
            result = decode(self.loaded, audio, prompt=prompt, prefix=prefix,
                            options=replace(self._options, full_window=True))
        state.last_decode = (segment.start, result.sequence)  # the result kept: next draft
        own = drop_decoder_loop(result.tokens, n_context, result.loop_start)
        return replace(result, tokens=own, text=tok.decode(own)), bool(context)

    def _loop_retry(self, result: DecodeResult) -> bool:
        """Loop retry: the decode looped in a short window and the config asks for a retry in
        the full window (``loop_retry_full_window``)."""
        return (result.repetition_cut and self.config.loop_retry_full_window
                and not self._options.full_window)

    def _context(self, segment: SegmentView) -> list[ClosedSegment]:
        """The closed segments decoded with the open one: the latest ones that fit, with the
        open segment's audio, into ``context_s`` (and into one window with its padding). None
        without timestamps (the decoder could not tell where their words end)."""
        c = self.config
        if not c.decode.timestamps:
            return []
        span = min(c.context_s, CHUNK_SECONDS - c.decode.tail_padding_s)
        horizon = segment.end - int(span * SAMPLE_RATE)
        return [s for s in segment.closed if s.start >= horizon and s.words]

    def _prefix(self, context: Sequence[ClosedSegment], segment: SegmentView,
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
