"""Checkpoint loaders: the embedded tiny.en loads and matches CTranslate2's own engine; every kind
of broken model directory is refused with a ModelError that names the file at fault."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import JFK_WAV, build_tiny_hf_model, read_wav, real_model_dir
from safetensors.torch import load_file, save_file

from dictation.asr.whisper.features import features_for_window
from dictation.asr.whisper.loaders import LoadedModel, load_model
from dictation.asr.whisper.loaders.ct2 import read_model_bin
from dictation.errors import ModelError

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def real_dir() -> Path:
    return real_model_dir()


@pytest.fixture(scope="module")
def real(real_dir: Path) -> LoadedModel:
    return load_model(real_dir, "ct2")


@pytest.fixture(scope="module")
def real_model_bin(real_dir: Path) -> bytes:
    return (real_dir / "model.bin").read_bytes()


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random transformers Whisper (safetensors) with the real tokenizer.json."""
    pytest.importorskip("transformers")
    directory = tmp_path_factory.mktemp("hf") / "tiny"
    build_tiny_hf_model(directory)
    return directory


def ct2_dir_with(tmp_path: Path, real_dir: Path, model_bin: bytes | None) -> Path:
    """A CTranslate2 model directory: the real config.json and tokenizer.json, and the given
    model.bin bytes (None: a link to the real 75 MB model.bin, not a copy)."""
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(real_dir / name, directory / name)
    if model_bin is None:
        (directory / "model.bin").symlink_to(real_dir / "model.bin")
    else:
        (directory / "model.bin").write_bytes(model_bin)
    return directory


def hf_copy(tmp_path: Path, hf_dir: Path) -> Path:
    directory = tmp_path / "hf"
    shutil.copytree(hf_dir, directory)
    return directory


def model_bin_bytes(spec: str, variables: list[tuple[str, list[int], int, bytes]],
                    aliases: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A CTranslate2 model.bin (version 6) from (name, shape, dtype id, raw bytes) entries."""
    def string(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", 6) + string(spec) + struct.pack("<I", 1)
    out += struct.pack("<I", len(variables))
    for name, shape, dtype_id, raw in variables:
        out += string(name) + bytes([len(shape)]) + b"".join(struct.pack("<I", d) for d in shape)
        out += bytes([dtype_id]) + struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += string(alias) + string(target)
    return out


# --- the embedded model -------------------------------------------------------------------------


def test_embedded_tiny_en_loads_with_its_dimensions(real: LoadedModel, real_dir: Path) -> None:
    dims = real.model.dims
    assert (dims.n_mels, dims.n_audio_ctx, dims.n_text_ctx, dims.n_vocab) == (80, 1500, 448, 51864)
    assert (dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer) == (384, 6, 4)
    assert (dims.n_text_state, dims.n_text_head, dims.n_text_layer) == (384, 6, 4)
    config = json.loads((real_dir / "config.json").read_text())
    assert real.model.alignment_heads == tuple(tuple(h) for h in config["alignment_heads"])
    assert real.suppress_tokens == tuple(config["suppress_ids"])
    assert real.suppress_at_begin == tuple(config["suppress_ids_begin"]) == (220, 50256)
    assert not real.model.training
    assert not any(p.requires_grad for p in real.model.parameters())
    assert real.name == real_dir.name


def test_embedded_tokenizer_is_english_only_with_whisper_special_tokens(
        real: LoadedModel) -> None:
    tok = real.tokenizer
    assert not tok.multilingual
    assert (tok.eot, tok.sot, tok.sot_prev, tok.no_speech, tok.no_timestamps) == (
        50256, 50257, 50360, 50361, 50362)
    assert tok.sot_sequence == (tok.sot,)
    text = " Ask not what your country can do for you."
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode([*tok.encode(" hi"), tok.eot, tok.no_timestamps]) == " hi"


def test_embedded_encoder_equals_ctranslate2_engine(real: LoadedModel, real_dir: Path) -> None:
    """Our numpy reading of the float16 model.bin against faster-whisper's engine (CTranslate2,
    float32 compute) on real speech."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    mel = features_for_window(read_wav(JFK_WAV))[None]
    engine = ctranslate2.models.Whisper(str(real_dir), device="cpu", compute_type="float32",
                                        intra_threads=2)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))
    expected = torch.from_numpy(np.array(engine.encode(features, to_cpu=True)))
    with torch.no_grad():
        ours = real.model.encoder(mel)
    assert ours.shape == expected.shape == (1, 1500, 384)
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-2)


