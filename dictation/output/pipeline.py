"""The typing pipeline: committed text -> replacements -> the window dictation started in.

One :class:`OutputPipeline` serves one dictation at a time (:meth:`~OutputPipeline.begin`,
:meth:`~OutputPipeline.handle` for each recognizer event, :meth:`~OutputPipeline.end`):

* Commits pass through the replacement rules (:mod:`dictation.output.replacements`, NFC) and are
  typed as they arrive; partial hypotheses are never typed.
* Terminals (the target window's class is one of ``terminal_classes``) get each segment as one
  phrase at its end: pasted with Ctrl+Shift+V (``terminal_mode = "paste"``) or typed; a
  terminal without that paste key (:data:`TERMINAL_ROUTES`: xterm, uxterm) is always typed
  (``"type"``); never Ctrl+V.
* The window focused at the double tap (passed to :meth:`~OutputPipeline.begin`) is the
  target. The focus is checked for every character: a typist with ``guards_focus`` (XTEST)
  checks it itself, atomically, when given the target ``window``; any other is given one
  character at a time, each after a focus check. Once the focus moved away (or the injector
  failed), nothing more is typed in this dictation: the text is held, put on the clipboard so
  the user can paste it, and the user is notified once.
* Every segment goes to the transcript journal, typed or held.
* Typing runs inside ``muted()`` so the hotkey ignores the app's own keystrokes, word by word,
  each word only once the user holds no modifier (a Ctrl tap to stop while text is typed would
  otherwise turn letters into Ctrl shortcuts in the target window).

No threads: the app's worker calls it. Injector, focus source, clipboard, journal and
notifications are passed in, so tests use fakes for each.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dictation.asr.events import Commit, EndOfSegment, Event, Partial
from dictation.config import TERMINAL_CLASSES, AppRule, SpokenConfig
from dictation.errors import DictationError, FocusLost, InjectionError
from dictation.output.app_rules import shaping_for
from dictation.output.focus import FocusLatch, WindowInfo, focused_window, is_terminal
from dictation.output.replacements import ReplacementRules, ReplacementStream
from dictation.output.spoken import (
    Action,
    ScratchThat,
    SegmentDone,
    SpokenShaper,
    StopDictation,
    TypeText,
)

log = logging.getLogger(__name__)

_PIECES = re.compile(r"\s*\S+|\s+")
"""Words with the whitespace before them (and trailing whitespace): what is typed at a time."""

NOTIFY_TITLE = "Dictation"


class Typist(Protocol):
    """What types text: :class:`dictation.inject.Injector` or a test fake. One whose
    ``guards_focus`` attribute is True also takes ``window=`` (an X window id) and types only
    while the focus is inside it, raising :class:`~dictation.errors.FocusLost` otherwise."""

    def type_text(self, text: str, terminal: bool = False) -> None: ...


class Journal(Protocol):
    """What records segments: :class:`dictation.output.journal.TranscriptJournal` or a test fake."""

    def append(self, text: str, *, window_class: str | None, typed: bool) -> Any: ...

    def new_session(self) -> Any: ...


@dataclass(frozen=True)
class OutputSettings:
    """The ``[typing]`` and ``[[replacements]]`` parts of the config the pipeline needs."""

    terminal_classes: tuple[str, ...] = TERMINAL_CLASSES
    terminal_mode: str = "paste"
    """"paste" (clipboard + Ctrl+Shift+V) or "type"."""
    rules: ReplacementRules = field(default_factory=ReplacementRules)
    spoken: SpokenConfig = field(default_factory=SpokenConfig)
    """Spoken punctuation and commands recognised (:mod:`dictation.output.spoken`)."""
    app_rules: tuple[AppRule, ...] = ()
    """The user's per-app rules (:mod:`dictation.output.app_rules`)."""


TERMINAL_ROUTES: dict[str, str] = {"xterm": "type", "uxterm": "type"}
"""Terminals (window class, case-insensitive) that need another route than the configured
``terminal_mode``: xterm and uxterm bind no Ctrl+Shift+V (a paste would type nothing), and
their Shift+Insert pastes PRIMARY, not the clipboard; XTEST key events are real input to them
(they ignore only synthetic XSendEvent keys), so text is typed into them."""


def terminal_route(window_class: str, configured: str) -> str:
    """How text reaches a terminal of ``window_class``: "paste" or "type" (the configured
    ``terminal_mode`` unless :data:`TERMINAL_ROUTES` knows the terminal cannot paste that way)."""
    if configured == "type":
        return "type"
    return TERMINAL_ROUTES.get(window_class.casefold(), configured)


