"""Per-stream decoder state of the encoder-decoder families (Whisper, Moonshine v1): the model
is shared and read-only, this is what one stream's decode holds (whisper.cpp's split)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class DecoderCache:
    """Self-attention keys/values of the tokens decoded so far and the cross-attention
    keys/values of one encoder output, per layer. Shapes: (B, heads, L or T, head_dim)."""

    self_kv: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)
    cross_kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        """Tokens already in the self-attention cache (the next token's position)."""
        first = self.self_kv[0] if self.self_kv else None
        return 0 if first is None else first[0].shape[2]

    def truncate(self, n_tokens: int) -> None:
        """Keep only the first ``n_tokens`` positions (to re-decode from a shared prefix)."""
        self.self_kv = [None if kv is None else (kv[0][:, :, :n_tokens], kv[1][:, :, :n_tokens])
                        for kv in self.self_kv]
