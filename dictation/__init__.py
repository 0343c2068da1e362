"""dictation: local, streaming speech-to-text that types into the focused window."""

__version__ = "0.1.0"

SAMPLE_RATE = 16_000
"""Sample rate (Hz) of every PCM array the core handles: mono float32 in [-1, 1]."""
