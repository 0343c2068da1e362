"""Moonshine v2 ("Moonshine Streaming") encoder-decoder in torch. Tensors only: no files,
no tokenizer, no CLI.

The reference is ``transformers``' ``MoonshineStreamingForConditionalGeneration`` (5.23); module
and parameter names follow its checkpoint layout (without the leading ``model.``) so that a
Hugging Face ``model.safetensors`` loads with ``load_state_dict(strict=True)``.

Units and shapes. Audio is 16 kHz float samples. The front end cuts it into 5 ms *audio frames*
(``n_frame`` = 80 samples), embeds each frame on its own, and two causal stride-2 convolutions
bring it to 20 ms *encoder frames* (50 Hz). B = batch, T = encoder frames, L = decoder tokens.

Streaming. The encoder's self-attention is a per-layer sliding window ``(left, right)``: frame q
sees frames k with ``0 <= q - k < left`` and ``0 < k - q < right`` (transformers'
``sliding_window_mask_function``), so each layer looks ``max(right - 1, 0)`` frames ahead and an
encoder output is final once :func:`lookahead_frames` more frames exist. :class:`StreamingEncoder`
computes the encoder in WeNet style, ``forward_chunk(x, state) -> (y, new_state)``: each frame is
computed once, when it can no longer change, and only the provisional tail (the last
``lookahead_frames`` frames, as if the audio ended now) is recomputed per update, by
:meth:`StreamingEncoder.tail`. The decoder cross-attends to the encoder frames of the open segment
with learned positions counted from the segment start; the cross-attention keys/values of a frame
depend on that frame only, so :class:`SegmentMemory` keeps them for frozen frames and the decoder
re-runs only on the open segment.

The model is shared and read-only; per-stream state (:class:`EncoderState`,
:class:`SegmentMemory`, :class:`DecoderCache`) is separate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelDimensions:
    """Everything that describes a Moonshine v2 checkpoint's shape."""

    n_enc_state: int
    """Encoder width (and conv stem width)."""
    n_enc_head: int
    n_enc_kv_head: int
    n_enc_head_dim: int
    n_enc_mlp: int
    sliding_windows: tuple[tuple[int, int], ...]
    """Per encoder layer (left, right) window, in encoder frames; its length is the layer count."""
    n_state: int
    """Decoder width."""
    n_head: int
    n_head_dim: int
    n_mlp: int
    n_layer: int
    n_vocab: int
    n_pos: int = 4096
    """Learned positions of encoder frames in a segment (4096 frames = 81.9 s)."""
    rotary_dim: int = 32
    """Decoder head dimensions that carry rotary positions (head_dim * partial_rotary_factor)."""
    rope_theta: float = 10000.0
    n_frame: int = 80
    """Audio samples per 5 ms audio frame (16 kHz)."""
    bos_token: int = 1
    eos_token: int = 2

    @property
    def n_enc_layer(self) -> int:
        return len(self.sliding_windows)


def _tiny() -> ModelDimensions:
    return ModelDimensions(
        n_enc_state=320, n_enc_head=8, n_enc_kv_head=8, n_enc_head_dim=40, n_enc_mlp=1280,
        sliding_windows=((16, 4), (16, 4), (16, 0), (16, 0), (16, 4), (16, 4)),
        n_state=320, n_head=8, n_head_dim=40, n_mlp=1280, n_layer=6, n_vocab=32768,
        rotary_dim=32)


def _windows(n_layer: int) -> tuple[tuple[int, int], ...]:
    """First two and last two layers look 4 frames ahead, the middle ones are causal."""
    return tuple((16, 4) if i < 2 or i >= n_layer - 2 else (16, 0) for i in range(n_layer))


