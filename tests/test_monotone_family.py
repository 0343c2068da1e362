"""The monotone decoder shape, proven with a toy family that drives the real streaming driver.

``ToyCtc`` is a deterministic stand-in for a cache-aware CTC model (no such model can be
installed here): the audio is synthetic, each 10 ms frame holds one constant value that encodes
a label (0 = blank, k = the k-th word of :data:`VOCAB`), and the model emits its labels in
WeNet's ``forward_chunk(x, state) -> (y, state)`` style with a look-ahead: a frame's label is
final only once ``LOOK_AHEAD`` later frames have been heard. A word is final when the blank
after it is; before that the toy model mishears it as the next word of the vocabulary (a
tentative guess without right context, so that committing by agreement of hypotheses would lag
behind and committing a tentative word would show). The VAD is a fake too (energy above a
floor is speech), since Silero does not take these synthetic signals for speech. Everything
between them is real: the driver (:class:`dictation.asr.driver.StreamingDriver`), its
segmenter, cadence, the :class:`~dictation.asr.commit.FinalWords` commit policy and the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_helpers import committed, feed_in_chunks

from dictation import SAMPLE_RATE
from dictation.asr.catalog import ResolvedModel
from dictation.asr.commit import Word
from dictation.asr.decoder import ChunkOutput
from dictation.asr.driver import (
    StreamingConfig,
    StreamingDriver,
    decode_due,
    has_min_speech,
    is_behind,
)
from dictation.asr.events import Commit, EndOfSegment, Event, Partial
from dictation.asr.recognizer import LoadOptions, family_loader, register_family
from dictation.asr.replay import replay
from dictation.asr.session import Recognizer, Session
from dictation.audio.vad import FRAME_SAMPLES
from dictation.errors import ModelError

VOCAB = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
TOY_FRAME = 160
"""Samples per toy frame (10 ms)."""
LEVEL = 0.05
"""Amplitude step per label."""
LOOK_AHEAD = 12
"""Frames (120 ms) after a frame that the toy model must hear before its label is final."""


def label_of(frame: np.ndarray) -> int:
    """A frame's label: its loudest sample's level (a frame across a word's edge is the
    word's)."""
    return int(round(float(np.abs(frame).max()) / LEVEL))


def collapse(labels: list[int], guess: bool = False) -> list[Word]:
    """CTC collapse: runs of one label are one word, blanks separate. ``guess``: the words
    as misheard without right context (each as the next word of the vocabulary)."""
    out: list[Word] = []
    previous = 0
    for label in labels:
        if label and label != previous:
            heard = label % len(VOCAB) + 1 if guess else label
            out.append(Word((heard,), " " + VOCAB[heard - 1]))
        previous = label
    return out


@dataclass(frozen=True)
class ToyState:
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Samples not yet a whole frame."""
    labels: tuple[int, ...] = ()
    """Labels of the frames heard since the last final word ended."""
    offset: int = 0
    """Frames heard in this utterance."""


class ToyCtc:
    """MonotoneDecoder over the synthetic signal (stateless object: all state is ToyState)."""

    def new_state(self) -> ToyState:
        return ToyState()

    def forward_chunk(self, x: np.ndarray, state: ToyState) -> tuple[ChunkOutput, ToyState]:
        buf = np.concatenate([state.pending, np.asarray(x, np.float32)])
        n = len(buf) // TOY_FRAME
        new = [label_of(buf[i * TOY_FRAME:(i + 1) * TOY_FRAME]) for i in range(n)]
        labels = [*state.labels, *new]
        final_upto = max(0, len(labels) - LOOK_AHEAD)
        # the last final blank that follows a label closes every word before it
        cut = 0
        for i in range(1, final_upto):
            if labels[i] == 0 and labels[i - 1] != 0:
                cut = i
        output = ChunkOutput(final=collapse(labels[:cut]),
                             tentative=collapse(labels[cut:], guess=True))
        return output, ToyState(buf[n * TOY_FRAME:], tuple(labels[cut:]), state.offset + n)

    def finish(self, state: ToyState) -> tuple[ChunkOutput, ToyState]:
        return (ChunkOutput(final=collapse(list(state.labels)), tentative=[]),
                ToyState(offset=state.offset))


class EnergyVad:
    """Fake VAD for the synthetic signal: speech where the frame is not silent."""

    def probability(self, frame: np.ndarray) -> float:
        assert len(frame) == FRAME_SAMPLES
        return 1.0 if float(np.abs(frame).max()) > LEVEL / 2 else 0.0


@dataclass(frozen=True)
class ToyRecognizer:
    """The toy family's Recognizer: sessions are the real driver over ToyCtc."""

    model_id: str = "toy-ctc"
    offline_settings: str = "toy: whole-file forward_chunk + finish"

    def open_session(self, config: StreamingConfig | None = None) -> Session:
        return StreamingDriver(ToyCtc(), EnergyVad(), config)

    def transcribe(self, audio: np.ndarray) -> str:
        decoder = ToyCtc()
        y, state = decoder.forward_chunk(audio, decoder.new_state())
        rest, _ = decoder.finish(state)
        return "".join(w.text for w in y.final + rest.final).strip()

    def warm_up(self) -> None:
        pass


def speech(*items: str | float) -> np.ndarray:
    """Synthetic audio: a word name is 0.3 s of its label, a number that many seconds of
    silence."""
    parts = []
    for item in items:
        if isinstance(item, str):
            parts.append(np.full(int(0.3 * SAMPLE_RATE), (VOCAB.index(item) + 1) * LEVEL,
                                 np.float32))
        else:
            parts.append(np.zeros(int(item * SAMPLE_RATE), np.float32))
    return np.concatenate(parts)


AUDIO = speech(0.5, "alpha", 0.1, "bravo", 0.1, "charlie", 0.1, "delta", 0.8,
               "echo", 0.1, "foxtrot", 1.0)
"""Two segments: four words, a pause longer than the endpoint, two words."""


def run(audio: np.ndarray, chunks: list[int], config: StreamingConfig | None = None
        ) -> list[Event]:
    return feed_in_chunks(ToyRecognizer().open_session(config), audio, chunks)


def test_toy_family_is_a_recognizer() -> None:
    recognizer: Recognizer = ToyRecognizer()
    assert recognizer.transcribe(AUDIO) == "alpha bravo charlie delta echo foxtrot"


def test_words_are_committed_as_they_become_final_without_agreement() -> None:
    events = run(AUDIO, [1600])
    assert committed(events) == "alpha bravo charlie delta echo foxtrot"
    ends = [e for e in events if isinstance(e, EndOfSegment)]
    assert [e.text for e in ends] == ["alpha bravo charlie delta", "echo foxtrot"]
    assert [e.segment for e in ends] == [0, 1]
    commits = [e for e in events if isinstance(e, Commit)]
    partials = [e for e in events if isinstance(e, Partial)]
    # the first decode hears "alpha" without its right context and guesses "bravo"; the next
    # one, 0.4 s later, has its look-ahead: "alpha" is final and committed at once (agreement
    # of two hypotheses would wait another decode), before "bravo" is even over (1.2 s)
    assert partials[0].text == "bravo" and partials[0].audio_time_s < 0.8
    assert commits[0].text == "alpha" and commits[0].audio_time_s < 1.2
    assert len(commits) >= 4
    assert sum(len(c.text.split()) for c in commits) == 6
    # the second segment's first commit is separated by exactly one space
    second = next(c for c in commits if c.segment == 1)
    assert second.text.startswith(" ") and not second.text.startswith("  ")


def test_partials_show_tentative_words_beyond_the_commits() -> None:
    events = run(AUDIO, [1600])
    so_far: dict[int, str] = {}
    tentative_seen = False
    for event in events:
        done = so_far.get(event.segment, "")
        if isinstance(event, Commit):
            so_far[event.segment] = done + event.text
        elif isinstance(event, Partial):
            assert event.text.startswith(done.strip())
            tentative_seen |= len(event.text.split()) > len(done.split())
    assert tentative_seen


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12_000), min_size=1, max_size=6))
def test_events_do_not_depend_on_chunking(chunks: list[int]) -> None:
    assert run(AUDIO, chunks) == run(AUDIO, [1600])


