"""Dynamic int8 inference (``recognizer.compute = "int8"``): the int8 linear layer against
float32, and the real tiny.en quantized against itself in float32 (logits close, the same greedy
transcripts on dev files). Values only: speed is measured by ``dictation bench``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import JFK_WAV, read_wav, real_model_dir
from torch import nn

from dictation.asr.int8 import Int8Linear, int8_supported
from dictation.asr.whisper.decoding import DecodeOptions, decode
from dictation.asr.whisper.features import features_for_window
from dictation.asr.whisper.loaders import (
    COMPUTE_TYPES,
    DEFAULT_COMPUTE,
    LoadedModel,
    load_model,
    set_compute,
)
from dictation.audio.files import load_audio
from dictation.config import COMPUTE_TYPES as CONFIG_COMPUTE_TYPES
from dictation.config import RecognizerConfig
from dictation.errors import ModelError

pytestmark = [pytest.mark.usefixtures("single_torch_thread"),
              pytest.mark.skipif(not int8_supported(), reason="torch has no quantized engine")]

DEV_IDS = ["ljspeech-lj001-0008", "sb-spk2-snt6", "whisper-jfk"]
"""Clean dev files in three conditions (read speech, short prompt, public address)."""
NOISY_ID = "sb-spk2-snt3-noise5-5db"
"""5 dB noise: both models mishear a word here, and int8 spells the mishearing differently."""


@pytest.fixture(scope="module")
def float32() -> LoadedModel:
    return load_model(real_model_dir(), "ct2", "tiny.en")


@pytest.fixture(scope="module")
def int8() -> LoadedModel:
    loaded = load_model(real_model_dir(), "ct2", "tiny.en")
    set_compute(loaded, "int8")
    return loaded


def test_int8_linear_is_close_to_float32() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(384, 1536)
    x = torch.randn(3, 50, 384)
    expected = linear(x).detach()
    got = Int8Linear.from_linear(linear)(x)
    assert got.shape == expected.shape and got.dtype == torch.float32
    error = (got - expected).norm() / expected.norm()
    assert error < 0.02, f"relative error {error:.4f}"


def test_set_compute_quantizes_the_work_over_audio_frames(int8: LoadedModel,
                                                  float32: LoadedModel) -> None:
    """The encoder's linear layers and the decoder's cross-attention key/value projections
    (the work over audio frames) are int8; the token-side decoder stays float32."""
    assert not any(isinstance(m, nn.Linear) for m in int8.model.encoder.modules())
    n_encoder = sum(isinstance(m, nn.Linear) for m in float32.model.encoder.modules())
    n_layers = float32.model.dims.n_text_layer
    n_int8 = sum(isinstance(m, Int8Linear) for m in int8.model.modules())
    assert n_int8 == n_encoder + 2 * n_layers and n_encoder > 0
    for block in int8.model.decoder.blocks:
        attn = block.cross_attn
        assert isinstance(attn.key, Int8Linear) and isinstance(attn.value, Int8Linear)
        assert isinstance(attn.query, nn.Linear) and isinstance(block.mlp[0], nn.Linear)
    # what the equivalence tests load is never quantized
    assert not any(isinstance(m, Int8Linear) for m in float32.model.modules())


def test_unknown_compute_is_a_clear_error(float32: LoadedModel) -> None:
    with pytest.raises(ModelError, match="float16.*int8, float32"):
        set_compute(float32, "float16")


def test_config_and_loader_agree_on_compute() -> None:
    assert CONFIG_COMPUTE_TYPES == COMPUTE_TYPES
    assert RecognizerConfig().compute == DEFAULT_COMPUTE


@torch.inference_mode()
def test_int8_logits_are_close_to_float32_on_real_speech(int8: LoadedModel,
                                                         float32: LoadedModel) -> None:
    """Teacher-forced logits of the JFK transcript: the int8 model picks the same token as the
    float32 model at (nearly) every position and its log-probabilities stay close."""
    audio = read_wav(JFK_WAV)
    mel = features_for_window(audio)[None]
    tok = float32.tokenizer
    tokens = torch.tensor([[*tok.sot_sequence, tok.no_timestamps,
                            *tok.encode(" And so my fellow Americans, ask not what your "
                                        "country can do for you")]])
    ref = float32.model(mel, tokens).log_softmax(-1)[0]
    got = int8.model(mel, tokens).log_softmax(-1)[0]
    same = (ref.argmax(-1) == got.argmax(-1)).float().mean()
    assert same >= 0.95, f"top-1 agreement {same:.2f}"
    # log-probability of the float32 model's choice at each position
    choice = ref.argmax(-1, keepdim=True)
    diff = (ref.gather(-1, choice) - got.gather(-1, choice)).abs()
    assert float(diff.median()) < 0.1 and float(diff.max()) < 1.0


@pytest.mark.parametrize("utt_id", DEV_IDS)
def test_int8_greedy_transcript_equals_float32(int8: LoadedModel, float32: LoadedModel,
                                               dev_set_dir: Path, utt_id: str) -> None:
    audio = load_audio(dev_set_dir / "wav" / f"{utt_id}.wav")
    options = DecodeOptions(full_window=True)
    expected = decode(float32, audio, options=options)
    got = decode(int8, audio, options=options)
    assert got.text == expected.text
    assert abs(got.avg_logprob - expected.avg_logprob) < 0.1
    assert np.isclose(got.no_speech_prob, expected.no_speech_prob, atol=0.05)


def word_edits(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    row = list(range(len(b) + 1))
    for i, word in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, other in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (word != other))
    return row[-1]


def test_int8_transcript_in_noise_differs_by_at_most_one_word(
        int8: LoadedModel, float32: LoadedModel, dev_set_dir: Path) -> None:
    """In 5 dB noise a near-tie may go the other way: at most one word differs (float32 hears
    "Terathen sheet", int8 "Teratheon sheet"; the speaker said "tear a thin sheet")."""
    audio = load_audio(dev_set_dir / "wav" / f"{NOISY_ID}.wav")
    options = DecodeOptions(full_window=True)
    expected = decode(float32, audio, options=options).text.split()
    got = decode(int8, audio, options=options).text.split()
    assert len(expected) > 3 and word_edits(got, expected) <= 1