CHECKPOINT_DIMS: dict[str, ModelDimensions] = {
    # transformers' MoonshineStreamingConfig defaults are the tiny checkpoint (33.6 M parameters).
    "tiny": _tiny(),
    # Widths and layer counts: Moonshine v2 paper, table 1 (encoder 620 / decoder 512, 10 / 10
    # layers; 123.4 M); encoder attention 8 x 64 (620 -> 512 -> 620). MLP widths 4 x state, which
    # reproduces the paper's per-stage parameter counts.
    "small": ModelDimensions(
        n_enc_state=620, n_enc_head=8, n_enc_kv_head=8, n_enc_head_dim=64, n_enc_mlp=2480,
        sliding_windows=_windows(10), n_state=512, n_head=8, n_head_dim=64, n_mlp=2048,
        n_layer=10, n_vocab=32768, rotary_dim=51),
    # Paper table 1: encoder 768 / decoder 640, 14 / 14 layers, 244.9 M. Encoder attention width
    # 640 (10 x 64) is what matches the paper's 93.7 M encoder parameters.
    "medium": ModelDimensions(
        n_enc_state=768, n_enc_head=10, n_enc_kv_head=10, n_enc_head_dim=64, n_enc_mlp=3072,
        sliding_windows=_windows(14), n_state=640, n_head=10, n_head_dim=64, n_mlp=2560,
        n_layer=14, n_vocab=32768, rotary_dim=51),
}
"""Dimensions of the published checkpoints, for benchmarks on random weights; a downloaded
checkpoint's own config.json is what the loader uses."""


def lookahead_frames(dims: ModelDimensions) -> int:
    """Encoder frames after frame t that must exist before frame t's output is final."""
    return sum(max(right - 1, 0) for _, right in dims.sliding_windows)


# --------------------------------------------------------------------------- building blocks


class UnitOffsetLayerNorm(nn.Module):
    """LayerNorm without bias whose scale is stored as ``gamma`` with 1 added (the encoder's)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:]) * (self.gamma + 1.0)


class Compression(nn.Module):
    """asinh(k * x) with a learned k = exp(log_k)."""

    def __init__(self) -> None:
        super().__init__()
        self.log_k = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return torch.asinh(torch.exp(self.log_k) * x)


class Embedder(nn.Module):
    """Audio frames -> 50 Hz encoder inputs: per-frame CMVN, asinh, linear + SiLU, then two
    causal stride-2 convolutions (kernel 5)."""

    kernel = 5
    stride = 2

    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        d = dims.n_enc_state
        self.comp = Compression()
        self.linear = nn.Linear(dims.n_frame, d, bias=False)
        self.conv1 = nn.Conv1d(d, 2 * d, self.kernel, stride=self.stride)
        self.conv2 = nn.Conv1d(2 * d, d, self.kernel, stride=self.stride)

    def embed_frames(self, frames: Tensor) -> Tensor:
        """(B, F, n_frame) samples -> (B, F, n_enc_state); each frame on its own."""
        centered = frames - frames.mean(dim=-1, keepdim=True)
        rms = (centered.pow(2).mean(dim=-1, keepdim=True) + 1e-6).sqrt()
        return F.silu(self.linear(self.comp(centered / rms)))

    def forward(self, audio: Tensor) -> Tensor:
        """(B, F * n_frame) samples -> (B, ceil(ceil(F / 2) / 2), n_enc_state)."""
        frames = audio.reshape(audio.shape[0], -1, self.linear.in_features)
        if frames.shape[1] == 0:
            return audio.new_zeros(audio.shape[0], 0, self.conv2.out_channels)
        x = self.embed_frames(frames).transpose(1, 2)
        pad = self.kernel - 1
        x = F.silu(self.conv1(F.pad(x, (pad, 0))))
        x = self.conv2(F.pad(x, (pad, 0)))
        return x.transpose(1, 2)


def window_mask(q_pos: Tensor, k_pos: Tensor, window: tuple[int, int]) -> Tensor:
    """Boolean (Tq, Tk): may query position q see key position k under (left, right)."""
    left, right = window
    dist = q_pos[:, None] - k_pos[None, :]
    return ((dist >= 0) & (dist < left)) | ((dist < 0) & (-dist < right))


class EncoderAttention(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        d, hd = dims.n_enc_state, dims.n_enc_head_dim
        self.n_head, self.n_kv_head, self.head_dim = dims.n_enc_head, dims.n_enc_kv_head, hd
        self.q_proj = nn.Linear(d, dims.n_enc_head * hd, bias=False)
        self.k_proj = nn.Linear(d, dims.n_enc_kv_head * hd, bias=False)
        self.v_proj = nn.Linear(d, dims.n_enc_kv_head * hd, bias=False)
        self.o_proj = nn.Linear(dims.n_enc_head * hd, d, bias=False)

    def forward(self, xq: Tensor, xkv: Tensor, mask: Tensor) -> Tensor:
        """xq (B, Tq, d) queries, xkv (B, Tk, d) keys/values, mask (Tq, Tk) bool -> (B, Tq, d)."""
        b, tq, _ = xq.shape
        q = self.q_proj(xq).view(b, tq, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(xkv).view(b, -1, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(xkv).view(b, -1, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.n_kv_head != self.n_head:
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, tq, self.n_head * self.head_dim))


class EncoderMLP(nn.Module):
    def __init__(self, d: int, n_mlp: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, n_mlp)
        self.fc2 = nn.Linear(n_mlp, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, dims: ModelDimensions, window: tuple[int, int]) -> None:
        super().__init__()
        self.window = window
        self.input_layernorm = UnitOffsetLayerNorm(dims.n_enc_state)
        self.self_attn = EncoderAttention(dims)
        self.post_attention_layernorm = UnitOffsetLayerNorm(dims.n_enc_state)
        self.mlp = EncoderMLP(dims.n_enc_state, dims.n_enc_mlp)

    def forward(self, x: Tensor, start: int, q_start: int, q_end: int) -> Tensor:
        """Outputs for absolute frames [q_start, q_end) from inputs x (B, T, d) that hold
        frames [start, start + T); frames outside x do not exist. -> (B, q_end - q_start, d)."""
        k_pos = torch.arange(start, start + x.shape[1])
        q_pos = torch.arange(q_start, q_end)
        normed = self.input_layernorm(x)
        xq = x[:, q_start - start:q_end - start]
        h = xq + self.self_attn(normed[:, q_start - start:q_end - start], normed,
                                window_mask(q_pos, k_pos, self.window))
        return h + self.mlp(self.post_attention_layernorm(h))


class AudioEncoder(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        self.embedder = Embedder(dims)
        self.layers = nn.ModuleList(EncoderLayer(dims, w) for w in dims.sliding_windows)
        self.final_norm = UnitOffsetLayerNorm(dims.n_enc_state)

    def forward(self, audio: Tensor) -> Tensor:
        """Full recompute: (B, F * n_frame) samples -> (B, T, n_enc_state) encoder frames."""
        x = self.embedder(audio)
        for layer in self.layers:
            x = layer(x, 0, 0, x.shape[1])
        return self.final_norm(x)


# --------------------------------------------------------------------------- decoder


def rotary_tables(dims: ModelDimensions, positions: Tensor) -> tuple[Tensor, Tensor]:
    """cos, sin of shape (L, rotary_dim), each frequency repeated for its pair of dimensions."""
    inv_freq = 1.0 / (dims.rope_theta ** (
        torch.arange(0, dims.rotary_dim, 2, dtype=torch.float) / dims.rotary_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    return freqs.cos().repeat_interleave(2, dim=-1), freqs.sin().repeat_interleave(2, dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs (2i, 2i + 1) of the first rotary_dim dims of x (B, H, L, hd)."""
    rot = cos.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]
    rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
    return torch.cat([x_rot * cos + rotated * sin, x_pass], dim=-1)


