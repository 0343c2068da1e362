"""Commit policies: which words of a changing hypothesis are stable enough to type.

A :class:`CommitPolicy` tracks one segment. The streaming driver (:mod:`dictation.asr.driver`)
gives it each hypothesis of the segment and types what it returns; committed words are never
retracted.

:class:`LocalAgreement` (re-decoding decoders): every decode transcribes the open segment from
its start. The committed words are located in each new hypothesis (:func:`committed_end`); what
follows them is its *tail*. LocalAgreement-n: the words on which the tails of the last ``n``
hypotheses agree (same normalised text, from the first word on) are committed. While the speaker
is still talking the newest hypothesis' last word is held back (the audio may end inside it).

:class:`FinalWords` (monotone decoders): the decoder itself marks words final (beyond its
look-ahead); they are committed at once, without agreement.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Word:
    """One word of a hypothesis: its tokens and their text (leading space included)."""

    tokens: tuple[int, ...]
    text: str

    @property
    def key(self) -> str:
        """Case- and punctuation-free form used to compare words across hypotheses."""
        return re.sub(r"[^\w']+", "", self.text.lower())


def committed_end(committed: list[Word], words: list[Word]) -> int:
    """Index in ``words`` just past the part that corresponds to the ``committed`` words.

    Usually the hypothesis starts with them; otherwise the last word sequence both share is
    anchored and the remaining committed words are assumed to map one to one."""
    a, b = [w.key for w in committed], [w.key for w in words]
    if b[: len(a)] == a:
        return len(a)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    blocks = [m for m in matcher.get_matching_blocks() if m.size and m.a < len(a)]
    if not blocks:
        return min(len(a), len(b))
    last = blocks[-1]
    return max(0, min(len(b), last.b + len(a) - last.a))


def agreed_prefix(tails: list[list[Word]]) -> int:
    """Number of leading words on which every tail agrees."""
    if not tails:
        return 0
    n = min(len(t) for t in tails)
    for i in range(n):
        if any(t[i].key != tails[0][i].key for t in tails[1:]):
            return i
    return n


class CommitPolicy(Protocol):
    """Decides which words of one segment's hypotheses are committed."""

    committed: list[Word]
    """The segment's words committed so far."""

    def tail(self, words: list[Word]) -> list[Word]:
        """The words of a hypothesis after the committed ones."""
        ...

    def update(self, words: list[Word], speech_ongoing: bool) -> list[Word]:
        """Add a hypothesis (for :class:`FinalWords`: only its final words); return the words
        it commits (possibly none)."""
        ...

    def commit_all(self, words: list[Word]) -> list[Word]:
        """Segment end: commit everything of the final hypothesis after the committed words."""
        ...


class LocalAgreement:
    """Tracks the hypotheses of one segment and hands out newly committed words."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError("agreement needs at least one hypothesis")
        self.history: deque[list[Word]] = deque(maxlen=n)
        self.committed: list[Word] = []

    def tail(self, words: list[Word]) -> list[Word]:
        """The words of a hypothesis after the committed ones."""
        return words[committed_end(self.committed, words):]

    def update(self, words: list[Word], speech_ongoing: bool) -> list[Word]:
        """Add the newest hypothesis; return the words it commits (possibly none)."""
        self.history.append(words)
        if len(self.history) < (self.history.maxlen or 1):
            return []
        tails = [self.tail(h) for h in self.history]
        stable = agreed_prefix(tails)
        if speech_ongoing:
            stable = min(stable, len(tails[-1]) - 1)
        new = tails[-1][: max(0, stable)]
        self.committed += new
        return new

    def commit_all(self, words: list[Word]) -> list[Word]:
        """Segment end: everything of the final hypothesis after the committed words."""
        new = self.tail(words)
        self.committed += new
        return new


class FinalWords:
    """Commit policy of a monotone decoder: the words it marks final are committed as they come
    (the committed words are always a prefix of its hypotheses)."""

    def __init__(self) -> None:
        self.committed: list[Word] = []

    def tail(self, words: list[Word]) -> list[Word]:
        return words[len(self.committed):]

    def update(self, words: list[Word], speech_ongoing: bool) -> list[Word]:
        """``words``: the hypothesis' final words (from the segment's start)."""
        return self.commit_all(words)

    def commit_all(self, words: list[Word]) -> list[Word]:
        new = self.tail(words)
        self.committed += new
        return new
