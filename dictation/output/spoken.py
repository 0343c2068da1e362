"""Spoken punctuation and commands: "comma", "new line", "scratch that", "stop dictation".

A command is recognised only when it is said as a phrase of its own: the whole segment (the
recogniser closes a segment at a pause, so a pause came before and after it). Said inside a
sentence ("the period of time", "a comma-separated list") the words stay words. Each kind can
be switched off (``[spoken]`` in the config, :class:`~dictation.config.SpokenConfig`).

:class:`SpokenShaper` turns one dictation's committed pieces into :class:`Action` s, with no
threads and no I/O, so a table of inputs -> typed text tests it exactly:

* A segment whose words so far are the start of a command ("new", "question", "scratch") is
  held until its next words show it is not one (then it is released unchanged) or the segment
  ends (then it is the command, or released).
* The punctuation mark a segment ends with ("Hello world.") is held until the next segment: a
  spoken "comma" after it replaces it ("Hello world,") instead of following it ("Hello world.,").
  The end of the dictation releases it. :class:`SegmentDone` marks where a segment's typed
  text ends (its mark included): the unit of the journal and of "scratch that".
* After a command the next words follow the language's rules: no space before a punctuation
  mark, a capital after ". ? !" and a line break, none after ", :" (:func:`sentence_case`).

Text without command words passes through unchanged: the concatenation of every
:class:`TypeText` equals the concatenation of the pieces pushed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dictation.config import SpokenConfig

PUNCTUATION_COMMANDS: dict[str, str] = {
    "comma": ",",
    "period": ".",
    "full stop": ".",
    "question mark": "?",
    "exclamation mark": "!",
    "exclamation point": "!",
    "colon": ":",
}
"""Spoken punctuation (normalised phrase -> the mark typed)."""

LINE_COMMANDS: dict[str, str] = {"new line": "\n", "new paragraph": "\n\n"}
"""Spoken line breaks (normalised phrase -> the text typed)."""

SCRATCH_PHRASES = frozenset({"scratch that"})
STOP_PHRASES = frozenset({"stop dictation"})

SENTENCE_END = frozenset(".?!")
"""Marks after which the next word starts with a capital."""

_TRAILING_MARK = re.compile(r"[.,?!:;]+$")
"""The punctuation a segment's text ends with (held until the next segment)."""

_KEEP_CAPITAL = re.compile(r"^(I|I'm|I'll|I've|I'd|[A-Z]{2,}\S*|\S+[A-Z]\S*)$")
"""First words whose capital is not sentence case (the pronoun I, acronyms, camel case): kept
when a sentence continues after a spoken comma or colon."""


def normalise_phrase(text: str) -> str:
    """``text`` as compared with command phrases: lower case, punctuation and hyphens as
    spaces, whitespace runs as one space ("New line." -> "new line")."""
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())


def sentence_case(text: str, capital: bool) -> str:
    """``text`` with its first letter upper case (``capital``) or lower case where that letter
    is only sentence case (the first word is not "I", an acronym or camel case)."""
    match = re.search(r"\S+", text)
    if match is None:
        return text
    word = match.group(0)
    if capital:
        new = word[:1].upper() + word[1:]
    elif _KEEP_CAPITAL.match(word.rstrip(".,?!:;")):
        new = word
    else:
        new = word[:1].lower() + word[1:]
    return text[: match.start()] + new + text[match.end():]


def enabled_phrases(settings: SpokenConfig) -> frozenset[str]:
    """Every command phrase ``settings`` switches on, normalised."""
    out: set[str] = set()
    if settings.punctuation:
        out |= set(PUNCTUATION_COMMANDS)
    if settings.line_breaks:
        out |= set(LINE_COMMANDS)
    if settings.scratch_that:
        out |= SCRATCH_PHRASES
    if settings.stop_dictation:
        out |= STOP_PHRASES
    return frozenset(out)


class Action:
    """What the output does for a piece of dictation."""


@dataclass(frozen=True)
class TypeText(Action):
    """Type ``text`` (it may begin with a space, a mark, or a line break)."""

    text: str


@dataclass(frozen=True)
class ScratchThat(Action):
    """Delete the last phrase typed (the output checks that this is safe)."""


@dataclass(frozen=True)
class StopDictation(Action):
    """End the dictation as the stop tap would."""


@dataclass(frozen=True)
class SegmentDone(Action):
    """The segment ended; what it typed is complete (the journal's unit)."""


