"""Back-pressure without silent loss: the audio spool (memory, then a private file), the drain
from the ring buffer, and the app's degradation order, driven by a fake clock in which each
decode costs recognizer time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dictation import SAMPLE_RATE
from dictation.asr.events import Commit, EndOfSegment, Event
from dictation.audio.mic import CaptureCursor, RingBuffer
from dictation.audio.spool import (
    ENDPOINT_ONLY_S,
    FEWER_DECODES_S,
    AudioSpool,
    BackPressure,
    CaptureDrain,
)


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


def test_spool_keeps_order_across_memory_and_file(tmp_path: Path) -> None:
    spool = AudioSpool(1000, memory_s=0.1, max_s=10.0, directory=str(tmp_path))  # 1600 in RAM
    spool.append(ramp(1000, 1000))
    spool.append(ramp(2000, 1000))  # does not fit: to the file
    assert spool.spilled and spool.pending == 2000
    assert spool._file is not None
    assert os.fstat(spool._file.fileno()).st_mode & 0o777 == 0o600
    assert list(tmp_path.iterdir()) == []  # unlinked: gone with the process
    np.testing.assert_array_equal(spool.read(until=1500), ramp(1000, 500))
    spool.append(ramp(3000, 300))  # the file still has unread audio: appended behind it
    np.testing.assert_array_equal(spool.read(), ramp(1500, 1800))
    assert not spool.spilled and spool.pending == 0 and spool.read_position == 3300
    spool.append(ramp(3300, 100))  # drained: memory again
    assert not spool.spilled
    np.testing.assert_array_equal(spool.read(), ramp(3300, 100))
    assert spool.gaps == [] and spool.dropped == 0
    spool.close()


def test_spool_drops_only_beyond_its_bound_and_records_every_gap() -> None:
    spool = AudioSpool(0, memory_s=0.05, max_s=0.1)  # 1600 samples in all
    spool.append(ramp(0, 1000))
    spool.append(ramp(1000, 1000))  # 600 of these do not fit
    assert spool.gaps == [(1600, 2000)] and spool.dropped == 400
    spool.append(ramp(2500, 10), position=2500)  # the ring lost 2000..2500 before the drain
    assert spool.gaps == [(1600, 2510)]  # adjoining gaps merge; still full: the 10 dropped too
    assert spool.dropped == 910
    np.testing.assert_array_equal(spool.read(), ramp(0, 1600))
    spool.close()


def test_drain_keeps_everything_while_the_reader_is_asleep_longer_than_the_ring() -> None:
    ring = RingBuffer(1.0)
    cursor = CaptureCursor(ring, 0)
    spool = AudioSpool(0)
    drain = CaptureDrain(cursor, spool)
    for k in range(100):  # 10 s of audio into a 1 s ring; the drain runs every 0.1 s
        ring.write(ramp(k * 1600, 1600))
        drain.drain_once()
    cursor.stop()
    drain.finish()
    assert cursor.dropped_samples == 0 and spool.gaps == []
    np.testing.assert_array_equal(spool.read(), ramp(0, 160_000))


def test_back_pressure_levels_in_order_with_hysteresis() -> None:
    bp = BackPressure()
    assert [bp.update(s) for s in (0.5, FEWER_DECODES_S, 5.0, ENDPOINT_ONLY_S, 5.0, 1.5, 0.9,
                                   1.5)] == [0, 1, 1, 2, 2, 2, 0, 0]


# --------------------------------------------------------------------------- the app, simulated


@dataclass
class Clock:
    t: float = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class CostlySession:
    """A recognizer that needs ``decode_cost_s`` of (fake) time per intermediate decode (one
    per ``config.decode_interval_s`` of audio unless ``catch_up_s`` is 0: endpoints only) and
    ``endpoint_cost_s`` per 5 s segment. Records every sample it was fed."""

    config: Any
    clock: Clock
    world: Any
    decode_cost_s: float = 1.5
    endpoint_cost_s: float = 0.3
    fed: list[np.ndarray] = field(default_factory=list)
    _since_decode: int = 0
    _since_endpoint: int = 0

    def feed(self, pcm: np.ndarray) -> list[Event]:
        self.fed.append(pcm)
        cost = 0.0
        self._since_endpoint += len(pcm)
        while self._since_endpoint >= 5 * SAMPLE_RATE:
            self._since_endpoint -= 5 * SAMPLE_RATE
            cost += self.endpoint_cost_s
        if self.config.catch_up_s > 0:
            self._since_decode += len(pcm)
            interval = int(self.config.decode_interval_s * SAMPLE_RATE)
            while self._since_decode >= interval:
                self._since_decode -= interval
                cost += self.decode_cost_s
        self.world.advance(cost)
        return [Commit("word ", len(pcm) / SAMPLE_RATE, 0)] if len(pcm) else []

    def finish(self) -> list[Event]:
        return [EndOfSegment("", 0.0, 0)]


class World:
    """The microphone (real RingBuffer + cursor, 0.1 s blocks on the fake clock, speaking for
    ``speech_s``) with its drain thread simulated: while the recognizer works, time passes,
    blocks arrive and the drain moves them every 0.1 s."""

    def __init__(self, speech_s: float) -> None:
        from dictation.audio.mic import Microphone

        self.clock = Clock()
        self.mic = Microphone(buffer_s=30.0, block_s=0.1, clock=self.clock)
        self.mic._stream = type("S", (), {"active": True})()  # no device here
        self.blocks = int(speech_s * 10)
        self.delivered = 0
        self.drain: CaptureDrain | None = None
        self.max_backlog_s = 0.0

    def advance(self, seconds: float) -> None:
        end = self.clock.t + seconds
        while self.delivered < self.blocks and 0.1 * (self.delivered + 1) <= end:
            self.clock.t = 0.1 * (self.delivered + 1)
            k = self.delivered
            self.mic._callback(ramp(k * 1600, 1600)[:, None], 1600, None,
                               type("St", (), {"input_overflow": False})())
            self.delivered += 1
            if self.drain is not None:
                self.drain.drain_once()
                pending = self.drain.spool.pending / SAMPLE_RATE
                self.max_backlog_s = max(self.max_backlog_s, pending)
        self.clock.t = max(self.clock.t, end)


@pytest.mark.parametrize("pressure", [True, False])
def test_slow_recognizer_degrades_in_order_and_loses_nothing(tmp_path: Path,
                                                             pressure: bool) -> None:
    """90 s of speech; an intermediate decode costs 1.5 s per 0.4 s of audio, an endpoint 0.3 s
    per 5 s: 3.8x slower than real time, 1.3x with fewer decodes, 0.06x at endpoints only.
    With back-pressure it goes to fewer decodes, then endpoints only; the backlog stays
    bounded. Without it the backlog grows past the 30 s ring buffer, and the spool still keeps
    it. Either way every sample is recognized once, in order; nothing is dropped."""
    from dictation.app import DictationApp, State
    from dictation.commands import Command, Request
    from dictation.config import Config, UiConfig
    from dictation.eventlog import EventLog, read_events

    world = World(speech_s=90.0)
    app = DictationApp(Config(ui=UiConfig(audio_cues=False)),
                       events=EventLog(tmp_path / "events.jsonl"), clock=world.clock,
                       focus=lambda: None)
    app.drain_in_thread = False
    app.mic = world.mic

    class Recognizer:
        def open_session(self, config: Any = None) -> CostlySession:
            self.made = CostlySession(config, world.clock, world)
            return self.made

    recognizer = Recognizer()
    app.recognizer = recognizer  # type: ignore[assignment]
    app.output.injector = None
    app.output._copy = lambda text: None
    app.state = State.IDLE
    world.advance(0.5)
    app.handle(Request(Command.START))
    world.drain = app.drain
    if not pressure:
        app.pressure.update = lambda backlog_s: 0  # type: ignore[method-assign]
    while world.delivered < world.blocks:
        app.listen_tick()
        world.advance(0.04)  # LISTEN_POLL_S
    while app.spool is not None and app.spool.pending:
        app.listen_tick()
    world.advance(0.3)
    app.handle(Request(Command.STOP))
    fed = np.concatenate(recognizer.made.fed)
    start = int(fed[0])
    np.testing.assert_array_equal(fed, ramp(start, 90 * SAMPLE_RATE - start))  # all, in order
    events = read_events(tmp_path / "events.jsonl")
    assert not [e for e in events if e["event"] == "audio_dropped"]
    levels = [e["level"] for e in events if e["event"] == "back_pressure"]
    print(f"back-pressure {pressure}: levels {levels[:6]}..., max backlog "
          f"{world.max_backlog_s:.1f} s")
    if pressure:
        assert levels[:2] == [1, 2], levels  # fewer decodes first, then endpoints only
        assert world.max_backlog_s < 2 * ENDPOINT_ONLY_S, world.max_backlog_s  # bounded
    else:
        assert levels == [] and world.max_backlog_s > 35.0, world.max_backlog_s  # > the ring


def test_replace_keeps_streaming_config_frozen_fields() -> None:
    from dictation.app import streaming_config
    from dictation.config import RecognizerConfig

    base = streaming_config(RecognizerConfig())
    assert replace(base, catch_up_s=0.0).decode_interval_s == base.decode_interval_s


def test_speech_that_cannot_be_kept_is_told_and_marked_in_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spool that can hold only 5 s (standing in for a full disk) behind a recognizer that
    never catches up: the dropped audio is an ``audio_dropped`` event, a notification, and a
    gap entry in the journal between the segments around it."""
    from dictation.app import DictationApp, State
    from dictation.commands import Command, Request
    from dictation.config import Config, UiConfig
    from dictation.eventlog import EventLog, read_events
    from dictation.output.journal import TranscriptJournal

    world = World(speech_s=30.0)
    app = DictationApp(Config(ui=UiConfig(audio_cues=False)),
                       events=EventLog(tmp_path / "events.jsonl"), clock=world.clock,
                       focus=lambda: None)
    notes: list[tuple[str, str]] = []
    app.output._notify = lambda title, body: notes.append((title, body))
    app.output.journal = TranscriptJournal(tmp_path / "journal.jsonl")
    app.output.injector = None
    app.output._copy = lambda text: None
    app.drain_in_thread = False
    app.mic = world.mic

    class Recognizer:
        def open_session(self, config: Any = None) -> CostlySession:
            self.made = CostlySession(config, world.clock, world)
            return self.made

    app.recognizer = Recognizer()  # type: ignore[assignment]
    app.state = State.IDLE
    world.advance(0.5)
    app.handle(Request(Command.START))
    assert app.spool is not None
    app.spool.max_samples = 5 * SAMPLE_RATE
    app.pressure.update = lambda backlog_s: 0  # type: ignore[method-assign]
    world.drain = app.drain
    while world.delivered < world.blocks:
        app.listen_tick()
        world.advance(0.04)
    app.handle(Request(Command.STOP))
    dropped = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "audio_dropped"]
    assert dropped and sum(e["seconds"] for e in dropped) > 1.0
    assert any("could not be kept" in body for _, body in notes)
    texts = [e.text for e in app.output.journal.read_recent(100)]
    assert any(t.startswith("[gap: ") for t in texts), texts


def test_drain_from_two_threads_never_duplicates_audio() -> None:
    """The drain thread and the worker both drain: every sample reaches the spool once."""
    import threading

    ring = RingBuffer(30.0)
    cursor = CaptureCursor(ring, 0)
    spool = AudioSpool(0)
    drain = CaptureDrain(cursor, spool, period_s=0.0, sleep=lambda s: None)
    drain.start()
    writer_done = threading.Event()

    def write() -> None:
        for k in range(2000):
            ring.write(ramp(k * 160, 160))
        writer_done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not writer_done.is_set():
        drain.drain_once()
    writer.join()
    cursor.stop()
    drain.finish()
    np.testing.assert_array_equal(spool.read(), ramp(0, 320_000))
    spool.append(ramp(100, 50), position=100)  # a late duplicate is ignored
    assert spool.pending == 0 and spool.gaps == []
