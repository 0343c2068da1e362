"""audio_io: real speech files from ../shared/data/dev, generated files at other rates, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from dictation import SAMPLE_RATE
from dictation.audio.files import Utterance, load_audio, read_dataset, resample
from dictation.errors import AudioError


def _peak_frequency(audio: npt.NDArray[np.float32], rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of a Hann-windowed signal."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


def _amplitude_at(audio: npt.NDArray[np.float32], rate: int, freq: float) -> float:
    """Amplitude of a sine of `freq` Hz in audio (projection on sin/cos over whole periods)."""
    t = np.arange(len(audio)) / rate
    s = 2 * np.mean(audio * np.sin(2 * np.pi * freq * t))
    c = 2 * np.mean(audio * np.cos(2 * np.pi * freq * t))
    return float(np.hypot(s, c))


# --------------------------------------------------------------------------- real speech


def test_read_dataset_lists_the_dev_set(dev_set_dir: Path) -> None:
    utterances = read_dataset(dev_set_dir)
    assert len(utterances) == 50
    assert len({u.id for u in utterances}) == 50
    first = utterances[0]
    assert first.id == "ljspeech-lj001-0001"
    assert first.path == (dev_set_dir / "wav" / "ljspeech-lj001-0001.wav").resolve()
    assert first.transcript.startswith("printing in the only sense")
    assert first.condition == "read_audiobook"
    assert abs(first.duration_s - 9.655) < 1e-9
    assert {u.condition for u in utterances} >= {"noisy_5db", "digit_string"}


def test_load_audio_reads_real_speech_at_16k(dev_set_dir: Path) -> None:
    for utt in read_dataset(dev_set_dir)[:5]:
        audio = load_audio(utt.path)
        assert audio.dtype == np.float32
        assert audio.ndim == 1
        assert abs(len(audio) / SAMPLE_RATE - utt.duration_s) < 0.002, utt.id
        assert np.max(np.abs(audio)) <= 1.0
        rms = float(np.sqrt(np.mean(audio**2)))
        assert rms > 0.005, f"{utt.id} decoded as near silence (rms {rms})"


def test_load_audio_accepts_str_paths(dev_set_dir: Path) -> None:
    path = dev_set_dir / "wav" / "ljspeech-lj001-0002.wav"
    np.testing.assert_array_equal(load_audio(str(path)), load_audio(path))


# --------------------------------------------------------------------------- resampling


def test_stereo_44k1_is_downmixed_and_resampled(tmp_path: Path) -> None:
    """Left: 440 Hz at 0.5. Right: 440 Hz at 0.5 plus 3 kHz at 0.3. The mean keeps 440 Hz at
    0.5 and 3 kHz at 0.15; both frequencies must survive resampling to 16 kHz."""
    rate, seconds = 44_100, 2.0
    t = np.arange(int(rate * seconds)) / rate
    base = 0.5 * np.sin(2 * np.pi * 440 * t)
    left = base
    right = base + 0.3 * np.sin(2 * np.pi * 3000 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="FLOAT")

    audio = load_audio(path)

    assert audio.dtype == np.float32
    assert len(audio) == int(seconds * SAMPLE_RATE)
    assert _peak_frequency(audio, SAMPLE_RATE) == pytest.approx(440, abs=1)
    body = audio[1600:-1600]  # avoid filter edges
    assert _amplitude_at(body, SAMPLE_RATE, 440) == pytest.approx(0.5, abs=0.01)
    assert _amplitude_at(body, SAMPLE_RATE, 3000) == pytest.approx(0.15, abs=0.01)


def test_flac_at_8k_is_upsampled(tmp_path: Path) -> None:
    rate = 8_000
    t = np.arange(rate) / rate
    path = tmp_path / "tone.flac"
    sf.write(path, 0.4 * np.sin(2 * np.pi * 1000 * t), rate, subtype="PCM_16")
    audio = load_audio(path)
    assert len(audio) == SAMPLE_RATE
    assert _peak_frequency(audio, SAMPLE_RATE) == pytest.approx(1000, abs=1)


def test_resample_lengths_and_identity() -> None:
    tone = np.sin(np.linspace(0, 100, 48_000)).astype(np.float32)
    assert len(resample(tone, 48_000, 16_000)) == 16_000
    same = resample(tone, 16_000, 16_000)
    np.testing.assert_array_equal(same, tone)
    assert same is not tone
    assert resample(np.zeros(0, dtype=np.float32), 44_100, 16_000).shape == (0,)
    with pytest.raises(ValueError, match="positive"):
        resample(tone, 0, 16_000)


# --------------------------------------------------------------------------- errors


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match="not found") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="directory") as err:
        load_audio(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_not_audio_names_path_and_formats(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is text, not sound\n")
    with pytest.raises(AudioError) as err:
        load_audio(path)
    message = str(err.value)
    assert str(path) in message
    assert "WAV" in message and "FLAC" in message


def test_empty_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="0 samples") as err:
        load_audio(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- set folders


def _write_set(folder: Path, header: str, rows: list[str]) -> None:
    (folder / "transcripts.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def test_read_dataset_without_condition_column(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), SAMPLE_RATE)
    _write_set(tmp_path, "id\tpath\tduration_s\ttranscript", ["a\ta.wav\t0.1\thello there"])
    assert read_dataset(tmp_path) == [
        Utterance(
            id="a",
            path=(tmp_path / "a.wav").resolve(),
            duration_s=0.1,
            transcript="hello there",
            condition=None,
        )
    ]


def test_read_dataset_keeps_quotes_literal(tmp_path: Path) -> None:
    """QUOTE_NONE: a transcript with a double quote is kept as written."""
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), SAMPLE_RATE)
    _write_set(tmp_path, "id\tpath\tduration_s\ttranscript", ['a\ta.wav\t0.1\tsay "hi'])
    assert read_dataset(tmp_path)[0].transcript == 'say "hi'


def test_read_dataset_without_transcripts(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="transcripts.tsv") as err:
        read_dataset(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_read_dataset_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not found"):
        read_dataset(tmp_path / "absent")


def test_read_dataset_missing_column(tmp_path: Path) -> None:
    _write_set(tmp_path, "id\tpath\ttranscript", ["a\ta.wav\thello"])
    with pytest.raises(AudioError, match="duration_s"):
        read_dataset(tmp_path)


def test_read_dataset_missing_audio_file(tmp_path: Path) -> None:
    _write_set(tmp_path, "id\tpath\tduration_s\ttranscript", ["a\tgone.wav\t1.0\thello"])
    with pytest.raises(AudioError, match="line 2") as err:
        read_dataset(tmp_path)
    assert "gone.wav" in str(err.value)


def test_read_dataset_bad_duration(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), SAMPLE_RATE)
    _write_set(tmp_path, "id\tpath\tduration_s\ttranscript", ["a\ta.wav\tlong\thello"])
    with pytest.raises(AudioError, match="not a number"):
        read_dataset(tmp_path)
