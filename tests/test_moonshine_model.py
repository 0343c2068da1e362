"""Moonshine v1 in torch against transformers' MoonshineForConditionalGeneration.

- Tiny random configs saved in the Hugging Face layout (config.json, model.safetensors,
  tokenizer.json): our loader + model give transformers' logits (teacher-forced and step by
  step with the per-stream cache), including an odd rotary width.
- The real base-en of moonshine-cpp (ORT files): the reader finds every one of the 61,513,920
  parameters, transformers loads exactly that state dict (strict), and both give the same
  logits; the encoder and the first decoder step equal onnxruntime running the package's own
  graph (the reference for the name -> parameter mapping; onnxruntime is a test dependency).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dictation.asr.moonshine.loaders import (
    ORT_DECODER_FILE,
    ORT_ENCODER_FILE,
    load_moonshine,
    read_ort_checkpoint,
)
from dictation.asr.moonshine.model import Moonshine, encoder_frames
from dictation.asr.moonshine.tokenizer import tokenizer_from_pieces
from dictation.audio.files import load_audio
from dictation.errors import ModelError

pytestmark = pytest.mark.usefixtures("single_torch_thread")

transformers = pytest.importorskip("transformers")

DEV_WAV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "wav"


def moonshine_cpp_folder() -> Path | None:
    """base-en of the installed moonshine-cpp package, found without importing it (importing
    would load its native libraries, which the project never uses)."""
    spec = importlib.util.find_spec("moonshine_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "base-en"
    return folder if (folder / ORT_ENCODER_FILE).is_file() else None


def tiny_config(**overrides: Any) -> Any:
    values: dict[str, Any] = dict(
        vocab_size=300, hidden_size=64, intermediate_size=96, encoder_num_hidden_layers=2,
        decoder_num_hidden_layers=2, encoder_num_attention_heads=4,
        decoder_num_attention_heads=4, max_position_embeddings=64, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1,
    )
    values.update(overrides)
    return transformers.MoonshineConfig(**values)


def save_hf_folder(folder: Path, config: Any, seed: int) -> Any:
    """A random transformers Moonshine saved in the hub's layout; returns the model."""
    torch.manual_seed(seed)
    reference = transformers.MoonshineForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-trivial norms so a swapped weight shows
        for name, p in reference.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    reference.save_pretrained(folder, safe_serialization=True)
    pieces = [b"<unk>", b"<s>", b"</s>", *[bytes([b]) for b in range(256)],
              *[f"\u2581w{i}".encode() for i in range(config.vocab_size - 259)]]
    tokenizer_from_pieces(pieces).save(str(folder / "tokenizer.json"))
    return reference


CASES = {
    "mha": dict(),
    # head width 16 x 0.62 -> 9 rotary dims: an odd width (5 frequencies), as transformers does
    # it. (Grouped-query attention is not compared: transformers 5.23's Moonshine reshapes the
    # queries with the key/value head count, and no Moonshine checkpoint uses it.)
    "odd-rotary": dict(partial_rotary_factor=0.62),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hf_layout_logits_equal_transformers(tmp_path: Path, case: str) -> None:
    config = tiny_config(**CASES[case])
    reference = save_hf_folder(tmp_path, config, seed=len(case))
    loaded = load_moonshine(tmp_path, "moonshine-hf")
    torch.manual_seed(1)
    audio = 0.1 * torch.randn(2, 16000 + 123)
    tokens = torch.randint(3, config.vocab_size, (2, 7))
    tokens[:, 0] = 1
    with torch.no_grad():
        expected = reference(input_values=audio, decoder_input_ids=tokens).logits
        ours = loaded.model(audio, tokens)
        encoder_out = loaded.model.encoder(audio)
    assert encoder_out.shape[1] == encoder_frames(audio.shape[1])
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)

    # Step by step with the per-stream cache: a forced prefix of 3, then one token at a time.
    with torch.no_grad():
        cache = loaded.model.decoder.new_cache(encoder_out)
        steps = [loaded.model.decoder(tokens[:, :3], cache)]
        for i in range(3, tokens.shape[1]):
            steps.append(loaded.model.decoder(tokens[:, i:i + 1], cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), expected, atol=1e-4, rtol=1e-4)
    assert cache.n_tokens == tokens.shape[1]


def test_hf_layout_rejects_a_mismatched_checkpoint(tmp_path: Path) -> None:
    save_hf_folder(tmp_path, tiny_config(), seed=3)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace('"intermediate_size": 96',
                                                         '"intermediate_size": 80'))
    with pytest.raises(ModelError, match="shape"):
        load_moonshine(tmp_path, "moonshine-hf")


# --------------------------------------------------------------------------- real base-en


@pytest.fixture(scope="module")
def base_en() -> tuple[Path, Any, dict[str, torch.Tensor]]:
    folder = moonshine_cpp_folder()
    if folder is None:
        pytest.skip("moonshine-cpp 0.1.4 (the moonshine extra) is not installed")
    dims, tensors, _ = read_ort_checkpoint(folder)
    return folder, dims, tensors


