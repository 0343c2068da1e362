"""Hugging Face Whisper checkpoints: ``config.json`` + ``model.safetensors`` (+ optional
``generation_config.json``) + ``tokenizer.json``. Weights are read with safetensors (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dictation.asr.model_files import read_json_object
from dictation.asr.whisper.loaders import LoadedModel, assign
from dictation.asr.whisper.model import ModelDimensions, Whisper
from dictation.asr.whisper.tokenizer import WhisperTokenizer
from dictation.errors import ModelError


def dims_from_config(config: dict[str, Any]) -> ModelDimensions:
    """:class:`ModelDimensions` of a transformers ``WhisperConfig`` dict."""
    try:
        return ModelDimensions(
            n_mels=int(config["num_mel_bins"]),
            n_audio_ctx=int(config["max_source_positions"]),
            n_audio_state=int(config["d_model"]),
            n_audio_head=int(config["encoder_attention_heads"]),
            n_audio_layer=int(config["encoder_layers"]),
            n_vocab=int(config["vocab_size"]),
            n_text_ctx=int(config["max_target_positions"]),
            n_text_state=int(config["d_model"]),
            n_text_head=int(config["decoder_attention_heads"]),
            n_text_layer=int(config["decoder_layers"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"config.json is not a Whisper config (bad or missing {exc})") from exc


def _rename(t: dict[str, torch.Tensor], dims: ModelDimensions) -> dict[str, torch.Tensor]:
    """transformers names -> :class:`Whisper` state-dict names."""
    t = {k.removeprefix("model."): v for k, v in t.items()}
    out: dict[str, torch.Tensor] = {}

    def copy(src: str, dst: str, bias: bool = True) -> None:
        out[f"{dst}.weight"] = t[f"{src}.weight"]
        if bias:
            out[f"{dst}.bias"] = t[f"{src}.bias"]

    def attention(src: str, dst: str) -> None:
        copy(f"{src}.q_proj", f"{dst}.query")
        copy(f"{src}.k_proj", f"{dst}.key", bias=False)
        copy(f"{src}.v_proj", f"{dst}.value")
        copy(f"{src}.out_proj", f"{dst}.out")

    def block(src: str, dst: str, cross: bool) -> None:
        attention(f"{src}.self_attn", f"{dst}.attn")
        copy(f"{src}.self_attn_layer_norm", f"{dst}.attn_ln")
        if cross:
            attention(f"{src}.encoder_attn", f"{dst}.cross_attn")
            copy(f"{src}.encoder_attn_layer_norm", f"{dst}.cross_attn_ln")
        copy(f"{src}.fc1", f"{dst}.mlp.0")
        copy(f"{src}.fc2", f"{dst}.mlp.2")
        copy(f"{src}.final_layer_norm", f"{dst}.mlp_ln")

    copy("encoder.conv1", "encoder.conv1")
    copy("encoder.conv2", "encoder.conv2")
    for i in range(dims.n_audio_layer):
        block(f"encoder.layers.{i}", f"encoder.blocks.{i}", cross=False)
    copy("encoder.layer_norm", "encoder.ln_post")
    out["decoder.token_embedding.weight"] = t["decoder.embed_tokens.weight"]
    out["decoder.positional_embedding"] = t["decoder.embed_positions.weight"]
    for i in range(dims.n_text_layer):
        block(f"decoder.layers.{i}", f"decoder.blocks.{i}", cross=True)
    copy("decoder.layer_norm", "decoder.ln")
    return out


def load(path: Path, name: str, language: str = "en") -> LoadedModel:
    """Load a Hugging Face Whisper model directory (safetensors weights)."""
    config = read_json_object(path / "config.json")
    if config.get("model_type") not in (None, "whisper"):
        raise ModelError(f"{path} holds a {config.get('model_type')} model, not Whisper")
    gen_path = path / "generation_config.json"
    generation = read_json_object(gen_path) if gen_path.is_file() else {}
    dims = dims_from_config(config)
    weights_file = path / "model.safetensors"
    if not weights_file.is_file():
        raise ModelError(f"{path}: model.safetensors missing (only safetensors weights are loaded, "
                         "never pickled .bin files)")
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{weights_file} is corrupt ({exc}); delete it and re-download") from exc
    heads = tuple((int(a), int(b)) for a, b in generation.get("alignment_heads") or [])
    model = Whisper(dims, alignment_heads=heads)
    try:
        renamed = _rename(tensors, dims)
    except KeyError as exc:
        raise ModelError(f"{weights_file} is corrupt or incomplete: no tensor {exc}") from exc
    assign(model, renamed, weights_file)
    tokenizer = WhisperTokenizer.from_file(path / "tokenizer.json", dims.n_vocab, language)
    suppress = generation.get("suppress_tokens", config.get("suppress_tokens")) or []
    begin = generation.get("begin_suppress_tokens", config.get("begin_suppress_tokens")) or []
    return LoadedModel(name=name, model=model, tokenizer=tokenizer,
                       suppress_tokens=tuple(int(i) for i in suppress),
                       suppress_at_begin=tuple(int(i) for i in begin))
