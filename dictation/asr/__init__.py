"""Speech recognition: family-neutral parts (events, the recognizer and session protocols, the
streaming driver, commit policies, the model catalogue) and one sub-package per model family
(:mod:`dictation.asr.whisper`)."""
