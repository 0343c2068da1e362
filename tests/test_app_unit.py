"""The app without a desktop: replacement rules, the output pipeline (fake injector, focus
source, clipboard and journal) and the worker's command handling, driven step by step on the
test's thread with a fake microphone and recognizer (a real one needs a sound device and a
model; tests/test_e2e_app.py runs the real app on the harness desktop)."""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dictation.app
from dictation import SAMPLE_RATE
from dictation.app import (
    MEMORY_TRIM_S,
    DictationApp,
    State,
    available_models,
    local_models_dir,
    streaming_config,
)
from dictation.asr.events import Commit, EndOfSegment, Event, Partial
from dictation.commands import Command, Request
from dictation.config import (
    Config,
    ConfigWatcher,
    RecognizerConfig,
    Replacement,
    TypingConfig,
    UiConfig,
)
from dictation.errors import DeviceError, FocusLost, InjectionError, ModelError
from dictation.eventlog import EventLog, read_events
from dictation.inject.keystate import ModifierWatch
from dictation.output.focus import WindowInfo
from dictation.output.pipeline import OutputPipeline, OutputSettings, key_keeps_context
from dictation.output.replacements import ReplacementRules, ReplacementStream

EDITOR = WindowInfo(11, "Gedit", "notes.txt")
OTHER = WindowInfo(12, "Firefox", "Inbox")
XTERM = WindowInfo(13, "XTerm", "bash")


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeTypist:
    """Records what it typed; raises InjectionError once ``fail_after`` calls were made."""

    calls: list[tuple[str, bool]] = field(default_factory=list)
    fail_after: int | None = None

    def type_text(self, text: str, terminal: bool = False) -> None:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise InjectionError("xtest: the X server went away")
        self.calls.append((text, terminal))

    def erase(self, count: int) -> None:
        """BackSpace ``count`` times: recorded as that many "\\b" in :attr:`text`."""
        self.calls.append(("\b" * count, False))

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.calls)


@dataclass
class FakeJournal:
    entries: list[tuple[str, str | None, bool]] = field(default_factory=list)

    sessions: int = 0

    def append(self, text: str, *, window_class: str | None, typed: bool) -> None:
        self.entries.append((text, window_class, typed))

    def new_session(self) -> None:
        self.sessions += 1


@dataclass
class Desk:
    """The fake desktop around one OutputPipeline."""

    window: WindowInfo | None = EDITOR
    typist: FakeTypist = field(default_factory=FakeTypist)
    paster: FakeTypist = field(default_factory=FakeTypist)
    journal: FakeJournal = field(default_factory=FakeJournal)
    clipboard: list[str] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    muted_depth: int = 0
    typed_while_muted: list[bool] = field(default_factory=list)
    key_waits: int = 0
    received: dict[int | None, str] = field(default_factory=dict)
    """What each window got, character by character (window id -> text)."""
    switch_after: int | None = None
    """Activate OTHER once this many characters were typed (the user clicks mid-word)."""

    def receive(self, text: str) -> None:
        for ch in text:
            key = self.window.id if self.window is not None else None
            self.received[key] = self.received.get(key, "") + ch
            if self.switch_after is not None and sum(map(len, self.received.values())) \
                    >= self.switch_after:
                self.window = OTHER

    def pipeline(self, rules: tuple[Replacement, ...] = (), terminal_mode: str = "paste",
                 paster: bool = True, guards_focus: bool = True) -> OutputPipeline:
        settings = OutputSettings(terminal_mode=terminal_mode, rules=ReplacementRules(rules))
        desk = self

        class Watching(FakeTypist):
            def type_text(self, text: str, terminal: bool = False) -> None:
                desk.typed_while_muted.append(desk.muted_depth > 0)
                super().type_text(text, terminal)
                desk.receive(text)

        class Guarding(FakeTypist):
            """Like XTEST typing given the target window: checks the focus per character."""

            guards_focus = True

            def type_text(self, text: str, terminal: bool = False,
                          window: int | None = None) -> None:
                desk.typed_while_muted.append(desk.muted_depth > 0)
                for typed, ch in enumerate(text):
                    if window is not None and (desk.window is None or desk.window.id != window):
                        raise FocusLost("the focus left", typed)
                    desk.receive(ch)
                super().type_text(text, terminal)

        self.typist = Guarding() if guards_focus else Watching()
        self.paster = Watching()
        return OutputPipeline(
            self.typist, settings, paster=self.paster if paster else None,
            journal=self.journal, notify=lambda title, body: self.notes.append((title, body)),
            copy=self.clipboard.append, focus=lambda: self.window, muted=self.muted,
            log_event=lambda name, **kw: self.events.append((name, kw)),
            wait_keys=self.wait_keys)

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        self.muted_depth += 1
        try:
            yield
        finally:
            self.muted_depth -= 1

    def wait_keys(self) -> None:
        self.key_waits += 1