@dataclass(frozen=True)
class TextStyle:
    """How a window wants its text (see :mod:`dictation.output.app_rules`)."""

    capitalise: bool = True
    """Segments start as recognised (sentence case); False starts them in lower case."""
    final_period: bool = True
    """Keep the period the recogniser ends a segment with; False drops it (a spoken "period"
    is still typed)."""


class SpokenShaper:
    """Committed text of one dictation -> actions (see the module docstring).

    Call :meth:`push` with each commit's text, :meth:`end_segment` at each segment's end and
    :meth:`finish` when the dictation ends."""

    def __init__(self, settings: SpokenConfig | None = None,
                 style: TextStyle | None = None) -> None:
        self.settings = settings or SpokenConfig()
        self.style = style or TextStyle()
        self._phrases = enabled_phrases(self.settings)
        self._held = ""
        """This segment's text while it may still be a command."""
        self._deciding = True
        """The segment so far could still be a command."""
        self._mark = ""
        """Trailing punctuation of the text so far, not typed yet (the next words, a spoken
        mark or the end of the dictation settle it)."""
        self._case: bool | None = None
        """How the next segment's first word starts after a command: True capital, False
        lower case, None as recognised."""
        self._line_start = False
        """A line break was just typed: the next words start without a space."""
        self._done_pending = False
        """The previous segment ended but its mark is held: :class:`SegmentDone` waits for
        it, so the mark counts as that segment's text (journal, "scratch that")."""

    # --- input --------------------------------------------------------------------------
    def push(self, text: str) -> list[Action]:
        """A committed piece of the open segment."""
        if not self._deciding:
            return self._emit(text)
        self._held += text
        if self._phrases and self._could_be_command(self._held):
            return []
        held, self._held, self._deciding = self._held, "", False
        return self._release_segment_start(held)

    def end_segment(self) -> list[Action]:
        """The open segment ended (a pause): a held phrase is now a command or text."""
        held, self._held = self._held, ""
        was_deciding, self._deciding = self._deciding, True
        key = normalise_phrase(held)
        if was_deciding and key in self._phrases:
            return self._command(key)
        actions = self._release_segment_start(held) if held else []
        if not self.style.final_period:
            self._mark = self._mark.rstrip(".")
        if self._mark:
            self._done_pending = True  # done once its mark is settled
            return actions
        return [*actions, SegmentDone()]

    def finish(self) -> list[Action]:
        """The dictation ended: release what is still held."""
        actions = self.end_segment() if self._held else []
        return actions + self._settle_mark()

    # --- internals ------------------------------------------------------------------------
    def _could_be_command(self, text: str) -> bool:
        key = normalise_phrase(text)
        if not key:
            return True
        return any(p == key or p.startswith(key + " ") for p in self._phrases)

    def _settle_mark(self) -> list[Action]:
        """Type the held mark; a segment waiting for it is then done."""
        mark, self._mark = self._mark, ""
        actions: list[Action] = [TypeText(mark)] if mark else []
        if self._done_pending:
            self._done_pending = False
            actions.append(SegmentDone())
        return actions

    def _release_segment_start(self, text: str) -> list[Action]:
        """Text opening a segment that is not a command: the previous mark goes first, and the
        case and spacing a command (or the window's style) asks for apply to its first word."""
        case = self._case if self._case is not None else (None if self.style.capitalise
                                                          else False)
        self._case = None
        if case is not None:
            text = sentence_case(text, case)
        if self._line_start:
            text = text.lstrip()
            self._line_start = False
        return self._settle_mark() + self._emit(text)

    def _emit(self, text: str) -> list[Action]:
        """Type the held mark and ``text``, except ``text``'s own trailing mark, which waits
        for what follows (a spoken mark after the segment replaces it)."""
        text, self._mark = self._mark + text, ""
        match = _TRAILING_MARK.search(text)
        if match is not None:
            self._mark = match.group(0)
            text = text[: match.start()]
        return [TypeText(text)] if text else []

    def _command(self, key: str) -> list[Action]:
        if key in PUNCTUATION_COMMANDS:
            mark = PUNCTUATION_COMMANDS[key]
            self._mark = mark  # replaces the recognised mark the segment ended with
            self._case = mark in SENTENCE_END
            return []
        if key in LINE_COMMANDS:  # a unit of its own: "scratch that" after it deletes it
            self._case, self._line_start = True, True
            return [*self._settle_mark(), TypeText(LINE_COMMANDS[key]), SegmentDone()]
        if key in SCRATCH_PHRASES:
            self._mark = ""  # the scratched phrase's mark was never typed
            return [*self._settle_mark(), ScratchThat()]
        return [StopDictation()]  # finish() settles the mark
