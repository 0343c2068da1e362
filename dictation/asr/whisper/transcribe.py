"""Offline (whole-file) transcription: Whisper's own 30-s windows, exact as trained.

Files up to 30 s are one window. Longer files are cut into windows of at most 30 s at their
quietest point (lowest VAD speech probability) after ``min_window_s``; each window is decoded
with the text before it as the prompt. Windows that are not speech are skipped
(:func:`dictation.asr.whisper.guards.is_non_speech_window`).
"""

from __future__ import annotations

import numpy as np

from dictation.asr.whisper.decoding import DecodeOptions, decode
from dictation.asr.whisper.features import CHUNK_SECONDS, N_SAMPLES
from dictation.asr.whisper.guards import is_non_speech_window
from dictation.asr.whisper.loaders import LoadedModel
from dictation.audio.vad import SileroVadNet, speech_probabilities, window_cuts

OFFLINE_OPTIONS = DecodeOptions(full_window=True)


def transcribe_audio(loaded: LoadedModel, vad: SileroVadNet, audio: np.ndarray,
                     options: DecodeOptions = OFFLINE_OPTIONS) -> str:
    """Text of a whole recording (16 kHz mono float32)."""
    if len(audio) <= N_SAMPLES:
        windows = [audio]
    else:
        probs = speech_probabilities(vad, audio)
        bounds = [0, *window_cuts(probs, len(audio), max_window_s=CHUNK_SECONDS), len(audio)]
        windows = [audio[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    texts: list[str] = []
    prompt: list[int] = []
    for window in windows:
        result = decode(loaded, window, prompt=prompt or None, options=options)
        if is_non_speech_window(result):
            continue
        texts.append(result.text.strip())
        prompt += result.tokens
    return " ".join(t for t in texts if t)
