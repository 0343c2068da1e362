"""Moonshine's decoding safeguards, each by name, and the orchestrator that applies them.

The orchestrator tests run a tiny Moonshine whose weights are set so that its next token is
known: every layer's output projections are zero, so the decoder's output is the (normalised)
embedding of the current token, and the tied output projection then scores tokens by their
embedding's similarity to it. <s> -> token 100 -> 100 -> ... (a loop), or, in the
"eager end" rig, <s> -> end-of-text first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dictation import SAMPLE_RATE
from dictation.asr.moonshine.decoding import (
    MoonshineDecodeOptions,
    NoEndOfTextFirst,
    RepetitionGuard,
    decode,
    encode,
    token_cap,
)
from dictation.asr.moonshine.loaders import LoadedMoonshine
from dictation.asr.moonshine.model import (
    MIN_SAMPLES,
    Moonshine,
    MoonshineDimensions,
    encoder_frames,
)
from dictation.asr.moonshine.tokenizer import MoonshineTokenizer, tokenizer_from_pieces
from dictation.asr.moonshine.transcribe import (
    MoonshineOfflineOptions,
    long_input_windows,
    window_has_speech,
)
from dictation.audio.vad import FRAME_SAMPLES

pytestmark = pytest.mark.usefixtures("single_torch_thread")

VOCAB = 300
LOOP_TOKEN = 100


# --------------------------------------------------------------------------- rules by name


def test_token_cap_is_six_and_a_half_tokens_per_second_with_a_floor() -> None:
    assert token_cap(10 * SAMPLE_RATE) == 65
    assert token_cap(SAMPLE_RATE) == 7  # 6.5 rounds up
    assert token_cap(SAMPLE_RATE // 5) == 6  # 0.2 s: the floor for a short word
    assert token_cap(4 * SAMPLE_RATE, tokens_per_second=2.0, min_tokens=1) == 8


def test_no_end_of_text_first_only_forbids_the_first_step() -> None:
    rule = NoEndOfTextFirst(eos=2)
    logits = torch.zeros(10)
    logits[2] = 5.0
    rule.apply(logits, [])
    assert logits[2] == float("-inf")
    assert int(logits.argmax()) != 2
    later = torch.zeros(10)
    later[2] = 5.0
    rule.apply(later, [7])
    assert int(later.argmax()) == 2


@pytest.mark.parametrize(("tokens", "loop"), [
    ([5] * 12, (1, 12)),  # one token 12 times
    ([5] * 11, None),  # not yet 12 tokens of it
    ([9, 5, 6] + [5, 6] * 6, (2, 6)),
    ([5, 6] * 5, None),  # "no, no, no, no, no": 10 tokens, speech
    ([1, 2, 3, 4] * 3, (4, 3)),
    ([1, 2, 3, 4] * 2 + [1, 2, 3], None),
])
def test_repetition_guard_finds_loops_of_at_least_twelve_tokens(
        tokens: list[int], loop: tuple[int, int] | None) -> None:
    assert RepetitionGuard().loop(tokens) == loop


def test_repetition_guard_keeps_one_copy_of_the_loop() -> None:
    guard = RepetitionGuard()
    assert guard.cut([9, 8] + [5, 6] * 6) == [9, 8, 5, 6]
    assert guard.cut([9, 8, 7]) == [9, 8, 7]


def test_long_inputs_are_cut_at_quiet_points_into_windows_of_at_most_25_s() -> None:
    n = 60 * SAMPLE_RATE
    frames = -(-n // FRAME_SAMPLES)
    probs = np.full(frames, 0.9, dtype=np.float32)
    quiet = [int(s * SAMPLE_RATE) // FRAME_SAMPLES for s in (18.0, 40.0)]
    for q in quiet:
        probs[q - 3:q + 4] = 0.0
    windows = long_input_windows(probs, n)
    assert windows[0][0] == 0 and windows[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert all(end - start <= 25 * SAMPLE_RATE for start, end in windows)
    cuts = [start for start, _ in windows[1:]]
    assert all(abs(c - q * FRAME_SAMPLES) <= 2 * FRAME_SAMPLES
               for c, q in zip(cuts, quiet, strict=True))
    assert long_input_windows(probs[: frames // 3], 20 * SAMPLE_RATE) == [(0, 20 * SAMPLE_RATE)]
    shorter = MoonshineOfflineOptions(max_window_s=10.0, min_window_s=5.0)
    assert all(e - s <= 10 * SAMPLE_RATE for s, e in long_input_windows(probs, n, shorter))


def test_window_has_speech_looks_at_the_frames_of_the_window() -> None:
    probs = np.array([0.1, 0.1, 0.8, 0.1], dtype=np.float32)
    assert window_has_speech(probs, 2 * FRAME_SAMPLES, 3 * FRAME_SAMPLES, 0.5)
    assert not window_has_speech(probs, 0, 2 * FRAME_SAMPLES, 0.5)
    assert not window_has_speech(probs, 3 * FRAME_SAMPLES, 4 * FRAME_SAMPLES - 5, 0.5)


# --------------------------------------------------------------------------- orchestrator


def rigged_model(eager_end: bool) -> LoadedMoonshine:
    """A tiny Moonshine whose next token depends only on the current one (module doc)."""
    dims = MoonshineDimensions(d_model=64, d_ff=96, n_encoder_layers=1, n_decoder_layers=2,
                               n_encoder_heads=4, n_decoder_heads=4, n_encoder_kv_heads=4,
                               n_decoder_kv_heads=4, rotary_dim=8, n_vocab=VOCAB)
    torch.manual_seed(0)
    model = Moonshine(dims).eval()
    with torch.no_grad():
        for layer in model.decoder.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.encoder_attn.o_proj.weight.zero_()
            layer.mlp.fc2.weight.zero_()
            layer.mlp.fc2.bias.zero_()
        embed = model.decoder.embed_tokens.weight
        embed.copy_(torch.randn_like(embed))
        if eager_end:  # <s> scores end-of-text above everything
            embed[2] = 2.0 * embed[1]
        else:  # <s> leads to LOOP_TOKEN, which leads to itself
            embed[1] = 0.5 * embed[LOOP_TOKEN]
    pieces = [b"<unk>", b"<s>", b"</s>", *[bytes([b]) for b in range(256)],
              *[f"\u2581w{i}".encode() for i in range(VOCAB - 259)]]
    tokenizer = MoonshineTokenizer(tokenizer_from_pieces(pieces), n_pieces=VOCAB)
    return LoadedMoonshine(name="rigged", model=model, tokenizer=tokenizer)


AUDIO_2S = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)


def test_orchestrator_forbids_end_of_text_first_only_when_speech_was_found() -> None:
    loaded = rigged_model(eager_end=True)
    silent = decode(loaded, AUDIO_2S, speech_found=False)
    assert silent.tokens == [] and silent.stop == "end_of_text"
    speech = decode(loaded, AUDIO_2S, speech_found=True)
    assert speech.tokens  # something other than end-of-text came first
    off = decode(loaded, AUDIO_2S, speech_found=True,
                 options=MoonshineDecodeOptions(forbid_eot_first_with_speech=False))
    assert off.tokens == []


def test_orchestrator_stops_a_loop_and_keeps_one_copy() -> None:
    loaded = rigged_model(eager_end=False)
    result = decode(loaded, AUDIO_2S)
    assert result.stop == "repetition"
    assert result.tokens == [LOOP_TOKEN]
    assert result.text == "a"  # LOOP_TOKEN is the byte-fallback id of 0x61


def test_orchestrator_caps_tokens_by_audio_length() -> None:
    loaded = rigged_model(eager_end=False)
    no_guard = MoonshineDecodeOptions(repetition_min_tokens=10_000)
    result = decode(loaded, AUDIO_2S, options=no_guard)
    assert result.stop == "token_cap"
    assert len(result.tokens) == token_cap(len(AUDIO_2S)) == 13
    prefixed = decode(loaded, AUDIO_2S, prefix=[LOOP_TOKEN] * 3, options=no_guard)
    assert len(prefixed.tokens) == 13 and prefixed.tokens[:3] == [LOOP_TOKEN] * 3


def test_orchestrator_never_cuts_into_the_forced_prefix() -> None:
    loaded = rigged_model(eager_end=False)
    prefix = [LOOP_TOKEN] * 12
    result = decode(loaded, AUDIO_2S, prefix=prefix)
    assert result.stop == "repetition"
    assert result.tokens[:12] == prefix


def test_tokenizer_bin_round_trip(tmp_path: Path) -> None:
    """The .bin layout read back: byte-fallback ids 3-258, "▁" as a space, one- and two-byte
    lengths."""
    long_piece = ("\u2581" + "x" * 150).encode()
    pieces = [b"<unk>", b"<s>", b"</s>", *[bytes([b]) for b in range(256)],
              "\u2581hello".encode(), "\u2581w\u00f6rld".encode(), long_piece]
    data = bytearray()
    for piece in pieces:
        n = len(piece)
        data += bytes([n]) if n < 128 else bytes([(n & 0x7F) | 0x80, n >> 7])
        data += piece
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(bytes(data))
    tok = MoonshineTokenizer.from_tokenizer_bin(path)
    assert tok.n_pieces == len(pieces)
    assert tok.decode([1, 259, 260, 2]) == "hello wörld"
    assert tok.decode([259, 3 + ord("!")]) == "hello!"
    assert tok.decode([261]) == "x" * 150
    assert tok.decode([259, 5000]) == "hello"  # padding ids beyond the pieces are dropped


def test_audio_shorter_than_one_encoder_frame_is_padded() -> None:
    loaded = rigged_model(eager_end=False)
    for n in (0, 10, MIN_SAMPLES - 1, MIN_SAMPLES):
        assert encode(loaded, np.zeros(n, dtype=np.float32)).shape[1] == 1
    assert encoder_frames(MIN_SAMPLES - 1) == 0 and encoder_frames(MIN_SAMPLES) == 1
    short = decode(loaded, np.zeros(10, dtype=np.float32))
    assert short.stop == "token_cap" and len(short.tokens) == 6  # the floor of the cap


def test_context_tokens_are_forced_but_not_returned_nor_capped() -> None:
    loaded = rigged_model(eager_end=False)
    no_guard = MoonshineDecodeOptions(repetition_min_tokens=10_000)
    result = decode(loaded, AUDIO_2S, context=[7, 8, 9], options=no_guard)
    # the rigged decoder repeats its current token: it went on from the context's last one,
    # and the context itself is not in the result nor counted toward the cap of 2 s (13)
    assert result.stop == "token_cap" and result.tokens == [9] * 13


def test_end_of_text_first_is_forbidden_after_the_context_too() -> None:
    loaded = rigged_model(eager_end=True)  # after token 1, end-of-text scores best
    assert decode(loaded, AUDIO_2S, speech_found=False, context=[1]).tokens == []
    assert decode(loaded, AUDIO_2S, speech_found=True, context=[1]).tokens


@pytest.mark.parametrize("draft_kind", ["exact", "wrong from the middle", "garbage",
                                        "beyond the end"])
def test_a_draft_changes_nothing_but_the_cost(draft_kind: str) -> None:
    """The streaming decoder's previous hypothesis as the draft (a random model, so that each
    token depends on all before it): the result is the greedy decode's whatever the draft."""
    loaded = rigged_model(eager_end=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in loaded.model.decoder.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    audio = np.random.default_rng(0).normal(0, 0.1, 2 * SAMPLE_RATE).astype(np.float32)
    options = MoonshineDecodeOptions(repetition_min_tokens=10_000)
    context, prefix = [270, 271], [272]
    plain = decode(loaded, audio, context=context, prefix=prefix, options=options)
    continuation = plain.sequence[len(context) + len(prefix):]
    assert len(continuation) >= 4 and plain.sequence[:3] == [270, 271, 272]
    half = len(continuation) // 2
    draft = {"exact": continuation,
             "wrong from the middle": [*continuation[:half], (continuation[half] + 1) % VOCAB,
                                       *continuation[half + 1:]],
             "garbage": [int(t) for t in np.random.default_rng(2).integers(3, VOCAB, 8)],
             "beyond the end": [*continuation, 5, 6, 7]}[draft_kind]
    result = decode(loaded, audio, context=context, prefix=prefix, options=options, draft=draft)
    assert result.tokens == plain.tokens and result.sequence == plain.sequence
