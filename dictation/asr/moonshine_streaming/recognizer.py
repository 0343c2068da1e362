"""The Moonshine v2 family's :class:`~dictation.asr.session.Recognizer`: a loaded Moonshine v2
streaming model and the VAD network (both shared, read-only); sessions are the streaming
driver over :class:`MoonshineV2StreamDecoder`, a re-decoding family whose encoder is
incremental. Importing this module registers the family ``"moonshine_streaming"``
(:func:`dictation.asr.recognizer.register_family`).

Why re-decoding and not monotone: Moonshine v2's encoder frames become final 16 frames
(0.32 s) behind the input, but its decoder is an attention decoder over the whole segment, so
the text of a segment can still change while it grows. Each decode feeds the encoder only the
samples that arrived since the previous one (:class:`~dictation.asr.moonshine_streaming.stream.
SegmentStream`: frozen frames and their cross-attention keys/values are computed once) and
re-runs the decoder on the open segment after its committed tokens (forced), and words are
committed by agreement like Moonshine v1's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from dictation import SAMPLE_RATE
from dictation.asr.catalog import ResolvedModel
from dictation.asr.decoder import ClosedSegment, Hypothesis, SegmentView
from dictation.asr.driver import StreamingConfig, StreamingDriver
from dictation.asr.moonshine.decoding import MoonshineDecodeOptions
from dictation.asr.moonshine.stream import split_words
from dictation.asr.moonshine.transcribe import (
    OFFLINE_OPTIONS,
    MoonshineOfflineOptions,
    long_input_windows,
    window_has_speech,
)
from dictation.asr.moonshine_streaming.loader import LoadedMoonshineStreaming, load_checkpoint
from dictation.asr.moonshine_streaming.stream import SegmentStream, decode_segment
from dictation.asr.recognizer import LoadOptions, register_family
from dictation.audio.vad import SileroVadNet, VadStream, load_vad_net, speech_probabilities
from dictation.errors import ConfigError

FAMILY = "moonshine_streaming"
"""The catalogue's ``family`` of these models."""

WARMUP_S = 2.0
"""Silence decoded by :meth:`MoonshineStreamingRecognizer.warm_up`, seconds."""


@dataclass(frozen=True)
class MoonshineV2StreamConfig:
    """Moonshine v2's streaming settings."""

    decode: MoonshineDecodeOptions = field(default_factory=MoonshineDecodeOptions)


@dataclass
class MoonshineV2StreamState:
    """Per-stream state: the open segment's incremental encoder and how far it was fed."""

    stream: SegmentStream | None = None
    segment_start: int = -1
    """Absolute sample index where the segment ``stream`` encodes starts."""
    fed_to: int = 0
    """Absolute sample index up to which ``stream`` has the audio."""


class MoonshineV2StreamDecoder:
    """:class:`~dictation.asr.decoder.RedecodingDecoder` over a loaded Moonshine v2 model
    (shared, read-only). Each segment is encoded from its own start (a fresh encoder state, as
    the model was trained on utterances); earlier segments are not decoded as context."""

    def __init__(self, loaded: LoadedMoonshineStreaming,
                 config: MoonshineV2StreamConfig | None = None) -> None:
        self.loaded = loaded
        self.config = config or MoonshineV2StreamConfig()

    @property
    def context_s(self) -> float:
        return 0.0

    def new_state(self) -> MoonshineV2StreamState:
        return MoonshineV2StreamState()

    def segment_closed(self, segment: ClosedSegment, state: MoonshineV2StreamState) -> None:
        """Drop the closed segment's encoder state."""
        state.stream = None

    def decode(self, segment: SegmentView, state: MoonshineV2StreamState,
               final: bool) -> Hypothesis | None:
        """The open segment's hypothesis from its start (committed words first, as forced);
        None when nothing was heard. Only the samples after the previous decode are encoded
        (from the segment's start again if the segment or its end moved back)."""
        if (state.stream is None or state.segment_start != segment.start
                or segment.end < state.fed_to):
            state.stream = SegmentStream(self.loaded.model)
            state.segment_start = state.fed_to = segment.start
        if segment.end > state.fed_to:
            samples = np.ascontiguousarray(segment.audio(state.fed_to, segment.end), np.float32)
            state.stream.feed(torch.from_numpy(samples))
            state.fed_to = segment.end
        prefix = [t for w in segment.committed for t in w.tokens]
        tokens = state.stream.hypothesis(prefix=prefix,
                                         speech_found=segment.speech_samples > 0,
                                         options=self.config.decode)
        if not tokens:
            return None
        return Hypothesis(split_words(tokens, self.loaded.tokenizer))


