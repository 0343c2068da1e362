"""Load what recognition needs once, for any model family: :func:`load_recognizer` resolves a
model in the catalogue (:mod:`dictation.asr.catalog`), whose ``family`` picks the family's
loader from a small registry (:func:`register_family`). Each family package registers itself
when imported; :data:`FAMILY_MODULES` says which module that is, so that only the family in use
is imported."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from dictation.asr.catalog import ResolvedModel, resolve
from dictation.asr.session import Recognizer
from dictation.config import COMPUTE_TYPES, DEFAULT_COMPUTE
from dictation.errors import ModelError


@dataclass(frozen=True)
class LoadOptions:
    """How a family loads a model."""

    threads: int
    """Intra-op threads for inference."""
    compute: str = DEFAULT_COMPUTE
    """``"float32"`` or ``"int8"`` (dynamic int8 weights where the family supports them)."""


FamilyLoader = Callable[[ResolvedModel, LoadOptions], Recognizer]
"""Loads a resolved model of one family into a :class:`~dictation.asr.session.Recognizer`."""

FAMILY_MODULES: dict[str, str] = {
    "whisper": "dictation.asr.whisper.recognizer",
    "moonshine": "dictation.asr.moonshine.recognizer",
    "moonshine_streaming": "dictation.asr.moonshine_streaming.recognizer",
}
"""Family name (the catalogue's ``family``) -> module that registers its loader on import."""

_LOADERS: dict[str, FamilyLoader] = {}


def register_family(name: str, loader: FamilyLoader) -> None:
    """Make models of family ``name`` loadable (a family module calls this on import)."""
    _LOADERS[name] = loader


def family_loader(name: str) -> FamilyLoader:
    """The loader of family ``name``, importing its module if needed; ModelError if unknown."""
    if name not in _LOADERS and name in FAMILY_MODULES:
        importlib.import_module(FAMILY_MODULES[name])
    try:
        return _LOADERS[name]
    except KeyError:
        known = ", ".join(sorted({*FAMILY_MODULES, *_LOADERS}))
        raise ModelError(f"Unknown model family {name!r}; known families: {known}.") from None


def default_threads(cores: int | None = None) -> int:
    """Threads for inference: half the cores this process may use (``cores``; default: asked
    of the system), at least 1, at most 4 (the small models stop scaling there). Dictation
    shares the machine with the user's work: on a busy 2-core machine a second torch thread
    made streaming slower, not faster (the VAD's and the decoder's small per-token operations
    wait for the other thread: 17 dev files streamed in 154 s of CPU with 2 threads, 73 s
    with 1; the machine at load average 3-5)."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def load_recognizer(model_id: str, *, download: bool = True, progress: bool = True,
                    threads: int | None = None, compute: str = DEFAULT_COMPUTE) -> Recognizer:
    """Resolve ``model_id`` (catalogue id or model folder), downloading it if allowed, and load
    it with its family's loader. ``compute``: ``"int8"`` or ``"float32"`` (see
    :data:`COMPUTE_TYPES`). Raises ModelError with an actionable message on failure."""
    if compute not in COMPUTE_TYPES:
        raise ModelError(f"compute must be one of {', '.join(COMPUTE_TYPES)}, not {compute!r}")
    resolved = resolve(model_id, download=download, progress=progress)
    loader = family_loader(resolved.family)
    return loader(resolved, LoadOptions(threads=threads or default_threads(), compute=compute))