def commits(*texts: str, segment: int = 0) -> list[Event]:
    return [Commit(t, 0.5 * i, segment) for i, t in enumerate(texts)]


def eos(text: str, segment: int = 0) -> EndOfSegment:
    return EndOfSegment(text, 9.0, segment)


def run(pipeline: OutputPipeline, events: list[Event]) -> None:
    pipeline.begin()
    for event in events:
        pipeline.handle(event)
    pipeline.end()


# --------------------------------------------------------------------------- replacements


def test_rules_match_whole_words_case_insensitively() -> None:
    rules = ReplacementRules([Replacement("fellow", "féllow ✓")])
    assert rules.apply("my Fellow Americans, fellow.") == "my féllow ✓ Americans, féllow ✓."
    assert rules.apply("fellows and bedfellow") == "fellows and bedfellow"


def test_rules_are_nfc_and_literal() -> None:
    decomposed = unicodedata.normalize("NFD", "café")
    rules = ReplacementRules([Replacement(decomposed, r"\1 \g<0>"),
                              Replacement("new  line", "⏎")])
    out = rules.apply("Un CAFÉ, new line et new\tline")
    assert out == r"Un \1 \g<0>, ⏎ et ⏎"
    assert rules.apply(decomposed) == unicodedata.normalize("NFC", r"\1 \g<0>")


def test_longest_rule_wins() -> None:
    rules = ReplacementRules([Replacement("new", "NEW"), Replacement("new line", "\n")])
    assert rules.apply("a new line and a new day") == "a \n and a NEW day"


def test_stream_holds_a_phrase_split_over_two_commits() -> None:
    stream = ReplacementStream(ReplacementRules([Replacement("check mark", "✓")]))
    assert stream.push("Tick the") == "Tick the"
    assert stream.push(" check") == ""
    assert stream.held == " check"
    assert stream.push(" mark.") == " ✓."
    assert stream.push(" Check") == ""
    assert stream.push(" it") == " Check it"
    assert stream.push(" check") == ""
    assert stream.flush() == " check"


def test_stream_without_rules_passes_text_through() -> None:
    stream = ReplacementStream(ReplacementRules())
    assert [stream.push(t) for t in ("And", " so", " on.")] == ["And", " so", " on."]
    assert stream.flush() == ""


# --------------------------------------------------------------------------- output pipeline


def test_commits_are_typed_as_they_come_with_their_spacing() -> None:
    desk = Desk()
    pipeline = desk.pipeline()
    pipeline.begin()
    pipeline.handle(Partial("And so my", 0.3, 0))
    assert desk.typist.calls == []  # partials are never typed
    for event in [*commits("And so", " my", " fellow"), eos("And so my fellow"),
                  *commits(" Ask not!", segment=1), eos("Ask not!", 1)]:
        pipeline.handle(event)
    pipeline.end()
    assert desk.typist.text == "And so my fellow Ask not!"
    assert all(terminal is False for _, terminal in desk.typist.calls)
    assert all(desk.typed_while_muted)
    assert desk.key_waits == len(desk.typist.calls)  # one wait per word
    assert desk.journal.entries == [("And so my fellow", "Gedit", True),
                                    ("Ask not!", "Gedit", True)]
    assert desk.clipboard == [] and desk.notes == []
    # 4 pieces, then the closing "!", held until the end in case a spoken mark replaced it
    assert [name for name, _ in desk.events].count("typed") == 5
    assert pipeline.last_text == "And so my fellow Ask not!"  # the whole dictation


def test_replacements_and_nfc_reach_the_window() -> None:
    desk = Desk()
    rules = (Replacement("fellow", "féllow ✓"), Replacement("check mark", "✓"))
    decomposed = unicodedata.normalize("NFD", " Café")
    run(desk.pipeline(rules), [*commits("my", " fellow", " Americans", " check", " mark",
                                        decomposed), eos("...")])
    assert desk.typist.text == "my féllow ✓ Americans ✓ Café"
    assert unicodedata.is_normalized("NFC", desk.typist.text)
    assert desk.journal.entries == [("my féllow ✓ Americans ✓ Café", "Gedit", True)]


