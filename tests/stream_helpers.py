"""Helpers shared by the streaming tests: feed a session in given chunk sizes, read commits."""

from __future__ import annotations

import numpy as np

from dictation.asr.events import Commit, Event
from dictation.asr.session import Session


def feed_in_chunks(session: Session, audio: np.ndarray, chunks: list[int]) -> list[Event]:
    """Feed ``audio`` to ``session`` in chunks of the given sizes (cycled), then finish; all
    the events."""
    events: list[Event] = []
    pos, i = 0, 0
    while pos < len(audio):
        size = chunks[i % len(chunks)]
        events += session.feed(audio[pos: pos + size])
        pos, i = pos + size, i + 1
    return events + session.finish()


def committed(events: list[Event]) -> str:
    """The committed text of ``events``."""
    return "".join(e.text for e in events if isinstance(e, Commit))
