"""Whisper log-mel features computed in torch (no torchaudio, no librosa).

Whisper's front end: 25 ms Hann window (400 samples), 10 ms hop (160 samples), power spectrum,
Slaney-normalised mel filter bank, log10, dynamic range clipped to 8 (i.e. 80 dB), scaled to
roughly [-1, 1]. One feature frame is 10 ms of audio; the encoder halves that (20 ms per output).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from dictation import SAMPLE_RATE

N_FFT = 400
"""STFT window, samples (25 ms)."""
HOP_LENGTH = 160
"""STFT hop, samples (10 ms): one mel frame."""
CHUNK_SECONDS = 30
"""Whisper's fixed context, seconds."""
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE
"""Samples in one 30 s window (480 000)."""
N_FRAMES = N_SAMPLES // HOP_LENGTH
"""Mel frames in one 30 s window (3 000)."""


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    log_region = freq >= min_log_hz
    mels[log_region] = min_log_mel + np.log(freq[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return freqs


@lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> torch.Tensor:
    """Slaney-style mel filter bank, shape (n_mels, N_FFT // 2 + 1); equals librosa's
    ``filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`` that Whisper ships."""
    n_freqs = N_FFT // 2 + 1
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, n_freqs)
    mel_min, mel_max = _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0]
    mel_points = _mel_to_hz(np.linspace(mel_min, mel_max, n_mels + 2))
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels])
    weights *= enorm[:, None]
    return torch.from_numpy(weights.astype(np.float32))


@lru_cache(maxsize=1)
def _hann_window() -> torch.Tensor:
    return torch.hann_window(N_FFT)


def log_mel_spectrogram(audio: torch.Tensor | np.ndarray, n_mels: int = 80) -> torch.Tensor:
    """Log-mel features of 16 kHz mono audio.

    audio: (n_samples,) float32 in [-1, 1].
    Returns (n_mels, n_samples // HOP_LENGTH) float32; the last STFT frame is dropped as in Whisper.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got {tuple(x.shape)}")
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=_hann_window(), return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    mel = mel_filters(n_mels) @ magnitudes
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def features_for_window(audio: np.ndarray | torch.Tensor, n_mels: int = 80,
                        n_frames: int = N_FRAMES) -> torch.Tensor:
    """Features of up to 30 s of audio, exactly as Whisper computes them for one window:
    the audio is padded with zeros to 30 s before the STFT, then cut to ``n_frames`` frames.

    Only as much of the zero padding is transformed as the result needs: the audio or the
    ``n_frames`` frames, whichever is longer, plus one STFT window. The frames past that are
    silence in the 30-s version; they cannot raise its maximum (the 80-dB floor's reference), so
    the result is the same as cutting the features of the whole 30 s (a streaming decode of a
    10-s window transforms a third of the samples).

    Returns (n_mels, n_frames)."""
    x = torch.as_tensor(audio, dtype=torch.float32)[:N_SAMPLES]
    padded = min(N_SAMPLES, max(x.shape[0], n_frames * HOP_LENGTH) + N_FFT)
    x = torch.nn.functional.pad(x, (0, padded - x.shape[0]))
    return log_mel_spectrogram(x, n_mels)[:, :n_frames]
