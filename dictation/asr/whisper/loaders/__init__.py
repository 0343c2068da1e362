"""Checkpoint loaders: each turns one on-disk format into a :class:`LoadedModel`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dictation.asr.whisper.model import Whisper
from dictation.asr.whisper.tokenizer import WhisperTokenizer
from dictation.config import COMPUTE_TYPES, DEFAULT_COMPUTE
from dictation.errors import ModelError

__all__ = ["COMPUTE_TYPES", "DEFAULT_COMPUTE", "LoadedModel", "load_model", "set_compute"]



@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-run model (shared, read-only) with what decoding needs to know about it."""

    name: str
    model: Whisper
    tokenizer: WhisperTokenizer
    suppress_tokens: tuple[int, ...]
    """Never emitted (symbols Whisper was trained to avoid, plus the special tokens)."""
    suppress_at_begin: tuple[int, ...]
    """Not allowed as the first token (blank, end of text)."""


def load_model(path: Path, fmt: str, name: str | None = None, language: str = "en") -> LoadedModel:
    """Load a model directory in format ``"ct2"`` (CTranslate2) or ``"hf"`` (safetensors)."""
    from dictation.asr.whisper.loaders import ct2, hf

    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    loader = {"ct2": ct2.load, "hf": hf.load}.get(fmt)
    if loader is None:
        raise ModelError(f"unknown model format {fmt!r}; expected 'ct2' or 'hf'")
    loaded = loader(path, name or path.name, language)
    loaded.model.eval()
    for p in loaded.model.parameters():
        p.requires_grad_(False)
    return loaded


def assign(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy ``tensors`` (named like ``module.state_dict()``) into ``module``, checking that every
    parameter is present with the right shape."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors) - {"encoder.positional_embedding"})
    if missing:
        raise ModelError(f"{source}: checkpoint lacks {len(missing)} tensors (e.g. {missing[0]}); "
                         "the file is corrupt or not a Whisper model")
    for key, value in tensors.items():
        if key not in expected:
            continue
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ModelError(f"{source}: tensor {key} has shape {tuple(value.shape)}, expected "
                             f"{tuple(expected[key].shape)}; the checkpoint does not match its "
                             "config.json")
        expected[key].copy_(value.to(torch.float32))


def set_compute(loaded: LoadedModel, compute: str) -> None:
    """Prepare a freshly loaded model for inference (in place, once, before sharing it).

    ``"int8"``: dynamic int8 weights for the linear layers that run over audio frames
    (:meth:`~dictation.asr.whisper.model.Whisper.use_int8`). ``"float32"``: float32 weights.
    Both keep the token embedding in float16
    (:meth:`~dictation.asr.whisper.model.TextDecoder.use_half_embedding`)."""
    if compute not in COMPUTE_TYPES:
        raise ModelError(f"unknown compute type {compute!r}; expected one of "
                         f"{', '.join(COMPUTE_TYPES)}")
    if compute == "int8":
        try:
            loaded.model.use_int8()
        except RuntimeError as exc:
            raise ModelError(f"{exc}; set recognizer.compute = \"float32\"") from exc
    loaded.model.decoder.use_half_embedding()
