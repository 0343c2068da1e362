#!/usr/bin/env python3
"""Per-update compute of Moonshine v2 tiny / small / medium on random weights of the real sizes.

    PYTHONPATH=. python scripts/bench_moonshine_v2_update.py [--sizes tiny small medium]
        [--chunk-ms 100] [--segment-s 1 3 6] [--threads 1] [--repeats 5]

One *update* is what the streaming runtime does when a chunk of audio arrives while a segment is
open: feed the chunk to the incremental encoder (frames that became final are computed once),
recompute the provisional tail, project the new frozen frames and the tail into the segment's
cross-attention memory, and re-run the decoder on the open segment (greedy, one token at a time
with a self-attention cache, ~6.5 tokens per second of speech, Moonshine's rate; random weights
cannot find end-of-text, so the token count is fixed). The whole-segment encoder recompute is
timed beside it, in the same run, as the reference the incremental encoder replaces. Times are
milliseconds of this machine's CPU (median of --repeats updates); compare them as ratios. The
floating-point operations of one update (torch's FlopCounterMode: matmuls, convolutions,
attention) are counted beside them: they do not depend on the machine or its load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from dictation import SAMPLE_RATE  # noqa: E402
from dictation.asr.moonshine_streaming.model import (  # noqa: E402
    CHECKPOINT_DIMS,
    DecoderCache,
    MoonshineStreaming,
    SegmentMemory,
    StreamingEncoder,
)

TOKENS_PER_SECOND = 6.5


def random_model(name: str) -> MoonshineStreaming:
    torch.manual_seed(0)
    model = MoonshineStreaming(CHECKPOINT_DIMS[name]).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02)
    return model


@torch.no_grad()
def decode(model: MoonshineStreaming, kv: list[tuple[torch.Tensor, torch.Tensor]],
           n_tokens: int) -> None:
    """Greedy-shaped decode of n_tokens tokens (argmax fed back, no early stop)."""
    tokens = torch.tensor([[model.dims.bos_token]])
    cache: DecoderCache | None = None
    for _ in range(n_tokens):
        logits, cache = model.logits(tokens, kv, cache)
        tokens = logits[:, -1:].argmax(-1)


def bench_size(name: str, chunk_ms: int, segments_s: list[float], repeats: int) -> None:
    model = random_model(name)
    n_params = sum(p.numel() for p in model.parameters())
    encoder = StreamingEncoder(model)
    chunk = SAMPLE_RATE * chunk_ms // 1000
    print(f"{name}: {n_params / 1e6:.1f} M parameters", file=sys.stderr, flush=True)
    for segment_s in segments_s:
        audio = 0.1 * torch.randn(1, int(segment_s * SAMPLE_RATE) + repeats * chunk)
        n_tokens = max(1, round(segment_s * TOKENS_PER_SECOND))
        # Warm the stream up to the segment length, then time `repeats` updates.
        start = int(segment_s * SAMPLE_RATE)
        state = encoder.initial_state()
        memory = SegmentMemory(model)
        for offset in range(0, start, chunk):
            frozen, state = encoder.forward_chunk(audio[:, offset:min(offset + chunk, start)],
                                                  state)
            memory.extend(frozen)
        enc_ms, mem_ms, dec_ms, full_ms = [], [], [], []
        for r in range(repeats):
            piece = audio[:, start + r * chunk:start + (r + 1) * chunk]
            t0 = time.perf_counter()
            frozen, state = encoder.forward_chunk(piece, state)
            tail = encoder.tail(state)
            t1 = time.perf_counter()
            memory.extend(frozen)
            kv = memory.with_tail(tail)
            t2 = time.perf_counter()
            decode(model, kv, n_tokens)
            t3 = time.perf_counter()
            with torch.no_grad():
                whole = start + (r + 1) * chunk
                model.encoder(audio[:, :whole // 80 * 80])
            t4 = time.perf_counter()
            enc_ms.append(1e3 * (t1 - t0))
            mem_ms.append(1e3 * (t2 - t1))
            dec_ms.append(1e3 * (t3 - t2))
            full_ms.append(1e3 * (t4 - t3))
            print(f"  {name} {segment_s:g} s update {r + 1}/{repeats}", file=sys.stderr,
                  flush=True)
        enc, mem, dec, full = (statistics.median(x) for x in (enc_ms, mem_ms, dec_ms, full_ms))
        total = enc + mem + dec
        # One more update, its floating-point operations counted part by part.
        piece = audio[:, start + repeats * chunk:start + (repeats + 1) * chunk]
        counts = []
        with torch.no_grad():
            for part in ("encoder", "memory", "decoder", "full"):
                with FlopCounterMode(display=False) as counter:
                    if part == "encoder":
                        frozen, state = encoder.forward_chunk(piece, state)
                        tail = encoder.tail(state)
                    elif part == "memory":
                        memory.extend(frozen)
                        kv = memory.with_tail(tail)
                    elif part == "decoder":
                        decode(model, kv, n_tokens)
                    else:
                        whole = start + (repeats + 1) * chunk
                        model.encoder(audio[:, :whole // 80 * 80])
                counts.append(counter.get_total_flops() / 1e9)
        g_enc, g_mem, g_dec, g_full = counts
        print(f"| {name} | {segment_s:g} | {n_tokens} | {enc:.1f} | {mem:.1f} | {dec:.1f} | "
              f"{total:.1f} | {total / chunk_ms:.2f} | {full:.1f} | {full / enc:.1f}x | "
              f"{g_enc:.3f} | {g_mem:.3f} | {g_dec:.3f} | {g_full:.3f} |", flush=True)


@torch.no_grad()
def bench_whisper_reference(segments_s: list[float], repeats: int, chunk_ms: int) -> None:
    """The project's Whisper tiny.en (random weights, float32 logits) doing what its re-decoding
    session does per update: encode the whole open segment, then decode the same number of
    tokens. Same process, same machine state: the ratio to the rows above is what counts."""
    from dictation.asr.whisper.model import ModelDimensions as WhisperDims
    from dictation.asr.whisper.model import Whisper

    dims = WhisperDims(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                       n_audio_layer=4, n_vocab=51864, n_text_ctx=448, n_text_state=384,
                       n_text_head=6, n_text_layer=4)
    torch.manual_seed(0)
    model = Whisper(dims).eval()
    for param in model.parameters():
        param.normal_(0.0, 0.02)
    for segment_s in segments_s:
        n_tokens = max(1, round(segment_s * TOKENS_PER_SECOND))
        mel = torch.randn(1, 80, 2 * int(segment_s * 50))

        def update(mel: torch.Tensor = mel, n_tokens: int = n_tokens) -> tuple[float, float]:
            t0 = time.perf_counter()
            cache = model.decoder.new_cache(model.encoder(mel))
            t1 = time.perf_counter()
            tokens = torch.tensor([[50257]])
            for _ in range(n_tokens):
                logits, _ = model.decoder(tokens, cache)
                tokens = logits[:, -1:].argmax(-1)
            return 1e3 * (t1 - t0), 1e3 * (time.perf_counter() - t1)

        times = [update() for _ in range(repeats)]
        print(f"  whisper tiny.en {segment_s:g} s", file=sys.stderr, flush=True)
        enc = statistics.median(t[0] for t in times)
        dec = statistics.median(t[1] for t in times)
        with FlopCounterMode(display=False) as counter:
            model.decoder.new_cache(model.encoder(mel))
        g_enc = counter.get_total_flops() / 1e9
        cache = model.decoder.new_cache(model.encoder(mel))
        with FlopCounterMode(display=False) as counter:
            tokens = torch.tensor([[50257]])
            for _ in range(n_tokens):
                logits, _ = model.decoder(tokens, cache)
                tokens = logits[:, -1:].argmax(-1)
        g_dec = counter.get_total_flops() / 1e9
        print(f"| whisper tiny.en (reference) | {segment_s:g} | {n_tokens} | {enc:.1f} | - | "
              f"{dec:.1f} | {enc + dec:.1f} | {(enc + dec) / chunk_ms:.2f} | - | - | "
              f"{g_enc:.3f} | - | {g_dec:.3f} | - |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(CHECKPOINT_DIMS),
                        choices=list(CHECKPOINT_DIMS))
    parser.add_argument("--chunk-ms", type=int, default=100, help="audio per update (ms)")
    parser.add_argument("--segment-s", type=float, nargs="+", default=[1.0, 3.0, 6.0],
                        help="open-segment lengths at which an update is timed (s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-whisper-reference", action="store_true",
                        help="skip the Whisper tiny.en reference rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"chunk {args.chunk_ms} ms, {args.threads} thread(s), median of {args.repeats} "
          "updates; milliseconds")
    print("| size | open segment (s) | tokens re-decoded | encoder chunk + tail | "
          "cross memory | decoder | update total | total / chunk | full encoder recompute | "
          "recompute / incremental | GFLOP encoder | GFLOP memory | GFLOP decoder | "
          "GFLOP full encoder |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    if not args.no_whisper_reference:
        bench_whisper_reference(args.segment_s, args.repeats, args.chunk_ms)
    for name in args.sizes:
        bench_size(name, args.chunk_ms, args.segment_s, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
