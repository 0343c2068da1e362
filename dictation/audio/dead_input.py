"""Noticing a microphone that delivers nothing at all.

A working microphone never returns exact zeros for long: its converter has a noise floor. A
long run of samples that are all exactly 0.0 means the signal is gone while the stream still
runs: the input is muted in the mixer, or the sound server moved the recording to another
source when the microphone was unplugged (PulseAudio moves it to a silent null source, and the
stream keeps delivering zeros, so no stream error ever comes). :class:`DeadInputDetector` says
when such a run starts and ends; the app tells the user (notification, tray tooltip, event log)
and goes on listening, so nothing is lost once the signal is back.

The cue the app plays at the start of a dictation is muted out of the capture (zeros too), but
for well under :data:`DEAD_INPUT_S`.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from dictation import SAMPLE_RATE

DEAD_INPUT_S = 3.0
"""Seconds of exact digital silence after which the input counts as dead (a muted cue lasts
about 0.3 s; a real microphone's noise floor is never exactly 0.0)."""


class InputChange(Enum):
    """What :meth:`DeadInputDetector.feed` noticed."""

    DEAD = "dead"
    """The input has been exactly silent for :data:`DEAD_INPUT_S`."""
    BACK = "back"
    """A dead input delivers a signal again."""


class DeadInputDetector:
    """Counts the run of exactly-zero samples at the end of the audio fed so far (16 kHz). The
    run is judged at the end of each block fed, so a run is noticed when it outlasts
    ``dead_after_s`` by up to one block (the app feeds ~0.1-0.5 s at a time)."""

    def __init__(self, dead_after_s: float = DEAD_INPUT_S) -> None:
        self.dead_after = int(dead_after_s * SAMPLE_RATE)
        self.zero_run = 0
        """Exactly-zero samples at the end of the audio fed so far."""
        self.dead = False

    def feed(self, pcm: np.ndarray) -> InputChange | None:
        """Take the next samples; return the change they make, if any."""
        if not len(pcm):
            return None
        nonzero = np.flatnonzero(pcm)
        if len(nonzero):
            self.zero_run = len(pcm) - 1 - int(nonzero[-1])
            if self.dead:
                self.dead = False
                return InputChange.BACK
        else:
            self.zero_run += len(pcm)
        if not self.dead and self.zero_run >= self.dead_after:
            self.dead = True
            return InputChange.DEAD
        return None

    @property
    def silent_s(self) -> float:
        """Seconds of exact silence at the end of the audio fed so far."""
        return self.zero_run / SAMPLE_RATE
