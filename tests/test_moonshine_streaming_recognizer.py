"""The Moonshine v2 family behind the recognizer seam, on a tiny random checkpoint saved by
transformers in the real hub layout (config.json + model.safetensors + tokenizer.json): the
hub is unreachable here, so no real v2 weights exist on this machine.

What is checked: a model folder resolves to the family and loads through the registry; every
decode of the family's streaming decoder, which feeds its incremental encoder only the new
samples, equals a decode from scratch of the same audio (full encoder, same forced prefix);
the real driver (VAD on real speech, segments, LocalAgreement) commits words while the audio
plays and the committed text does not depend on how the audio was chunked; offline
transcription cuts and decodes; int8 swaps every Linear layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dictation import SAMPLE_RATE
from dictation.asr.catalog import resolve_directory
from dictation.asr.commit import LocalAgreement, Word
from dictation.asr.decoder import SegmentView
from dictation.asr.events import Commit, EndOfSegment
from dictation.asr.int8 import Int8Linear
from dictation.asr.moonshine.tokenizer import tokenizer_from_pieces
from dictation.asr.moonshine_streaming.recognizer import (
    MoonshineStreamingRecognizer,
    MoonshineV2StreamDecoder,
    transcribe_window,
)
from dictation.asr.moonshine_streaming.stream import decode_segment
from dictation.asr.recognizer import load_recognizer
from dictation.asr.replay import replay
from dictation.audio.files import load_audio

pytestmark = pytest.mark.usefixtures("single_torch_thread")
transformers = pytest.importorskip("transformers")

DEV_WAV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "wav"
N_VOCAB = 300


def save_checkpoint(directory: Path, seed: int = 5) -> None:
    """A seeded random MoonshineStreamingForConditionalGeneration saved with save_pretrained,
    and a tokenizer.json of N_VOCAB pieces (<unk>, <s>, </s>, 256 bytes, words)."""
    from transformers import MoonshineStreamingConfig, MoonshineStreamingForConditionalGeneration

    config = MoonshineStreamingConfig(
        encoder_config={"hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 3,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                        "sliding_windows": [[16, 4], [16, 0], [16, 4]]},
        hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=8, vocab_size=N_VOCAB, max_position_embeddings=512,
        decoder_start_token_id=1, eos_token_id=2, bos_token_id=1)
    torch.manual_seed(seed)
    model = MoonshineStreamingForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(str(directory))
    pieces = [b"<unk>", b"<s>", b"</s>", *[bytes([b]) for b in range(256)],
              *[f"\u2581w{i}".encode() for i in range(N_VOCAB - 259)]]
    tokenizer_from_pieces(pieces).save(str(directory / "tokenizer.json"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("moonshine-v2")
    save_checkpoint(directory)
    return directory


@pytest.fixture(scope="module")
def recognizer(folder: Path) -> MoonshineStreamingRecognizer:
    loaded = load_recognizer(str(folder), threads=1, compute="float32")
    assert isinstance(loaded, MoonshineStreamingRecognizer)
    return loaded


def speech() -> np.ndarray:
    return load_audio(DEV_WAV_DIR / "whisper-jfk.wav")


def test_a_v2_folder_resolves_to_its_family(folder: Path) -> None:
    resolved = resolve_directory(folder)
    assert (resolved.family, resolved.format) == ("moonshine_streaming", "hf")


def from_scratch(recognizer: MoonshineStreamingRecognizer, audio: np.ndarray,
                 prefix: list[int]) -> list[int]:
    model = recognizer.loaded.model
    whole = audio[: len(audio) // model.dims.n_frame * model.dims.n_frame]
    with torch.no_grad():
        frames = model.encoder(torch.from_numpy(np.ascontiguousarray(whole))[None])
        return decode_segment(model, model.decoder.cross_kv(frames, 0), frames.shape[1],
                              prefix=prefix)


def test_every_decode_equals_a_decode_from_scratch(
        recognizer: MoonshineStreamingRecognizer) -> None:
    """The decoder encodes only the samples that arrived since its last decode (ends not on
    frame boundaries), yet each hypothesis is the from-scratch decode with the same prefix;
    committed words are forced and come first."""
    audio = speech()[: 4 * SAMPLE_RATE]
    decoder = MoonshineV2StreamDecoder(recognizer.loaded)
    state = decoder.new_state()
    policy = LocalAgreement(2)
    typed: list[Word] = []
    decodes = 0
    streams = set()
    for end in range(5_001, len(audio), 5_557):
        view = SegmentView(index=0, start=0, end=end, committed=list(policy.committed),
                           speech_samples=end, closed=[], audio=lambda a, b: audio[a:b])
        prefix = [t for w in policy.committed for t in w.tokens]
        hypothesis = decoder.decode(view, state, final=False)
        expected = from_scratch(recognizer, audio[:end], prefix)
        assert hypothesis is not None
        assert [t for w in hypothesis.words for t in w.tokens] == expected
        assert hypothesis.words[: len(policy.committed)] == list(policy.committed)
        typed += policy.update(hypothesis.words, speech_ongoing=True)
        decodes += 1
        streams.add(id(state.stream))
    assert state.fed_to == end and decodes >= 10
    assert len(streams) == 1, "one incremental encoder state for the whole segment"
    assert typed, "agreeing hypotheses commit words"


def committed_text(recognizer: MoonshineStreamingRecognizer, audio: np.ndarray,
                   chunk_s: float) -> tuple[str, int, float]:
    """(all committed text, segments closed, audio time of the first commit) of a session."""
    events = [e.event for e in replay(recognizer.open_session(), audio, chunk_s=chunk_s,
                                      trailing_silence_s=1.0)]
    commits = [e for e in events if isinstance(e, Commit)]
    segments = sum(isinstance(e, EndOfSegment) for e in events)
    return "".join(c.text for c in commits), segments, commits[0].audio_time_s


def test_sessions_run_the_real_driver_and_do_not_depend_on_chunking(
        recognizer: MoonshineStreamingRecognizer) -> None:
    audio = speech()
    text, segments, first = committed_text(recognizer, audio, chunk_s=0.1)
    assert text.strip() and segments >= 1
    assert first < len(audio) / SAMPLE_RATE, "words are committed while the audio plays"
    assert committed_text(recognizer, audio, chunk_s=0.37)[0] == text


def test_offline_transcription_decodes_the_whole_recording(
        recognizer: MoonshineStreamingRecognizer) -> None:
    audio = speech()[: 5 * SAMPLE_RATE]
    expected = recognizer.loaded.tokenizer.decode(from_scratch(recognizer, audio, [])).strip()
    assert recognizer.transcribe(audio) == expected
    assert recognizer.transcribe(np.zeros(0, np.float32)) == ""
    assert transcribe_window(recognizer.loaded, np.zeros(40, np.float32), speech_found=False,
                             options=recognizer.open_session().config.decoder.decode) == ""
    recognizer.warm_up()


def test_int8_compute_swaps_every_linear_layer(folder: Path) -> None:
    loaded: Any = load_recognizer(str(folder), threads=1, compute="int8")
    model = loaded.loaded.model
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) > 10
    assert isinstance(loaded.transcribe(speech()[: 2 * SAMPLE_RATE]), str)
