"""Refusing corrupt model weights at load time, naming the file.

A model file whose bytes were damaged (a broken download outside the catalogue's SHA-256
check, a copied folder, a bad disk) often still parses: the loaders read whatever numbers the
damaged bytes spell. Whisper then decodes every input into its token 0 (``!``) or nonsense,
and the user sees nothing typed. :func:`check_weights` looks at every floating-point tensor
once after loading and raises :class:`~dictation.errors.ModelError` naming the weights file
when one holds a value no trained Whisper has (heuristic *weight range*: not finite, or larger
in magnitude than :data:`MAX_ABS_WEIGHT`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch

from dictation.errors import ModelError

MAX_ABS_WEIGHT = 1.0e4
"""Largest magnitude a sound weight has (Whisper tiny.en's largest is 16.9). Random bytes read
as float32 have random exponents: almost every damaged block holds values far beyond this, or
NaN/inf."""


def weight_files(folder: Path) -> list[Path]:
    """The files of a model folder that hold its weights (``model.bin`` of CTranslate2,
    ``*.safetensors`` of Hugging Face)."""
    files = [folder / "model.bin"] if (folder / "model.bin").is_file() else []
    return files + sorted(folder.glob("*.safetensors"))


def first_bad_tensor(tensors: Iterable[tuple[str, torch.Tensor]]) -> tuple[str, float] | None:
    """(name, largest magnitude) of the first floating-point tensor outside the weight range
    (NaN counts as out of range), or None when all are sound."""
    for name, tensor in tensors:
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        low, high = torch.aminmax(tensor.detach())  # one pass, no copy (~15 ms for tiny.en)
        lo, hi = float(low), float(high)
        largest = math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)
        if not largest <= MAX_ABS_WEIGHT:  # also true for NaN
            return name, largest
    return None


def check_weights(model: torch.nn.Module, folder: Path | None, model_id: str) -> None:
    """Raise :class:`ModelError` naming the weights file of ``folder`` (the model's folder,
    None: unknown) when a tensor of ``model`` is out of the weight range."""
    bad = first_bad_tensor(model.state_dict().items())
    if bad is None:
        return
    name, largest = bad
    files = weight_files(folder) if folder is not None else []
    where = ", ".join(str(f) for f in files) or (str(folder) if folder else model_id)
    raise ModelError(
        f"The model {model_id} is corrupt: {where} holds impossible weights (tensor {name} "
        f"reaches {largest:g}). Download or copy the model again (`dictation models` lists "
        "the installed ones), or pick another model."
    )


def check_recognizer(recognizer: object) -> None:
    """:func:`check_weights` for a :class:`dictation.asr.recognizer.Recognizer`."""
    from dictation.asr.catalog import resolve

    model_id = str(getattr(recognizer, "model_id", "?"))
    loaded = getattr(recognizer, "loaded", None)
    if loaded is None:
        return
    try:
        folder: Path | None = resolve(model_id, download=False).path
    except ModelError:
        folder = None
    check_weights(loaded.model, folder, model_id)
