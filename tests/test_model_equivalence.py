"""Our torch Whisper against transformers' WhisperForConditionalGeneration.

A tiny random Whisper (seeded, 64 wide, 2 + 2 layers, the tiny.en vocabulary) is saved with
transformers as safetensors and converted to CTranslate2 with the official converter (float32,
float16, int8). Each copy, loaded by OUR loaders, must give transformers' encoder output, logits
and cross-attention on real speech features; the decoder cache must reproduce full-context
decoding token by token.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from model_fixtures import (
    DEV_WAV_DIR,
    JFK_WAV,
    TINY_CONFIG,
    build_tiny_hf_model,
    convert_to_ct2,
    read_wav,
)

from dictation.asr.whisper.features import features_for_window
from dictation.asr.whisper.loaders import LoadedModel, load_model

transformers = pytest.importorskip("transformers")
pytest.importorskip("ctranslate2")

FORMATS = ["hf", "ct2-float32", "ct2-float16", "ct2-int8"]
ATOL = {"hf": 1e-4, "ct2-float32": 1e-4, "ct2-float16": 1e-2, "ct2-int8": None}
"""Logit tolerance per copy; int8 is checked relative to the logit range instead."""


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_whisper")


@pytest.fixture(scope="module")
def hf_model(workdir: Path) -> Any:
    """The transformers reference (eval mode, eager attention); saved to ``workdir / "hf"``."""
    return build_tiny_hf_model(workdir / "hf")


@pytest.fixture(scope="module")
def model_dirs(workdir: Path, hf_model: Any) -> dict[str, tuple[Path, str]]:
    """Every on-disk copy of the reference model: name -> (directory, loader format)."""
    dirs = {"hf": (workdir / "hf", "hf")}
    for quantization in ("float32", "float16", "int8"):
        out = convert_to_ct2(workdir / "hf", workdir / f"ct2-{quantization}",
                             None if quantization == "float32" else quantization)
        dirs[f"ct2-{quantization}"] = (out, "ct2")
    return dirs


@pytest.fixture(scope="module")
def loaded(model_dirs: dict[str, tuple[Path, str]]) -> dict[str, LoadedModel]:
    return {name: load_model(path, fmt) for name, (path, fmt) in model_dirs.items()}


@pytest.fixture(scope="module")
def mel() -> torch.Tensor:
    """Real speech features, batch of 2: (2, 80, 3000)."""
    first = features_for_window(read_wav(JFK_WAV))
    second = features_for_window(read_wav(DEV_WAV_DIR / "sb-spk1-snt1.wav"))
    return torch.stack([first, second])


@pytest.fixture(scope="module")
def tokens(loaded: dict[str, LoadedModel]) -> torch.Tensor:
    """A realistic decoder input (previous-text prompt, start of transcript, no timestamps,
    text), batch of 2: (2, L)."""
    tok = loaded["hf"].tokenizer
    first = [tok.sot_prev, *tok.encode(" President Kennedy."), *tok.sot_sequence,
             tok.no_timestamps, *tok.encode(" And so my fellow Americans, ask not")]
    second = [*first[:3], *tok.sot_sequence, tok.no_timestamps,
              *tok.encode(" The child almost hurt the small dog.")]
    second = (second + [tok.eot] * len(first))[: len(first)]
    return torch.tensor([first, second])


@pytest.fixture(scope="module")
def reference(hf_model: Any, mel: torch.Tensor, tokens: torch.Tensor) -> Any:
    with torch.no_grad():
        return hf_model(input_features=mel, decoder_input_ids=tokens, output_attentions=True)


def test_reference_model_has_the_tiny_shape(loaded: dict[str, LoadedModel]) -> None:
    for name, model in loaded.items():
        dims = model.model.dims
        assert (dims.n_audio_state, dims.n_audio_layer, dims.n_text_layer) == (64, 2, 2), name
        assert (dims.n_audio_head, dims.n_text_head, dims.n_vocab) == (4, 4, 51864), name
        assert (dims.n_audio_ctx, dims.n_text_ctx, dims.n_mels) == (1500, 448, 80), name


@pytest.mark.parametrize("name", FORMATS)
def test_encoder_output_equals_transformers(name: str, loaded: dict[str, LoadedModel],
                                            mel: torch.Tensor, reference: Any) -> None:
    expected = reference.encoder_last_hidden_state
    with torch.no_grad():
        ours = loaded[name].model.encoder(mel)
    assert ours.shape == expected.shape == (2, 1500, 64)
    scale = float(expected.abs().max())
    tolerance = {"hf": 1e-4, "ct2-float32": 1e-4, "ct2-float16": 1e-2}.get(name, 0.05 * scale)
    torch.testing.assert_close(ours, expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("name", FORMATS)
def test_logits_equal_transformers(name: str, loaded: dict[str, LoadedModel], mel: torch.Tensor,
                                   tokens: torch.Tensor, reference: Any) -> None:
    expected = reference.logits
    with torch.no_grad():
        ours = loaded[name].model(mel, tokens)
    assert ours.shape == expected.shape == (2, tokens.shape[1], TINY_CONFIG["vocab_size"])
    assert float(expected.std()) > 0.5, "reference logits too flat to discriminate"
    atol = ATOL[name]
    if atol is None:  # int8: per-row quantisation error, a few % of the logit range
        err = float((ours - expected).abs().max())
        assert err < 0.05 * float(expected.abs().max()), f"int8 logits off by {err}"
        agree = (ours.argmax(-1) == expected.argmax(-1)).float().mean()
        assert agree >= 0.9, f"int8 argmax agrees on only {agree:.0%} of positions"
    else:
        torch.testing.assert_close(ours, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("name", ["hf", "ct2-float32"])
def test_cross_attention_weights_equal_transformers(name: str, loaded: dict[str, LoadedModel],
                                                   mel: torch.Tensor, tokens: torch.Tensor,
                                                   reference: Any) -> None:
    """The weights word timestamps are computed from: (B, heads, L, T) per decoder layer."""
    model = loaded[name].model
    with torch.no_grad():
        cache = model.decoder.new_cache(model.encoder(mel))
        _, weights = model.decoder(tokens, cache, want_cross_weights=True)
    assert len(weights) == len(reference.cross_attentions) == 2
    for ours, expected in zip(weights, reference.cross_attentions, strict=True):
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_loaders_agree_on_suppression_and_alignment_heads(
        loaded: dict[str, LoadedModel]) -> None:
    hf = loaded["hf"]
    assert hf.suppress_tokens == tuple(TINY_CONFIG["suppress_tokens"])
    assert hf.suppress_at_begin == tuple(TINY_CONFIG["begin_suppress_tokens"])
    for name in FORMATS[1:]:
        assert loaded[name].suppress_tokens == hf.suppress_tokens, name
        assert loaded[name].suppress_at_begin == hf.suppress_at_begin, name
        assert loaded[name].model.alignment_heads == hf.model.alignment_heads, name


@pytest.mark.parametrize("name", ["hf", "ct2-float16"])
def test_token_by_token_decoding_equals_full_context(name: str, loaded: dict[str, LoadedModel],
                                                    mel: torch.Tensor,
                                                    tokens: torch.Tensor) -> None:
    """Chunked equals full: feeding the tokens one at a time (and in uneven chunks) through
    the DecoderCache gives the logits of one full-context pass."""
    model = loaded[name].model
    with torch.no_grad():
        audio = model.encoder(mel)
        full, _ = model.decoder(tokens, model.decoder.new_cache(audio))
        cache = model.decoder.new_cache(audio)
        steps = [model.decoder(tokens[:, i: i + 1], cache)[0] for i in range(tokens.shape[1])]
        assert cache.n_tokens == tokens.shape[1]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-4)

        cache = model.decoder.new_cache(audio)
        bounds = [0, 3, 4, 9, tokens.shape[1]]
        chunks = [model.decoder(tokens[:, a:b], cache)[0] for a, b in pairwise(bounds)]
        torch.testing.assert_close(torch.cat(chunks, dim=1), full, rtol=0, atol=1e-4)


def test_truncated_cache_redecodes_like_full_context(loaded: dict[str, LoadedModel],
                                                     mel: torch.Tensor,
                                                     tokens: torch.Tensor) -> None:
    """DecoderCache.truncate(n) then decoding other tokens equals decoding the spliced sequence
    from scratch (re-decoding from a shared prefix)."""
    model = loaded["hf"].model
    keep = 6
    other = tokens.flip(1)[:, :5]
    with torch.no_grad():
        audio = model.encoder(mel)
        cache = model.decoder.new_cache(audio)
        model.decoder(tokens, cache)
        cache.truncate(keep)
        assert cache.n_tokens == keep
        resumed, _ = model.decoder(other, cache)
        spliced = torch.cat([tokens[:, :keep], other], dim=1)
        full, _ = model.decoder(spliced, model.decoder.new_cache(audio))
    torch.testing.assert_close(resumed, full[:, keep:], rtol=0, atol=1e-4)


def test_encoder_on_truncated_mel_equals_transformers(hf_model: Any,
                                                      loaded: dict[str, LoadedModel],
                                                      mel: torch.Tensor) -> None:
    """transformers refuses any mel that is not exactly 2 * max_source_positions frames, so its
    reference for 400 frames is a WhisperEncoder with max_source_positions = 200 carrying the
    same weights (the first 200 positional rows): the same computation on the same input."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    frames = 400
    config = transformers.WhisperConfig(**{**TINY_CONFIG, "max_source_positions": frames // 2})
    short = WhisperEncoder(config)
    state = dict(hf_model.model.encoder.state_dict())
    state["embed_positions.weight"] = state["embed_positions.weight"][: frames // 2]
    short.load_state_dict(state)
    short.eval()
    truncated = mel[:, :, :frames].contiguous()
    with torch.no_grad():
        expected = short(truncated).last_hidden_state
        ours = loaded["hf"].model.encoder(truncated)
        full = loaded["hf"].model.encoder(mel)
    assert ours.shape == (2, frames // 2, 64)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)
    # and it is a genuinely different computation from the 30 s window
    assert not torch.allclose(ours, full[:, : frames // 2], atol=1e-3)


def test_encoder_equals_ctranslate2_runtime(model_dirs: dict[str, tuple[Path, str]],
                                            loaded: dict[str, LoadedModel],
                                            mel: torch.Tensor) -> None:
    """Our reading of the converted float32 model.bin against CTranslate2's own engine."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    engine = ctranslate2.models.Whisper(str(model_dirs["ct2-float32"][0]), device="cpu",
                                        compute_type="float32", intra_threads=2)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))
    expected = torch.from_numpy(np.array(engine.encode(features, to_cpu=True)))
    with torch.no_grad():
        ours = loaded["ct2-float32"].model.encoder(mel)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-3)


def test_overlong_inputs_are_refused(loaded: dict[str, LoadedModel], mel: torch.Tensor) -> None:
    model = loaded["hf"].model
    with torch.no_grad():
        with pytest.raises(ValueError, match="encoder context"):
            model.encoder(torch.cat([mel[:1], mel[:1, :, :2]], dim=2))
        cache = model.decoder.new_cache(model.encoder(mel[:1, :, :200]))
        with pytest.raises(ValueError, match="decoder context"):
            model.decoder(torch.zeros(1, 449, dtype=torch.long), cache)
