"""Moonshine's tokenizer (SentencePiece-style BPE with byte fallback, 32,000 pieces; the model's
vocabulary is padded to 32,768) through the ``tokenizers`` library.

Two sources:
- ``tokenizer.json`` of the Hugging Face layout (``UsefulSensors/moonshine-*``), read as is;
- ``tokenizer.bin`` of the ``moonshine-cpp`` package: one entry per token id, in id order, each
  a length then the piece's bytes (the length is one byte, or two as a little-endian base-128
  varint when >= 128). Ids 3-258 hold the raw bytes 0x00-0xFF (byte fallback), which
  ``tokenizer.json`` names ``<0x00>``-``<0xFF>``; "▁" (U+2581) stands for a space. The pieces
  become a ``tokenizers`` BPE vocabulary with the same decoder as ``tokenizer.json`` (replace
  "▁" by a space, fuse byte-fallback pieces, strip the leading space). Only decoding (ids ->
  text) is needed for speech recognition; the .bin has no merges, so encoding text with it is
  not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models

from dictation.asr.model_files import read_tokenizer
from dictation.errors import ModelError

BYTE_FALLBACK_FIRST_ID = 3
"""Id of the byte 0x00 in the byte-fallback block (ids 3-258)."""

SPACE_PIECE = "\u2581"


def read_tokenizer_bin(data: bytes, where: str = "tokenizer.bin") -> list[bytes]:
    """Pieces of a moonshine-cpp tokenizer.bin, by token id (see the module docstring)."""
    pieces: list[bytes] = []
    pos = 0
    while pos < len(data):
        length = data[pos]
        pos += 1
        if length >= 128:
            if pos >= len(data):
                raise ModelError(f"{where} is truncated at byte {pos}.")
            length = (length & 0x7F) | (data[pos] << 7)
            pos += 1
        if pos + length > len(data):
            raise ModelError(f"{where} is truncated: token {len(pieces)} runs past the end.")
        pieces.append(data[pos:pos + length])
        pos += length
    return pieces


def tokenizer_from_pieces(pieces: list[bytes], where: str = "tokenizer.bin") -> Tokenizer:
    """A ``tokenizers`` Tokenizer decoding ids to text exactly as Moonshine's tokenizer.json."""
    vocab: dict[str, int] = {}
    for token_id, piece in enumerate(pieces):
        offset = token_id - BYTE_FALLBACK_FIRST_ID
        if 0 <= offset < 256:
            if piece != bytes([offset]):
                raise ModelError(f"{where}: token {token_id} should be the byte 0x{offset:02X} "
                                 "(byte-fallback block); the file is not a Moonshine tokenizer.")
            name = f"<0x{offset:02X}>"
        else:
            try:
                name = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ModelError(f"{where}: token {token_id} is not UTF-8.") from exc
        vocab.setdefault(name, token_id)
    bpe = models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True,
                     fuse_unk=True)
    tokenizer = Tokenizer(bpe)
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace(SPACE_PIECE, " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
        decoders.Strip(" ", 1, 0),
    ])
    return tokenizer


@dataclass(frozen=True)
class MoonshineTokenizer:
    """Token ids -> text; ``n_pieces`` real pieces (ids at or above are padding/special)."""

    bpe: Tokenizer
    n_pieces: int
    bos: int = 1
    eos: int = 2

    @classmethod
    def from_tokenizer_bin(cls, path: Path) -> MoonshineTokenizer:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"Cannot read the tokenizer {path}: {exc}") from exc
        pieces = read_tokenizer_bin(data, str(path))
        return cls(tokenizer_from_pieces(pieces, str(path)), n_pieces=len(pieces))

    @classmethod
    def from_tokenizer_json(cls, path: Path) -> MoonshineTokenizer:
        bpe = read_tokenizer(path)
        return cls(bpe, n_pieces=bpe.get_vocab_size(with_added_tokens=False))

    def decode(self, tokens: list[int]) -> str:
        """Text of ``tokens`` without special tokens (<s>, </s>, <unk>, padding ids)."""
        kept = [t for t in tokens if 2 < t < self.n_pieces]
        return str(self.bpe.decode(kept, skip_special_tokens=True))

    def piece(self, token: int) -> str:
        """The piece of one id ("▁the"), for diagnostics."""
        return self.bpe.id_to_token(token) or ""
