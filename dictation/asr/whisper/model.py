"""Whisper encoder-decoder in torch. Tensors only: no files, no tokenizer, no CLI.

Shapes use B = batch, T = encoder frames (20 ms each, at most ``n_audio_ctx`` = 1500),
L = decoder tokens. The model is shared and read-only; per-stream decoding state lives in
:class:`DecoderCache` (the split whisper.cpp makes between model and state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dictation.asr.int8 import Int8Linear, int8_supported, quantize_int8
from dictation.asr.kv_cache import DecoderCache


@dataclass(frozen=True)
class ModelDimensions:
    """Everything that describes a checkpoint's shape."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's fixed encoder positional embedding, shape (length, channels)."""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, N, n_state) -> (B, heads, N, head_dim)."""
        b, n, _ = x.shape
        return x.view(b, n, self.n_head, -1).transpose(1, 2)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split_heads(self.key(x)), self.split_heads(self.value(x))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, causal: bool,
               want_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attention of queries from x (B, N, n_state) over k, v (B, heads, M, head_dim).

        With ``causal``, query i sits at position M - N + i (the end of a cached sequence).
        Returns the output (B, N, n_state) and, if asked, the weights (B, heads, N, M)."""
        q = self.split_heads(self.query(x))
        n, m = q.shape[2], k.shape[2]
        mask = None
        if causal and n > 1:
            mask = torch.ones(n, m, dtype=torch.bool, device=x.device).tril(m - n)
        weights = None
        if want_weights:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.float().softmax(dim=-1)
            wv = weights.to(q.dtype) @ v
        else:
            wv = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, _, n, _ = wv.shape
        return self.out(wv.transpose(1, 2).reshape(b, n, -1)), weights


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = nn.LayerNorm(n_state) if cross_attention else None
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(),
                                 nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward_encoder(self, x: Tensor) -> Tensor:
        h = self.attn_ln(x)
        k, v = self.attn.project_kv(h)
        x = x + self.attn.attend(h, k, v, causal=False)[0]
        return x + self.mlp(self.mlp_ln(x))

    def forward_decoder(self, x: Tensor, self_kv: tuple[Tensor, Tensor] | None,
                        cross_kv: tuple[Tensor, Tensor], want_weights: bool
                        ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        assert self.cross_attn is not None and self.cross_attn_ln is not None
        h = self.attn_ln(x)
        k, v = self.attn.project_kv(h)
        if self_kv is not None:
            k, v = torch.cat([self_kv[0], k], dim=2), torch.cat([self_kv[1], v], dim=2)
        x = x + self.attn.attend(h, k, v, causal=True)[0]
        out, weights = self.cross_attn.attend(self.cross_attn_ln(x), *cross_kv, causal=False,
                                              want_weights=want_weights)
        x = x + out
        return x + self.mlp(self.mlp_ln(x)), (k, v), weights


class AudioEncoder(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        n_state = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(dims.n_audio_ctx, n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(n_state, dims.n_audio_head)
                                    for _ in range(dims.n_audio_layer))
        self.ln_post = nn.LayerNorm(n_state)

    def forward(self, mel: Tensor) -> Tensor:
        """mel (B, n_mels, 2T) -> audio features (B, T, n_audio_state); T <= n_audio_ctx.

        Whisper was trained on T = 1500 (30 s); shorter inputs run proportionally faster."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        pos = cast(Tensor, self.positional_embedding)
        if x.shape[1] > pos.shape[0]:
            raise ValueError(f"audio longer than the encoder context ({pos.shape[0]} frames)")
        x = x + pos[: x.shape[1]]
        for block in cast(list[ResidualAttentionBlock], self.blocks):
            x = block.forward_encoder(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        n_state = dims.n_text_state
        self.token_embedding = nn.Embedding(dims.n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.empty(dims.n_text_ctx, n_state))
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(n_state, dims.n_text_head, cross_attention=True)
            for _ in range(dims.n_text_layer))
        self.ln = nn.LayerNorm(n_state)

    def use_half_embedding(self) -> None:
        """Keep the token embedding (n_vocab, n_state), the model's largest tensor, in float16
        (in place). The logits projection reads all of it for every token, which bounds CPU
        decoding speed by memory bandwidth: float16 halves that traffic (about 3x faster
        logits here) and its memory (tiny.en: 80 -> 40 MB). Token lookups are widened to
        float32. Exact for checkpoints stored in float16 (Whisper's are)."""
        self.token_embedding.weight.data = self.token_embedding.weight.data.half()

    def new_cache(self, audio_features: Tensor) -> DecoderCache:
        """Project the encoder output (B, T, n_audio_state) into each layer's cross-attention
        keys and values, once per window."""
        cross = []
        for block in cast(list[ResidualAttentionBlock], self.blocks):
            assert block.cross_attn is not None
            cross.append(block.cross_attn.project_kv(audio_features))
        return DecoderCache(self_kv=[None] * len(self.blocks), cross_kv=cross)

    def hidden(self, tokens: Tensor, cache: DecoderCache, want_cross_weights: bool = False
               ) -> tuple[Tensor, list[Tensor]]:
        """tokens (B, L) that follow the ``cache.n_tokens`` tokens already decoded.

        Returns the final hidden states (B, L, n_text_state) and, with ``want_cross_weights``, one
        cross-attention weight tensor (B, heads, L, T) per layer. Updates ``cache`` in place."""
        offset = cache.n_tokens
        if offset + tokens.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError("token sequence longer than the decoder context")
        positions = self.positional_embedding[offset: offset + tokens.shape[1]]
        x = self.token_embedding(tokens).float() + positions
        weights: list[Tensor] = []
        for i, block in enumerate(cast(list[ResidualAttentionBlock], self.blocks)):
            x, cache.self_kv[i], w = block.forward_decoder(x, cache.self_kv[i], cache.cross_kv[i],
                                                           want_cross_weights)
            if w is not None:
                weights.append(w)
        return self.ln(x), weights

    def logits(self, hidden: Tensor) -> Tensor:
        """Hidden states (..., n_text_state) -> float32 logits (..., n_vocab) through the tied
        token embedding."""
        weight = self.token_embedding.weight
        return F.linear(hidden.to(weight.dtype), weight).float()

    def forward(self, tokens: Tensor, cache: DecoderCache, want_cross_weights: bool = False
                ) -> tuple[Tensor, list[Tensor]]:
        """Like :meth:`hidden` but returns logits (B, L, n_vocab) for every position."""
        x, weights = self.hidden(tokens, cache, want_cross_weights)
        return self.logits(x), weights