def test_finish_commits_the_words_held_back_for_look_ahead() -> None:
    """The stream stops right after a word: no pause closes the segment and the word's last
    frames are within the look-ahead; finish() flushes the decoder and commits it."""
    audio = speech(0.5, "alpha", 0.1, "bravo")
    session = ToyRecognizer().open_session()
    fed = session.feed(audio)
    assert "bravo" not in committed(fed)
    assert any(isinstance(e, Partial) and e.text == "alpha charlie" for e in fed)  # a guess
    last = session.finish()
    assert committed(fed + last) == "alpha bravo"
    assert isinstance(last[-1], EndOfSegment) and last[-1].text == "alpha bravo"
    assert session.time_s == len(audio) / SAMPLE_RATE


def test_replay_and_min_speech_apply_to_the_monotone_shape() -> None:
    # replay (what the CLI and the benchmark use) drives any Session
    timed = list(replay(ToyRecognizer().open_session(), AUDIO, chunk_s=0.1))
    assert committed([t.event for t in timed]) == "alpha bravo charlie delta echo foxtrot"
    # a blip shorter than min_speech_s is never decoded nor typed
    blip = np.concatenate([speech(0.5), np.full(int(0.1 * SAMPLE_RATE), LEVEL, np.float32),
                           speech(1.0)])
    assert committed(run(blip, [1600])) == ""
    config = replace(StreamingConfig(), min_speech_s=0.05)
    assert committed(run(blip, [1600], config)) == "alpha"


