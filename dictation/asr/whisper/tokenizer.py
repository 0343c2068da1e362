"""Whisper's byte-level BPE (through the `tokenizers` library) and its special tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from dictation.asr.model_files import read_tokenizer
from dictation.errors import ModelError


@dataclass(frozen=True)
class WhisperTokenizer:
    """Text <-> token ids, plus the ids of the special tokens decoding needs."""

    bpe: Tokenizer
    multilingual: bool
    language: str = "en"

    @classmethod
    def from_file(cls, path: Path, n_vocab: int, language: str = "en") -> WhisperTokenizer:
        bpe = read_tokenizer(path)
        return cls(bpe, multilingual=n_vocab >= 51865, language=language)

    def _special(self, text: str) -> int:
        token_id = self.bpe.token_to_id(text)
        if token_id is None:
            raise ModelError(f"tokenizer has no special token {text}")
        return token_id

    @property
    def eot(self) -> int:
        return self._special("<|endoftext|>")

    @property
    def sot(self) -> int:
        return self._special("<|startoftranscript|>")

    @property
    def sot_prev(self) -> int:
        return self._special("<|startofprev|>")

    @property
    def no_speech(self) -> int:
        token_id = self.bpe.token_to_id("<|nospeech|>")
        return self._special("<|nocaptions|>") if token_id is None else token_id

    @property
    def no_timestamps(self) -> int:
        return self._special("<|notimestamps|>")

    @property
    def timestamp_begin(self) -> int:
        """Id of <|0.00|>; every id at or above it is a timestamp (0.02 s steps)."""
        return self.no_timestamps + 1

    @property
    def sot_sequence(self) -> tuple[int, ...]:
        """Start of a transcript: <|startoftranscript|> (+ <|lang|><|transcribe|> if
        multilingual)."""
        if not self.multilingual:
            return (self.sot,)
        return (self.sot, self._special(f"<|{self.language}|>"), self._special("<|transcribe|>"))

    def encode(self, text: str) -> list[int]:
        return list(self.bpe.encode(text, add_special_tokens=False).ids)

    def decode(self, tokens: list[int]) -> str:
        """Text of ordinary tokens (special and timestamp tokens are dropped)."""
        return str(self.bpe.decode([t for t in tokens if t < self.eot]))

    def token_text(self, token: int) -> str:
        return str(self.bpe.decode([token]))
