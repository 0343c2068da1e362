"""Moonshine's streaming decoder (re-decoding): words from tokens, and a segment decoded as it
grows with the committed words forced, through the project's real LocalAgreement commit
policy, ends with the offline transcript (real base-en weights, real speech; slow)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from dictation import SAMPLE_RATE
from dictation.asr.catalog import resolve
from dictation.asr.commit import LocalAgreement, Word
from dictation.asr.moonshine.recognizer import MoonshineRecognizer, load_moonshine_recognizer
from dictation.asr.moonshine.stream import MoonshineStreamDecoder, split_words
from dictation.asr.moonshine.tokenizer import MoonshineTokenizer, tokenizer_from_pieces
from dictation.audio.files import load_audio

pytestmark = pytest.mark.usefixtures("single_torch_thread")

DEV_WAV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "wav"


def test_split_words_groups_by_leading_space_piece() -> None:
    pieces = [b"<unk>", b"<s>", b"</s>", *[bytes([b]) for b in range(256)],
              "\u2581And".encode(), "\u2581so".encode(), b",", "\u2581f".encode(), b"ellow",
              "\u2581\u00e9".encode()]
    tok = MoonshineTokenizer(tokenizer_from_pieces(pieces), n_pieces=len(pieces))
    words = split_words([259, 260, 261, 262, 263, 264, 3 + ord("!")], tok)
    assert [w.text for w in words] == [" And", " so,", " fellow", " é!"]
    assert words[2].tokens == (262, 263)
    assert "".join(w.text for w in words).strip() == tok.decode([259, 260, 261, 262, 263, 264,
                                                                 3 + ord("!")])


@dataclass
class GrowingSegment:
    """The open segment as the driver shows it: one segment from sample 0 of ``stream``."""

    stream: np.ndarray
    end: int
    committed: list[Word] = field(default_factory=list)
    start: int = 0

    @property
    def speech_samples(self) -> int:
        return self.end - self.start

    @property
    def audio(self) -> Callable[[int, int], np.ndarray]:
        return lambda a, b: self.stream[a:b]


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    try:
        resolved = resolve("moonshine-base-en")
    except Exception as exc:  # the optional extra is not installed
        pytest.skip(f"moonshine-base-en is not installed: {exc}")
    return load_moonshine_recognizer(resolved.id, resolved.path, resolved.format, threads=1)


@pytest.mark.slow
def test_growing_segment_commits_the_offline_transcript(recognizer: MoonshineRecognizer) -> None:
    audio = load_audio(DEV_WAV_DIR / "whisper-jfk.wav")
    decoder = MoonshineStreamDecoder(recognizer.loaded)
    state = decoder.new_state()
    policy = LocalAgreement(2)
    segment = GrowingSegment(stream=audio, end=0)
    step = int(0.8 * SAMPLE_RATE)
    typed: list[Word] = []
    for end in range(step, len(audio), step):
        segment.end = end
        words = decoder.words(segment, state, final=False)
        if words is not None:
            typed += policy.update(words, speech_ongoing=True)
            segment.committed = list(policy.committed)
    assert len(typed) >= 10, "words should be committed while the segment grows"
    segment.end = len(audio)
    final = decoder.words(segment, state, final=True)
    assert final is not None
    typed += policy.commit_all(final)
    offline = recognizer.transcribe(audio)
    assert "".join(w.text for w in typed).strip() == offline
