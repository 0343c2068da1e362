"""Moonshine v1 (Useful Sensors, 2024) encoder-decoder in torch. Tensors only: no files, no
tokenizer, no decoding policy.

The encoder reads raw 16 kHz audio (no mel spectrogram): a stem of three 1-D convolutions
(strides 64, 3, 2: one encoder frame per 384 samples, 24 ms, about 41.7 frames per second)
then ``n_encoder_layers`` pre-norm transformer layers with rotary positions. Its cost grows
with the audio (no fixed 30 s window). The decoder is a pre-norm transformer with rotary
self-attention, cross-attention to the encoder output and a gated SiLU MLP; its output
projection is tied to the token embedding.

Shapes use B = batch, S = audio samples, T = encoder frames, L = decoder tokens. The model is
shared and read-only; per-stream decoding state lives in :class:`DecoderCache` (whisper.cpp's
split between model and state). Parameter names equal those of ``transformers``'
``MoonshineForConditionalGeneration`` without the leading ``model.`` (``proj_out`` is tied to
``decoder.embed_tokens`` and not a parameter of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dictation.asr.int8 import Int8Linear
from dictation.asr.kv_cache import DecoderCache

SAMPLES_PER_FRAME = 64 * 3 * 2
"""Audio samples per encoder frame (the product of the stem's conv strides): 384 = 24 ms."""


@dataclass(frozen=True)
class MoonshineDimensions:
    """Everything that describes a Moonshine v1 checkpoint's shape."""

    d_model: int
    """Width of encoder and decoder (hidden_size)."""
    d_ff: int
    """MLP width (intermediate_size); the decoder's gated MLP projects to twice this."""
    n_encoder_layers: int
    n_decoder_layers: int
    n_encoder_heads: int
    n_decoder_heads: int
    n_encoder_kv_heads: int
    n_decoder_kv_heads: int
    rotary_dim: int = 32
    """Leading dimensions of each head that rotary positions rotate (int(head_dim *
    partial_rotary_factor)); the rest pass unchanged."""
    rope_theta: float = 10000.0
    n_vocab: int = 32768
    max_decoder_positions: int = 194
    """The decoder's trained context (max_position_embeddings), in tokens."""
    attention_bias: bool = False
    bos_token_id: int = 1
    """Decoder start token (<s>)."""
    eos_token_id: int = 2
    """End of text (</s>)."""

    @property
    def encoder_head_dim(self) -> int:
        return self.d_model // self.n_encoder_heads

    @property
    def decoder_head_dim(self) -> int:
        return self.d_model // self.n_decoder_heads


MOONSHINE_TINY = MoonshineDimensions(d_model=288, d_ff=1152, n_encoder_layers=6,
                                     n_decoder_layers=6, n_encoder_heads=8, n_decoder_heads=8,
                                     n_encoder_kv_heads=8, n_decoder_kv_heads=8, rotary_dim=32)
"""UsefulSensors/moonshine-tiny: 27 M parameters."""

MOONSHINE_BASE = MoonshineDimensions(d_model=416, d_ff=1664, n_encoder_layers=8,
                                     n_decoder_layers=8, n_encoder_heads=8, n_decoder_heads=8,
                                     n_encoder_kv_heads=8, n_decoder_kv_heads=8, rotary_dim=32)
"""UsefulSensors/moonshine-base and moonshine-cpp's base-en: 61.5 M parameters."""


MIN_SAMPLES = 127 + 12 * 64
"""Shortest audio the stem turns into one encoder frame: 895 samples (56 ms)."""


def encoder_frames(n_samples: int) -> int:
    """Encoder frames the stem makes of ``n_samples`` audio samples (0 when too short)."""
    if n_samples < 127:
        return 0
    t1 = (n_samples - 127) // 64 + 1
    t2 = (t1 - 7) // 3 + 1 if t1 >= 7 else 0
    return (t2 - 3) // 2 + 1 if t2 >= 3 else 0


class RotaryEmbedding(nn.Module):
    """Rotary positions, interleaved pairs (x[2i], x[2i+1]) on the first ``rotary_dim`` dims."""

    inv_freq: Tensor

    def __init__(self, rotary_dim: int, theta: float) -> None:
        super().__init__()
        self.rotary_dim, self.theta = rotary_dim, theta
        self.register_buffer("inv_freq", self.inverse_frequencies(), persistent=False)

    def inverse_frequencies(self, device: torch.device | str | None = None) -> Tensor:
        """1 / theta^(2i / rotary_dim) for i < rotary_dim / 2 (computed, not a checkpoint
        tensor)."""
        exponents = torch.arange(0, self.rotary_dim, 2, dtype=torch.float32,
                                 device=device) / self.rotary_dim
        return 1.0 / (self.theta ** exponents)

    def angles(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin for integer ``positions`` (L,), each (L, 2 * len(inv_freq)), pairs
        repeated: [f0, f0, f1, f1, ...]."""
        freqs = positions.to(torch.float32)[:, None] * self.inv_freq[None, :]
        freqs = freqs.repeat_interleave(2, dim=-1)
        return freqs.cos(), freqs.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first cos.shape[-1] dims of ``x`` (B, heads, L, head_dim) pairwise."""
    width = cos.shape[-1]
    rot, rest = x[..., :width], x[..., width:]
    pairs = rot.unflatten(-1, (-1, 2))
    rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return torch.cat((rot * cos + rotated_half * sin, rest), dim=-1)


class Attention(nn.Module):
    """Multi-head attention (grouped-query when kv heads < heads); output projection
    ``o_proj``."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, bias: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=False)

    def split(self, x: Tensor, heads: int) -> Tensor:
        """(B, L, heads * head_dim) -> (B, heads, L, head_dim)."""
        return x.unflatten(-1, (heads, self.head_dim)).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``x`` (B, L, d_model), each (B, kv_heads, L, head_dim)."""
        return self.split(self.k_proj(x), self.n_kv_heads), self.split(self.v_proj(x),
                                                                       self.n_kv_heads)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """softmax(q k^T / sqrt(head_dim)) v, heads merged and projected: (B, L, d_model).
        ``mask`` (L, T) is True where attention is allowed."""
        if self.n_kv_heads != self.n_heads:
            repeat = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(repeat, dim=1)
            v = v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).flatten(2))


