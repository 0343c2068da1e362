"""The Whisper family's :class:`~dictation.asr.session.Recognizer`: a loaded Whisper model and
the VAD network (both shared, read-only); its sessions are the streaming driver over
:class:`~dictation.asr.whisper.decoder.WhisperStreamDecoder`. Importing this module registers
the family ``"whisper"`` (:func:`dictation.asr.recognizer.register_family`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from dictation import SAMPLE_RATE
from dictation.asr.catalog import ResolvedModel
from dictation.asr.driver import StreamingConfig, StreamingDriver
from dictation.asr.recognizer import LoadOptions, register_family
from dictation.asr.whisper.decoder import WhisperStreamConfig, WhisperStreamDecoder
from dictation.asr.whisper.decoding import DecodeOptions, decode
from dictation.asr.whisper.loaders import LoadedModel, load_model, set_compute
from dictation.asr.whisper.transcribe import OFFLINE_OPTIONS, transcribe_audio
from dictation.audio.vad import SileroVadNet, VadStream, load_vad_net
from dictation.errors import ConfigError

WARMUP_S = 2.0
"""Silence decoded by :meth:`WhisperRecognizer.warm_up`, seconds."""


@dataclass(frozen=True)
class WhisperRecognizer:
    """A loaded Whisper model + VAD network."""

    model_id: str
    loaded: LoadedModel
    vad: SileroVadNet

    @property
    def offline_settings(self) -> str:
        return f"transcribe_audio, {OFFLINE_OPTIONS!r}"

    def open_session(self, config: StreamingConfig | None = None) -> StreamingDriver:
        """A streaming session; ``config.decoder`` is a :class:`WhisperStreamConfig` or None
        (its defaults)."""
        config = config or StreamingConfig()
        settings = config.decoder if config.decoder is not None else WhisperStreamConfig()
        if not isinstance(settings, WhisperStreamConfig):
            raise ConfigError(f"a Whisper model streams with WhisperStreamConfig settings, not "
                              f"{type(settings).__name__}")
        decoder = WhisperStreamDecoder(self.loaded, settings, vocabulary=config.vocabulary)
        return StreamingDriver(decoder, VadStream(self.vad),
                               replace(config, decoder=settings))

    def transcribe(self, audio: np.ndarray) -> str:
        return transcribe_audio(self.loaded, self.vad, audio)

    def warm_up(self) -> None:
        decode(self.loaded, np.zeros(int(WARMUP_S * SAMPLE_RATE), dtype=np.float32),
               options=DecodeOptions(full_window=True))


def load_whisper(resolved: ResolvedModel, options: LoadOptions) -> WhisperRecognizer:
    """Load a resolved Whisper checkpoint (``options.compute``, half-precision logits) with the
    VAD network."""
    loaded = load_model(resolved.path, resolved.format, name=resolved.id)
    set_compute(loaded, options.compute)
    vad = load_vad_net()
    torch.set_num_threads(options.threads)
    return WhisperRecognizer(model_id=resolved.id, loaded=loaded, vad=vad)


register_family("whisper", load_whisper)
