"""Hugging Face Moonshine v2 checkpoints (``UsefulSensors/moonshine-streaming-*``):
``config.json`` + ``model.safetensors`` + ``tokenizer.json``. Weights are read with safetensors
(no pickle); the tokenizer with ``tokenizers`` (Moonshine's 32,768-piece vocabulary)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dictation.asr.int8 import quantize_int8
from dictation.asr.model_files import read_json_object
from dictation.asr.moonshine.tokenizer import MoonshineTokenizer
from dictation.asr.moonshine_streaming.model import ModelDimensions, MoonshineStreaming
from dictation.errors import ModelError

MODEL_TYPE = "moonshine_streaming"


def _first(value: Any, default: int) -> int:
    """A token id that the config may give as an int or a list of ints."""
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else int(value)


def dims_from_config(config: dict[str, Any]) -> ModelDimensions:
    """:class:`ModelDimensions` of a transformers ``MoonshineStreamingConfig`` dict."""
    if config.get("model_type") != MODEL_TYPE:
        raise ModelError(f"not a Moonshine v2 checkpoint: model_type is "
                         f"{config.get('model_type')!r}, expected {MODEL_TYPE!r}")
    try:
        enc = config["encoder_config"]
        n_state, n_head = int(config["hidden_size"]), int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or n_state // n_head)
        rope = config.get("rope_parameters") or {}
        factor = float(rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0)))
        theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
        enc_state, enc_head = int(enc["hidden_size"]), int(enc["num_attention_heads"])
        frame = int(round(int(enc.get("sample_rate", 16000)) * float(enc.get("frame_ms", 5.0))
                          / 1000.0))
        kv_heads = int(config.get("num_key_value_heads") or n_head)
        if kv_heads != n_head:
            raise ModelError(f"decoder with {kv_heads} key/value heads for {n_head} query heads "
                             "is not supported")
        return ModelDimensions(
            n_enc_state=enc_state,
            n_enc_head=enc_head,
            n_enc_kv_head=int(enc.get("num_key_value_heads") or enc_head),
            n_enc_head_dim=int(enc.get("head_dim") or enc_state // enc_head),
            n_enc_mlp=int(enc["intermediate_size"]),
            sliding_windows=tuple((int(a), int(b)) for a, b in enc["sliding_windows"]),
            n_state=n_state,
            n_head=n_head,
            n_head_dim=head_dim,
            n_mlp=int(config["intermediate_size"]),
            n_layer=int(config["num_hidden_layers"]),
            n_vocab=int(config["vocab_size"]),
            n_pos=int(config.get("max_position_embeddings", 4096)),
            rotary_dim=int(head_dim * factor),
            rope_theta=theta,
            n_frame=frame,
            bos_token=_first(config.get("decoder_start_token_id"),
                             _first(config.get("bos_token_id"), 1)),
            eos_token=_first(config.get("eos_token_id"), 2),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"Moonshine v2 config.json lacks or mangles {exc}") from exc


def load_model(folder: Path, dtype: torch.dtype = torch.float32) -> MoonshineStreaming:
    """Build the model from ``folder/config.json`` and load ``folder/model.safetensors``.

    Every parameter must be present and no checkpoint tensor may be left over (strict load);
    ``proj_out`` falls back to the token embedding when the config ties them."""
    config = read_json_object(folder / "config.json")
    dims = dims_from_config(config)
    weights_file = folder / "model.safetensors"
    try:
        raw = load_file(str(weights_file))
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"Cannot read {weights_file} ({exc}); re-download the model") from exc
    state = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in raw.items()}
    if "proj_out.weight" not in state and config.get("tie_word_embeddings"):
        state["proj_out.weight"] = state["decoder.embed_tokens.weight"]
    model = MoonshineStreaming(dims)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(f"{weights_file} does not match its config.json: missing "
                         f"{sorted(result.missing_keys)[:5]}, unexpected "
                         f"{sorted(result.unexpected_keys)[:5]}")
    return model.to(dtype).eval()


@dataclass(frozen=True)
class LoadedMoonshineStreaming:
    """A ready-to-run Moonshine v2 model (shared, read-only) and its tokenizer."""

    name: str
    model: MoonshineStreaming
    tokenizer: MoonshineTokenizer


def load_checkpoint(folder: Path, name: str | None = None,
                    compute: str = "float32") -> LoadedMoonshineStreaming:
    """Model (:func:`load_model`) and ``tokenizer.json`` of a checkpoint folder. ``compute``:
    ``"float32"``, or ``"int8"`` to run every Linear layer with int8 weights (one scale per
    output row, :func:`dictation.asr.int8.quantize_int8`)."""
    if not folder.is_dir():
        raise ModelError(f"model directory not found: {folder}")
    if compute not in ("float32", "int8"):
        raise ModelError(f"unknown compute {compute!r}; expected 'float32' or 'int8'")
    model = load_model(folder)
    for p in model.parameters():
        p.requires_grad_(False)
    if compute == "int8":
        quantize_int8(model)
    tokenizer = MoonshineTokenizer.from_tokenizer_json(folder / "tokenizer.json")
    return LoadedMoonshineStreaming(name=name or folder.name, model=model, tokenizer=tokenizer)
