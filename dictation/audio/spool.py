"""Every captured sample kept until it is recognized: a spool between the microphone and a
recognizer that may fall behind, and the back-pressure policy that lets it catch up.

* :class:`AudioSpool`: FIFO of 16 kHz float32 samples addressed by absolute ring positions.
  Up to ``memory_s`` seconds wait in memory (default :data:`MEMORY_S`: 120 s = 7.7 MB); more
  go to a private temporary file (created 0600 in ``$XDG_RUNTIME_DIR`` or the temp directory,
  unlinked at once, so it vanishes with the process), up to ``max_s`` seconds in all (default
  :data:`MAX_S`: 2 h = 460 MB of disk). Only beyond that, or when the file cannot be written,
  are samples dropped; every dropped interval is recorded in :attr:`AudioSpool.gaps`.
* :class:`CaptureDrain`: the thread (an edge) that moves a capture's audio from the ring
  buffer into the spool every :data:`DRAIN_PERIOD_S`, so a busy recognizer never lets the 30 s
  ring overwrite unread speech.
* :class:`BackPressure`: how much the recognizer must cut down, from the backlog (seconds of
  audio captured but not yet recognized), in this order: level 0 normal; level 1
  (backlog >= :data:`FEWER_DECODES_S`) fewer intermediate decodes (the decode interval times
  :data:`SLOW_DECODE_FACTOR`); level 2 (backlog >= :data:`ENDPOINT_ONLY_S`) commit at
  endpoints only (no intermediate decodes: words appear when a pause ends a segment). It
  returns to normal once the backlog is below :data:`RECOVERED_S` (hysteresis).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from dictation import SAMPLE_RATE

log = logging.getLogger(__name__)

MEMORY_S = 120.0
"""Seconds of audio a spool keeps in memory before it spills to its file (7.7 MB)."""
MAX_S = 7200.0
"""Seconds of audio a spool holds in all (memory + file: 460 MB at most); beyond, dropped."""
DRAIN_PERIOD_S = 0.05
"""Seconds between two moves from the ring buffer into the spool."""
FEWER_DECODES_S = 2.0
"""Backlog (s) from which intermediate decodes are fewer (level 1)."""
ENDPOINT_ONLY_S = 8.0
"""Backlog (s) from which only segment endpoints are decoded (level 2)."""
RECOVERED_S = 1.0
"""Backlog (s) below which the recognizer runs normally again (level 0)."""
SLOW_DECODE_FACTOR = 3.0
"""Level 1 decodes every ``decode_interval_s * SLOW_DECODE_FACTOR`` seconds of audio."""


class AudioSpool:
    """FIFO of samples from absolute position ``start`` (see the module docstring). Thread
    safe: one thread appends, another reads."""

    def __init__(self, start: int, *, memory_s: float = MEMORY_S, max_s: float = MAX_S,
                 directory: str | None = None) -> None:
        self.memory_samples = int(memory_s * SAMPLE_RATE)
        self.max_samples = int(max_s * SAMPLE_RATE)
        self.directory = directory
        self.read_position = start
        """Absolute position of the next sample :meth:`read` returns (gaps skipped)."""
        self.write_position = start
        """Absolute position one past the newest sample appended (or dropped)."""
        self.gaps: list[tuple[int, int]] = []
        """Dropped intervals [start, end) of absolute positions, oldest first."""
        self._memory: deque[tuple[int, np.ndarray]] = deque()  # (position, samples)
        self._in_memory = 0
        self._file: IO[bytes] | None = None
        self._spans: deque[tuple[int, int, int]] = deque()  # (position, samples, byte offset)
        self._in_file = 0
        self._file_end = 0  # bytes written
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Samples appended and not yet read."""
        return self._in_memory + self._in_file

    @property
    def spilled(self) -> bool:
        """Whether samples wait in the file now."""
        return self._in_file > 0

    @property
    def dropped(self) -> int:
        """Samples dropped so far."""
        return sum(b - a for a, b in self.gaps)

    def _gap(self, start: int, end: int) -> None:
        if end <= start:
            return
        if self.gaps and self.gaps[-1][1] == start:
            self.gaps[-1] = (self.gaps[-1][0], end)
        else:
            self.gaps.append((start, end))
        log.error("audio spool full: %.2f s of audio dropped", (end - start) / SAMPLE_RATE)

    def append(self, samples: np.ndarray, position: int | None = None) -> None:
        """Append ``samples`` whose first one is at absolute ``position`` (default: right
        after the previous ones; a later position records the samples in between as a gap)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        with self._lock:
            position = self.write_position if position is None else position
            if position < self.write_position:  # already here: never twice
                x = x[self.write_position - position:]
                position = self.write_position
            total = len(x)
            self._gap(self.write_position, position)
            room = self.max_samples - self.pending
            if len(x) > room:
                self._gap(position + max(room, 0), position + len(x))
                x = x[: max(room, 0)]
            if len(x):
                if self._in_file == 0 and self._in_memory + len(x) <= self.memory_samples:
                    self._memory.append((position, x.copy()))
                    self._in_memory += len(x)
                elif not self._spill(position, x):
                    self._gap(position, position + len(x))
            self.write_position = max(self.write_position, position + total)

    def _spill(self, position: int, x: np.ndarray) -> bool:
        """(Lock held) write ``x`` to the file; False when it cannot be written."""
        try:
            if self._file is None:
                directory = self.directory or os.environ.get("XDG_RUNTIME_DIR") or None
                if directory is not None and not os.path.isdir(directory):
                    directory = None
                # lives as long as the spool (closed by close()): no context manager
                self._file = tempfile.TemporaryFile(  # noqa: SIM115
                    prefix="dictation-spool-", dir=directory)
                self._file_end = 0
                log.info("recognizer behind: audio spills to a private temporary file")
            self._file.seek(self._file_end)
            self._file.write(x.tobytes())
            self._file.flush()
        except OSError as exc:
            log.error("cannot spill audio to a file: %s", exc)
            return False
        self._spans.append((position, len(x), self._file_end))
        self._file_end += x.nbytes
        self._in_file += len(x)
        return True

    def read(self, until: int | None = None) -> np.ndarray:
        """The samples waiting, oldest first, up to absolute position ``until`` (default:
        all); gaps are skipped."""
        out: list[np.ndarray] = []
        with self._lock:
            limit = self.write_position if until is None else until
            while self._memory and self._memory[0][0] < limit:
                position, x = self._memory.popleft()
                take = min(len(x), limit - position)
                out.append(x[:take])
                self._in_memory -= take
                self.read_position = position + take
                if take < len(x):
                    self._memory.appendleft((position + take, x[take:]))
                    break
            else:
                while not self._memory and self._spans and self._spans[0][0] < limit:
                    position, n, offset = self._spans.popleft()
                    take = min(n, limit - position)
                    assert self._file is not None
                    self._file.seek(offset)
                    data = self._file.read(take * 4)
                    out.append(np.frombuffer(data, dtype=np.float32).copy())
                    self._in_file -= take
                    self.read_position = position + take
                    if take < n:
                        self._spans.appendleft((position + take, n - take, offset + take * 4))
                        break
                if self._file is not None and self._in_file == 0:
                    self._file.seek(0)
                    self._file.truncate()  # drained: new audio goes to memory again
                    self._file_end = 0
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class CaptureDrain:
    """Moves a capture's audio from the ring buffer into ``spool`` on its own thread until the
    capture is stopped and read to its end (or :meth:`stop`). ``cursor`` is a
    :class:`dictation.audio.mic.CaptureCursor`."""

    def __init__(self, cursor: Any, spool: AudioSpool, period_s: float = DRAIN_PERIOD_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cursor = cursor
        self.spool = spool
        self.period_s = period_s
        self._sleep = sleep
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drain_once(self) -> None:
        """Move what the ring holds now (the thread's step; the worker and tests may call it
        too: one at a time)."""
        with self._lock:
            before = self.cursor.position
            samples = self.cursor.read()
            first = self.cursor.position - len(samples)  # > `before`: the ring lost some
            if len(samples) or first > before:
                self.spool.append(samples, first)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dictation-capture-drain",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.drain_once()
            if self.cursor.done:
                return
            self._sleep(self.period_s)

    def finish(self, timeout_s: float = 5.0) -> None:
        """Wait until the stopped capture is all in the spool (at most ``timeout_s``)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.drain_once()  # whatever is left (also when the thread never ran)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)


@dataclass
class BackPressure:
    """The degradation level from the backlog (see the module docstring)."""

    level: int = 0

    def update(self, backlog_s: float) -> int:
        """The level for a backlog of ``backlog_s`` seconds (changes :attr:`level`)."""
        if backlog_s >= ENDPOINT_ONLY_S:
            self.level = 2
        elif backlog_s >= FEWER_DECODES_S:
            self.level = max(self.level, 1)
        elif backlog_s < RECOVERED_S:
            self.level = 0
        return self.level
