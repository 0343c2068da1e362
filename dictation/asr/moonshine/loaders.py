"""Checkpoint loaders for Moonshine v1: each turns one on-disk layout into a
:class:`LoadedMoonshine`.

- ``"moonshine-ort"``: the ``moonshine-cpp`` package's folder (``encoder_model.ort``,
  ``decoder_model_merged.ort``, ``tokenizer.bin``). The ORT flatbuffers are read with
  :mod:`dictation.asr.moonshine.ort_format`, never run. Weights are int8 with a per-tensor
  float scale and float offset, consumed as ``Cast -> Mul(scale) -> Add(offset) -> MatMul /
  Conv / Gather``; they are dequantized exactly as onnxruntime does (float32
  ``float(q) * scale + offset``). Many carry export names (``onnx::MatMul_1947_quantized``):
  the node that consumes each one (``/layers.0/self_attn/q_proj/MatMul``) says which parameter
  it is.
- ``"moonshine-hf"``: the Hugging Face layout (``config.json``, ``model.safetensors``,
  ``tokenizer.json``), as in ``UsefulSensors/moonshine-tiny`` and ``moonshine-base``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dictation.asr.int8 import quantize_int8
from dictation.asr.model_files import read_json_object
from dictation.asr.moonshine.model import MOONSHINE_BASE, Moonshine, MoonshineDimensions
from dictation.asr.moonshine.ort_format import OrtGraph, OrtNode, load_ort_graph
from dictation.asr.moonshine.tokenizer import MoonshineTokenizer
from dictation.errors import ModelError

ORT_ENCODER_FILE = "encoder_model.ort"
ORT_DECODER_FILE = "decoder_model_merged.ort"
ORT_TOKENIZER_FILE = "tokenizer.bin"

FORMATS = ("moonshine-ort", "moonshine-hf")


@dataclass(frozen=True)
class LoadedMoonshine:
    """A ready-to-run Moonshine model (shared, read-only) and its tokenizer."""

    name: str
    model: Moonshine
    tokenizer: MoonshineTokenizer

    @property
    def dims(self) -> MoonshineDimensions:
        return self.model.dims


def load_moonshine(path: Path, fmt: str, name: str | None = None,
                   compute: str = "float32") -> LoadedMoonshine:
    """Load a model folder in format ``"moonshine-ort"`` or ``"moonshine-hf"``.

    compute: ``"float32"``, or ``"int8"`` to run the Linear layers with dynamic int8 weights
    (torch's quantized kernels; faster on CPU, a little less exact)."""
    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    loaders: dict[str, Callable[[Path], tuple[MoonshineDimensions, dict[str, torch.Tensor],
                                              MoonshineTokenizer]]] = {
        "moonshine-ort": read_ort_checkpoint, "moonshine-hf": read_hf_checkpoint}
    loader = loaders.get(fmt)
    if loader is None:
        raise ModelError(f"unknown Moonshine format {fmt!r}; expected one of {', '.join(FORMATS)}")
    dims, tensors, tokenizer = loader(path)
    with torch.device("meta"):  # no memory, no random init: the checkpoint's tensors are used
        model = Moonshine(dims)
    assign(model, tensors, path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if compute == "int8":
        use_int8_linear(model)
    elif compute != "float32":
        raise ModelError(f"unknown compute {compute!r}; expected 'float32' or 'int8'")
    return LoadedMoonshine(name=name or path.name, model=model, tokenizer=tokenizer)


def use_int8_linear(model: Moonshine) -> None:
    """Run every nn.Linear and the tied output projection with int8 weights, in place
    (:class:`~dictation.asr.int8.Int8Linear`: one scale per output row, activations quantized
    at each call). Base-en streamed on dev, one thread: RTF 0.233 at float32's WER (2.89 %);
    torch's ``quantize_dynamic`` (one scale per tensor) was as fast but gave 4.02 %
    (reports/bench-stream-moonshine-base-en*.md)."""
    quantize_int8(model)
    model.decoder.use_int8_logits()


def assign(model: Moonshine, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Make ``tensors`` (named like ``model.state_dict()``, float32) the parameters of
    ``model`` (built on the meta device): every parameter present, with the right shape; an
    unknown tensor is an error too. The tensors are used as they are, not copied."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelError(f"{source}: the checkpoint does not match Moonshine v1 "
                         f"({len(missing)} tensors missing, e.g. {missing[:2]}; {len(unexpected)} "
                         f"unexpected, e.g. {unexpected[:2]}).")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ModelError(f"{source}: tensor {key} has shape {tuple(value.shape)}, expected "
                             f"{tuple(expected[key].shape)}; the checkpoint does not match its "
                             "configuration.")
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True,
                          assign=True)
    model.materialize_buffers()


# --------------------------------------------------------------------------- Hugging Face


def dims_from_hf_config(config: dict[str, Any]) -> MoonshineDimensions:
    """Moonshine v1 dimensions of a ``config.json`` (model_type "moonshine")."""
    if config.get("model_type") not in (None, "moonshine"):
        raise ModelError(f"config.json describes a {config.get('model_type')!r} model, not "
                         "Moonshine v1.")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    factor = float(rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 0.9)))
    theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    d_model = int(config["hidden_size"])
    enc_heads = int(config["encoder_num_attention_heads"])
    dec_heads = int(config["decoder_num_attention_heads"])
    if not config.get("tie_word_embeddings", True):
        raise ModelError("config.json: untied output projections are not supported.")
    eos = config.get("eos_token_id", 2)
    return MoonshineDimensions(
        d_model=d_model,
        d_ff=int(config["intermediate_size"]),
        n_encoder_layers=int(config["encoder_num_hidden_layers"]),
        n_decoder_layers=int(config["decoder_num_hidden_layers"]),
        n_encoder_heads=enc_heads,
        n_decoder_heads=dec_heads,
        n_encoder_kv_heads=int(config.get("encoder_num_key_value_heads") or enc_heads),
        n_decoder_kv_heads=int(config.get("decoder_num_key_value_heads") or dec_heads),
        # transformers sizes both rotary embeddings from the decoder's head width
        rotary_dim=int(d_model // dec_heads * factor),
        rope_theta=theta,
        n_vocab=int(config.get("vocab_size", 32768)),
        max_decoder_positions=int(config.get("max_position_embeddings", 194)),
        attention_bias=bool(config.get("attention_bias", False)),
        bos_token_id=int(config.get("decoder_start_token_id", config.get("bos_token_id", 1))),
        eos_token_id=int(eos[0] if isinstance(eos, list) else eos),
    )


def read_hf_checkpoint(
        path: Path) -> tuple[MoonshineDimensions, dict[str, torch.Tensor], MoonshineTokenizer]:
    """Dimensions, tensors (our names) and tokenizer of a Hugging Face Moonshine folder."""
    from safetensors.torch import load_file

    dims = dims_from_hf_config(read_json_object(path / "config.json"))
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{path} has no *.safetensors weights.")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            raw = load_file(str(file))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelError(f"Cannot read {file}: {exc}") from exc
        for key, value in raw.items():
            if key == "proj_out.weight":
                continue  # tied to model.decoder.embed_tokens.weight
            tensors[key.removeprefix("model.")] = value
    return dims, tensors, MoonshineTokenizer.from_tokenizer_json(path / "tokenizer.json")


# --------------------------------------------------------------------------- ORT (moonshine-cpp)


@dataclass(frozen=True)
class QuantizedWeight:
    """An int8 weight as the ORT graph stores it: value = float(q) * scale + offset."""

    q: np.ndarray
    scale: np.ndarray
    offset: np.ndarray

    def dequantize(self) -> np.ndarray:
        out = self.q.astype(np.float32) * self.scale.astype(np.float32)
        return out + self.offset.astype(np.float32)


def fold_constants(graph: OrtGraph) -> dict[str, np.ndarray]:
    """Every constant tensor of the graph and its sub-graphs, plus the outputs of the
    dequantization chains (Cast of an int8 constant to float32, then Mul and Add with float
    constants), computed as onnxruntime would (float32)."""
    initializers = graph.all_initializers()
    values: dict[str, np.ndarray] = {name: t.array for name, t in initializers.items()}
    walk = graph.walk()
    consumers: dict[str, int] = {}
    for _, node in walk:
        for name in node.inputs:
            consumers[name] = consumers.get(name, 0) + 1
    for _, node in walk:
        if not node.inputs or not all(i in values for i in node.inputs):
            continue
        args = [values[i] for i in node.inputs]
        if node.op_type == "Cast" and args[0].dtype == np.int8:
            values[node.outputs[0]] = args[0].astype(np.float32)
        elif node.op_type in ("Mul", "Add") and all(a.dtype == np.float32 for a in args):
            first = node.inputs[0]
            # an intermediate only this node reads is updated in place (saves memory and time)
            reuse = (first not in initializers and consumers.get(first) == 1
                     and args[0].shape == np.broadcast_shapes(args[0].shape, args[1].shape))
            out = values.pop(first) if reuse else args[0].copy()
            if node.op_type == "Mul":
                out *= args[1]
            else:
                out += args[1]
            values[node.outputs[0]] = out
    return values


_EXPORT_ALIASES = {"o_proj": ("o_proj", "dense"), "fc1": ("fc1", "up_proj"),
                   "fc2": ("fc2", "down_proj")}


def _node_paths(module_path: str, prefix: str) -> list[str]:
    """Export node-name stems of a module: ``layers.0.self_attn.o_proj`` ->
    ``/layers.0/self_attn/dense`` (and the other spellings the exporters used)."""
    parts = module_path.split(".")
    stems = [""]
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "layers" and i + 1 < len(parts):  # "layers.0" is one node-name component
            part = f"layers.{parts[i + 1]}"
            i += 1
        spellings = _EXPORT_ALIASES.get(part, (part,))
        stems = [f"{stem}/{s}" for stem in stems for s in spellings]
        i += 1
    return [prefix + stem for stem in stems]


def map_ort_parameters(model: Moonshine, part: str, graph: OrtGraph,
                       values: dict[str, np.ndarray], prefix: str,
                       where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors for every parameter of ``model.<part>`` (our names, float32), found through the
    graph node that consumes them; also param -> the graph's tensor name (for diagnostics).

    Each parameter comes from the first node (depth first: in the merged decoder, the branch
    without past keys/values, which computes every weight) of the right name and op."""
    nodes: dict[str, OrtNode] = {}
    for _, node in graph.walk():
        nodes.setdefault(node.name, node)
    module = model.get_submodule(part)
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    tensors: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    for key, expected in shapes.items():
        module_path, _, kind = key.rpartition(".")
        sub = module.get_submodule(module_path)
        if isinstance(sub, nn.Linear):
            op, index, transpose = ("MatMul", 1, True) if kind == "weight" else ("Add", None, False)
        elif isinstance(sub, nn.Conv1d):
            op, index, transpose = "Conv", 1 if kind == "weight" else 2, False
        elif isinstance(sub, nn.Embedding):
            op, index, transpose = "Gather", 0, False
        elif isinstance(sub, nn.LayerNorm | nn.GroupNorm):
            op, index, transpose = ("Mul" if kind == "weight" else "Add"), None, False
        else:
            raise ModelError(f"{where}: no rule maps parameter {part}.{key}")
        found = None
        for stem in _node_paths(module_path, prefix):
            consumer = nodes.get(f"{stem}/{op}")
            if consumer is None:
                continue
            if index is not None:
                candidates = [consumer.inputs[index]] if len(consumer.inputs) > index else []
            else:
                candidates = [i for i in consumer.inputs if i in values]
            candidates = [c for c in candidates if c in values]
            if len(candidates) == 1:
                found = candidates[0]
                break
        if found is None:
            raise ModelError(f"{where}: found no constant for {part}.{key} (looked for nodes "
                             f"{', '.join(s + '/' + op for s in _node_paths(module_path, prefix))}"
                             "); the file is not a Moonshine v1 export this loader knows.")
        array = values.pop(found)  # freed once copied (transposed) into the tensor
        if transpose:
            array = array.T
        if array.shape != expected and array.size == int(np.prod(expected)):
            array = array.reshape(expected)  # GroupNorm's affine is stored as (channels, 1)
        tensors[f"{part}.{key}"] = torch.from_numpy(np.require(array, np.float32,
                                                               ["C_CONTIGUOUS", "WRITEABLE"]))
        sources[f"{part}.{key}"] = found
    return tensors, sources


def ort_rotary_dim(graph: OrtGraph, values: dict[str, np.ndarray], prefix: str) -> int | None:
    """Rotary width the export was traced with: 2 x the length of its inverse-frequency constant
    (the constant input of ``<prefix>/rotary_emb/MatMul``)."""
    for _, node in graph.walk():
        if node.name == f"{prefix}/rotary_emb/MatMul" and node.op_type == "MatMul":
            for name in node.inputs:
                if name in values:
                    return 2 * int(values[name].size)
    return None


def read_ort_checkpoint(
        path: Path) -> tuple[MoonshineDimensions, dict[str, torch.Tensor], MoonshineTokenizer]:
    """Dimensions, dequantized tensors (our names) and tokenizer of a moonshine-cpp folder."""
    encoder = load_ort_graph(path / ORT_ENCODER_FILE)
    decoder = load_ort_graph(path / ORT_DECODER_FILE)
    enc_values = fold_constants(encoder)
    dec_values = fold_constants(decoder)
    dims = ort_dimensions(enc_values, dec_values, encoder, decoder, path)
    with torch.device("meta"):  # names, shapes and module types only
        skeleton = Moonshine(dims)
    tensors, _ = map_ort_parameters(skeleton, "encoder", encoder, enc_values, "",
                                    str(path / ORT_ENCODER_FILE))
    dec_tensors, _ = map_ort_parameters(skeleton, "decoder", decoder, dec_values,
                                        "/model/decoder", str(path / ORT_DECODER_FILE))
    tensors.update(dec_tensors)
    tokenizer = MoonshineTokenizer.from_tokenizer_bin(path / ORT_TOKENIZER_FILE)
    return dims, tensors, tokenizer


def ort_dimensions(enc_values: dict[str, np.ndarray], dec_values: dict[str, np.ndarray],
                   encoder: OrtGraph, decoder: OrtGraph, path: Path) -> MoonshineDimensions:
    """Dimensions of an ORT export, from its tensors' shapes (heads: Moonshine's 8)."""
    enc_nodes = {node.name: node for _, node in encoder.walk()}
    dec_nodes = {node.name: node for _, node in decoder.walk()}

    def weight_shape(nodes: dict[str, OrtNode], values: dict[str, np.ndarray],
                     name: str, index: int) -> tuple[int, ...]:
        node = nodes.get(name)
        if node is None or len(node.inputs) <= index or node.inputs[index] not in values:
            raise ModelError(f"{path}: no node {name} with a constant input; not a Moonshine "
                             "v1 export.")
        return tuple(values[node.inputs[index]].shape)

    d_model = weight_shape(enc_nodes, enc_values, "/conv1/Conv", 1)[0]
    d_ff = weight_shape(enc_nodes, enc_values, "/layers.0/mlp/fc1/MatMul", 1)[1]
    n_vocab = weight_shape(dec_nodes, dec_values, "/model/decoder/embed_tokens/Gather", 0)[0]
    n_enc = len({n.split("/")[1] for n in enc_nodes if n.startswith("/layers.")})
    n_dec = len({n.split("/")[3] for n in dec_nodes if n.startswith("/model/decoder/layers.")})
    heads = MOONSHINE_BASE.n_decoder_heads
    dims = MoonshineDimensions(d_model=d_model, d_ff=d_ff, n_encoder_layers=n_enc,
                               n_decoder_layers=n_dec, n_encoder_heads=heads,
                               n_decoder_heads=heads, n_encoder_kv_heads=heads,
                               n_decoder_kv_heads=heads, n_vocab=n_vocab)
    rotary = ort_rotary_dim(decoder, dec_values, "/model/decoder")
    if rotary is not None and rotary != dims.rotary_dim:
        dims = replace(dims, rotary_dim=rotary)
    return dims