class EncoderMLP(nn.Module):
    """fc1 -> GELU (exact, erf) -> fc2."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DecoderMLP(nn.Module):
    """Gated: fc1 to 2 * d_ff, split into (up, gate), SiLU(gate) * up, fc2."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        up, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(gate) * up)


class EncoderLayer(nn.Module):
    def __init__(self, dims: MoonshineDimensions) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(dims.d_model, bias=False)
        self.self_attn = Attention(dims.d_model, dims.n_encoder_heads, dims.n_encoder_kv_heads,
                                   dims.attention_bias)
        self.post_attention_layernorm = nn.LayerNorm(dims.d_model, bias=False)
        self.mlp = EncoderMLP(dims.d_model, dims.d_ff)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        h = self.input_layernorm(x)
        attn = self.self_attn
        q = apply_rotary(attn.split(attn.q_proj(h), attn.n_heads), cos, sin)
        k, v = attn.keys_values(h)
        x = x + attn.attend(q, apply_rotary(k, cos, sin), v, None)
        h = self.post_attention_layernorm(x)
        return x + self.mlp(h)


class AudioEncoder(nn.Module):
    """Raw audio (B, S) at 16 kHz -> encoder states (B, T, d_model), T = encoder_frames(S)."""

    def __init__(self, dims: MoonshineDimensions) -> None:
        super().__init__()
        d = dims.d_model
        self.conv1 = nn.Conv1d(1, d, kernel_size=127, stride=64, bias=False)
        self.groupnorm = nn.GroupNorm(num_groups=1, num_channels=d, eps=1e-5)
        self.conv2 = nn.Conv1d(d, 2 * d, kernel_size=7, stride=3)
        self.conv3 = nn.Conv1d(2 * d, d, kernel_size=3, stride=2)
        self.layers = nn.ModuleList(EncoderLayer(dims) for _ in range(dims.n_encoder_layers))
        self.layer_norm = nn.LayerNorm(d, bias=False)
        self.rotary = RotaryEmbedding(dims.rotary_dim, dims.rope_theta)

    def forward(self, audio: Tensor) -> Tensor:
        x = torch.tanh(self.conv1(audio.unsqueeze(1)))
        x = self.groupnorm(x)
        x = F.gelu(self.conv2(x))
        x = F.gelu(self.conv3(x)).transpose(1, 2)
        cos, sin = self.rotary.angles(torch.arange(x.shape[1]))
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.layer_norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, dims: MoonshineDimensions) -> None:
        super().__init__()
        d = dims.d_model
        self.input_layernorm = nn.LayerNorm(d, bias=False)
        self.self_attn = Attention(d, dims.n_decoder_heads, dims.n_decoder_kv_heads,
                                   dims.attention_bias)
        self.post_attention_layernorm = nn.LayerNorm(d, bias=False)
        self.encoder_attn = Attention(d, dims.n_decoder_heads, dims.n_decoder_kv_heads,
                                      dims.attention_bias)
        self.final_layernorm = nn.LayerNorm(d, bias=False)
        self.mlp = DecoderMLP(d, dims.d_ff)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None,
                past: tuple[Tensor, Tensor] | None,
                cross: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h = self.input_layernorm(x)
        attn = self.self_attn
        q = apply_rotary(attn.split(attn.q_proj(h), attn.n_heads), cos, sin)
        k, v = attn.keys_values(h)
        k = apply_rotary(k, cos, sin)
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        x = x + attn.attend(q, k, v, mask)
        h = self.post_attention_layernorm(x)
        cross_attn = self.encoder_attn
        q = cross_attn.split(cross_attn.q_proj(h), cross_attn.n_heads)
        x = x + cross_attn.attend(q, cross[0], cross[1], None)
        return x + self.mlp(self.final_layernorm(x)), (k, v)


