"""The Moonshine family's :class:`~dictation.asr.session.Recognizer`: a loaded Moonshine v1
model and the VAD network (both shared, read-only); offline transcription with Moonshine's
safeguards, and sessions that are the streaming driver over
:class:`~dictation.asr.moonshine.stream.MoonshineStreamDecoder` (a re-decoding family).
Importing this module registers the family ``"moonshine"``
(:func:`dictation.asr.recognizer.register_family`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from dictation import SAMPLE_RATE
from dictation.asr.catalog import ResolvedModel
from dictation.asr.driver import StreamingConfig, StreamingDriver
from dictation.asr.moonshine.decoding import decode
from dictation.asr.moonshine.loaders import LoadedMoonshine, load_moonshine
from dictation.asr.moonshine.stream import MoonshineStreamConfig, MoonshineStreamDecoder
from dictation.asr.moonshine.transcribe import OFFLINE_OPTIONS, transcribe_audio
from dictation.asr.recognizer import LoadOptions, register_family
from dictation.audio.vad import SileroVadNet, VadStream, load_vad_net
from dictation.errors import ConfigError

FAMILY = "moonshine"
"""The catalogue's ``family`` of these models."""

WARMUP_S = 2.0
"""Silence decoded by :meth:`MoonshineRecognizer.warm_up`, seconds."""


@dataclass(frozen=True)
class MoonshineRecognizer:
    """A loaded Moonshine model + VAD network."""

    model_id: str
    loaded: LoadedMoonshine
    vad: SileroVadNet

    @property
    def offline_settings(self) -> str:
        """How :meth:`transcribe` decodes, in one line (for reports)."""
        return f"moonshine transcribe_audio, {OFFLINE_OPTIONS!r}"

    def open_session(self, config: StreamingConfig | None = None) -> StreamingDriver:
        """A streaming session; ``config.decoder`` is a :class:`MoonshineStreamConfig` or None
        (its defaults)."""
        config = config or StreamingConfig()
        settings = config.decoder if config.decoder is not None else MoonshineStreamConfig()
        if not isinstance(settings, MoonshineStreamConfig):
            raise ConfigError(f"a Moonshine model streams with MoonshineStreamConfig settings, "
                              f"not {type(settings).__name__}")
        return StreamingDriver(MoonshineStreamDecoder(self.loaded, settings), VadStream(self.vad),
                               replace(config, decoder=settings))

    def transcribe(self, audio: np.ndarray) -> str:
        """Offline: the text of a whole recording (16 kHz mono float32)."""
        return transcribe_audio(self.loaded, self.vad, audio)

    def warm_up(self) -> None:
        """Run the model once on silence (first calls pay one-time setup costs)."""
        decode(self.loaded, np.zeros(int(WARMUP_S * SAMPLE_RATE), dtype=np.float32),
               speech_found=False)


def load_moonshine_recognizer(resolved: ResolvedModel, options: LoadOptions
                              ) -> MoonshineRecognizer:
    """Load a resolved Moonshine checkpoint (format ``"moonshine-ort"``, or ``"moonshine-hf"`` /
    ``"hf"`` for the Transformers layout) with the VAD network, in ``options.compute``."""
    # a catalogue entry of family "moonshine" may say format "hf" for the Transformers layout
    fmt = "moonshine-hf" if resolved.format == "hf" else resolved.format
    loaded = load_moonshine(resolved.path, fmt, name=resolved.id, compute=options.compute)
    vad = load_vad_net()
    torch.set_num_threads(options.threads)
    return MoonshineRecognizer(model_id=resolved.id, loaded=loaded, vad=vad)


register_family(FAMILY, load_moonshine_recognizer)
