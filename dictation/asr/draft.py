"""Draft verification for the re-decoding families (Whisper, Moonshine v1).

A re-decoding decoder transcribes the open segment from its start every few hundred
milliseconds, and most of the time the new greedy transcript begins with what the previous one
said. That previous continuation is the *draft*: its tokens are run through the decoder in the
same batched call as the forced prefix, and the greedy loop then takes the logits it already
has for as long as each draft token is also the greedy choice. At the first token where the
greedy choice differs, the decoder's cache forgets the rest of the draft and decoding goes on
one token at a time. The result is the plain greedy decode's (float rounding of a batched call
aside); only decoder calls are saved.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def previous_continuation(last_decode: tuple[int, list[int]] | None, segment_start: int,
                          prefix: list[int]) -> list[int]:
    """The draft of a re-decode: what the segment's previous decode (``last_decode``: its
    segment's start sample and the token sequence it decoded after the start-of-transcript
    tokens) generated after ``prefix``, when it was of the same segment and began with the same
    prefix; otherwise nothing."""
    if last_decode is None or last_decode[0] != segment_start:
        return []
    sequence = last_decode[1]
    return sequence[len(prefix):] if sequence[: len(prefix)] == prefix else []


class DraftedLogits:
    """The next-token logits of a greedy loop that started from a draft.

    rows: (len(draft) + 1, n_vocab) logits after the initial sequence and after each draft
    token (from the one call that ran ``initial + draft``). n_initial: tokens in the decoder's
    cache before the draft. step: runs one token through the decoder and returns its next-token
    logits. truncate: keeps only the first N tokens of the decoder's cache.

    Loop: ``logits = drafted.next()``, choose a token, ``drafted.generated(token)``."""

    def __init__(self, rows: Tensor, draft: list[int], n_initial: int,
                 step: Callable[[int], Tensor], truncate: Callable[[int], None]) -> None:
        self.pending = list(rows.unbind(0))
        self.draft = draft
        self.n_initial = n_initial
        self.n_generated = 0
        self.step = step
        self.truncate = truncate

    def next(self) -> Tensor:
        """Logits of the next token."""
        return self.pending.pop(0)

    def generated(self, token: int) -> None:
        """``token`` was chosen (and the loop goes on): keep to the draft while it holds."""
        k = self.n_generated
        self.n_generated += 1
        if self.pending and token == self.draft[k]:
            return  # the draft holds: its next logits are computed already
        if self.pending:  # the draft went another way: the decoder forgets its rest
            self.truncate(self.n_initial + k)
            self.pending = []
        self.pending.append(self.step(token))