class TextDecoder(nn.Module):
    """Tokens (B, L) + a :class:`DecoderCache` -> logits (B, L, n_vocab)."""

    def __init__(self, dims: MoonshineDimensions) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(dims.n_vocab, dims.d_model)
        self.layers = nn.ModuleList(DecoderLayer(dims) for _ in range(dims.n_decoder_layers))
        self.norm = nn.LayerNorm(dims.d_model, bias=False)
        self.rotary = RotaryEmbedding(dims.rotary_dim, dims.rope_theta)
        self.int8_logits: Int8Linear | None = None
        """The output projection in int8 (:meth:`use_int8_logits`), or None: float32."""

    def use_int8_logits(self) -> None:
        """Run the output projection (tied to the token embedding, 32,768 x 416 for base) as an
        :class:`~dictation.asr.int8.Int8Linear`: one decoder step reads 14 MB of weights
        instead of 54 MB (5.4 ms a step in float32 on one core). Measured alone (the rest in
        float32), base-en streamed on dev, one thread: RTF 0.488 -> 0.425, one file of 50
        changed ("birch canoe" -> "bridge can")."""
        self.int8_logits = Int8Linear(self.embed_tokens.weight)

    def new_cache(self, encoder_out: Tensor) -> DecoderCache:
        """A fresh per-stream cache for ``encoder_out`` (B, T, d_model): cross-attention keys
        and values computed once, no tokens yet."""
        layers = [cast(DecoderLayer, layer).encoder_attn.keys_values(encoder_out)
                  for layer in self.layers]
        return DecoderCache(cross_kv=layers, self_kv=[None] * len(self.layers))

    def forward(self, tokens: Tensor, cache: DecoderCache) -> Tensor:
        """Logits of the next token after each of ``tokens`` (B, L), which follow the
        ``cache.n_tokens`` tokens already decoded; the cache is extended by L tokens."""
        return self.logits(self.hidden(tokens, cache))

    def hidden(self, tokens: Tensor, cache: DecoderCache) -> Tensor:
        """Like :meth:`forward`, but the final (normalised) hidden states (B, L, d_model):
        the logits of only some positions are then :meth:`logits` of those rows."""
        start = cache.n_tokens
        n = tokens.shape[1]
        cos, sin = self.rotary.angles(torch.arange(start, start + n))
        mask = None
        if n > 1:  # causal within the new tokens; every cached token is visible
            mask = torch.ones(n, start + n, dtype=torch.bool).tril(diagonal=start)
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x, cache.self_kv[i] = layer(x, cos, sin, mask, cache.self_kv[i], cache.cross_kv[i])
        return self.norm(x)

    def logits(self, x: Tensor) -> Tensor:
        """Output projection, tied to the token embedding: (B, L, d_model) -> (B, L, n_vocab)."""
        if self.int8_logits is not None:
            return cast(Tensor, self.int8_logits(x))
        return F.linear(x, self.embed_tokens.weight)


class Moonshine(nn.Module):
    """Moonshine v1: :class:`AudioEncoder` + :class:`TextDecoder`."""

    def __init__(self, dims: MoonshineDimensions) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.decoder = TextDecoder(dims)

    def materialize_buffers(self, device: torch.device | str = "cpu") -> None:
        """Compute the non-checkpoint buffers (rotary frequencies) on ``device``: for a model
        built on the meta device whose parameters were then assigned from a checkpoint."""
        for module in self.modules():
            if isinstance(module, RotaryEmbedding):
                module.inv_freq = module.inverse_frequencies(device)

    def forward(self, audio: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced logits (B, L, n_vocab) of ``tokens`` (B, L) given ``audio`` (B, S)."""
        return self.decoder(tokens, self.decoder.new_cache(self.encoder(audio)))
