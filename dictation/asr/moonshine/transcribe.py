"""Offline (whole-file) Moonshine transcription.

Moonshine's encoder takes the audio as long as it is, but the model invents text after the
speech on long inputs, so inputs over ``max_window_s`` (25 s) are cut into windows at their
quietest points (rule :func:`long_input_windows`, reusing Whisper's VAD-based window cutting).
Each window is decoded greedily with Moonshine's safeguards
(:mod:`dictation.asr.moonshine.decoding`); end-of-text as the first token is forbidden only in
windows where the VAD found speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dictation.asr.moonshine.decoding import MoonshineDecodeOptions, decode
from dictation.asr.moonshine.loaders import LoadedMoonshine
from dictation.audio.segmenter import SegmenterConfig
from dictation.audio.vad import FRAME_SAMPLES, SileroVadNet, speech_probabilities, window_cuts


@dataclass(frozen=True)
class MoonshineOfflineOptions:
    """Knobs of offline transcription."""

    max_window_s: float = 25.0
    """Longest stretch of audio decoded at once, seconds; longer inputs are cut."""
    min_window_s: float = 15.0
    """A cut falls at the quietest point between this and ``max_window_s`` into a window."""
    speech_threshold: float = SegmenterConfig().threshold
    """VAD speech probability above which a window counts as holding speech."""
    decode: MoonshineDecodeOptions = field(default_factory=MoonshineDecodeOptions)


OFFLINE_OPTIONS = MoonshineOfflineOptions()


def long_input_windows(probs: np.ndarray, n_samples: int,
                       options: MoonshineOfflineOptions = OFFLINE_OPTIONS) -> list[tuple[int, int]]:
    """(start, end) sample ranges covering ``n_samples``: one window up to ``max_window_s``,
    else windows cut at the quietest frames (``probs``: VAD probability per FRAME_SAMPLES)."""
    cuts = window_cuts(probs, n_samples, options.min_window_s,
                       max_window_s=options.max_window_s)
    bounds = [0, *cuts, n_samples]
    return list(zip(bounds, bounds[1:], strict=False))


def window_has_speech(probs: np.ndarray, start: int, end: int, threshold: float) -> bool:
    """Whether any VAD frame overlapping samples [start, end) reaches ``threshold``."""
    frames = probs[start // FRAME_SAMPLES: -(-end // FRAME_SAMPLES)]
    return bool(len(frames)) and float(frames.max()) >= threshold


def transcribe_audio(loaded: LoadedMoonshine, vad: SileroVadNet, audio: np.ndarray,
                     options: MoonshineOfflineOptions = OFFLINE_OPTIONS) -> str:
    """Text of a whole recording (16 kHz mono float32)."""
    if len(audio) == 0:
        return ""
    probs = speech_probabilities(vad, audio)
    texts: list[str] = []
    for start, end in long_input_windows(probs, len(audio), options):
        speech = window_has_speech(probs, start, end, options.speech_threshold)
        result = decode(loaded, audio[start:end], speech_found=speech, options=options.decode)
        if result.text.strip():
            texts.append(result.text.strip())
    return " ".join(texts)