def test_focus_moved_away_types_nothing_more_and_keeps_the_text() -> None:
    desk = Desk()
    pipeline = desk.pipeline()
    pipeline.begin()
    pipeline.handle(Commit("Dear", 0.5, 0))
    desk.window = OTHER  # the user clicked into another window
    later: list[Event] = [Commit(" Sir,", 1.0, 0), eos("Dear Sir,"), Commit(" thank you", 2.0, 1)]
    for event in later:
        pipeline.handle(event)
    desk.window = EDITOR  # coming back does not resume typing within this dictation
    pipeline.handle(Commit(" again.", 3.0, 1))
    pipeline.end()
    assert desk.typist.text == "Dear"
    assert desk.clipboard[-1] == "Sir, thank you again."
    assert len(desk.notes) == 1 and "Inbox" in desk.notes[0][1]
    assert "clipboard" in desk.notes[0][1]
    assert desk.journal.entries == [("Dear Sir,", "Gedit", False),
                                    ("thank you again.", "Gedit", False)]
    assert pipeline.held == " Sir, thank you again."
    held = [kw["text"] for name, kw in desk.events if name == "held"]
    assert "".join(held) == " Sir, thank you again."  # each mark held until what follows


@pytest.mark.parametrize("guards_focus", [True, False])
def test_focus_moved_mid_word_sends_not_one_character_to_the_other_window(
        guards_focus: bool) -> None:
    """The user activates another window while "Printing" is being typed (after "Pr"): the
    other window gets nothing; the rest is held. With a typist that checks the focus itself
    (XTEST) and with one that does not (the pipeline then types one character at a time)."""
    desk = Desk(switch_after=2)
    pipeline = desk.pipeline(guards_focus=guards_focus)
    run(pipeline, [*commits("Printing", " in the"), eos("Printing in the")])
    assert desk.received == {EDITOR.id: "Pr"}
    assert pipeline.held == "inting in the"
    assert len(desk.notes) == 1 and "Inbox" in desk.notes[0][1]
    assert desk.journal.entries == [("Printing in the", "Gedit", False)]


def test_terminal_gets_one_paste_per_segment_never_ctrl_v() -> None:
    desk = Desk(window=WindowInfo(16, "kitty", "bash"))
    run(desk.pipeline(), [*commits("ls", " -l"), eos("ls -l"),
                          *commits(" echo", " done", segment=1), eos("echo done", 1)])
    assert desk.typist.calls == []
    assert desk.paster.calls == [("ls -l", True), (" echo done", True)]
    assert desk.journal.entries == [("ls -l", "kitty", True), ("echo done", "kitty", True)]


def test_xterm_without_a_ctrl_shift_v_paste_is_typed_even_in_paste_mode() -> None:
    """xterm/uxterm bind no Ctrl+Shift+V: the per-terminal table types into them."""
    for window in (XTERM, WindowInfo(14, "UXTerm", "bash")):
        desk = Desk(window=window)
        run(desk.pipeline(terminal_mode="paste"), [*commits("git", " status"), eos("git")])
        assert desk.paster.calls == []
        assert desk.typist.text == "git status"
    desk = Desk(window=WindowInfo(15, "Gnome-terminal", "bash"))
    run(desk.pipeline(terminal_mode="paste"), [*commits("ls"), eos("ls")])
    assert desk.paster.calls == [("ls", True)]


def test_terminal_type_mode_types_whole_phrases_with_terminal_conventions() -> None:
    desk = Desk(window=XTERM)
    run(desk.pipeline(terminal_mode="type"), [*commits("git", " status"), eos("git status")])
    assert desk.paster.calls == []
    assert desk.typist.text == "git status"
    assert {terminal for _, terminal in desk.typist.calls} == {True}


def test_terminal_without_clipboard_tool_is_typed() -> None:
    desk = Desk(window=XTERM)
    run(desk.pipeline(paster=False), [*commits("make"), eos("make")])
    assert desk.typist.calls == [("make", True)]
    desk = Desk(window=XTERM)
    run(desk.pipeline(paster=False, guards_focus=False), [*commits("make"), eos("make")])
    assert desk.typist.calls == [(ch, True) for ch in "make"]  # focus checked per character


def test_open_segment_is_delivered_at_the_end() -> None:
    desk = Desk(window=WindowInfo(16, "kitty", "bash"))
    run(desk.pipeline(rules=(Replacement("check mark", "✓"),)),
        [*commits("tick", " check")])  # stopped before the segment closed
    assert desk.paster.calls == [("tick check", True)]
    assert desk.journal.entries == [("tick check", "kitty", True)]


def test_injection_error_keeps_the_text_on_the_clipboard_and_in_the_journal() -> None:
    desk = Desk()
    pipeline = desk.pipeline()
    desk.typist.fail_after = 2
    run(pipeline, [*commits("one two", " three four"), eos("one two three four")])
    assert desk.typist.text == "one two"
    assert desk.clipboard[-1] == "three four"
    assert len(desk.notes) == 1 and "Typing failed" in desk.notes[0][1]
    assert desk.journal.entries == [("one two three four", "Gedit", False)]


def test_no_injector_holds_everything() -> None:
    desk = Desk()
    pipeline = desk.pipeline()
    pipeline.injector = None
    run(pipeline, [*commits("hello", " world"), eos("hello world")])
    assert desk.clipboard[-1] == "hello world"
    assert desk.journal.entries == [("hello world", "Gedit", False)]


