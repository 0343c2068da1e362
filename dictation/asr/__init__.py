"""Speech recognition: family-neutral parts (events, the recognizer and session protocols, the
streaming driver, the decoder shapes a family supplies, commit policies, the model catalogue and
the family registry) and one sub-package per model family (:mod:`dictation.asr.whisper`)."""
