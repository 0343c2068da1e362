"""Offline (whole-file) transcription: Whisper's own 30-s windows, exact as trained.

Files up to 30 s are one window. Longer files are cut into windows of at most 30 s at their
quietest point (lowest VAD speech probability) after ``min_window_s``; each window is decoded
with the text before it as the prompt. Windows that are not speech are skipped
(:func:`dictation.asr.whisper.guards.is_non_speech_window`).
"""

from __future__ import annotations

import numpy as np

from dictation import SAMPLE_RATE
from dictation.asr.whisper.decoding import DecodeOptions, decode
from dictation.asr.whisper.features import N_SAMPLES
from dictation.asr.whisper.guards import is_non_speech_window
from dictation.asr.whisper.loaders import LoadedModel
from dictation.audio.vad import FRAME_SAMPLES, SileroVadNet, VadStream

OFFLINE_OPTIONS = DecodeOptions(full_window=True)


def speech_probabilities(vad: SileroVadNet, audio: np.ndarray) -> np.ndarray:
    """VAD speech probability of each FRAME_SAMPLES frame of ``audio`` (last partial frame
    zero-padded)."""
    stream = VadStream(vad)
    n = -(-len(audio) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, dtype=np.float32)
    padded[: len(audio)] = audio
    return np.array([stream.probability(padded[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
                     for i in range(n)], dtype=np.float32)


def window_cuts(probs: np.ndarray, n_samples: int, min_window_s: float = 20.0,
                max_window_s: float = N_SAMPLES / SAMPLE_RATE) -> list[int]:
    """Sample positions that cut ``n_samples`` into windows of at most ``max_window_s`` (default
    Whisper's 30 s), each cut at the quietest frame (smoothed over 5 frames) between
    ``min_window_s`` and ``max_window_s`` into its window."""
    smooth = np.convolve(probs, np.ones(5) / 5, mode="same") if len(probs) else probs
    max_samples = int(max_window_s * SAMPLE_RATE)
    cuts, start = [], 0
    while n_samples - start > max_samples:
        lo = (start + int(min_window_s * SAMPLE_RATE)) // FRAME_SAMPLES
        hi = (start + max_samples) // FRAME_SAMPLES
        frame = lo + int(np.argmin(smooth[lo:hi]))
        start = frame * FRAME_SAMPLES
        cuts.append(start)
    return cuts


def transcribe_audio(loaded: LoadedModel, vad: SileroVadNet, audio: np.ndarray,
                     options: DecodeOptions = OFFLINE_OPTIONS) -> str:
    """Text of a whole recording (16 kHz mono float32)."""
    if len(audio) <= N_SAMPLES:
        windows = [audio]
    else:
        bounds = [0, *window_cuts(speech_probabilities(vad, audio), len(audio)), len(audio)]
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