def test_clipboard_failure_is_reported_and_text_still_journaled() -> None:
    desk = Desk()
    pipeline = desk.pipeline()

    def broken_copy(_text: str) -> None:
        raise InjectionError("no clipboard tool")

    pipeline._copy = broken_copy
    pipeline.begin()
    desk.window = OTHER
    for event in [*commits("lost?"), eos("lost?")]:
        pipeline.handle(event)
    pipeline.end()
    assert "could not be put on the clipboard" in desk.notes[0][1]
    assert desk.journal.entries == [("lost?", "Gedit", False)]


def test_second_dictation_in_the_same_window_continues_after_a_space() -> None:
    desk = Desk()
    pipeline = desk.pipeline()
    run(pipeline, [*commits("First."), eos("First.")])
    run(pipeline, [*commits("Second."), eos("Second.")])
    desk.window = OTHER
    run(pipeline, [*commits("Third."), eos("Third.")])
    assert desk.typist.text == "First. Second.Third."


def test_held_text_keeps_the_spaces_between_sentences_when_nothing_was_typed() -> None:
    """The focus moved before the first word: every segment is held, one space apart."""
    desk = Desk()
    pipeline = desk.pipeline()
    pipeline.begin()
    desk.window = OTHER
    for event in [*commits("And so my fellow Americans."), eos("And so my fellow Americans."),
                  *commits(" Ask not.", segment=1), eos("Ask not.", 1),
                  *commits("What your country", segment=2), eos("What your country", 2)]:
        pipeline.handle(event)
    pipeline.end()
    expected = "And so my fellow Americans. Ask not. What your country"
    assert desk.typist.text == ""
    assert pipeline.held == expected and desk.clipboard[-1] == expected
    assert pipeline.last_text == expected  # "Copy last transcript": the whole dictation


def test_a_new_dictation_after_the_user_emptied_the_field_starts_without_a_space() -> None:
    desk = Desk()
    pipeline = desk.pipeline()
    run(pipeline, [*commits("First."), eos("First.")])
    pipeline.begin(last_key="backspace")  # the user deleted the text (or sent it: Return)
    for event in [*commits("Second."), eos("Second.")]:
        pipeline.handle(event)
    pipeline.end()
    pipeline.begin(last_key="'x'")  # the user typed on after it: continue after a space
    for event in [*commits("Third."), eos("Third.")]:
        pipeline.handle(event)
    pipeline.end()
    assert desk.typist.text == "First.Second. Third."
    assert [key_keeps_context(k) for k in (None, "'a'", '"\'"', "enter", "space", "' '",
                                           "'\\x01'", "delete")] == [
        True, True, True, False, False, False, False, False]