def test_read_model_bin_resolves_the_whisper_spec(real_dir: Path) -> None:
    spec, tensors = read_model_bin(real_dir / "model.bin")
    assert spec == "WhisperSpec"
    assert tensors["decoder/embeddings/weight"].shape == (51864, 384)
    assert tensors["encoder/conv1/weight"].dtype == torch.float16  # stored as float16


# --- common errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ct2", "hf"])
def test_missing_directory(tmp_path: Path, fmt: str) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="model directory not found") as err:
        load_model(missing, fmt)
    assert str(missing) in str(err.value)


def test_unknown_format(real_dir: Path) -> None:
    with pytest.raises(ModelError, match="unknown model format 'onnx'"):
        load_model(real_dir, "onnx")


# --- CTranslate2 errors -------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["model.bin", "config.json", "tokenizer.json"])
def test_ct2_missing_file_is_named(tmp_path: Path, real_dir: Path, missing: str) -> None:
    directory = ct2_dir_with(tmp_path, real_dir, b"")
    (directory / missing).unlink()
    with pytest.raises(ModelError, match=f"{missing} missing") as err:
        load_model(directory, "ct2")
    assert str(directory) in str(err.value)


@pytest.mark.parametrize("end", [0, 3, 100, 10_000, -30_000_000, -1])
def test_ct2_truncated_model_bin(tmp_path: Path, real_dir: Path, real_model_bin: bytes,
                                 end: int) -> None:
    """The real tiny.en model.bin cut short anywhere (``model_bin[:end]``): in the header, in a
    tensor name, in the middle of the tensor data, one byte before the end."""
    directory = ct2_dir_with(tmp_path, real_dir, real_model_bin[:end])
    try:
        with pytest.raises(ModelError, match="truncated or corrupt") as err:
            load_model(directory, "ct2")
        assert str(directory / "model.bin") in str(err.value)
    finally:
        (directory / "model.bin").unlink()  # up to 75 MB; pytest keeps old tmp_paths


def test_ct2_garbage_model_bin(tmp_path: Path, real_dir: Path) -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    directory = ct2_dir_with(tmp_path, real_dir, garbage)
    with pytest.raises(ModelError, match="is not a CTranslate2 model") as err:
        load_model(directory, "ct2")
    assert str(directory / "model.bin") in str(err.value)


def test_ct2_model_bin_of_another_spec(tmp_path: Path, real_dir: Path,
                                       real_model_bin: bytes) -> None:
    """A CTranslate2 translation model (TransformerSpec) is not a Whisper model."""
    (name_len,) = struct.unpack("<H", real_model_bin[4:6])
    assert real_model_bin[6: 6 + name_len] == b"WhisperSpec\0"
    other = b"TransformerSpec\0"
    patched = (real_model_bin[:4] + struct.pack("<H", len(other)) + other
               + real_model_bin[6 + name_len:])
    directory = ct2_dir_with(tmp_path, real_dir, patched)
    try:
        with pytest.raises(ModelError, match="holds a TransformerSpec, not a Whisper model") as err:
            load_model(directory, "ct2")
        assert str(directory / "model.bin") in str(err.value)
    finally:
        (directory / "model.bin").unlink()


