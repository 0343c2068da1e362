"""The Whisper family: model (tensors only), log-mel features, tokenizer, checkpoint loaders,
greedy decoding, its streaming decoder and guards, offline transcription, and the recognizer
that registers the family (:mod:`dictation.asr.whisper.recognizer`)."""
