"""Moonshine v1 (Useful Sensors / Moonshine AI) in torch: ``model`` (tensors only),
``ort_format`` (reader of onnxruntime's ORT flatbuffers), ``loaders`` (moonshine-cpp's ORT files
and the Hugging Face layout), ``tokenizer``, ``decoding`` (greedy with Moonshine's safeguards),
``transcribe`` (offline), ``stream`` (re-decoding streaming decoder), ``recognizer``."""
