"""Load what recognition needs once: the Whisper model and the VAD network (both shared and
read-only), then open any number of streaming sessions on them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from dictation.asr.catalog import resolve
from dictation.asr.whisper.loaders import DEFAULT_COMPUTE, LoadedModel, load_model, set_compute
from dictation.asr.whisper.streaming import StreamingConfig, StreamingSession
from dictation.audio.vad import SileroVadNet, load_vad_net


def default_threads() -> int:
    """Torch threads for inference: the cores this process may use, at most 4 (the small
    Whisper models stop scaling there)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass(frozen=True)
class Recognizer:
    """A loaded model + VAD network."""

    model_id: str
    loaded: LoadedModel
    vad: SileroVadNet

    def session(self, config: StreamingConfig | None = None) -> StreamingSession:
        return StreamingSession(self.loaded, self.vad, config)


def load_recognizer(model_id: str, *, download: bool = True, progress: bool = True,
                    threads: int | None = None, compute: str = DEFAULT_COMPUTE) -> Recognizer:
    """Resolve ``model_id`` (catalogue id or model folder), downloading it if allowed, and load
    it with the VAD network. ``compute``: ``"int8"`` or ``"float32"`` (see
    :func:`~dictation.asr.whisper.loaders.set_compute`). Raises ModelError with an actionable
    message on failure."""
    resolved = resolve(model_id, download=download, progress=progress)
    loaded = load_model(resolved.path, resolved.format, name=resolved.id)
    set_compute(loaded, compute)
    vad = load_vad_net()
    torch.set_num_threads(threads or default_threads())
    return Recognizer(model_id=resolved.id, loaded=loaded, vad=vad)