def test_driver_rules() -> None:
    c = StreamingConfig()
    interval = int(c.decode_interval_s * SAMPLE_RATE)
    settle = int(c.settle_silence_s * SAMPLE_RATE)
    assert decode_due(interval, 0, heard_more=True, config=c)
    assert not decode_due(interval - 1, 0, heard_more=True, config=c)
    assert decode_due(0, settle, heard_more=True, config=c)  # a pause begins
    assert not decode_due(interval, settle, heard_more=False, config=c)
    assert has_min_speech(int(c.min_speech_s * SAMPLE_RATE), c.min_speech_s)
    assert not has_min_speech(int(c.min_speech_s * SAMPLE_RATE) - 1, c.min_speech_s)
    assert is_behind(SAMPLE_RATE, 1.0) and not is_behind(SAMPLE_RATE - 1, 1.0)


def test_families_are_found_by_name() -> None:
    def load(resolved: ResolvedModel, options: LoadOptions) -> Recognizer:
        return ToyRecognizer(model_id=resolved.id)

    register_family("toy-ctc", load)
    loader = family_loader("toy-ctc")
    recognizer = loader(ResolvedModel("toy", "ct2", Path("."), "toy-ctc"), LoadOptions(threads=1))
    assert recognizer.model_id == "toy"
    with pytest.raises(ModelError, match="Unknown model family 'nope'.*whisper"):
        family_loader("nope")


FAMILY_NEUTRAL = ("app.py", "cli.py", "bench/run.py", "asr/driver.py", "asr/session.py",
                  "asr/decoder.py", "asr/commit.py", "asr/events.py", "asr/replay.py",
                  "asr/recognizer.py")
"""Modules that must know no model family (they use the Recognizer/Session protocols)."""


def test_app_cli_bench_and_driver_import_no_model_family() -> None:
    import ast

    import dictation

    package = Path(dictation.__file__).parent
    for name in FAMILY_NEUTRAL:
        tree = ast.parse((package / name).read_text(encoding="utf-8"))
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.startswith("dictation.asr.whisper")], name