def test_copy_last_copies_the_whole_last_dictation(worker: tuple[DictationApp, Desk],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import dictation.inject.clipboard as clipboard

    app, desk = worker
    copied: list[str] = []
    monkeypatch.setattr(clipboard, "copy_to_clipboard", copied.append)
    assert isinstance(app.recognizer, FakeRecognizer)
    app.recognizer.words = ["Ask not.", " What your country."]
    app.handle(Request(Command.START))
    session = app.recognizer.sessions[-1]
    original_finish = session.finish

    def two_segments() -> list[Event]:  # the second sentence is a segment of its own
        events = original_finish()
        return [EndOfSegment("Ask not.", 1.0, 0), *[
            replace(e, segment=1) if isinstance(e, Commit) else e for e in events[:-1]],
            EndOfSegment("What your country.", 2.0, 1)]

    monkeypatch.setattr(session, "finish", two_segments)
    app.listen_tick()
    app.handle(Request(Command.STOP))
    app.handle(Request(Command.COPY_LAST))
    assert copied == ["Ask not. What your country."]


def test_handle_outside_a_dictation_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        Desk().pipeline().handle(Commit("x", 0.0, 0))


# --------------------------------------------------------------------------- worker


class FakeCursor:
    def __init__(self, chunks: list[np.ndarray]) -> None:
        self.chunks = chunks
        self.stopped = False
        self.start_position = 0
        self.position = 0
        self.end_position: int | None = None

    def read(self, until: int | None = None) -> np.ndarray:
        pcm = self.chunks.pop(0) if self.chunks else np.zeros(0, dtype=np.float32)
        self.position += len(pcm)
        return pcm

    @property
    def done(self) -> bool:
        return self.stopped and not self.chunks


@dataclass
class FakeDevice:
    name: str


class FakeMic:
    def __init__(self, chunks: list[np.ndarray]) -> None:
        self.chunks = chunks
        self.spec: str | int | None = None
        self.device: FakeDevice | None = FakeDevice("pulse")
        self.error: DeviceError | None = None
        self.is_open = True
        self.cues: list[str] = []
        self.cursor: FakeCursor | None = None
        self.bad_specs: set[str] = set()

    def start_capture(self, pre_roll_s: float = 0.5, at: float | None = None) -> FakeCursor:
        self.check()
        self.cursor = FakeCursor(self.chunks)
        return self.cursor

    def position_at(self, t: float | None) -> int:
        return 0

    def stop_capture(self, at: float | None = None) -> FakeCursor | None:
        cursor, self.cursor = self.cursor, None
        if cursor is not None:
            cursor.stopped = True
        return cursor

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def reopen(self, spec: str | int | None, refresh: bool = False) -> None:
        if spec in self.bad_specs:
            raise DeviceError(f"No input device matches {spec!r}; available inputs: pulse")
        self.spec, self.error = spec, None
        self.device = FakeDevice(str(spec) if spec is not None else "pulse")

    def play_cue(self, kind: str) -> None:
        self.cues.append(kind)

    def close(self) -> None:
        self.is_open = False


class FakeSession:
    """Emits one Commit per non-empty feed (words from a script), and EndOfSegment at
    finish()."""

    def __init__(self, words: list[str], config: Any = None) -> None:
        self.words = words
        self.config = config
        self.fed = 0
        self.last_sample: float | None = None
        self.committed = ""

    def feed(self, pcm: np.ndarray) -> list[Event]:
        self.fed += len(pcm)
        if len(pcm):
            self.last_sample = float(pcm[-1])
        if not len(pcm) or not self.words:
            return []
        text = self.words.pop(0)
        self.committed += text
        return [Partial(self.committed, self.fed / 16000, 0), Commit(text, self.fed / 16000, 0)]

    def finish(self) -> list[Event]:
        events: list[Event] = [Commit(w, self.fed / 16000, 0) for w in self.words]
        self.committed += "".join(self.words)
        self.words = []
        return [*events, EndOfSegment(self.committed.strip(), self.fed / 16000, 0)]


@dataclass
class FakeRecognizer:
    model_id: str
    words: list[str] = field(default_factory=lambda: ["Hello", " there", " friend."])
    sessions: list[FakeSession] = field(default_factory=list)

    def open_session(self, config: Any = None) -> FakeSession:
        self.sessions.append(FakeSession(list(self.words), config))
        return self.sessions[-1]


def chunk(n: int = 1600) -> np.ndarray:
    return np.full(n, 0.1, dtype=np.float32)


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DictationApp,
                                                                               Desk]]:
    """A DictationApp with fakes in place of the microphone, recognizer, desktop and
    notifications, in the idle state (what startup() leaves)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    loaded: list[str] = []

    def load(spec: str) -> Any:
        if spec == "broken":
            raise ModelError("Unknown model 'broken'. Known models: tiny.en")
        loaded.append(spec)
        return FakeRecognizer(spec)

    desk = Desk()
    app = DictationApp(Config(recognizer=RecognizerConfig(model="tiny.en"),
                              ui=UiConfig(audio_cues=True)),
                       events=EventLog(tmp_path / "events.jsonl"), load_model=load,
                       focus=lambda: desk.window)
    app.output = desk.pipeline()
    app.drain_in_thread = False  # the test's thread moves the audio (each listen_tick)
    notes: list[tuple[str, str]] = desk.notes
    monkeypatch.setattr(app, "notify", lambda title, body: notes.append((title, body)))
    app.mic = FakeMic([chunk(), chunk(), chunk(), chunk()])  # type: ignore[assignment]
    app.recognizer = FakeRecognizer("tiny.en")  # type: ignore[assignment]
    app.models = {"tiny.en": "tiny.en", "mine": str(tmp_path / "mine")}
    app.state = State.IDLE
    app.loaded = loaded  # type: ignore[attr-defined]
    yield app, desk


def event_names(app: DictationApp) -> list[str]:
    assert app.events.path is not None
    return [e["event"] for e in read_events(app.events.path)]


def test_start_listen_stop_types_everything(worker: tuple[DictationApp, Desk]) -> None:
    app, desk = worker
    app.handle(Request(Command.START))
    assert app.state is State.LISTENING
    assert app.status() == "listening model=tiny.en mic=default"
    app.listen_tick()
    app.listen_tick()
    assert desk.typist.text == "Hello there"
    app.handle(Request(Command.STOP))
    assert app.state is State.IDLE
    assert desk.typist.text == "Hello there friend."
    assert desk.journal.entries == [("Hello there friend.", "Gedit", True)]
    assert isinstance(app.mic, FakeMic) and app.mic.cues == ["start", "stop"]
    names = event_names(app)
    assert names.index("recording_started") < names.index("stopped") < names.index("finished")
    assert names.count("recording_started") == 1
    assert [kw["text"] for name, kw in desk.events if name == "commit"] == [
        "Hello", " there", " friend."]


def test_stop_tap_handled_late_recognizes_no_audio_after_the_tap(
        worker: tuple[DictationApp, Desk]) -> None:
    """The worker is busy when the stop tap comes, reads the microphone once more before it
    sees the stop, and handles it seconds later: still no audio after the tap's press is fed
    to the recognizer (samples are their ring positions; the tap is at 3.2 s)."""
    from test_mic import JITTER, FedMicrophone

    from dictation.hotkey import Action

    app, _ = worker
    fed = FedMicrophone(JITTER)
    app.mic, app._clock = fed.mic, fed.clock  # type: ignore[assignment]
    app.config = replace(app.config, ui=UiConfig(audio_cues=False))
    fed.deliver_until(1.5)
    app.on_hotkey(Action.START, 1.0)
    app.handle(app.commands.get_nowait())
    fed.deliver_until(3.0)
    app.listen_tick()
    fed.deliver_until(3.25)  # the stop tap (pressed at 3.2 s) is confirmed at its release
    app.on_hotkey(Action.STOP, 3.2)
    fed.deliver_until(6.0)  # meanwhile the worker decodes; then it reads before the command
    app.listen_tick()
    app.handle(app.commands.get_nowait())
    assert app.state is State.IDLE
    assert isinstance(app.recognizer, FakeRecognizer)
    session = app.recognizer.sessions[-1]
    assert session.last_sample is not None
    assert (3.2 - 0.02) * SAMPLE_RATE <= session.last_sample < 3.2 * SAMPLE_RATE
    finished = [e for e in read_events(app.events.path or "") if e["event"] == "finished"]
    assert finished[-1]["capture_end"] == session.last_sample + 1


def test_a_start_typed_later_goes_to_the_window_focused_at_the_double_tap(
        worker: tuple[DictationApp, Desk]) -> None:
    """The user double-taps in the editor, then (while the worker still finishes something
    else) activates another window: the dictation is latched to the editor, so nothing is
    typed into the other window; the text is held."""
    from dictation.hotkey import Action

    app, desk = worker
    desk.window = EDITOR
    app.on_hotkey(Action.START, 0.0)
    desk.window = OTHER
    app.handle(app.commands.get_nowait())
    assert app.output.target == EDITOR
    app.listen_tick()
    app.handle(Request(Command.STOP))
    assert desk.typist.text == ""
    assert desk.journal.entries == [("Hello there friend.", "Gedit", False)]


def test_toggle_and_redundant_commands(worker: tuple[DictationApp, Desk]) -> None:
    app, _ = worker
    app.handle(Request(Command.STOP))  # not listening: nothing happens
    assert app.state is State.IDLE
    app.handle(Request(Command.TOGGLE))
    assert app.state is State.LISTENING
    session = app.session
    app.handle(Request(Command.START))  # already listening: same session goes on
    assert app.session is session
    app.handle(Request(Command.TOGGLE))
    assert app.state is State.IDLE
    app.handle(Request(Command.QUIT))
    assert app.quitting


def test_control_replies(worker: tuple[DictationApp, Desk]) -> None:
    app, _ = worker
    assert app.on_control(Command.STATUS) == "idle model=tiny.en mic=default"
    assert app.on_control(Command.STOP).startswith("not stopped: idle")
    assert app.on_control(Command.TOGGLE) == "toggle requested (was idle)"
    app.step()  # the worker takes the queued toggle
    assert app.state is State.LISTENING
    assert app.on_control(Command.START).startswith("not started: listening")


def test_model_switch_waits_for_the_dictation_to_end(worker: tuple[DictationApp, Desk]
                                                     ) -> None:
    app, _ = worker
    app.handle(Request(Command.START))
    app.handle(Request(Command.SELECT_MODEL, "mine"))
    assert app.model_name == "tiny.en"
    app.handle(Request(Command.STOP))
    assert app.model_name == "mine"
    assert app.loaded == [app.models["mine"]]  # type: ignore[attr-defined]
    assert app.recognizer.model_id == app.models["mine"]  # type: ignore[union-attr]
    assert app.events.path is not None
    assert [e["id"] for e in read_events(app.events.path) if e["event"] == "model_switched"] \
        == ["mine"]
    assert "mine" in app.model_names()


def test_model_that_fails_to_load_keeps_the_old_one(worker: tuple[DictationApp, Desk]) -> None:
    app, desk = worker
    app.handle(Request(Command.SELECT_MODEL, "broken"))
    assert app.model_name == "tiny.en" and app.state is State.IDLE
    assert desk.notes[-1][0] == "Model not changed" and "Known models" in desk.notes[-1][1]


def test_microphone_error_shows_and_blocks_start_until_another_mic(
        worker: tuple[DictationApp, Desk]) -> None:
    app, desk = worker
    mic = app.mic
    assert isinstance(mic, FakeMic)
    mic.error = DeviceError("Microphone [3] USB stopped delivering audio")
    app.idle_poll()
    assert app.state is State.ERROR
    assert "USB stopped" in app.status()
    app.handle(Request(Command.START))
    assert app.state is State.ERROR and desk.notes[-1][0] == "Cannot start dictation"
    mic.bad_specs.add("nothing")
    app.handle(Request(Command.SELECT_MIC, "nothing"))
    assert app.state is State.ERROR and "No input device" in desk.notes[-1][1]
    app.handle(Request(Command.SELECT_MIC, "pulse"))
    assert app.state is State.IDLE
    assert app.current_microphone() == "pulse"
    app.handle(Request(Command.START))
    assert app.state is State.LISTENING


def test_microphone_failing_while_listening_stops_and_keeps_the_text(
        worker: tuple[DictationApp, Desk]) -> None:
    app, desk = worker
    app.handle(Request(Command.START))
    app.listen_tick()
    mic = app.mic
    assert isinstance(mic, FakeMic)
    mic.chunks.clear()
    mic.error = DeviceError("Microphone unplugged")
    app.listen_tick()
    assert app.state is State.ERROR
    assert desk.journal.entries == [("Hello there friend.", "Gedit", True)]


def test_config_changes_apply_and_invalid_files_are_reported(
        worker: tuple[DictationApp, Desk], tmp_path: Path) -> None:
    app, desk = worker
    path = tmp_path / "config.toml"
    path.write_text("[ui]\naudio_cues = true\n")
    app.watcher = ConfigWatcher(path)
    app.config = app.watcher.config
    path.write_text("[typing]\nbackend = 'telepathy'\n")
    app.idle_poll()
    assert desk.notes[-1][0] == "Settings not applied"
    assert "typing.backend" in desk.notes[-1][1]
    assert app.config.ui.audio_cues  # the last good config stays
    path.write_text('[ui]\naudio_cues = true\n[[replacements]]\npattern = "there"\n'
                    'replacement = "thére"\n')
    app.idle_poll()
    app.handle(Request(Command.START))
    app.handle(Request(Command.STOP))
    assert desk.typist.text == "Hello thére friend."


def test_step_waits_for_commands_and_polls_when_idle(worker: tuple[DictationApp, Desk]
                                                     ) -> None:
    app, _ = worker
    polls: list[int] = []
    app.idle_poll = lambda: polls.append(1)  # type: ignore[method-assign]
    app._next_poll = app._clock() + 60  # commands are queued: step() does not wait
    app.post(Command.START)
    app.step()
    assert app.state is State.LISTENING
    app.post(Command.STOP)
    app.step()  # reads audio, then takes the stop
    assert app.state is State.IDLE
    app._next_poll = 0.0
    app.step()
    assert polls == [1]


def test_a_failing_step_ends_the_dictation_not_the_app(worker: tuple[DictationApp, Desk]
                                                       ) -> None:
    app, desk = worker
    app.handle(Request(Command.START))

    def explode(_pcm: np.ndarray) -> list[Event]:
        raise ValueError("decoder bug")

    app.session.feed = explode  # type: ignore[union-attr, method-assign]
    app.post(Command.STOP)
    app._guarded(app.listen_tick)
    assert app.state is State.IDLE
    assert "decoder bug" in desk.notes[-1][1]


def test_available_models_lists_model_folders(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "model.bin").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a model")
    models = available_models(tmp_path)
    assert models["tiny.en"] == "tiny.en"  # the embedded model is always installed
    assert models["mine"] == str(tmp_path / "mine")
    assert "empty" not in models and "file.txt" not in models


def test_local_models_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert local_models_dir() == tmp_path / "dictation" / "models"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert local_models_dir() == Path.home() / ".local" / "share" / "dictation" / "models"


def test_streaming_config_follows_the_recognizer_section() -> None:
    rc = replace(RecognizerConfig(), vad_threshold=0.3, endpoint_silence_s=0.8,
                 max_segment_s=4.0, decode_interval_s=0.5)
    sc = streaming_config(rc)
    assert sc.segmenter.threshold == 0.3 and sc.segmenter.release <= 0.3
    assert sc.segmenter.endpoint_silence_s == 0.8 and sc.segmenter.max_segment_s == 4.0
    assert sc.segmenter.cut_search_s <= 2.0
    assert sc.decode_interval_s == 0.5


def test_default_recognizer_section_gives_the_benchmarked_streaming_settings() -> None:
    """The app with a default configuration runs what `dictation bench --stream` measures."""
    from dictation.asr.driver import StreamingConfig

    assert streaming_config(RecognizerConfig()) == StreamingConfig()


def test_event_log_appends_json_lines_privately(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, clock=lambda: 12.5)
    log("commit", text="féllow ✓", typed=True)
    log("finished")
    assert read_events(path) == [{"event": "commit", "t": 12.5, "text": "féllow ✓",
                                  "typed": True}, {"event": "finished", "t": 12.5}]
    assert path.stat().st_mode & 0o777 == 0o600
    EventLog(None)("ignored")  # no path: nothing happens
    assert json.loads(path.read_text().splitlines()[0])["text"] == "féllow ✓"


def test_modifier_watch_without_a_display_knows_nothing() -> None:
    watch = ModifierWatch(env={})
    assert not watch.held()
    assert watch.wait_released(timeout_s=0.0)


def test_typing_config_terminal_mode_reaches_the_pipeline() -> None:
    from dictation.app import output_settings

    config = Config(typing=TypingConfig(terminal_mode="type", terminal_classes=("kitty",)),
                    replacements=(Replacement("a", "b"),))
    settings = output_settings(config)
    assert settings.terminal_mode == "type" and settings.terminal_classes == ("kitty",)
    assert settings.rules.apply("a cat") == "b cat"


def test_stop_tap_while_the_app_types_counts_when_typing_never_presses_the_hotkey() -> None:
    """The app turns ``mute_hotkey`` off for Right Ctrl (its typing presses only Shift_L /
    Control_L): the user's stop tap during typing counts, the typed keys still do not."""
    from dictation.app import TYPING_KEYS
    from dictation.hotkey import Action, DoubleTapDetector

    assert "ctrl_r" not in TYPING_KEYS and "shift_l" in TYPING_KEYS
    detector = DoubleTapDetector("ctrl_r")
    detector.mute_hotkey = False
    detector.set_active(True)
    detector.muted = True  # the app is typing
    assert detector.press("ctrl_r", 1.00) is None
    assert detector.press("'a'", 1.02) is None  # typed key: ignored, no combination
    assert detector.release("'a'", 1.03) is None
    assert detector.release("ctrl_r", 1.08) is None
    assert detector.poll(1.2) is Action.STOP
    muted_default = DoubleTapDetector("shift_l")  # a hotkey the typing itself presses
    muted_default.set_active(True)
    muted_default.muted = True
    muted_default.press("shift_l", 2.0)
    muted_default.release("shift_l", 2.05)
    assert muted_default.poll(2.5) is None