def key_keeps_context(key: str | None) -> bool:
    """Heuristic *caret context from the last key*: whether a new dictation into the window the
    previous one typed into continues that text (so it starts with a space). No key since then
    (None), or a printable character the user typed: yes. Anything else (BackSpace, Delete,
    Return, Tab, space, arrows, Home/End, a shortcut's control character) may have emptied the
    field, sent it (a chat's Return), or moved the caret: no space."""
    if key is None:
        return True
    char = key[1:-1] if len(key) == 3 and key[0] == key[-1] and key[0] in "'\"" else ""
    return len(char) == 1 and char.isprintable() and not char.isspace()


def _copy_to_clipboard(text: str) -> None:
    from dictation.inject.clipboard import copy_to_clipboard

    copy_to_clipboard(text)


def _no_event(event: str, **fields: Any) -> None:
    return None


def _no_wait() -> None:
    return None


class OutputPipeline:
    """Delivers one dictation's committed text (see the module docstring).

    ``injector`` types (None: no typing back-end works here, so everything is held);
    ``paster`` pastes into terminals (None: type into them with ``injector``); ``focus``
    returns the focused window; ``copy`` puts text on the clipboard; ``notify(title, body)``
    tells the user; ``muted()`` mutes the hotkey while typing; ``log_event(name, **fields)``
    records timing events (:mod:`dictation.eventlog`); ``wait_keys()`` returns once the user
    holds no modifier key (:class:`dictation.inject.keystate.ModifierWatch`), so typed letters never
    become shortcuts.
    """

    def __init__(
        self,
        injector: Typist | None,
        settings: OutputSettings | None = None,
        *,
        paster: Typist | None = None,
        journal: Journal | None = None,
        notify: Callable[[str, str], None] | None = None,
        copy: Callable[[str], None] = _copy_to_clipboard,
        focus: Callable[[], WindowInfo | None] = focused_window,
        muted: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        log_event: Callable[..., None] = _no_event,
        wait_keys: Callable[[], object] = _no_wait,
        on_stop: Callable[[], None] = _no_wait,
    ) -> None:
        self.injector = injector
        self.settings = settings or OutputSettings()
        self.paster = paster
        self.journal = journal
        self._notify = notify or (lambda title, body: log.warning("%s: %s", title, body))
        self._copy = copy
        self._focus = focus
        self._muted = muted
        self._log_event = log_event
        self._wait_keys = wait_keys
        self._on_stop = on_stop
        self.last_text: str | None = None
        """The newest dictation's text (typed or held), for "Copy last transcript"."""
        self._dictation_text = ""
        self.held = ""
        """Text of this dictation that was not typed (it is on the clipboard)."""
        self.active = False
        self._latch: FocusLatch | None = None
        self._terminal = False
        self._route = self.settings.terminal_mode
        self._stream = ReplacementStream(self.settings.rules)
        self._shaper = SpokenShaper(self.settings.spoken)
        self._last_phrase = ""  # the last segment's text as typed (what "scratch that" deletes)
        self._typed_text = ""  # this dictation's text as typed into the target
        self._continued = False  # this dictation continues the previous one's text
        self._segment = ""  # this segment's output text so far
        self._pending = ""  # terminal: the segment's text, delivered at its end
        self._segment_typed = True
        self._stopped_typing = False
        self._gap_told = False
        self._typed_any = False
        self._last_window: int | None = None  # window the previous dictation typed into

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def target(self) -> WindowInfo | None:
        """The window this dictation types into (None: unknown, e.g. on Wayland)."""
        return self._latch.target if self._latch is not None else None

    @property
    def terminal(self) -> bool:
        """Whether the target is a terminal (whole segments, pasted or typed)."""
        return self._terminal

    def begin(self, target: WindowInfo | None | Literal["now"] = "now",
              last_key: str | None = None) -> None:
        """Start a dictation into ``target``: the window focused when the user asked (the app
        queries it at the double tap), or ``"now"``: the window focused now. ``last_key``: the
        last key the user pressed since the previous dictation (a pynput key name, None: no
        key), see :func:`key_keeps_context`."""
        self._latch = FocusLatch(self._focus)
        if target != "now":
            self._latch.target = self._latch.current = target
        target = self._latch.target
        self._terminal = target is not None and is_terminal(
            target.wm_class, self.settings.terminal_classes)
        self._route = terminal_route(target.wm_class if target is not None else "",
                                     self.settings.terminal_mode)
        self._stream = ReplacementStream(self.settings.rules)
        shaping = shaping_for(target.wm_class if target else None, self.settings.spoken,
                              self.settings.app_rules, self.settings.terminal_classes)
        self._shaper = SpokenShaper(shaping.spoken, shaping.style)
        self._last_phrase = self._typed_text = ""
        self._segment = self._pending = self.held = self._dictation_text = ""
        self._segment_typed = True
        self._stopped_typing = False
        self._gap_told = False
        # a second dictation into the same window continues the text after a space, unless
        # the user's last key since then says the text before the caret changed
        self._typed_any = (target is not None and target.id == self._last_window
                           and key_keeps_context(last_key))
        self._continued = self._typed_any
        if self.journal is not None:
            self.journal.new_session()
        self.active = True

    def handle(self, event: Event) -> None:
        """Deliver what ``event`` makes final (Partial: nothing)."""
        if not self.active:
            raise RuntimeError("OutputPipeline.handle() outside begin()/end()")
        if isinstance(event, Partial):
            return
        if isinstance(event, Commit):
            out = self._act(self._shaper.push(event.text))
            self._log_event("commit", text=event.text, out=out, segment=event.segment,
                            audio_time_s=round(event.audio_time_s, 3),
                            typed=not self._stopped_typing)
        elif isinstance(event, EndOfSegment):
            self._act(self._shaper.end_segment())

    def end(self) -> None:
        """The dictation is over: deliver and journal whatever is still open."""
        if not self.active:
            return
        self._act(self._shaper.finish())
        if self._segment or self._stream.held:
            self._add(self._stream.flush(), segment_end=True)
            self._close_segment()
        target = self.target
        if target is not None and self._typed_any and not self._stopped_typing:
            self._last_window = target.id
        else:
            self._last_window = None
        self.active = False

    def mark_gap(self, seconds: float) -> None:
        """``seconds`` of this dictation's audio could not be kept (the recognizer fell too far
        behind): the journal marks the gap between the segments around it, and the user is
        told."""
        text = f"[gap: {seconds:.1f} s of speech were not transcribed]"
        self._log_event("gap", seconds=round(seconds, 3))
        self._journal(text, False)
        if not self._gap_told:  # once per dictation
            self._gap_told = True
            self._notify(NOTIFY_TITLE, f"The recognizer fell behind and {seconds:.1f} s of "
                                       "speech could not be kept, so they were not "
                                       "transcribed. The journal marks where.")

    # --- internals ------------------------------------------------------------------------
    def _act(self, actions: list[Action]) -> str:
        """Carry out the shaper's actions; returns the text they released for typing."""
        out = ""
        for action in actions:
            if isinstance(action, TypeText):
                piece = self._stream.push(action.text)
                out += piece
                self._add(piece, segment_end=False)
            elif isinstance(action, SegmentDone):
                self._add(self._stream.flush(), segment_end=True)
                self._close_segment()
            elif isinstance(action, ScratchThat):
                self._scratch()
            elif isinstance(action, StopDictation):
                self._log_event("spoken_stop")
                self._on_stop()
        return out

    def _scratch(self) -> None:
        """ "scratch that": delete the last phrase typed with counted backspaces (code points,
        as typed), only while the focus never left the target and the phrase was typed, not
        held; otherwise refuse and say why."""
        phrase, self._last_phrase = self._last_phrase, ""
        why = None
        if not phrase.strip() or not self._typed_text.endswith(phrase):
            why = "there is no phrase of this dictation to delete"
        elif self._stopped_typing or self.injector is None:
            why = "the text was not typed (it is on the clipboard and in the journal)"
        elif self._latch is not None and not self._latch.check():
            why = "the focus moved to another window"
        if why is not None:
            self._log_event("scratch_refused", why=why)
            self._notify(NOTIFY_TITLE, f"“Scratch that” was not done: {why}.")
            return
        assert self.injector is not None
        try:
            with self._muted():
                self._wait_keys()
                erase = getattr(self.injector, "erase", None)
                if erase is None:
                    raise InjectionError("this typing method cannot delete text")
                erase(len(phrase))
        except InjectionError as exc:
            self._notify(NOTIFY_TITLE, f"“Scratch that” failed: {exc}.")
            return
        self._typed_text = self._typed_text[: len(self._typed_text) - len(phrase)]
        if self._dictation_text.endswith(phrase):
            self._dictation_text = self._dictation_text[: len(self._dictation_text) - len(phrase)]
        self._typed_any = self._continued or bool(self._typed_text)
        self._log_event("scratched", text=phrase)

    def _add(self, out: str, segment_end: bool) -> None:
        written = self._typed_any or bool(self._dictation_text.strip())  # typed or held
        if not self._segment and out[:1].isspace() and (
                not written or self._dictation_text[-1:].isspace()):
            out = out.lstrip()  # nothing written before it, or a line break: no leading space
        elif (not self._segment and written and out and not out[:1].isspace()
              and not self._dictation_text[-1:].isspace()):
            out = " " + out  # continue the text of the previous segment (not a new line)
        self._segment += out
        self._dictation_text += out
        if self._terminal:
            self._pending += out
            if segment_end:
                text, self._pending = self._pending, ""
                self._deliver(text)
        else:
            self._deliver(out)

    def _close_segment(self) -> None:
        self._last_phrase = self._segment if self._segment_typed else ""
        text = self._segment.strip()
        if text:
            self.last_text = self._dictation_text.strip()
            self._journal(text, self._segment_typed)
        self._segment = ""
        self._segment_typed = True

    def _deliver(self, text: str) -> None:
        if not text:
            return
        if self._stopped_typing:
            self._hold(text, None)
            return
        if not self._focus_kept(text):
            return
        if self.injector is None:
            self._hold(text, "No typing method works in this session.")
            return
        target = self.target
        guarded = False
        if self._terminal and self._route == "paste" and self.paster:
            typist, pieces = self.paster, [text]  # one paste per phrase, focus checked before
        elif target is None or getattr(self.injector, "guards_focus", False):
            # word by word, so a modifier the user presses meanwhile delays the next word; a
            # guarding typist checks the focus for each character itself
            typist, pieces = self.injector, _PIECES.findall(text)
            guarded = target is not None
        else:  # the focus is checked here before every character
            typist, pieces = self.injector, list(text)
        done = 0
        try:
            with self._muted():
                for piece in pieces:
                    self._wait_keys()
                    if done and not self._focus_kept(text[done:]):  # checked again per piece
                        text = text[:done]
                        break
                    if guarded:
                        assert target is not None
                        typist.type_text(piece, terminal=self._terminal,  # type: ignore[call-arg]
                                         window=target.id)
                    else:
                        typist.type_text(piece, terminal=self._terminal)
                    done += len(piece)
        except FocusLost as exc:
            done += exc.typed
            if self._latch is not None:
                self._latch.check()  # who has the focus now, for the message
            self._hold(text[done:], self._moved_message())
            text = text[:done]
        except InjectionError as exc:
            self._hold(text[done:], f"Typing failed: {exc}.")
            text = text[:done]
        if text:
            self._typed_any = True
            self._typed_text += text
            self._log_event("typed", text=text)

    def _focus_kept(self, rest: str) -> bool:
        """Whether the latched window still has the focus; if not, hold ``rest`` and say so."""
        if self._latch is None or self._latch.check():
            return True
        self._hold(rest, self._moved_message())
        return False

    def _moved_message(self) -> str:
        now = self._latch.current if self._latch is not None else None
        where = f"“{now.title or now.wm_class}”" if now is not None else "no window"
        return f"The focus moved to {where}, so dictation stopped typing."

    def _hold(self, text: str, why: str | None) -> None:
        """Keep ``text`` instead of typing it; the first time, say why."""
        self.held += text
        self._segment_typed = False
        self._log_event("held", text=text)
        first = not self._stopped_typing
        self._stopped_typing = True
        try:
            self._copy(self.held.strip())
            where = "It is on the clipboard (paste it where you want it) and in the journal."
        except DictationError as exc:
            log.warning("could not copy the held text to the clipboard: %s", exc)
            where = f"It could not be put on the clipboard ({exc}); it is in the journal."
        if first:
            self._notify(NOTIFY_TITLE, f"{why or 'Text was not typed.'} {where}")

    def _journal(self, text: str, typed: bool) -> None:
        if self.journal is None:
            return
        target = self.target
        try:
            self.journal.append(text, window_class=target.wm_class if target else None,
                                typed=typed)
        except DictationError as exc:
            log.error("%s", exc)
            self._notify(NOTIFY_TITLE, str(exc))
