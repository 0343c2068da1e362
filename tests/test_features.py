"""Our torch log-mel front end against transformers' WhisperFeatureExtractor (its numpy
implementation, the reference port of Whisper's own features) on real speech."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from model_fixtures import JFK_WAV, read_wav

from dictation import SAMPLE_RATE
from dictation.asr.whisper.features import (
    HOP_LENGTH,
    N_FFT,
    N_FRAMES,
    N_SAMPLES,
    features_for_window,
    log_mel_spectrogram,
    mel_filters,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    """11 s of real speech, 16 kHz mono float32."""
    return read_wav(JFK_WAV)


@pytest.fixture(scope="module")
def extractor() -> Any:
    """transformers' Whisper feature extractor with Whisper's settings (80 mels, 30 s)."""
    fe = transformers.WhisperFeatureExtractor(feature_size=80)
    assert (fe.n_fft, fe.hop_length, fe.n_samples) == (N_FFT, HOP_LENGTH, N_SAMPLES)
    return fe


def reference_numpy(extractor: Any, audio: np.ndarray) -> np.ndarray:
    """transformers' numpy log-mel of ``audio`` as given (no padding), shape (80, frames)."""
    return np.asarray(extractor._np_extract_fbank_features(audio[None], "cpu")[0])


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_equal_transformers_slaney_filter_bank(n_mels: int) -> None:
    from transformers.audio_utils import mel_filter_bank

    reference = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=n_mels,
                                min_frequency=0.0, max_frequency=SAMPLE_RATE / 2,
                                sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
    ours = mel_filters(n_mels).numpy()
    assert ours.shape == (n_mels, N_FFT // 2 + 1)
    np.testing.assert_allclose(ours, reference.T, rtol=0, atol=1e-7)


def test_window_features_equal_transformers_numpy_on_real_speech(
        jfk: np.ndarray, extractor: Any) -> None:
    """The extractor pads the audio with zeros to 30 s before the STFT, as Whisper does:
    features_for_window must give the same (80, 3000) features."""
    padded = np.pad(jfk, (0, N_SAMPLES - len(jfk)))
    reference = reference_numpy(extractor, padded)
    ours = features_for_window(jfk).numpy()
    assert ours.shape == reference.shape == (80, N_FRAMES)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)
    # the padding really is there: frames after the speech sit at the clipped floor
    speech_frames = len(jfk) // HOP_LENGTH
    assert np.allclose(ours[:, speech_frames + 2:], ours.min(), atol=1e-6)


def test_window_features_equal_transformers_public_call(jfk: np.ndarray, extractor: Any) -> None:
    """The extractor's public entry point (its own padding to 30 s) agrees too."""
    reference = extractor(jfk, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    np.testing.assert_allclose(features_for_window(jfk).numpy(), reference, rtol=0, atol=1e-4)


def test_unpadded_log_mel_equals_transformers_numpy(jfk: np.ndarray, extractor: Any) -> None:
    """Without padding: one frame per 160 samples (the last STFT frame dropped), same values."""
    reference = reference_numpy(extractor, jfk)
    ours = log_mel_spectrogram(jfk).numpy()
    assert ours.shape == (80, len(jfk) // HOP_LENGTH) == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)


def test_short_window_is_the_start_of_the_full_window(jfk: np.ndarray) -> None:
    full = features_for_window(jfk)
    short = features_for_window(jfk, n_frames=400)
    assert short.shape == (80, 400)
    assert torch.equal(short, full[:, :400])


def test_audio_longer_than_30_s_is_cut_to_the_window(jfk: np.ndarray) -> None:
    long_audio = np.concatenate([jfk, jfk, jfk])  # 33 s
    assert len(long_audio) > N_SAMPLES
    assert torch.equal(features_for_window(long_audio), log_mel_spectrogram(long_audio[:N_SAMPLES]))


def test_tensor_and_array_inputs_give_the_same_features(jfk: np.ndarray) -> None:
    assert torch.equal(log_mel_spectrogram(jfk), log_mel_spectrogram(torch.from_numpy(jfk)))


def test_stereo_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="mono"):
        log_mel_spectrogram(np.zeros((2, SAMPLE_RATE), dtype=np.float32))


@pytest.mark.parametrize(("seconds", "n_frames"), [(11.0, 1000), (3.0, 1000), (11.0, 500),
                                                   (4.2, 1406), (29.99, 3000)])
def test_short_window_features_equal_the_cut_30s_features(jfk: np.ndarray, seconds: float,
                                                          n_frames: int) -> None:
    """features_for_window transforms only the padding it needs: the frames it returns equal
    those of the whole zero-padded 30 s window (same 80-dB floor), for audio shorter and longer
    than the frames asked for."""
    audio = np.resize(jfk, int(seconds * SAMPLE_RATE))
    full = torch.nn.functional.pad(torch.from_numpy(audio), (0, N_SAMPLES - len(audio)))
    expected = log_mel_spectrogram(full)[:, :n_frames]
    np.testing.assert_allclose(features_for_window(audio, 80, n_frames).numpy(),
                               expected.numpy(), rtol=0, atol=1e-5)
