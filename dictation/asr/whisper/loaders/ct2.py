"""CTranslate2 Whisper checkpoints: ``model.bin`` + ``config.json`` + ``tokenizer.json``.

``model.bin`` (binary version 5/6) is a flat list of named tensors, read here with numpy from the
raw bytes (no pickle, no ctranslate2 import):

    u32 version | str spec_name | u32 revision | u32 n_vars
    n_vars x (str name | u8 rank | rank x u32 dim | u8 dtype | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is a u16 length (counting a trailing NUL) followed by UTF-8 bytes. int8 weights come
with a float32 ``<name>_scale`` per output row (value = int8 / scale).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import torch

from dictation.asr.whisper.loaders import LoadedModel, assign
from dictation.asr.whisper.model import ModelDimensions, Whisper
from dictation.asr.whisper.tokenizer import WhisperTokenizer
from dictation.errors import ModelError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


class _Reader:
    def __init__(self, data: bytes, source: Path) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelError(f"{self.source} is truncated or corrupt (needs {n} bytes at offset "
                             f"{self.pos}, file has {len(self.data)}); delete it and re-download "
                             "or reinstall the model")
        out = self.data[self.pos: self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def string(self) -> str:
        raw = self.take(self.u16())
        try:
            return raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelError(f"{self.source} is corrupt (bad tensor name at offset {self.pos})"
                             ) from exc


def read_model_bin(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """All tensors of a CTranslate2 ``model.bin`` (aliases resolved), as float32/ints."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from exc
    r = _Reader(data, path)
    version = r.u32()
    if version not in (5, 6):
        raise ModelError(f"{path} is not a CTranslate2 model (binary version {version}); "
                         "delete it and re-download or reinstall the model")
    spec = r.string()
    r.u32()  # spec revision
    tensors: dict[str, torch.Tensor] = {}
    for _ in range(r.u32()):
        name = r.string()
        shape = [r.u32() for _ in range(r.u8())]
        dtype_id = r.u8()
        raw = r.take(r.u32())
        if dtype_id != _BFLOAT16 and dtype_id not in _DTYPES:
            raise ModelError(f"{path}: tensor {name} has unknown dtype id {dtype_id}")
        itemsize = 2 if dtype_id == _BFLOAT16 else np.dtype(_DTYPES[dtype_id]).itemsize
        if len(raw) != int(np.prod(shape)) * itemsize:
            raise ModelError(f"{path} is corrupt: tensor {name} has {len(raw)} bytes for "
                             f"shape {shape}")
        if dtype_id == _BFLOAT16:
            arr = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(
                torch.bfloat16).float()
        else:
            arr = torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[dtype_id]).copy())
        tensors[name] = arr.reshape(shape)
    for _ in range(r.u32() if r.pos < len(data) else 0):
        alias, target = r.string(), r.string()
        if target not in tensors:
            raise ModelError(f"{path} is corrupt: alias {alias} names a missing tensor {target}")
        tensors[alias] = tensors[target]
    for name in [n for n in tensors if n.endswith("_scale") and n[: -len("_scale")] in tensors]:
        weight = name[: -len("_scale")]
        if tensors[weight].dtype == torch.int8:
            scale = tensors[name].float()
            rows = scale.reshape(-1, *[1] * (tensors[weight].ndim - 1))
            tensors[weight] = tensors[weight].float() / rows
    return spec, tensors


def _dims(t: dict[str, torch.Tensor], source: Path) -> ModelDimensions:
    def n_layers(prefix: str) -> int:
        return len({k.split("/")[1] for k in t if re.match(rf"{prefix}/layer_\d+/", k)})

    try:
        return ModelDimensions(
            n_mels=t["encoder/conv1/weight"].shape[1],
            n_audio_ctx=t["encoder/position_encodings/encodings"].shape[0],
            n_audio_state=t["encoder/conv1/weight"].shape[0],
            n_audio_head=int(t["encoder/num_heads"].item()),
            n_audio_layer=n_layers("encoder"),
            n_vocab=t["decoder/embeddings/weight"].shape[0],
            n_text_ctx=t["decoder/position_encodings/encodings"].shape[0],
            n_text_state=t["decoder/embeddings/weight"].shape[1],
            n_text_head=int(t["decoder/num_heads"].item()),
            n_text_layer=n_layers("decoder"),
        )
    except KeyError as exc:
        raise ModelError(f"{source} is not a CTranslate2 Whisper model (no tensor {exc})") from exc


