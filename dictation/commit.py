"""Commit policy: which words of a changing hypothesis are stable enough to type.

LocalAgreement-n: a word is committed once the last ``n`` hypotheses of the open segment agree on
it and on everything before it. The newest hypothesis' last word is held back while the speaker
is still talking (the audio may end inside it). Committed words are never retracted: the session
forces them as the decoder prefix of every later decode of the segment.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    """One word of a hypothesis: its tokens and their text (leading space included)."""

    tokens: tuple[int, ...]
    text: str


def agreed_prefix(hypotheses: list[list[Word]]) -> int:
    """Number of leading words on which every hypothesis agrees (same text)."""
    if not hypotheses:
        return 0
    n = min(len(h) for h in hypotheses)
    for i in range(n):
        if any(h[i].text != hypotheses[0][i].text for h in hypotheses[1:]):
            return i
    return n


class LocalAgreement:
    """Tracks the hypotheses of one segment and says how many words are committed."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError("agreement needs at least one hypothesis")
        self.history: deque[list[Word]] = deque(maxlen=n)
        self.committed = 0

    def update(self, words: list[Word], speech_ongoing: bool) -> int:
        """Add the newest hypothesis; return how many of its leading words are now committed
        (never fewer than before)."""
        self.history.append(words)
        if len(self.history) == self.history.maxlen:
            stable = agreed_prefix(list(self.history))
            if speech_ongoing:
                stable = min(stable, len(words) - 1)
            self.committed = max(self.committed, stable)
        return self.committed

    def commit_all(self, words: list[Word]) -> int:
        """Segment end (or a pause): everything in the final hypothesis is committed."""
        self.committed = max(self.committed, len(words))
        return self.committed
