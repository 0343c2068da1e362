"""Feed recorded audio through a streaming session as if it were live.

Two clocks:
- ``realtime=False``: fixed chunks; an event's time is the stream position when it was emitted
  (what ``dictation transcribe --stream`` prints).
- ``realtime=True``: a single-worker live simulation. While a decode runs, audio keeps arriving,
  so the next feed gets everything that arrived meanwhile, and an event's time is the stream
  position at the start of the feed plus the wall-clock time the feed took (what the user would
  see). Used by the benchmark for commit lag and segment-end latency.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dictation import SAMPLE_RATE
from dictation.asr.events import Event
from dictation.asr.session import Session


@dataclass(frozen=True)
class TimedEvent:
    event: Event
    time_s: float
    """When the event reached the user, seconds from the start of the stream."""


def replay(session: Session, audio: np.ndarray, chunk_s: float = 0.1,
           realtime: bool = False, trailing_silence_s: float = 0.0) -> Iterator[TimedEvent]:
    """Stream ``audio`` (16 kHz mono) through ``session`` and yield its events, then finish.

    ``trailing_silence_s`` appends silence, as a live microphone would keep delivering after the
    speaker stops (lets the endpointer close the last segment the way it does live)."""
    if trailing_silence_s > 0:
        silence = np.zeros(int(trailing_silence_s * SAMPLE_RATE), dtype=np.float32)
        audio = np.concatenate([np.asarray(audio, dtype=np.float32), silence])
    chunk = max(1, int(chunk_s * SAMPLE_RATE))
    fed = 0
    arrived = min(len(audio), chunk)
    while fed < len(audio):
        started = time.perf_counter()
        events = session.feed(audio[fed:arrived])
        elapsed = time.perf_counter() - started
        fed = arrived
        now = fed / SAMPLE_RATE + (elapsed if realtime else 0.0)
        for event in events:
            yield TimedEvent(event, now)
        step = max(chunk, int(elapsed * SAMPLE_RATE)) if realtime else chunk
        arrived = min(len(audio), fed + step)
    started = time.perf_counter()
    events = session.finish()
    elapsed = time.perf_counter() - started
    for event in events:
        yield TimedEvent(event, len(audio) / SAMPLE_RATE + (elapsed if realtime else 0.0))