class Whisper(nn.Module):
    """Encoder + decoder. ``alignment_heads`` (layer, head) pairs pick the cross-attention heads
    that track time (used for word timestamps)."""

    def __init__(self, dims: ModelDimensions,
                 alignment_heads: tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.decoder = TextDecoder(dims)
        if not alignment_heads:  # Whisper's default: every head of the upper half of the layers
            alignment_heads = tuple((layer, head)
                                    for layer in range(dims.n_text_layer // 2, dims.n_text_layer)
                                    for head in range(dims.n_text_head))
        self.alignment_heads = alignment_heads

    def use_int8(self) -> None:
        """Dynamic int8 inference (in place, irreversible) for the work that runs over audio
        frames: every linear layer of the encoder and the decoder's cross-attention key/value
        projections of the encoder output become :class:`Int8Linear`. The token-side decoder
        (self-attention, cross-attention queries, MLPs, logits) stays float32: one token at a
        time it is bound by per-call overhead more than arithmetic, and quantizing it changed
        greedy transcripts (4 of 13 dev files with the logits projection, 1 with the blocks,
        and a streamed digit string looped)."""
        if not int8_supported():
            raise RuntimeError("this torch build has no quantized engine for int8 inference")
        quantize_int8(self.encoder)
        for block in cast(list[ResidualAttentionBlock], self.decoder.blocks):
            assert block.cross_attn is not None
            for name in ("key", "value"):
                setattr(block.cross_attn, name,
                        Int8Linear.from_linear(getattr(block.cross_attn, name)))

    def forward(self, mel: Tensor, tokens: Tensor) -> Tensor:
        """Full-context logits (B, L, n_vocab) of ``tokens`` given mel (B, n_mels, 2T)."""
        cache = self.decoder.new_cache(self.encoder(mel))
        return self.decoder(tokens, cache)[0]