def test_free_heap_memory_is_given_back_at_segment_ends_during_a_long_dictation(
        worker: tuple[DictationApp, Desk], monkeypatch: pytest.MonkeyPatch) -> None:
    """The soak (reports/soak.md) grew 24 % in 25 minutes: freed decode buffers stayed in the
    C heap until the dictation ended. Segment ends give them back, at most every
    MEMORY_TRIM_S."""
    app, _ = worker
    now = [0.0]
    trims: list[float] = []
    monkeypatch.setattr(app, "_clock", lambda: now[0])
    monkeypatch.setattr(dictation.app, "release_free_memory", lambda: trims.append(now[0]))
    app._trimmed_at = 0.0
    app.handle(Request(Command.START))
    assert app.session is not None
    feed = app.session.feed

    def feed_and_end_segment(pcm: np.ndarray) -> list[Event]:
        return [*feed(pcm), EndOfSegment("", 0.0, 0)]

    monkeypatch.setattr(app.session, "feed", feed_and_end_segment)
    for t in (MEMORY_TRIM_S / 3, MEMORY_TRIM_S + 1, 1.5 * MEMORY_TRIM_S + 1, 2 * MEMORY_TRIM_S + 2):
        now[0] = t
        app.listen_tick()
    assert trims == [MEMORY_TRIM_S + 1, 2 * MEMORY_TRIM_S + 2]


def test_a_silent_microphone_is_reported_and_listening_goes_on(
        worker: tuple[DictationApp, Desk]) -> None:
    """3.5 s of exact zeros (a muted input, or a recording moved to a silent source): one
    notification naming the microphone and an ``input_silent`` event; when the signal is back,
    ``input_back``, and the words after it are typed."""
    app, desk = worker
    assert isinstance(app.mic, FakeMic)
    app.mic.chunks = [chunk(), *[np.zeros(8000, np.float32) for _ in range(7)], chunk()]
    app.handle(Request(Command.START))
    for _ in range(9):
        app.listen_tick()
    silent = [body for title, body in desk.notes if title == "Microphone silent"]
    assert len(silent) == 1 and "pulse" in silent[0] and "3 s" in silent[0]
    names = event_names(app)
    assert names.count("input_silent") == 1 and names.count("input_back") == 1
    assert names.index("input_silent") < names.index("input_back")
    assert app.state is State.LISTENING
    app.handle(Request(Command.STOP))
    assert desk.typist.text == "Hello there friend."
