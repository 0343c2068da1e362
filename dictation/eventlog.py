"""Timestamped app events for tests and latency measurements.

When the environment variable ``DICTATION_EVENT_LOG`` names a file, the app appends one JSON
object per line: ``{"event": name, "t": time.time() (wall-clock seconds), ...fields}``.
Events: ``ready``, ``hotkey`` (action, late_s: how long after the key press the listener
reported it), ``recording_started`` (first audio read), ``commit`` (text, typed), ``typed``
(text, after the injector returned), ``held`` (text kept back), ``stopped`` (the stop command
handled; late_s after the stop tap), ``finished`` (the last text typed; capture_start /
capture_end: the capture's ring positions in 16 kHz samples), ``back_pressure`` (level,
backlog_s), ``audio_dropped`` (seconds, at_sample), ``gap`` (seconds), ``model_switched`` (id),
``state`` (name), ``error`` (message). Without the variable nothing is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV_VAR = "DICTATION_EVENT_LOG"


class EventLog:
    """Appends events to ``path`` (None: discards them). Safe to call from any thread."""

    def __init__(self, path: str | os.PathLike[str] | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path else None
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> EventLog:
        return cls(os.environ.get(ENV_VAR) or None)

    def __call__(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        line = json.dumps({"event": event, "t": self._clock(), **fields}, ensure_ascii=False)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event written to ``path`` so far (a torn last line is skipped)."""
    events = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
