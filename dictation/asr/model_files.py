"""Small readers shared by the families' checkpoint loaders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dictation.errors import ModelError


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
