"""The Moonshine family's recognizer: a loaded Moonshine v1 model and the VAD network (both
shared, read-only), offline transcription with Moonshine's safeguards.

:func:`load_moonshine_recognizer` loads a resolved catalogue model (format ``"moonshine-ort"``
or ``"moonshine-hf"``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dictation import SAMPLE_RATE
from dictation.asr.moonshine.decoding import decode
from dictation.asr.moonshine.loaders import LoadedMoonshine, load_moonshine
from dictation.asr.moonshine.transcribe import OFFLINE_OPTIONS, transcribe_audio
from dictation.audio.vad import SileroVadNet, load_vad_net

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

    def transcribe(self, audio: np.ndarray) -> str:
        """Offline: the text of a whole recording (16 kHz mono float32)."""
        return transcribe_audio(self.loaded, self.vad, audio)

    def warm_up(self) -> None:
        """Run the model once on silence (first calls pay one-time setup costs)."""
        decode(self.loaded, np.zeros(int(WARMUP_S * SAMPLE_RATE), dtype=np.float32),
               speech_found=False)


def load_moonshine_recognizer(model_id: str, path: Path, fmt: str, *, threads: int,
                              compute: str = "float32") -> MoonshineRecognizer:
    """Load the Moonshine checkpoint in ``path`` (format ``fmt``) with the VAD network."""
    loaded = load_moonshine(path, fmt, name=model_id, compute=compute)
    vad = load_vad_net()
    torch.set_num_threads(threads)
    return MoonshineRecognizer(model_id=model_id, loaded=loaded, vad=vad)
