"""Moonshine base-en (moonshine-cpp's ORT files) on real speech.

- Plain greedy decoding with our loader and model gives exactly the tokens of transformers'
  ``generate`` on the same dequantized weights, on five dev files (slow).
- Offline transcription through the catalogue id: the embedded model resolves from the
  installed package, and the JFK clip comes out right.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dictation.asr.catalog import resolve
from dictation.asr.moonshine.decoding import MoonshineDecodeOptions, decode, token_cap
from dictation.asr.moonshine.loaders import LoadedMoonshine, load_moonshine
from dictation.asr.moonshine.recognizer import MoonshineRecognizer, load_moonshine_recognizer
from dictation.asr.recognizer import LoadOptions
from dictation.audio.files import load_audio

pytestmark = [pytest.mark.usefixtures("single_torch_thread"), pytest.mark.slow]

DEV_WAV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "wav"
FIVE_FILES = ["whisper-jfk.wav", "ljspeech-lj001-0002.wav", "ljspeech-lj001-0004.wav",
              "ljspeech-lj001-0001.wav", "ljspeech-lj001-0003.wav"]
PLAIN_GREEDY = MoonshineDecodeOptions(forbid_eot_first_with_speech=False,
                                      repetition_min_tokens=10_000)


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    try:
        resolved = resolve("moonshine-base-en")
    except Exception as exc:  # the optional extra is not installed
        pytest.skip(f"moonshine-base-en is not installed: {exc}")
    return load_moonshine_recognizer(resolved, LoadOptions(threads=1, compute="float32"))


def test_catalogue_entry_resolves_to_the_package_folder(recognizer: MoonshineRecognizer) -> None:
    resolved = resolve("moonshine-base-en")
    assert resolved.format == "moonshine-ort"
    assert (resolved.path / "encoder_model.ort").is_file()
    assert resolved.path.parts[-3:] == ("moonshine_cpp", "models", "base-en")


def test_greedy_tokens_equal_transformers_generate(recognizer: MoonshineRecognizer) -> None:
    transformers = pytest.importorskip("transformers")
    loaded: LoadedMoonshine = recognizer.loaded
    dims = loaded.dims
    config = transformers.MoonshineConfig(
        vocab_size=dims.n_vocab, hidden_size=dims.d_model, intermediate_size=dims.d_ff,
        encoder_num_hidden_layers=dims.n_encoder_layers,
        decoder_num_hidden_layers=dims.n_decoder_layers,
        encoder_num_attention_heads=dims.n_encoder_heads,
        decoder_num_attention_heads=dims.n_decoder_heads,
        partial_rotary_factor=dims.rotary_dim / dims.decoder_head_dim,
        max_position_embeddings=dims.max_decoder_positions,
        decoder_start_token_id=dims.bos_token_id, bos_token_id=dims.bos_token_id,
        eos_token_id=dims.eos_token_id, pad_token_id=dims.eos_token_id)
    reference = transformers.MoonshineForConditionalGeneration(config).eval()
    state = {"model." + k: v for k, v in loaded.model.state_dict().items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    reference.load_state_dict(state, strict=True)
    for name in FIVE_FILES:
        audio = load_audio(DEV_WAV_DIR / name)
        ours = decode(loaded, audio, speech_found=False, options=PLAIN_GREEDY)
        cap = token_cap(len(audio))
        with torch.no_grad():
            out = reference.generate(input_values=torch.from_numpy(audio)[None],
                                     max_new_tokens=cap, do_sample=False, num_beams=1)
        expected = [t for t in out[0].tolist()[1:] if t != dims.eos_token_id]
        assert ours.tokens == expected, name
        assert ours.text.strip()


def test_offline_transcription_of_the_jfk_clip(recognizer: MoonshineRecognizer) -> None:
    text = recognizer.transcribe(load_audio(DEV_WAV_DIR / "whisper-jfk.wav"))
    assert text == ("And so my fellow Americans ask not what your country can do for you ask "
                    "what you can do for your country")


def test_hf_and_ort_loaders_share_the_model(recognizer: MoonshineRecognizer,
                                            tmp_path: Path) -> None:
    """The base-en weights saved in the Hugging Face layout load back identically."""
    from safetensors.torch import save_file

    loaded = recognizer.loaded
    dims = loaded.dims
    tensors = {"model." + k: v.contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    config = {"model_type": "moonshine", "hidden_size": dims.d_model,
              "intermediate_size": dims.d_ff,
              "encoder_num_hidden_layers": dims.n_encoder_layers,
              "decoder_num_hidden_layers": dims.n_decoder_layers,
              "encoder_num_attention_heads": dims.n_encoder_heads,
              "decoder_num_attention_heads": dims.n_decoder_heads,
              "partial_rotary_factor": 0.62, "rope_theta": 10000.0, "vocab_size": dims.n_vocab}
    import json

    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded.tokenizer.bpe.save(str(tmp_path / "tokenizer.json"))
    again = load_moonshine(tmp_path, "moonshine-hf")
    assert again.dims == dims
    for key, value in again.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    assert again.tokenizer.decode(list(range(3, 2000))) == loaded.tokenizer.decode(
        list(range(3, 2000)))


INT8_FILES = ["whisper-jfk", "sb-spk2-snt4", "ljspeech-lj001-0006", "ljspeech-lj001-0005"]
"""Dev files in three conditions (public address, short prompt, read book)."""


def test_int8_transcripts_equal_float32(recognizer: MoonshineRecognizer) -> None:
    """compute="int8" (one scale per output row, :class:`~dictation.asr.int8.Int8Linear`)
    gives float32's offline transcript on these files. (Streaming decodes many partial
    segments, where int8 and float32 differ more often; whether that costs accuracy is the
    benchmark's question: reports/bench-stream-moonshine-base-en*.md.)"""
    int8 = load_moonshine_recognizer(resolve("moonshine-base-en"),
                                     LoadOptions(threads=1, compute="int8"))
    for name in INT8_FILES:
        audio = load_audio(DEV_WAV_DIR / f"{name}.wav")
        assert int8.transcribe(audio) == recognizer.transcribe(audio), name