class DecoderAttention(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        d, hd = dims.n_state, dims.n_head_dim
        self.n_head, self.head_dim = dims.n_head, hd
        self.q_proj = nn.Linear(d, dims.n_head * hd, bias=False)
        self.k_proj = nn.Linear(d, dims.n_head * hd, bias=False)
        self.v_proj = nn.Linear(d, dims.n_head * hd, bias=False)
        self.o_proj = nn.Linear(dims.n_head * hd, d, bias=False)

    def heads(self, x: Tensor) -> Tensor:
        """(B, L, H * hd) -> (B, H, L, hd)."""
        return x.view(x.shape[0], x.shape[1], self.n_head, self.head_dim).transpose(1, 2)

    def kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of x (B, T, d), each (B, H, T, hd), before any rotary."""
        return self.heads(self.k_proj(x)), self.heads(self.v_proj(x))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, causal_offset: int | None) -> Tensor:
        """q (B, H, L, hd) over k, v (B, H, S, hd); causal_offset = position of q's first row
        among the S keys for self-attention, None for cross-attention. -> (B, L, d)."""
        mask = None
        if causal_offset is not None and q.shape[2] > 1:
            q_pos = torch.arange(causal_offset, causal_offset + q.shape[2])
            mask = q_pos[:, None] >= torch.arange(k.shape[2])[None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, _, length, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, length, self.n_head * self.head_dim))


class DecoderMLP(nn.Module):
    """SwiGLU: fc1 gives (x, gate), out = fc2(silu(gate) * x)."""

    def __init__(self, d: int, n_mlp: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * n_mlp)
        self.fc2 = nn.Linear(n_mlp, d)

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(gate) * h)


class DecoderLayer(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        d = dims.n_state
        self.input_layernorm = nn.LayerNorm(d, bias=False)
        self.self_attn = DecoderAttention(dims)
        self.post_attention_layernorm = nn.LayerNorm(d, bias=False)
        self.encoder_attn = DecoderAttention(dims)
        self.final_layernorm = nn.LayerNorm(d, bias=False)
        self.mlp = DecoderMLP(d, dims.n_mlp)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], cross_kv: tuple[Tensor, Tensor],
                self_kv: tuple[Tensor, Tensor] | None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, L, d) new tokens; self_kv: cached rotated keys/values of earlier tokens."""
        cos, sin = rope
        attn = self.self_attn
        h = self.input_layernorm(x)
        q = apply_rotary(attn.heads(attn.q_proj(h)), cos, sin)
        k, v = attn.kv(h)
        k = apply_rotary(k, cos, sin)
        offset = 0
        if self_kv is not None:
            offset = self_kv[0].shape[2]
            k, v = torch.cat([self_kv[0], k], dim=2), torch.cat([self_kv[1], v], dim=2)
        x = x + attn.attend(q, k, v, causal_offset=offset)
        cross = self.encoder_attn
        h = self.post_attention_layernorm(x)
        x = x + cross.attend(cross.heads(cross.q_proj(h)), *cross_kv, causal_offset=None)
        x = x + self.mlp(self.final_layernorm(x))
        return x, (k, v)


@dataclass
class DecoderCache:
    """Per-hypothesis decoder state: rotated self-attention keys/values of the tokens decoded so
    far, per layer, each (B, H, L, hd)."""

    self_kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return 0 if not self.self_kv else self.self_kv[0][0].shape[2]


class TextDecoder(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        self.dims = dims
        self.embed_tokens = nn.Embedding(dims.n_vocab, dims.n_state)
        self.pos_emb = nn.Embedding(dims.n_pos, dims.n_enc_state)
        self.proj: nn.Module = (nn.Linear(dims.n_enc_state, dims.n_state, bias=False)
                                if dims.n_enc_state != dims.n_state else nn.Identity())
        self.layers = nn.ModuleList(DecoderLayer(dims) for _ in range(dims.n_layer))
        self.norm = nn.LayerNorm(dims.n_state, bias=False)

    def cross_kv(self, frames: Tensor, first_position: int) -> list[tuple[Tensor, Tensor]]:
        """Per-layer cross-attention keys/values (B, H, T, hd) of encoder frames (B, T, d_enc)
        that sit at positions [first_position, first_position + T) of their segment. Each
        frame's keys/values depend on that frame alone."""
        positions = torch.arange(first_position, first_position + frames.shape[1])
        if positions.numel() and int(positions[-1]) >= self.dims.n_pos:
            raise ValueError(f"segment longer than {self.dims.n_pos} encoder frames")
        memory = self.proj(frames + self.pos_emb(positions))
        out: list[tuple[Tensor, Tensor]] = []
        for layer in cast(list[DecoderLayer], list(self.layers)):
            out.append(layer.encoder_attn.kv(memory))
        return out

    def forward(self, tokens: Tensor, cross_kv: list[tuple[Tensor, Tensor]],
                cache: DecoderCache | None = None) -> tuple[Tensor, DecoderCache]:
        """tokens (B, L) new tokens after ``cache``'s -> hidden states (B, L, n_state) after the
        final norm, and the extended cache (a new object; ``cache`` is not changed)."""
        offset = 0 if cache is None else cache.n_tokens
        positions = torch.arange(offset, offset + tokens.shape[1])
        cos, sin = rotary_tables(self.dims, positions)
        x = self.embed_tokens(tokens)
        new_kv: list[tuple[Tensor, Tensor]] = []
        for i, layer in enumerate(self.layers):
            past = cache.self_kv[i] if cache is not None and cache.self_kv else None
            x, kv = layer(x, (cos, sin), cross_kv[i], past)
            new_kv.append(kv)
        return self.norm(x), DecoderCache(new_kv)


class MoonshineStreaming(nn.Module):
    """The whole model; names match the checkpoint's (``model.`` prefix dropped)."""

    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.decoder = TextDecoder(dims)
        self.proj_out = nn.Linear(dims.n_state, dims.n_vocab, bias=False)

    def logits(self, tokens: Tensor, cross_kv: list[tuple[Tensor, Tensor]],
               cache: DecoderCache | None = None) -> tuple[Tensor, DecoderCache]:
        """(B, L) tokens -> (B, L, n_vocab) logits and the extended cache."""
        hidden, new_cache = self.decoder(tokens, cross_kv, cache)
        return self.proj_out(hidden), new_cache


# --------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class EncoderState:
    """Per-stream state of :class:`StreamingEncoder`. Frame counts are absolute, from the start
    of the stream; tensors are never changed in place (each update makes a new state).

    pending: (B, n < n_frame) samples not yet a whole 5 ms audio frame.
    conv1_in: (B, n_enc_state, S1) embedded audio frames conv1 still needs (left zero padding at
        the start of the stream); conv2_in likewise (B, 2 * n_enc_state, S2) for conv2.
    layer_in[l]: (B, S, n_enc_state) final inputs of encoder layer l for frames
        [layer_start[l], layer_start[l] + S): the window the next final outputs and the
        provisional tail need.
    n_final[l]: outputs of layer l that are final (computed once, never again).
    """

    pending: Tensor
    conv1_in: Tensor
    conv2_in: Tensor
    layer_in: tuple[Tensor, ...]
    layer_start: tuple[int, ...]
    n_final: tuple[int, ...]

    @property
    def n_frozen(self) -> int:
        """Final encoder frames emitted so far."""
        return self.n_final[-1]

    @property
    def n_frames(self) -> int:
        """Encoder frames the audio so far gives (final + provisional)."""
        return self.layer_start[0] + self.layer_in[0].shape[1]


class StreamingEncoder:
    """The encoder of a shared :class:`MoonshineStreaming`, fed incrementally (WeNet style).

    ``forward_chunk(x, state) -> (y, new_state)``: x (B, n) new samples (any n >= 0); y
    (B, T_new, n_enc_state) the encoder frames that became final with these samples, each
    computed exactly once. ``tail(state)`` (B, T_tail, n_enc_state) gives the frames that may
    still change, as the full encoder would give them if the audio ended now; so at any time
    ``cat(all y, tail(state))`` equals ``AudioEncoder(audio so far, whole frames)`` and
    T_tail <= :func:`lookahead_frames` (12 for the published windows).
    """

    def __init__(self, model: MoonshineStreaming) -> None:
        self.model = model
        self.encoder = model.encoder
        self.dims = model.dims
        self.lookahead = [max(right - 1, 0) for _, right in self.dims.sliding_windows]

    def initial_state(self, batch: int = 1, dtype: torch.dtype = torch.float32) -> EncoderState:
        d, pad = self.dims.n_enc_state, Embedder.kernel - 1
        n = self.dims.n_enc_layer
        return EncoderState(
            pending=torch.zeros(batch, 0, dtype=dtype),
            conv1_in=torch.zeros(batch, d, pad, dtype=dtype),
            conv2_in=torch.zeros(batch, 2 * d, pad, dtype=dtype),
            layer_in=tuple(torch.zeros(batch, 0, d, dtype=dtype) for _ in range(n)),
            layer_start=(0,) * n,
            n_final=(0,) * n,
        )

    @staticmethod
    def _conv(conv: nn.Conv1d, buffer: Tensor) -> tuple[Tensor, Tensor]:
        """Causal stride-2 conv over a buffer that starts kernel - 1 frames before its next
        output's last input; returns (outputs (B, C, m), the buffer the next call needs)."""
        k, s = Embedder.kernel, Embedder.stride
        n_out = max((buffer.shape[2] - k) // s + 1, 0)
        out = conv(buffer) if n_out else buffer.new_zeros(buffer.shape[0], conv.out_channels, 0)
        return out, buffer[:, :, s * n_out:]

    @torch.no_grad()
    def forward_chunk(self, x: Tensor, state: EncoderState) -> tuple[Tensor, EncoderState]:
        """Feed new samples x (B, n); returns the newly final encoder frames and the new state."""
        n_frame = self.dims.n_frame
        samples = torch.cat([state.pending, x.to(state.pending.dtype)], dim=1)
        whole = samples.shape[1] // n_frame * n_frame
        frames = samples[:, :whole].reshape(samples.shape[0], -1, n_frame)
        emb = self.encoder.embedder
        new = emb.embed_frames(frames).transpose(1, 2)
        c1, conv1_in = self._conv(emb.conv1, torch.cat([state.conv1_in, new], dim=2))
        c2, conv2_in = self._conv(emb.conv2, torch.cat([state.conv2_in, F.silu(c1)], dim=2))
        inputs = c2.transpose(1, 2)
        layer_in: list[Tensor] = []
        layer_start: list[int] = []
        n_final: list[int] = []
        for i, layer in enumerate(cast(list[EncoderLayer], list(self.encoder.layers))):
            buf = torch.cat([state.layer_in[i], inputs], dim=1)
            start = state.layer_start[i]
            available = start + buf.shape[1]
            done = state.n_final[i]
            ready = max(available - self.lookahead[i], done)
            inputs = (layer(buf, start, done, ready) if ready > done
                      else buf.new_zeros(buf.shape[0], 0, buf.shape[2]))
            keep_from = max(ready - layer.window[0] + 1, 0)
            layer_in.append(buf[:, keep_from - start:])
            layer_start.append(keep_from)
            n_final.append(ready)
        new_state = replace(state, pending=samples[:, whole:], conv1_in=conv1_in,
                            conv2_in=conv2_in, layer_in=tuple(layer_in),
                            layer_start=tuple(layer_start), n_final=tuple(n_final))
        return self.encoder.final_norm(inputs), new_state

    @torch.no_grad()
    def tail(self, state: EncoderState) -> Tensor:
        """The not-yet-final encoder frames [n_frozen, n_frames), as if the audio ended now."""
        provisional: Tensor | None = None
        end = state.n_frames
        for i, layer in enumerate(self.encoder.layers):
            buf = state.layer_in[i]
            if provisional is not None:
                buf = torch.cat([buf, provisional], dim=1)
            done = state.n_final[i]
            provisional = (layer(buf, state.layer_start[i], done, end) if end > done
                           else buf.new_zeros(buf.shape[0], 0, buf.shape[2]))
        assert provisional is not None
        return self.encoder.final_norm(provisional)


class SegmentMemory:
    """Cross-attention keys/values of the open segment, per stream.

    Frozen encoder frames are projected once (:meth:`extend`); the provisional tail is
    projected on every update (:meth:`with_tail`). ``start_frame`` is the absolute encoder frame
    where the segment starts (position 0 of the decoder's learned encoder positions).
    """

    def __init__(self, model: MoonshineStreaming, start_frame: int = 0) -> None:
        self.decoder = model.decoder
        self.start_frame = start_frame
        self.n_frames = 0
        self._kv: list[tuple[Tensor, Tensor]] | None = None

    @torch.no_grad()
    def extend(self, frozen: Tensor) -> None:
        """Append final frames (B, T, n_enc_state), the next ones of the segment."""
        if frozen.shape[1] == 0:
            return
        kv = self.decoder.cross_kv(frozen, self.n_frames)
        self.n_frames += frozen.shape[1]
        if self._kv is None:
            self._kv = kv
        else:
            self._kv = [(torch.cat([k0, k1], dim=2), torch.cat([v0, v1], dim=2))
                        for (k0, v0), (k1, v1) in zip(self._kv, kv, strict=True)]

    @torch.no_grad()
    def with_tail(self, tail: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-layer keys/values of frozen frames followed by the provisional tail (B, T, d)."""
        tail_kv = self.decoder.cross_kv(tail, self.n_frames)
        if self._kv is None:
            return tail_kv
        return [(torch.cat([k0, k1], dim=2), torch.cat([v0, v1], dim=2))
                for (k0, v0), (k1, v1) in zip(self._kv, tail_kv, strict=True)]


@torch.no_grad()
def greedy_tokens(model: MoonshineStreaming, cross_kv: list[tuple[Tensor, Tensor]],
                  max_tokens: int) -> list[int]:
    """Plain greedy decoding of one segment (batch 1) from the start token; stops at
    end-of-text or after max_tokens tokens. Returns the tokens without start/end."""
    tokens = torch.tensor([[model.dims.bos_token]])
    cache: DecoderCache | None = None
    out: list[int] = []
    for _ in range(max_tokens):
        logits, cache = model.logits(tokens, cross_kv, cache)
        token = int(logits[0, -1].argmax())
        if token == model.dims.eos_token:
            break
        out.append(token)
        tokens = torch.tensor([[token]])
    return out
