"""The Whisper family: model (tensors only), log-mel features, tokenizer, checkpoint loaders,
greedy decoding, its streaming decoder and guards, and offline transcription."""
