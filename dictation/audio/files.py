"""Audio files in, core PCM out: mono float32 at SAMPLE_RATE (16 kHz) in [-1, 1].

Also reads a speech set folder (`transcripts.tsv` + audio files), the format of
`../shared/data/dev`, for `dictation bench`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from dictation import SAMPLE_RATE
from dictation.errors import AudioError

TRANSCRIPTS_FILE = "transcripts.tsv"
"""Name of the index file of a speech set folder."""

REQUIRED_COLUMNS = ("id", "path", "duration_s", "transcript")
"""Columns every transcripts.tsv must have; `condition` is optional."""

_COMMON_FORMATS = ("WAV", "FLAC", "OGG", "MP3", "AIFF", "CAF", "W64", "RF64")


def supported_formats() -> list[str]:
    """Container formats this machine's libsndfile reads (e.g. WAV, FLAC, OGG), common first."""
    available = set(sf.available_formats())
    common = [f for f in _COMMON_FORMATS if f in available]
    return common + sorted(available.difference(common))


def load_audio(path: str | Path) -> npt.NDArray[np.float32]:
    """Read an audio file as mono float32 at 16 kHz in [-1, 1] (shape: (samples,)).

    Any sample rate is resampled with soxr; multichannel audio is downmixed by the mean of
    the channels. Raises AudioError (naming the path) when the file is missing, is a
    directory, cannot be decoded, holds no samples or holds non-finite samples.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise AudioError(f"Audio file not found: {p}. Check the path and try again.")
    if p.is_dir():
        raise AudioError(f"{p} is a directory, not an audio file. Pass a file such as speech.wav.")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        formats = ", ".join(supported_formats())
        raise AudioError(
            f"Cannot read {p} as audio ({exc}). Supported formats: {formats}. "
            "Convert the file to WAV or FLAC (e.g. `ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`)."
        ) from exc
    if data.shape[0] == 0:
        raise AudioError(f"{p} contains no audio (0 samples). Record or pick a non-empty file.")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{p} contains NaN or infinite samples; the file is corrupt.")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        mono = resample(mono, int(rate), SAMPLE_RATE)
    return np.ascontiguousarray(np.clip(mono, -1.0, 1.0), dtype=np.float32)


def resample(
    audio: npt.NDArray[np.floating], rate_in: int, rate_out: int
) -> npt.NDArray[np.float32]:
    """Resample float audio (shape (samples,) or (samples, channels)) from rate_in to rate_out Hz.

    Uses soxr's high-quality filter; the output has round(samples * rate_out / rate_in)
    samples and dtype float32. Equal rates return a float32 copy.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out} Hz")
    if audio.ndim not in (1, 2):
        raise ValueError(
            f"audio must have shape (samples,) or (samples, channels), got {audio.shape}"
        )
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    if rate_in == rate_out or samples.shape[0] == 0:
        return samples.copy()
    out = soxr.resample(samples, rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Utterance:
    """One row of a speech set: an audio file and what is said in it."""

    id: str
    path: Path
    """Absolute path of the audio file."""
    duration_s: float
    """Length in seconds, as listed in transcripts.tsv."""
    transcript: str
    """Reference text (normalised in ../shared/data sets)."""
    condition: str | None = None
    """Recording condition label (e.g. `noisy_5db`), when the set has that column."""


def read_dataset(set_dir: str | Path) -> list[Utterance]:
    """Read a set folder: `transcripts.tsv` (tab-separated, header row) plus its audio files.

    Columns: id, path (relative to set_dir), duration_s, transcript, and optionally
    condition. Raises AudioError naming the folder, line and problem when the folder or
    transcripts.tsv is missing, a column is missing, a value is invalid or a listed audio
    file does not exist.
    """
    root = Path(set_dir).expanduser()
    if not root.is_dir():
        raise AudioError(
            f"Speech set folder not found: {root}. Pass a folder with {TRANSCRIPTS_FILE}."
        )
    index = root / TRANSCRIPTS_FILE
    if not index.is_file():
        raise AudioError(
            f"{root} has no {TRANSCRIPTS_FILE}. A set folder needs a tab-separated "
            f"{TRANSCRIPTS_FILE} with columns {', '.join(REQUIRED_COLUMNS)} "
            "(and optionally condition)."
        )
    utterances: list[Utterance] = []
    seen: set[str] = set()
    with index.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise AudioError(
                f"{index} lacks column(s) {', '.join(missing)}; its header must name "
                f"{', '.join(REQUIRED_COLUMNS)} separated by tabs."
            )
        for row in reader:
            line = reader.line_num
            utt_id = (row["id"] or "").strip()
            rel = (row["path"] or "").strip()
            if not utt_id or not rel:
                raise AudioError(f"{index} line {line}: empty id or path.")
            if utt_id in seen:
                raise AudioError(f"{index} line {line}: duplicate id {utt_id!r}.")
            seen.add(utt_id)
            try:
                duration = float(row["duration_s"])
            except (TypeError, ValueError):
                raise AudioError(
                    f"{index} line {line}: duration_s {row['duration_s']!r} is not a number."
                ) from None
            audio_path = (root / rel).resolve()
            if not audio_path.is_file():
                raise AudioError(
                    f"{index} line {line} ({utt_id}): audio file {audio_path} not found."
                )
            condition = (row.get("condition") or "").strip() or None
            utterances.append(
                Utterance(
                    id=utt_id,
                    path=audio_path,
                    duration_s=duration,
                    transcript=(row["transcript"] or "").strip(),
                    condition=condition,
                )
            )
    if not utterances:
        raise AudioError(f"{index} lists no utterances.")
    return utterances