def _rename(t: dict[str, torch.Tensor], dims: ModelDimensions) -> dict[str, torch.Tensor]:
    """CTranslate2 names -> :class:`Whisper` state-dict names (splitting fused projections)."""
    out: dict[str, torch.Tensor] = {}

    def ln(src: str, dst: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = t[f"{src}/gamma"], t[f"{src}/beta"]

    def linear(src: str, dst: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = t[f"{src}/weight"], t[f"{src}/bias"]

    def split(src: str, dsts: list[str]) -> None:
        weights = t[f"{src}/weight"].chunk(len(dsts))
        biases = t[f"{src}/bias"].chunk(len(dsts))
        for dst, w, b in zip(dsts, weights, biases, strict=True):
            out[f"{dst}.weight"] = w
            if not dst.endswith(".key"):  # Whisper's key projections have no bias
                out[f"{dst}.bias"] = b

    def block(src: str, dst: str, cross: bool) -> None:
        sa = f"{src}/self_attention"
        ln(f"{sa}/layer_norm", f"{dst}.attn_ln")
        split(f"{sa}/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        linear(f"{sa}/linear_1", f"{dst}.attn.out")
        if cross:
            ca = f"{src}/attention"
            ln(f"{ca}/layer_norm", f"{dst}.cross_attn_ln")
            linear(f"{ca}/linear_0", f"{dst}.cross_attn.query")
            split(f"{ca}/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
            linear(f"{ca}/linear_2", f"{dst}.cross_attn.out")
        ln(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")

    for name in ("conv1", "conv2"):
        linear(f"encoder/{name}", f"encoder.{name}")
    for i in range(dims.n_audio_layer):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    ln("encoder/layer_norm", "encoder.ln_post")
    out["decoder.token_embedding.weight"] = t["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = t["decoder/position_encodings/encodings"]
    for i in range(dims.n_text_layer):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    ln("decoder/layer_norm", "decoder.ln")
    return out


def load(path: Path, name: str, language: str = "en") -> LoadedModel:
    """Load a CTranslate2 Whisper model directory."""
    model_bin, config_json = path / "model.bin", path / "config.json"
    for required in (model_bin, config_json, path / "tokenizer.json"):
        if not required.is_file():
            raise ModelError(f"{path} is not a CTranslate2 Whisper model: {required.name} missing")
    try:
        config = json.loads(config_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_json} is not valid JSON ({exc}); re-download the model") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{config_json} is not a JSON object; re-download the model")
    spec, tensors = read_model_bin(model_bin)
    if spec != "WhisperSpec":
        raise ModelError(f"{model_bin} holds a {spec}, not a Whisper model")
    dims = _dims(tensors, model_bin)
    heads = tuple((int(layer), int(head)) for layer, head in (config.get("alignment_heads") or []))
    model = Whisper(dims, alignment_heads=heads)
    try:
        renamed = _rename(tensors, dims)
    except KeyError as exc:
        raise ModelError(f"{model_bin} is corrupt or incomplete: no tensor {exc}") from exc
    assign(model, renamed, model_bin)
    tokenizer = WhisperTokenizer.from_file(path / "tokenizer.json", dims.n_vocab, language)
    return LoadedModel(
        name=name, model=model, tokenizer=tokenizer,
        suppress_tokens=tuple(int(i) for i in (config.get("suppress_ids") or [])),
        suppress_at_begin=tuple(int(i) for i in (config.get("suppress_ids_begin") or [])),
    )
