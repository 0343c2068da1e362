"""dictation: local, streaming speech-to-text that types into the focused window."""

import os

# OpenMP threads sleep when idle instead of spinning. Torch reads this when it loads, so it is set
# here, before any dictation module imports torch (a value the user set wins). On a busy 2-core
# machine spinning made the tiny encoder 3-4x slower, and it burns CPU the desktop needs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

SAMPLE_RATE = 16_000
"""Sample rate (Hz) of every PCM array the core handles: mono float32 in [-1, 1]."""