@torch.inference_mode()
def transcribe_window(loaded: LoadedMoonshineStreaming, audio: np.ndarray, *,
                      speech_found: bool, options: MoonshineDecodeOptions) -> str:
    """Text of one stretch of audio (at most ~25 s) encoded whole (whole 5 ms frames only)."""
    model = loaded.model
    n_frame = model.dims.n_frame
    samples = np.ascontiguousarray(audio[: len(audio) // n_frame * n_frame], np.float32)
    frames = model.encoder(torch.from_numpy(samples)[None])
    if frames.shape[1] == 0:
        return ""
    tokens = decode_segment(model, model.decoder.cross_kv(frames, 0), frames.shape[1],
                            speech_found=speech_found, options=options)
    return loaded.tokenizer.decode(tokens).strip()


def transcribe_audio(loaded: LoadedMoonshineStreaming, vad: SileroVadNet, audio: np.ndarray,
                     options: MoonshineOfflineOptions = OFFLINE_OPTIONS) -> str:
    """Text of a whole recording (16 kHz mono float32); inputs over ``max_window_s`` are cut
    at quiet points as for Moonshine v1 (:func:`long_input_windows`)."""
    if len(audio) == 0:
        return ""
    probs = speech_probabilities(vad, audio)
    texts = []
    for start, end in long_input_windows(probs, len(audio), options):
        speech = window_has_speech(probs, start, end, options.speech_threshold)
        text = transcribe_window(loaded, audio[start:end], speech_found=speech,
                                 options=options.decode)
        if text:
            texts.append(text)
    return " ".join(texts)


@dataclass(frozen=True)
class MoonshineStreamingRecognizer:
    """A loaded Moonshine v2 model + VAD network."""

    model_id: str
    loaded: LoadedMoonshineStreaming
    vad: SileroVadNet

    @property
    def offline_settings(self) -> str:
        """How :meth:`transcribe` decodes, in one line (for reports)."""
        return f"moonshine v2 transcribe_audio, {OFFLINE_OPTIONS!r}"

    def open_session(self, config: StreamingConfig | None = None) -> StreamingDriver:
        """A streaming session; ``config.decoder`` is a :class:`MoonshineV2StreamConfig` or
        None (its defaults)."""
        config = config or StreamingConfig()
        settings = config.decoder if config.decoder is not None else MoonshineV2StreamConfig()
        if not isinstance(settings, MoonshineV2StreamConfig):
            raise ConfigError(f"a Moonshine v2 model streams with MoonshineV2StreamConfig "
                              f"settings, not {type(settings).__name__}")
        return StreamingDriver(MoonshineV2StreamDecoder(self.loaded, settings),
                               VadStream(self.vad), replace(config, decoder=settings))

    def transcribe(self, audio: np.ndarray) -> str:
        """Offline: the text of a whole recording (16 kHz mono float32)."""
        return transcribe_audio(self.loaded, self.vad, audio)

    def warm_up(self) -> None:
        """Run the model once on silence (first calls pay one-time setup costs)."""
        transcribe_window(self.loaded, np.zeros(int(WARMUP_S * SAMPLE_RATE), dtype=np.float32),
                          speech_found=False, options=OFFLINE_OPTIONS.decode)


def load_moonshine_streaming_recognizer(resolved: ResolvedModel, options: LoadOptions
                                        ) -> MoonshineStreamingRecognizer:
    """Load a resolved Moonshine v2 checkpoint (Transformers layout) with the VAD network, in
    ``options.compute``."""
    loaded = load_checkpoint(resolved.path, name=resolved.id, compute=options.compute)
    vad = load_vad_net()
    torch.set_num_threads(options.threads)
    return MoonshineStreamingRecognizer(model_id=resolved.id, loaded=loaded, vad=vad)


register_family(FAMILY, load_moonshine_streaming_recognizer)
