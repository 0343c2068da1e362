"""DeadInputDetector: a run of exact digital silence (a muted input, or a recording the sound
server moved to a silent source) is noticed after DEAD_INPUT_S, and its end at once."""

from __future__ import annotations

import numpy as np

from dictation import SAMPLE_RATE
from dictation.audio.dead_input import DEAD_INPUT_S, DeadInputDetector, InputChange


def zeros(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def noise(seconds: float, level: float = 1e-4) -> np.ndarray:
    """A quiet room through a real converter: tiny, but never exactly zero everywhere."""
    rng = np.random.default_rng(0)
    return (level * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def feed_in_blocks(detector: DeadInputDetector, audio: np.ndarray, block: int = 1600
                   ) -> list[tuple[float, InputChange]]:
    """(seconds fed when it happened, change) for every change, feeding ``block`` at a time."""
    changes = []
    for start in range(0, len(audio), block):
        change = detector.feed(audio[start : start + block])
        if change is not None:
            changes.append(((start + block) / SAMPLE_RATE, change))
    return changes


def test_silence_is_dead_after_the_threshold_and_back_with_the_first_signal() -> None:
    detector = DeadInputDetector()
    audio = np.concatenate([noise(1.0), zeros(DEAD_INPUT_S + 1.0), noise(0.5)])
    changes = feed_in_blocks(detector, audio)
    assert changes == [(1.0 + DEAD_INPUT_S, InputChange.DEAD), (1.0 + DEAD_INPUT_S + 1.1,
                                                                InputChange.BACK)]
    assert not detector.dead and detector.silent_s == 0.0


def test_a_quiet_room_and_short_zero_runs_are_not_dead() -> None:
    """Noise at -80 dBFS, a muted cue (0.3 s of zeros) and zero runs just under the threshold
    between signal blocks: never dead."""
    detector = DeadInputDetector()
    audio = np.concatenate([noise(2.0), zeros(0.3), noise(0.1), zeros(DEAD_INPUT_S - 0.1),
                            noise(0.1), zeros(DEAD_INPUT_S - 0.1), noise(5.0, level=1e-6)])
    assert feed_in_blocks(detector, audio) == []


def test_zero_run_counts_across_blocks() -> None:
    """The run starts inside one block and ends inside another: noticed whatever the block
    size, as long as the run outlasts the threshold by a block (the run is judged at block
    ends; the app feeds at most about 0.5 s at a time)."""
    audio = np.concatenate([noise(0.55), zeros(DEAD_INPUT_S + 0.6), noise(0.3)])
    for block in (1, 160, 1000, 8000):
        detector = DeadInputDetector()
        kinds = [change for _, change in feed_in_blocks(detector, audio, block)]
        assert kinds == [InputChange.DEAD, InputChange.BACK], block
