"""Replacement rules applied to committed text: ``[[replacements]]`` of the config.

A rule's ``pattern`` is a literal phrase, matched case-insensitively and only as whole words
(not inside a longer word); its ``replacement`` is inserted literally (no regex escapes).
Pattern, replacement and text are NFC-normalised first, and a space inside a pattern matches
any run of whitespace. Where rules overlap, the longest pattern wins.

Committed text arrives in pieces ("check" now, " mark" a moment later), so a phrase can span
two commits. :class:`ReplacementStream` holds back a trailing run of words that could still
grow into a match until the next piece (or the end of the segment) shows whether it does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from dictation.config import Replacement

_WORD_START = re.compile(r"(?<!\S)\S")
"""A non-space character at the start of the text or after whitespace: where a word starts."""


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _phrase_key(text: str) -> str:
    """``text`` as compared for prefixes: NFC, case-folded, whitespace runs as one space."""
    return " ".join(_nfc(text).casefold().split())


class ReplacementRules:
    """Compiled rules: :meth:`apply` rewrites a whole text, :meth:`could_grow` tells whether a
    text could still become (or be extended into) a match when more words follow."""

    def __init__(self, rules: Iterable[Replacement] = ()) -> None:
        self.rules = tuple(rules)
        by_key: dict[str, str] = {}
        for rule in sorted(self.rules, key=lambda r: len(_phrase_key(r.pattern)), reverse=True):
            by_key.setdefault(_phrase_key(rule.pattern), _nfc(rule.replacement))
        self._by_key = by_key
        self._regex: re.Pattern[str] | None = None
        if by_key:
            alternatives = "|".join(
                r"\s+".join(re.escape(word) for word in key.split(" ")) for key in by_key)
            self._regex = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def apply(self, text: str) -> str:
        """``text`` (NFC-normalised) with every rule applied once, left to right."""
        text = _nfc(text)
        if self._regex is None:
            return text
        return self._regex.sub(
            lambda m: self._by_key.get(_phrase_key(m.group(0)), m.group(0)), text)

    def could_grow(self, tail: str) -> bool:
        """Whether ``tail`` (words at the end of the text so far) is the beginning of a
        pattern longer than itself, so the next words may complete or extend a match."""
        key = _phrase_key(tail)
        if not key:
            return False
        return any(len(k) > len(key) and k.startswith(key) for k in self._by_key)


class ReplacementStream:
    """Applies :class:`ReplacementRules` to text that arrives in pieces (commits).

    :meth:`push` returns the text that is final now; words that could still be the start of a
    longer match are held (with the whitespace before them) until the next :meth:`push`, or
    :meth:`flush` at the end of a segment. Concatenating every output equals applying the
    rules to the concatenated input (spacing preserved) when pieces end at word ends and no
    two rules overlap.
    """

    def __init__(self, rules: ReplacementRules) -> None:
        self.rules = rules
        self._held = ""

    @property
    def held(self) -> str:
        """Text received but not yet released."""
        return self._held

    def push(self, text: str) -> str:
        text = self._held + _nfc(text)
        self._held = ""
        if not self.rules:
            return text
        split = len(text)
        for match in _WORD_START.finditer(text):
            if self.rules.could_grow(text[match.start():]):
                split = len(text[: match.start()].rstrip())  # the space goes with the words
                break
        self._held = text[split:]
        return self.rules.apply(text[:split])

    def flush(self) -> str:
        """Release whatever is held, with the rules applied (end of a segment)."""
        text, self._held = self._held, ""
        return self.rules.apply(text)
