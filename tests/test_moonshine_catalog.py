"""The catalogue knows Moonshine: the embedded moonshine-base-en is found inside the
moonshine-cpp package without importing it (its import loads native libraries the project
never uses), local Moonshine folders are recognised by their files, and both belong to the
family "moonshine", whose loader the registry finds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from dictation.asr.catalog import (
    detect_format,
    installed_models,
    load_catalog,
    resolve,
    resolve_directory,
)
from dictation.errors import ModelError


def write_catalog(tmp_path: Path, package: str, package_path: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(f"""
[models."m"]
description = "test"
family = "moonshine"
format = "moonshine-ort"
source = "package"
package = "{package}"
package_path = "{package_path}"
files = ["encoder_model.ort"]
""")
    return path


def test_shipped_entry_is_a_moonshine_package_model() -> None:
    entry = load_catalog()["moonshine-base-en"]
    assert entry.format == "moonshine-ort" and entry.source == "package"
    assert entry.package == "moonshine_cpp" and entry.package_path == "models/base-en"
    assert set(entry.files) == {"encoder_model.ort", "decoder_model_merged.ort",
                                "tokenizer.bin"}


def test_package_path_is_found_without_importing_the_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "fakepkg_moonshine"
    (package / "models" / "x").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "models" / "x" / "encoder_model.ort").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    catalog = write_catalog(tmp_path, "fakepkg_moonshine", "models/x")
    resolved = resolve("m", catalog_file=catalog)
    assert resolved.path == package / "models" / "x"
    assert resolved.format == "moonshine-ort"
    assert "fakepkg_moonshine" not in sys.modules
    assert "m" in installed_models(catalog_file=catalog, cache_dir=tmp_path / "cache")


def test_missing_package_names_the_pip_package(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, "no_such_pkg_xyz", "models/x")
    with pytest.raises(ModelError, match="pip install no-such-pkg-xyz"):
        resolve("m", catalog_file=catalog)


def test_local_moonshine_folders_are_recognised(tmp_path: Path) -> None:
    ort = tmp_path / "ort"
    ort.mkdir()
    (ort / "encoder_model.ort").write_bytes(b"")
    assert detect_format(ort) == "moonshine-ort"
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "model.safetensors").write_bytes(b"")
    (hf / "config.json").write_text(json.dumps({"model_type": "moonshine"}))
    assert resolve_directory(hf).format == "moonshine-hf"
    (hf / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    assert detect_format(hf) == "hf"


def test_moonshine_folders_and_entries_belong_to_the_moonshine_family(tmp_path: Path) -> None:
    from dictation.asr.moonshine.recognizer import load_moonshine_recognizer
    from dictation.asr.recognizer import family_loader

    folder = tmp_path / "ort"
    folder.mkdir()
    (folder / "encoder_model.ort").write_bytes(b"")
    assert resolve_directory(folder).family == "moonshine"
    assert load_catalog()["moonshine-base-en"].family == "moonshine"
    assert family_loader("moonshine") is load_moonshine_recognizer


def test_family_moonshine_entries_in_the_transformers_layout_load(tmp_path: Path) -> None:
    """A catalogue entry ``family = "moonshine"``, ``format = "hf"`` loads with the Moonshine
    loader (as "moonshine-hf")."""
    pytest.importorskip("transformers")
    from test_moonshine_model import save_hf_folder, tiny_config

    from dictation.asr.catalog import ResolvedModel
    from dictation.asr.moonshine.recognizer import load_moonshine_recognizer
    from dictation.asr.recognizer import LoadOptions

    save_hf_folder(tmp_path, tiny_config(), seed=4)
    resolved = ResolvedModel(id="x", format="hf", path=tmp_path, family="moonshine")
    recognizer = load_moonshine_recognizer(resolved, LoadOptions(threads=1))
    assert recognizer.loaded.dims.d_model == 64
    # the compute setting reaches the model (it once stayed float32 whatever was asked)
    assert recognizer.loaded.model.decoder.int8_logits is not None  # the default, int8
    exact = load_moonshine_recognizer(resolved, LoadOptions(threads=1, compute="float32"))
    assert exact.loaded.model.decoder.int8_logits is None
    assert any(isinstance(m, torch.nn.Linear) for m in exact.loaded.model.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in recognizer.loaded.model.modules())
