"""Text preparation shared by every typing back-end."""

from __future__ import annotations

import unicodedata

_KEPT_CONTROLS = frozenset("\n\t")


def prepare_text(text: str) -> str:
    """Return ``text`` as it should be typed: NFC-normalised, line breaks as ``\\n``.

    ``\\r\\n`` and lone ``\\r`` become ``\\n``; other control characters (C0, DEL, C1) have no
    key that types them into a text field and are dropped. Backspace counts in code points of
    this NFC form.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch for ch in text if ch in _KEPT_CONTROLS or unicodedata.category(ch) != "Cc")
