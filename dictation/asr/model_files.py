"""Small readers shared by the families' checkpoint loaders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dictation.errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a model's config.json, generation_config.json, ...);
    ModelError naming the file when it is missing, not JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is missing or not valid JSON ({exc}); re-download the model"
                         ) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object; re-download the model")
    return data


def read_tokenizer(path: Path) -> Tokenizer:
    """The ``tokenizers`` tokenizer in ``path`` (a tokenizer.json); ModelError naming the file
    when it is missing or unreadable."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise ModelError(f"tokenizer file missing: {path}; reinstall or re-download the model")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises plain Exceptions
        raise ModelError(f"cannot read tokenizer {path}: {exc}; the file is corrupt, "
                         "re-download the model") from exc
