"""scripts/make_continuous_set.py: two real speakers of dev joined into continuous recordings;
durations, pauses, references and determinism checked, and the result read as a set."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import soundfile as sf

from dictation import SAMPLE_RATE
from dictation.audio.files import read_dataset

REPO = Path(__file__).resolve().parents[1]
DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
SPEAKERS = ["sb-spk2", "moonshine-evmaki"]
"""A read-prompt speaker with clean and noisy copies, and a digit-string speaker."""


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_continuous_set",
                                                  REPO / "scripts" / "make_continuous_set.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, single_torch_thread: None
          ) -> tuple[ModuleType, Path]:
    if not (DEV / "transcripts.tsv").is_file():
        pytest.skip(f"no dev set at {DEV}")
    script = _script()
    out = tmp_path_factory.mktemp("continuous")
    script.make_continuous_set(DEV, out, speakers=SPEAKERS, progress=False)
    return script, out


def test_one_recording_per_speaker_with_joined_references(built: tuple[ModuleType, Path]
                                                          ) -> None:
    _, out = built
    source = _tsv(DEV / "transcripts.tsv")
    rows = _tsv(out / "transcripts.tsv")
    assert list(rows[0]) == list(source[0])  # the same columns
    assert [r["speaker"] for r in rows] == SPEAKERS
    for row in rows:
        mine = [s for s in source if s["speaker"] == row["speaker"]]
        assert row["id"] == f"cont-{row['speaker']}"
        assert row["transcript"] == " ".join(s["transcript"] for s in mine)
        assert row["reference_raw"] == " ".join(s["reference_raw"] for s in mine)
        assert row["source_path"] == "+".join(s["id"] for s in mine)
        info = sf.info(str(out / row["path"]))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        assert abs(info.frames / SAMPLE_RATE - float(row["duration_s"])) < 1e-3
    assert rows[1]["condition"] == "continuous+digit_string"
    assert [u.id for u in read_dataset(out)] == [r["id"] for r in rows]


def test_parts_are_trimmed_utterances_with_pauses_in_range(built: tuple[ModuleType, Path]
                                                           ) -> None:
    _, out = built
    source = {s["id"]: s for s in _tsv(DEV / "transcripts.tsv")}
    parts = _tsv(out / "parts.tsv")
    rows = {r["id"]: r for r in _tsv(out / "transcripts.tsv")}
    for recording, row in rows.items():
        mine = [p for p in parts if p["recording"] == recording]
        assert [p["id"] for p in mine] == row["source_path"].split("+")
        pauses = [float(p["pause_after_s"]) for p in mine]
        assert all(0.2 <= x <= 0.8 for x in pauses[:-1]) and pauses[-1] == 0.0
        assert len(set(pauses[:-1])) == len(pauses) - 1  # drawn, not constant
        at = 0.0
        for p in mine:
            start, end = float(p["start_s"]), float(p["end_s"])
            assert abs(start - at) < 2e-3  # each part starts where the previous pause ended
            assert 0.3 < end - start <= float(source[p["id"]]["duration_s"]) + 2e-3
            at = end + float(p["pause_after_s"])
        assert abs(at - float(row["duration_s"])) < 2e-3


def test_same_seed_same_bytes_other_seed_other_pauses(built: tuple[ModuleType, Path],
                                                      tmp_path: Path) -> None:
    script, out = built
    script.make_continuous_set(DEV, tmp_path / "again", speakers=SPEAKERS[:1], progress=False)
    name = f"wav/cont-{SPEAKERS[0]}.wav"
    assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    script.make_continuous_set(DEV, tmp_path / "other", script.Options(seed=1),
                               speakers=SPEAKERS[:1], progress=False)
    assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes()
