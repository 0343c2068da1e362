"""Moonshine v2 in torch: the incremental encoder equals the full recompute on random weights
and random chunkings, and the model loaded from a tiny random transformers checkpoint saved in
the real Hugging Face layout (save_pretrained) gives transformers' encoder outputs and logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dictation.asr.moonshine_streaming.loader import dims_from_config, load_model
from dictation.asr.moonshine_streaming.model import (
    CHECKPOINT_DIMS,
    ModelDimensions,
    MoonshineStreaming,
    SegmentMemory,
    StreamingEncoder,
    greedy_tokens,
    lookahead_frames,
)
from dictation.errors import ModelError

pytestmark = pytest.mark.usefixtures("single_torch_thread")

# Small but not degenerate: grouped key/value heads, head_dim != width / heads, an encoder wider
# than the decoder (the proj of small/medium), mixed look-ahead windows.
TEST_DIMS = ModelDimensions(
    n_enc_state=24, n_enc_head=4, n_enc_kv_head=2, n_enc_head_dim=8, n_enc_mlp=40,
    sliding_windows=((4, 3), (5, 0), (3, 2)), n_state=16, n_head=2, n_head_dim=8, n_mlp=24,
    n_layer=2, n_vocab=50, n_pos=512, rotary_dim=6)


def random_model(dims: ModelDimensions = TEST_DIMS, seed: int = 0) -> MoonshineStreaming:
    torch.manual_seed(seed)
    model = MoonshineStreaming(dims).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return model


def random_audio(n_samples: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(1, n_samples, generator=generator)


def stream(encoder: StreamingEncoder, audio: torch.Tensor, cuts: list[int]
           ) -> tuple[list[torch.Tensor], Any]:
    state = encoder.initial_state()
    outputs: list[torch.Tensor] = []
    previous = 0
    for cut in [*cuts, audio.shape[1]]:
        y, state = encoder.forward_chunk(audio[:, previous:cut], state)
        outputs.append(y)
        previous = cut
    return outputs, state


MODEL = random_model()
ENCODER = StreamingEncoder(MODEL)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n_samples=st.integers(0, 4000), data=st.data())
def test_incremental_encoder_equals_full_recompute(n_samples: int, data: st.DataObject) -> None:
    audio = random_audio(n_samples, seed=n_samples)
    cuts = sorted(data.draw(st.lists(st.integers(0, n_samples), max_size=12)))
    outputs, state = stream(ENCODER, audio, cuts)
    whole = n_samples // 80 * 80
    full = MODEL.encoder(audio[:, :whole])
    frozen = torch.cat(outputs, dim=1)
    assert frozen.shape[1] == state.n_frozen
    assert state.n_frames == full.shape[1]
    assert full.shape[1] - frozen.shape[1] <= lookahead_frames(TEST_DIMS)
    streamed = torch.cat([frozen, ENCODER.tail(state)], dim=1)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)


def test_frozen_frames_are_final_once_their_lookahead_exists() -> None:
    """A frame emitted as final is identical to the same frame of the full recompute on much
    longer audio: nothing later can change it. With 3 + 0 + 2 look-ahead frames per layer
    (right - 1 each), exactly 3 frames stay provisional."""
    audio = random_audio(80 * 400, seed=7)
    outputs, state = stream(ENCODER, audio[:, :80 * 200], [1234, 5000, 9999])
    frozen = torch.cat(outputs, dim=1)
    assert lookahead_frames(TEST_DIMS) == 3
    assert state.n_frames - state.n_frozen == 3
    later = MODEL.encoder(audio)
    torch.testing.assert_close(frozen, later[:, :frozen.shape[1]], atol=1e-5, rtol=1e-5)


def test_state_is_not_changed_by_an_update() -> None:
    """forward_chunk returns a new state: re-feeding from an old state gives the same frames."""
    audio = random_audio(3000, seed=3)
    state = ENCODER.initial_state()
    _, mid = ENCODER.forward_chunk(audio[:, :1500], state)
    y1, _ = ENCODER.forward_chunk(audio[:, 1500:], mid)
    y2, _ = ENCODER.forward_chunk(audio[:, 1500:], mid)
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)


def test_segment_memory_equals_cross_kv_of_the_whole_segment() -> None:
    audio = random_audio(80 * 120, seed=11)
    outputs, state = stream(ENCODER, audio, [700, 2100, 4000])
    memory = SegmentMemory(MODEL)
    for y in outputs:
        memory.extend(y)
    kv = memory.with_tail(ENCODER.tail(state))
    expected = MODEL.decoder.cross_kv(MODEL.encoder(audio), 0)
    for (k, v), (ek, ev) in zip(kv, expected, strict=True):
        torch.testing.assert_close(k, ek, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v, ev, atol=1e-5, rtol=1e-5)


def test_cached_decoding_equals_one_pass() -> None:
    audio = random_audio(80 * 60, seed=5)
    kv = MODEL.decoder.cross_kv(MODEL.encoder(audio), 0)
    tokens = torch.tensor([[1, 7, 9, 30, 4, 12]])
    full, _ = MODEL.logits(tokens, kv)
    cache = None
    steps = []
    for i in range(tokens.shape[1]):
        logits, cache = MODEL.logits(tokens[:, i:i + 1], kv, cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert greedy_tokens(MODEL, kv, max_tokens=5) == greedy_tokens(MODEL, kv, max_tokens=5)


def test_published_sizes_have_the_published_parameter_counts() -> None:
    """Paper table 1 totals (33.57 M, 123.36 M, 244.93 M) count proj_out once with the token
    embedding; ours has it separate, so subtract it."""
    expected = {"tiny": 33.57e6, "small": 123.36e6, "medium": 244.93e6}
    for name, dims in CHECKPOINT_DIMS.items():
        with torch.device("meta"):
            model = MoonshineStreaming(dims)
        n = sum(p.numel() for p in model.parameters()) - model.proj_out.weight.numel()
        assert abs(n - expected[name]) / expected[name] < 0.01, (name, n)


# --------------------------------------------------------------------------- transformers


transformers = pytest.importorskip("transformers")


def build_hf_model(directory: Path, seed: int, *, enc_state: int, dec_state: int) -> Any:
    """A seeded random MoonshineStreamingForConditionalGeneration saved with save_pretrained
    (config.json + model.safetensors, the hub layout); every parameter gets noise so that a
    swapped norm or projection cannot go unnoticed."""
    from transformers import MoonshineStreamingConfig, MoonshineStreamingForConditionalGeneration

    config = MoonshineStreamingConfig(
        encoder_config={"hidden_size": enc_state, "intermediate_size": 40,
                        "num_hidden_layers": 3, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "head_dim": 8,
                        "sliding_windows": [[4, 3], [5, 0], [3, 2]]},
        hidden_size=dec_state, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=8, vocab_size=50,
        max_position_embeddings=512, decoder_start_token_id=1,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.8})
    torch.manual_seed(seed)
    model = MoonshineStreamingForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=generator))
    model.set_attn_implementation("eager")
    model.eval()
    model.save_pretrained(str(directory))
    return model


@pytest.mark.parametrize(("enc_state", "dec_state"), [(24, 16), (16, 16)])
def test_logits_equal_transformers(tmp_path: Path, enc_state: int, dec_state: int) -> None:
    hf = build_hf_model(tmp_path, seed=enc_state, enc_state=enc_state, dec_state=dec_state)
    assert (tmp_path / "model.safetensors").is_file()
    ours = load_model(tmp_path)
    assert ours.dims.rotary_dim == 6 and ours.dims.sliding_windows == ((4, 3), (5, 0), (3, 2))
    audio = random_audio(80 * 97, seed=1)
    mask = torch.ones_like(audio, dtype=torch.long)  # the processor's; it enables the windows
    tokens = torch.tensor([[1, 5, 17, 3, 44, 8, 2]])
    with torch.no_grad():
        hf_enc = hf.model.encoder(audio, attention_mask=mask).last_hidden_state
        hf_logits = hf(input_values=audio, attention_mask=mask, decoder_input_ids=tokens).logits
    enc = ours.encoder(audio)
    torch.testing.assert_close(enc, hf_enc, atol=1e-5, rtol=1e-4)
    encoder = StreamingEncoder(ours)
    outputs, state = stream(encoder, audio, [333, 1000, 4321])
    memory = SegmentMemory(ours)
    memory.extend(torch.cat(outputs, dim=1))
    logits, _ = ours.logits(tokens, memory.with_tail(encoder.tail(state)))
    torch.testing.assert_close(logits, hf_logits, atol=1e-4, rtol=1e-4)


def test_greedy_tokens_equal_transformers_generate(tmp_path: Path) -> None:
    hf = build_hf_model(tmp_path, seed=3, enc_state=24, dec_state=16)
    ours = load_model(tmp_path)
    audio = random_audio(80 * 60, seed=2)
    mask = torch.ones_like(audio, dtype=torch.long)
    with torch.no_grad():
        generated = hf.generate(input_values=audio, attention_mask=mask, max_new_tokens=8,
                                do_sample=False, num_beams=1, eos_token_id=2,
                                decoder_start_token_id=1)
    expected = [t for t in generated[0, 1:].tolist() if t != 2]
    kv = ours.decoder.cross_kv(ours.encoder(audio), 0)
    assert greedy_tokens(ours, kv, max_tokens=8)[:len(expected)] == expected


def test_loader_refuses_a_checkpoint_that_does_not_match_its_config(tmp_path: Path) -> None:
    build_hf_model(tmp_path, seed=0, enc_state=24, dec_state=16)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path)
    config["model_type"] = "moonshine"
    with pytest.raises(ModelError, match="not a Moonshine v2"):
        dims_from_config(config)


def test_segment_stream_re_decodes_the_open_segment_only() -> None:
    """A second segment decodes exactly as the full encoder's frames from its start (the encoder
    keeps its left context; the decoder's positions restart), whatever the chunking."""
    from dictation.asr.moonshine.decoding import token_cap
    from dictation.asr.moonshine_streaming.stream import SegmentStream

    audio = random_audio(80 * 300, seed=21)
    stream_ = SegmentStream(MODEL)
    for i in range(0, 80 * 140, 999):
        stream_.feed(audio[0, i:min(i + 999, 80 * 140)])
    stream_.start_segment()
    start = stream_.memory.start_frame
    for i in range(80 * 140, audio.shape[1], 1234):
        stream_.feed(audio[0, i:i + 1234])
    with torch.no_grad():
        frames = MODEL.encoder(audio)[:, start:]
        expected = greedy_tokens(MODEL, MODEL.decoder.cross_kv(frames, 0),
                                 max_tokens=token_cap(frames.shape[1] * 320))
    assert stream_.segment_frames == frames.shape[1]
    streamed_kv = stream_.memory.with_tail(stream_._segment_tail())
    for (k, v), (ek, ev) in zip(streamed_kv, MODEL.decoder.cross_kv(frames, 0), strict=True):
        torch.testing.assert_close(k, ek, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v, ev, atol=1e-5, rtol=1e-5)
    assert stream_.hypothesis(speech_found=False) == expected