@pytest.mark.slow
def test_ort_base_en_maps_every_parameter_and_equals_transformers(
        base_en: tuple[Path, Any, dict[str, torch.Tensor]]) -> None:
    folder, dims, tensors = base_en
    assert sum(t.numel() for t in tensors.values()) == 61_513_920
    ours = Moonshine(dims).eval()
    ours.load_state_dict(tensors, strict=True)
    config = transformers.MoonshineConfig(
        vocab_size=dims.n_vocab, hidden_size=dims.d_model, intermediate_size=dims.d_ff,
        encoder_num_hidden_layers=dims.n_encoder_layers,
        decoder_num_hidden_layers=dims.n_decoder_layers,
        encoder_num_attention_heads=dims.n_encoder_heads,
        decoder_num_attention_heads=dims.n_decoder_heads,
        partial_rotary_factor=dims.rotary_dim / dims.decoder_head_dim)
    reference = transformers.MoonshineForConditionalGeneration(config).eval()
    state = {"model." + k: v for k, v in tensors.items()}
    state["proj_out.weight"] = tensors["decoder.embed_tokens.weight"]
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert not missing and not unexpected
    audio = torch.from_numpy(load_audio(DEV_WAV_DIR / "whisper-jfk.wav"))[None, : 16000 * 4]
    tokens = torch.tensor([[1, 400, 1200, 80, 9000, 31000]])
    with torch.no_grad():
        expected = reference(input_values=audio, decoder_input_ids=tokens).logits
        got = ours(audio, tokens)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
def test_ort_base_en_equals_onnxruntime_on_the_package_graph(
        base_en: tuple[Path, Any, dict[str, torch.Tensor]]) -> None:
    """The mapping proof: our dequantized weights in our model reproduce the package's own
    graphs run by onnxruntime (encoder states, and first-step logits of the decoder)."""
    ort = pytest.importorskip("onnxruntime")
    folder, dims, tensors = base_en
    ours = Moonshine(dims).eval()
    ours.load_state_dict(tensors, strict=True)
    audio = load_audio(DEV_WAV_DIR / "whisper-jfk.wav")[None, : 16000 * 3].astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder = ort.InferenceSession(str(folder / ORT_ENCODER_FILE), options,
                                   providers=["CPUExecutionProvider"])
    (ort_states,) = encoder.run(["last_hidden_state"], {"input_values": audio})
    with torch.no_grad():
        states = ours.encoder(torch.from_numpy(audio))
    np.testing.assert_allclose(states.numpy(), ort_states, atol=1e-3, rtol=1e-3)

    decoder = ort.InferenceSession(str(folder / ORT_DECODER_FILE), options,
                                   providers=["CPUExecutionProvider"])
    head_dim = dims.decoder_head_dim
    feeds: dict[str, np.ndarray] = {
        "input_ids": np.array([[1]], dtype=np.int64),
        "encoder_hidden_states": ort_states,
        "use_cache_branch": np.array([False]),
    }
    for i in range(dims.n_decoder_layers):
        for kind in ("decoder", "encoder"):
            for kv in ("key", "value"):
                feeds[f"past_key_values.{i}.{kind}.{kv}"] = np.zeros(
                    (1, dims.n_decoder_heads, 0, head_dim), dtype=np.float32)
    ort_logits = decoder.run(["logits"], feeds)[0]
    with torch.no_grad():
        cache = ours.decoder.new_cache(torch.from_numpy(ort_states))
        logits = ours.decoder(torch.tensor([[1]]), cache)
    np.testing.assert_allclose(logits.numpy(), ort_logits, atol=2e-3, rtol=1e-3)


def test_int8_compute_quantizes_the_linear_layers(tmp_path: Path) -> None:
    """compute="int8": every Linear and the tied output projection run with int8 weights,
    logits stay close to float32's; an unknown compute is refused."""
    save_hf_folder(tmp_path, tiny_config(), seed=5)
    exact = load_moonshine(tmp_path, "moonshine-hf")
    quick = load_moonshine(tmp_path, "moonshine-hf", compute="int8")
    assert not any(isinstance(m, torch.nn.Linear) for m in quick.model.modules())
    assert quick.model.decoder.int8_logits is not None and exact.model.decoder.int8_logits is None
    torch.manual_seed(2)
    audio = 0.1 * torch.randn(1, 16000)
    tokens = torch.tensor([[1, 5, 9, 200]])
    with torch.no_grad():
        a, b = exact.model(audio, tokens), quick.model(audio, tokens)
    assert float((a - b).abs().max()) < 0.05 * float(a.abs().max())
    with pytest.raises(ModelError, match="compute"):
        load_moonshine(tmp_path, "moonshine-hf", compute="int4")
