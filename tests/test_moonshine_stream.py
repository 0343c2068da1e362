"""Moonshine's streaming decoder (re-decoding): words from tokens; a segment decoded as it
grows with the committed words forced, through the project's real LocalAgreement commit
policy, ends with the offline transcript; and the recognizer's sessions (the family-neutral
driver over this decoder) stream dev files (real base-en weights, real speech; slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dictation import SAMPLE_RATE
from dictation.asr.catalog import resolve
from dictation.asr.commit import LocalAgreement, Word
from dictation.asr.decoder import SegmentView
from dictation.asr.events import Commit
from dictation.asr.moonshine.recognizer import MoonshineRecognizer, load_moonshine_recognizer
from dictation.asr.moonshine.stream import MoonshineStreamDecoder, split_words
from dictation.asr.moonshine.tokenizer import MoonshineTokenizer, tokenizer_from_pieces
from dictation.asr.recognizer import LoadOptions
from dictation.asr.replay import replay
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


def growing_segment(stream: np.ndarray, end: int, committed: list[Word]) -> SegmentView:
    """The open segment as the driver shows it: one segment from sample 0 of ``stream``."""
    return SegmentView(index=0, start=0, end=end, committed=committed, speech_samples=end,
                       closed=[], audio=lambda a, b: stream[a:b])


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    try:
        resolved = resolve("moonshine-base-en")
    except Exception as exc:  # the optional extra is not installed
        pytest.skip(f"moonshine-base-en is not installed: {exc}")
    return load_moonshine_recognizer(resolved, LoadOptions(threads=1, compute="float32"))


@pytest.mark.slow
def test_growing_segment_commits_the_offline_transcript(recognizer: MoonshineRecognizer) -> None:
    audio = load_audio(DEV_WAV_DIR / "whisper-jfk.wav")
    decoder = MoonshineStreamDecoder(recognizer.loaded)
    state = decoder.new_state()
    policy = LocalAgreement(2)
    step = int(0.8 * SAMPLE_RATE)
    typed: list[Word] = []
    for end in range(step, len(audio), step):
        hypothesis = decoder.decode(growing_segment(audio, end, list(policy.committed)), state,
                                    final=False)
        if hypothesis is not None:
            typed += policy.update(hypothesis.words, speech_ongoing=True)
    assert len(typed) >= 10, "words should be committed while the segment grows"
    final = decoder.decode(growing_segment(audio, len(audio), list(policy.committed)), state,
                           final=True)
    assert final is not None
    typed += policy.commit_all(final.words)
    offline = recognizer.transcribe(audio)
    assert "".join(w.text for w in typed).strip() == offline


@pytest.mark.slow
@pytest.mark.parametrize("name", ["whisper-jfk.wav", "ljspeech-lj001-0001.wav"])
def test_sessions_stream_dev_files_through_the_driver(recognizer: MoonshineRecognizer,
                                                      name: str) -> None:
    """The recognizer's session is the real driver (VAD, segments, cadence, LocalAgreement)
    over the Moonshine decoder: words are committed while the audio plays, and all that is
    committed, in order, equals the offline transcript word for word (case and punctuation
    aside; the driver may cut a long utterance into segments at pauses)."""
    audio = load_audio(DEV_WAV_DIR / name)
    events = list(replay(recognizer.open_session(), audio, chunk_s=0.1,
                         trailing_silence_s=1.0))
    commits = [e for e in events if isinstance(e.event, Commit)]
    assert commits and commits[0].event.audio_time_s < len(audio) / SAMPLE_RATE
    streamed = "".join(e.event.text for e in commits)

    def words(text: str) -> list[str]:
        return [w.strip(".,;:!?").lower() for w in text.split()]

    offline = words(recognizer.transcribe(audio))
    got = words(streamed)
    same = sum(a == b for a, b in zip(got, offline, strict=False))
    assert same >= 0.85 * len(offline), (streamed, offline)
