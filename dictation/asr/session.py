"""The seam between the app and the model families: the :class:`Recognizer` and
:class:`Session` protocols.

The app, the CLI and the benchmark use only these (and :func:`dictation.asr.recognizer.
load_recognizer`, which picks the family from the model catalogue). A family implements a
Recognizer (e.g. :class:`dictation.asr.whisper.recognizer.WhisperRecognizer`) whose sessions are
usually the family-neutral :class:`dictation.asr.driver.StreamingDriver` over the family's
decoder (:mod:`dictation.asr.decoder`).

Audio is 16 kHz mono float32 (:data:`dictation.SAMPLE_RATE`) throughout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from dictation.asr.events import Event

if TYPE_CHECKING:
    from dictation.asr.driver import StreamingConfig


class Session(Protocol):
    """One dictation stream: PCM in, :mod:`dictation.asr.events` out. Holds per-stream state
    only; feed it from one thread."""

    config: StreamingConfig
    """The settings in effect (the family's decoder settings filled in). The app may replace
    it between feeds with cadence changes (decode interval, catch-up: back-pressure)."""

    @property
    def time_s(self) -> float:
        """Stream position of the audio processed so far, seconds (events carry it)."""
        ...

    @property
    def decode_seconds(self) -> float:
        """Wall-clock seconds spent decoding so far (the rest of a feed is VAD)."""
        ...

    def feed(self, pcm: np.ndarray) -> list[Event]:
        """Add samples (any count, 16 kHz mono float32) and return the events they cause. The
        events do not depend on how the audio is cut into chunks as long as the recognizer
        keeps up (``StreamingConfig.catch_up_s``)."""
        ...

    def finish(self) -> list[Event]:
        """End of stream: decode and commit whatever is open; the last event is an
        EndOfSegment if a segment was open."""
        ...


class Recognizer(Protocol):
    """A loaded model (shared, read-only) that opens any number of sessions."""

    @property
    def model_id(self) -> str:
        """Catalogue id, or the absolute path of a model folder."""
        ...

    @property
    def offline_settings(self) -> str:
        """How :meth:`transcribe` decodes, in one line (for reports)."""
        ...

    def open_session(self, config: StreamingConfig | None = None) -> Session:
        """A new stream with ``config`` (default ``StreamingConfig()``)."""
        ...

    def transcribe(self, audio: np.ndarray) -> str:
        """Offline: the text of a whole recording (16 kHz mono float32)."""
        ...

    def warm_up(self) -> None:
        """Run the model once on silence so that later calls do not pay one-time setup costs
        (the benchmark times them)."""
        ...
