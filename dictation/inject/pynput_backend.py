"""Type text on macOS and Windows with pynput's ``Controller.type``.

Not offered on Linux: on X11 pynput sends synthetic ``XSendEvent`` keys, which mistype
non-ASCII characters and which xterm ignores (use :mod:`dictation.inject.xtest`). On macOS
the app needs the Accessibility permission, without which the keys are silently dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from dictation.errors import InjectionError
from dictation.inject.text import prepare_text

NAME = "pynput"

_SUPPORTED_PLATFORMS = ("darwin", "win32")


def available(platform: str = sys.platform) -> str | None:
    """None on macOS/Windows with pynput installed, else the reason."""
    if platform not in _SUPPORTED_PLATFORMS:
        return (
            f"pynput typing is only used on macOS and Windows (this is {platform!r}); on "
            "Linux pick 'xtest', 'xdotool', 'wtype' or 'ydotool'"
        )
    try:
        import pynput.keyboard  # noqa: F401
    except ImportError as exc:
        return f"pynput cannot be imported: {exc} (pip install pynput)"
    return None


def _default_controller() -> Any:
    from pynput.keyboard import Controller

    return Controller()


def type_text(
    text: str,
    *,
    terminal: bool = False,
    controller_factory: Callable[[], Any] = _default_controller,
) -> None:
    """Type ``text`` (NFC-normalised) into the focused window; ``\\n`` is Enter. ``terminal``
    changes nothing. Raises ``InjectionError`` if pynput cannot type a character."""
    del terminal
    text = prepare_text(text)
    if not text:
        return
    try:
        controller_factory().type(text)
    except Exception as exc:  # pynput raises its own exception classes per platform
        raise InjectionError(
            f"typing with pynput failed: {exc!r}; on macOS allow this app under System "
            "Settings > Privacy & Security > Accessibility"
        ) from exc