def test_ct2_model_bin_without_whisper_tensors(tmp_path: Path, real_dir: Path) -> None:
    data = model_bin_bytes("WhisperSpec", [("x", [3], 0, bytes(12))])
    directory = ct2_dir_with(tmp_path, real_dir, data)
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model .*no tensor") as err:
        load_model(directory, "ct2")
    assert str(directory / "model.bin") in str(err.value)


def test_ct2_config_json_invalid(tmp_path: Path, real_dir: Path) -> None:
    directory = ct2_dir_with(tmp_path, real_dir, None)
    (directory / "config.json").write_text('{"alignment_heads": [[1, 0],', encoding="utf-8")
    with pytest.raises(ModelError, match="is not valid JSON") as err:
        load_model(directory, "ct2")
    assert str(directory / "config.json") in str(err.value)


def test_ct2_config_json_not_an_object(tmp_path: Path, real_dir: Path) -> None:
    """Valid JSON that is not an object (e.g. a list) must be a ModelError naming the file.
    BUG: ct2.load calls config.get() on the list -> AttributeError."""
    directory = ct2_dir_with(tmp_path, real_dir, None)
    (directory / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(ModelError) as err:
        load_model(directory, "ct2")
    assert "config.json" in str(err.value)


def test_ct2_config_json_with_null_lists_loads(tmp_path: Path, real_dir: Path) -> None:
    """ctranslate2's converter writes ``"suppress_ids": null`` for a transformers model whose
    config has no suppress_tokens; such a model must load (nothing suppressed).
    BUG: ct2.load iterates config.get("suppress_ids", []) == None -> TypeError."""
    directory = ct2_dir_with(tmp_path, real_dir, None)
    config = json.loads((directory / "config.json").read_text())
    config.update(suppress_ids=None, suppress_ids_begin=None, alignment_heads=None)
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = load_model(directory, "ct2")
    assert loaded.suppress_tokens == () and loaded.suppress_at_begin == ()
    assert loaded.model.alignment_heads  # Whisper's default heads


def test_ct2_unknown_dtype(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(model_bin_bytes("WhisperSpec", [("x", [3], 9, bytes(12))]))
    with pytest.raises(ModelError, match="tensor x has unknown dtype id 9") as err:
        read_model_bin(path)
    assert str(path) in str(err.value)


def test_ct2_tensor_size_not_matching_shape(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(model_bin_bytes("WhisperSpec", [("x", [2], 0, bytes(12))]))
    with pytest.raises(ModelError, match="corrupt: tensor x") as err:
        read_model_bin(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("dtype_id", "n_bytes"), [(0, 11), (4, 5), (5, 5), (5, 0)])
def test_ct2_tensor_bytes_not_a_whole_number_of_values(tmp_path: Path, dtype_id: int,
                                                       n_bytes: int) -> None:
    """A corrupt byte count (not a multiple of the value size, or an empty bfloat16 tensor)
    must be a ModelError naming the file. BUG: np.frombuffer / torch.frombuffer raise a bare
    ValueError ("buffer size must be a multiple of element size")."""
    path = tmp_path / "model.bin"
    path.write_bytes(model_bin_bytes("WhisperSpec", [("x", [3], dtype_id, bytes(n_bytes))]))
    with pytest.raises(ModelError, match="corrupt") as err:
        read_model_bin(path)
    assert str(path) in str(err.value)


def test_ct2_alias_to_missing_tensor(tmp_path: Path) -> None:
    """BUG: an alias whose target does not exist raises a bare KeyError."""
    path = tmp_path / "model.bin"
    path.write_bytes(model_bin_bytes("WhisperSpec", [("x", [3], 0, bytes(12))],
                                     aliases=(("y", "z"),)))
    with pytest.raises(ModelError, match="corrupt") as err:
        read_model_bin(path)
    assert str(path) in str(err.value)


def test_ct2_bad_tensor_name(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    name = b"\xff\xfe\0"
    data = (struct.pack("<I", 6) + struct.pack("<H", 12) + b"WhisperSpec\0" + struct.pack("<I", 1)
            + struct.pack("<I", 1) + struct.pack("<H", len(name)) + name)
    path.write_bytes(data)
    with pytest.raises(ModelError, match="bad tensor name") as err:
        read_model_bin(path)
    assert str(path) in str(err.value)


def test_ct2_corrupt_tokenizer(tmp_path: Path, real_dir: Path) -> None:
    directory = ct2_dir_with(tmp_path, real_dir, None)
    (directory / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot read tokenizer") as err:
        load_model(directory, "ct2")
    assert str(directory / "tokenizer.json") in str(err.value)


# --- Hugging Face (safetensors) errors ----------------------------------------------------------


def test_hf_tiny_model_loads(hf_dir: Path) -> None:
    loaded = load_model(hf_dir, "hf", name="tiny-random")
    assert loaded.name == "tiny-random"
    assert loaded.model.dims.n_audio_state == 64


def test_hf_without_safetensors_refuses_pickle(tmp_path: Path, hf_dir: Path) -> None:
    """Only pytorch_model.bin (a pickle): refused, and the pickle is never unpickled (the
    file here would create a marker file if it were)."""
    directory = hf_copy(tmp_path, hf_dir)
    (directory / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[()]]:
            return marker.touch, ()

    (directory / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelError, match="model.safetensors missing.*never pickled") as err:
        load_model(directory, "hf")
    assert str(directory) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_hf_corrupt_safetensors(tmp_path: Path, hf_dir: Path, damage: str) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    replacement = {"garbage": os.urandom(2048), "truncated": data[: len(data) // 2],
                   "empty": b""}[damage]
    weights.write_bytes(replacement)
    with pytest.raises(ModelError, match="is corrupt") as err:
        load_model(directory, "hf")
    assert str(weights) in str(err.value)


def test_hf_safetensors_missing_a_tensor(tmp_path: Path, hf_dir: Path) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    weights = directory / "model.safetensors"
    tensors = load_file(str(weights))
    del tensors["model.decoder.layer_norm.weight"]
    save_file(tensors, str(weights))
    with pytest.raises(ModelError, match="no tensor 'decoder.layer_norm.weight'") as err:
        load_model(directory, "hf")
    assert str(weights) in str(err.value)


def test_hf_weights_not_matching_config(tmp_path: Path, hf_dir: Path) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    config = json.loads((directory / "config.json").read_text())
    config["vocab_size"] = 51865
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelError, match="does not match its config.json") as err:
        load_model(directory, "hf")
    assert str(directory / "model.safetensors") in str(err.value)


@pytest.mark.parametrize("name", ["config.json", "generation_config.json"])
def test_hf_invalid_json(tmp_path: Path, hf_dir: Path, name: str) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    (directory / name).write_text("{nope", encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON") as err:
        load_model(directory, "hf")
    assert str(directory / name) in str(err.value)


def test_hf_missing_config(tmp_path: Path, hf_dir: Path) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    (directory / "config.json").unlink()
    with pytest.raises(ModelError) as err:
        load_model(directory, "hf")
    assert str(directory / "config.json") in str(err.value)


def test_hf_config_of_another_model_type(tmp_path: Path, hf_dir: Path) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "bert"
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelError, match="holds a bert model, not Whisper"):
        load_model(directory, "hf")


def test_hf_config_without_a_dimension(tmp_path: Path, hf_dir: Path) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    config = json.loads((directory / "config.json").read_text())
    del config["d_model"]
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelError, match="config.json is not a Whisper config.*d_model"):
        load_model(directory, "hf")


def test_hf_missing_tokenizer(tmp_path: Path, hf_dir: Path) -> None:
    directory = hf_copy(tmp_path, hf_dir)
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="tokenizer file missing") as err:
        load_model(directory, "hf")
    assert str(directory / "tokenizer.json") in str(err.value)
