"""Spoken punctuation and commands (dictation.output.spoken), as a table of what the recogniser
commits -> what ends up typed, plus a property test: text without command words passes through
unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dictation.config import Replacement, SpokenConfig
from dictation.output.replacements import ReplacementRules, ReplacementStream
from dictation.output.spoken import (
    Action,
    ScratchThat,
    SegmentDone,
    SpokenShaper,
    StopDictation,
    TextStyle,
    TypeText,
    enabled_phrases,
    normalise_phrase,
    sentence_case,
)

Segments = list[list[str]]
"""One dictation: its segments, each the list of its commits' texts (as the recogniser commits
them: a later segment's first commit starts with a space)."""


def run(segments: Segments, settings: SpokenConfig | None = None,
        rules: tuple[Replacement, ...] = (), style: TextStyle | None = None
        ) -> tuple[str, list[Action]]:
    """Drive a shaper (and replacement rules after it, as the output pipeline does) and return
    the text a window would hold: phrases typed, minus phrases scratched."""
    shaper = SpokenShaper(settings, style)
    stream = ReplacementStream(ReplacementRules(rules))
    phrases: list[str] = []  # text typed per segment (what "scratch that" removes)
    current = ""
    seen: list[Action] = []

    def apply(actions: list[Action]) -> None:
        nonlocal current
        for action in actions:
            seen.append(action)
            if isinstance(action, TypeText):
                current += stream.push(action.text)
            elif isinstance(action, SegmentDone):
                current += stream.flush()
                phrases.append(current)
                current = ""
            elif isinstance(action, ScratchThat):
                current += stream.flush()
                if current:
                    phrases.append(current)
                    current = ""
                if phrases:
                    phrases.pop()

    for segment in segments:
        for piece in segment:
            apply(shaper.push(piece))
        apply(shaper.end_segment())
    apply(shaper.finish())
    current += stream.flush()
    return "".join(phrases) + current, seen


TABLE: list[tuple[Segments, str]] = [
    # plain text passes through
    ([["Hello world."]], "Hello world."),
    ([["Hello", " world."]], "Hello world."),
    ([["Hello world."], [" How are you?"]], "Hello world. How are you?"),
    # punctuation said alone replaces the recognised mark
    ([["Hello world."], [" Comma."], [" How are you?"]], "Hello world, how are you?"),
    ([["Hello world"], [" comma"], [" how are you"]], "Hello world, how are you"),
    ([["Hello world."], [" Period."], [" next one."]], "Hello world. Next one."),
    ([["It is done"], [" full stop"], [" then more"]], "It is done. Then more"),
    ([["Are you there"], [" Question mark."]], "Are you there?"),
    ([["Watch out"], [" exclamation mark"]], "Watch out!"),
    ([["Watch out"], [" Exclamation point!"]], "Watch out!"),
    ([["Dear John"], [" colon"], [" Thanks for the note."]], "Dear John: thanks for the note."),
    ([["Yes."], [" Comma."], [" I think so."]], "Yes, I think so."),
    ([["Send it."], [" Comma."], [" NASA said so."]], "Send it, NASA said so."),
    ([["One."], [" Comma."], [" Two."], [" Comma."], [" Three."]], "One, two, three."),
    ([["Comma."]], ","),
    # literal words inside sentences stay words
    ([["The period of time was long."]], "The period of time was long."),
    ([["Put a comma there."]], "Put a comma there."),
    ([["A comma-separated list."]], "A comma-separated list."),
    ([["The", " period", " of", " time."]], "The period of time."),
    ([["New", " York", " is big."]], "New York is big."),
    ([["Question", " everything."]], "Question everything."),
    ([["Period", " pieces are fun."]], "Period pieces are fun."),
    ([["Stop", " the car."]], "Stop the car."),
    ([["Scratch", " the surface."]], "Scratch the surface."),
    ([["I said new line twice."]], "I said new line twice."),
    ([["Comma", " and period", " are marks."]], "Comma and period are marks."),
    # line breaks
    ([["Dear team."], [" New line."], [" The build is green."]],
     "Dear team.\nThe build is green."),
    ([["Dear team,"], [" new line"], [" the build is green."]], "Dear team,\nThe build is green."),
    ([["First part."], [" New paragraph."], [" second part."]], "First part.\n\nSecond part."),
    ([["New", " line."]], "\n"),
    ([["A list"], [" colon"], [" new line"], [" milk"]], "A list:\nMilk"),
    # scratch that
    ([["Hello world."], [" Scratch that."]], ""),
    ([["Keep this."], [" Drop this."], [" Scratch that."]], "Keep this."),
    ([["Keep this."], [" Drop this."], [" Scratch that."], [" And this."]],
     "Keep this. And this."),
    ([["Scratch that."]], ""),
    # stop dictation
    ([["Thanks."], [" Stop dictation."]], "Thanks."),
    ([["Stop dictation"]], ""),
    # numbers pass through
    ([["My number is 5 5 5"], [" 1 2 3 4."]], "My number is 5 5 5 1 2 3 4."),
    ([["It costs $3.50."], [" Comma."], [" roughly."]], "It costs $3.50, roughly."),
    ([["Call 911."]], "Call 911."),
    # a mark inside a segment, at the end of a commit
    ([["Hello world.", " How are", " you?"]], "Hello world. How are you?"),
    ([["Wait,", " what?"], [" Comma."], [" really"]], "Wait, what, really"),
]

REPLACEMENT_TABLE: list[tuple[Segments, tuple[Replacement, ...], str]] = [
    ([["Push to get", " hub", " today."]], (Replacement("get hub", "GitHub"),),
     "Push to GitHub today."),
    ([["Ask", " Klein."]], (Replacement("klein", "Cline"),), "Ask Cline."),
    ([["check", " mark"], [" Comma."], [" done"]], (Replacement("check mark", "✓"),), "✓, done"),
    ([["I use get", " hub actions."]],
     (Replacement("get hub", "GitHub"), Replacement("get hub actions", "GitHub Actions")),
     "I use GitHub Actions."),
]


@pytest.mark.parametrize(("segments", "typed"), TABLE)
def test_spoken_table(segments: Segments, typed: str) -> None:
    assert run(segments)[0] == typed


@pytest.mark.parametrize(("segments", "rules", "typed"), REPLACEMENT_TABLE)
def test_replacements_with_spoken_commands(segments: Segments, rules: tuple[Replacement, ...],
                                           typed: str) -> None:
    assert run(segments, rules=rules)[0] == typed


def test_table_has_forty_rows() -> None:
    assert len(TABLE) + len(REPLACEMENT_TABLE) >= 40


def test_stop_dictation_is_an_action() -> None:
    _, actions = run([["Thanks."], [" Stop dictation."]])
    assert any(isinstance(a, StopDictation) for a in actions)


@pytest.mark.parametrize("off", ["punctuation", "line_breaks", "scratch_that", "stop_dictation"])
def test_each_kind_can_be_switched_off(off: str) -> None:
    said = {"punctuation": "Comma.", "line_breaks": "New line.",
            "scratch_that": "Scratch that.", "stop_dictation": "Stop dictation."}[off]
    settings = SpokenConfig(**{off: False})
    typed, actions = run([["Hello world."], [" " + said]], settings)
    assert typed == "Hello world. " + said
    assert not any(isinstance(a, ScratchThat | StopDictation) for a in actions)


def test_a_command_prefix_is_held_until_the_segment_shows_what_it_is() -> None:
    shaper = SpokenShaper()
    assert shaper.push("New") == []  # could be "new line"
    assert shaper.push(" York") == [TypeText("New York")]
    assert shaper.push(" is big.") == [TypeText(" is big")]  # the mark waits
    assert shaper.end_segment() == []  # done once the mark is settled
    assert shaper.finish() == [TypeText("."), SegmentDone()]


@pytest.mark.parametrize(("segments", "typed"), [
    ([["ls -la."]], "ls -la"),
    ([["Git status."], [" Git diff."]], "git status git diff"),
    ([["Make test"], [" period"]], "make test."),  # said: typed
    ([["Are you sure?"]], "are you sure?"),
    ([["I think so."]], "I think so"),
])
def test_terminal_style_no_capital_no_final_period(segments: Segments, typed: str) -> None:
    assert run(segments, style=TextStyle(capitalise=False, final_period=False))[0] == typed


def test_normalise_phrase() -> None:
    assert normalise_phrase(" New   line. ") == "new line"
    assert normalise_phrase("Question-mark!") == "question mark"


@pytest.mark.parametrize(("text", "capital", "out"), [
    (" how are you", True, " How are you"),
    (" How are you", False, " how are you"),
    (" I think", False, " I think"),
    (" I'm here", False, " I'm here"),
    (" NASA said", False, " NASA said"),
    (" iPhone sales", True, " IPhone sales"),
    (" GitHub is", False, " GitHub is"),
    ("", True, ""),
])
def test_sentence_case(text: str, capital: bool, out: str) -> None:
    assert sentence_case(text, capital) == out


COMMAND_WORDS = {w for phrase in enabled_phrases(SpokenConfig()) for w in phrase.split()}
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ'0123456789", min_size=1, max_size=8)
PUNCT = st.sampled_from(["", "", "", ".", ",", "?", "!"])


@st.composite
def dictations(draw: st.DrawFn) -> Segments:
    segments: Segments = []
    for s in range(draw(st.integers(1, 4))):
        words = draw(st.lists(WORD.filter(lambda w: normalise_phrase(w) not in COMMAND_WORDS),
                              min_size=1, max_size=6))
        text = " ".join(words) + draw(PUNCT)
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=3)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        pieces = [p for p in pieces if p]
        if s:
            pieces[0] = " " + pieces[0]
        segments.append(pieces)
    return segments


@given(dictations())
def test_text_without_command_words_passes_through_unchanged(segments: Segments) -> None:
    typed, actions = run(segments)
    assert typed == "".join(p for s in segments for p in s)
    assert not any(isinstance(a, ScratchThat | StopDictation) for a in actions)


@given(dictations())
def test_command_words_inside_a_sentence_stay_words(segments: Segments) -> None:
    """A command phrase said inside a longer segment is text."""
    segments = [[*segments[0][:-1], segments[0][-1] + " new line period", " and more"],
                *segments[1:]]
    typed, _ = run(segments)
    assert typed == "".join(p for s in segments for p in s)


# --------------------------------------------------------------------------- in the pipeline

from test_app_unit import OTHER, XTERM, Desk, commits, eos  # noqa: E402

from dictation.asr.events import Event  # noqa: E402
from dictation.output.focus import WindowInfo  # noqa: E402


def screen(typed: str) -> str:
    """What a text field shows after ``typed`` (backspaces delete)."""
    out: list[str] = []
    for ch in typed:
        if ch == "\b":
            if out:
                out.pop()
        else:
            out.append(ch)
    return "".join(out)


def dictate(desk: Desk, segments: list[list[str]], stop: list[str] | None = None,
            move_focus_before: int | None = None) -> None:
    pipeline = desk.pipeline()
    if stop is not None:
        pipeline._on_stop = lambda: stop.append("stop")
    pipeline.begin()
    for i, segment in enumerate(segments):
        if i == move_focus_before:
            desk.window = OTHER
        events: list[Event] = [*commits(*segment, segment=i), eos("".join(segment), i)]
        for event in events:
            pipeline.handle(event)
    pipeline.end()


def test_new_line_and_scratch_that_reach_the_window() -> None:
    desk = Desk()
    dictate(desk, [["Dear team."], [" New line."], [" The build", " is green."],
                   [" It was red."], [" Scratch that."]])
    assert screen(desk.typist.text) == "Dear team.\nThe build is green."
    scratched = [kw["text"] for name, kw in desk.events if name == "scratched"]
    assert scratched == [" It was red"]  # its "." was held, never typed
    # the journal keeps every phrase, the scratched one too: nothing dictated is lost
    assert [e[0] for e in desk.journal.entries] == [
        "Dear team.", "The build is green.", "It was red"]


def test_scratch_that_of_the_only_phrase_leaves_no_space_behind() -> None:
    desk = Desk()
    dictate(desk, [["Hello world."], [" Scratch that."], [" Goodbye."]])
    assert screen(desk.typist.text) == "Goodbye."


def test_scratch_that_is_refused_once_the_focus_moved() -> None:
    desk = Desk()
    dictate(desk, [["Hello world."], [" Scratch that."]], move_focus_before=1)
    assert "\b" not in desk.typist.text
    assert any("Scratch that" in body and "focus moved" in body for _, body in desk.notes)


def test_scratch_that_with_nothing_typed_is_refused() -> None:
    desk = Desk()
    dictate(desk, [["Scratch that."]])
    assert desk.typist.text == ""
    assert any("no phrase" in body for _, body in desk.notes)


def test_stop_dictation_stops_and_types_nothing_of_itself() -> None:
    desk, stops = Desk(), []
    dictate(desk, [["Thanks."], [" Stop dictation."]], stop=stops)
    assert stops == ["stop"] and desk.typist.text == "Thanks."


def test_a_terminal_gets_no_capital_no_final_period_and_no_line_break() -> None:
    desk = Desk(window=WindowInfo(14, "kitty", "zsh"))  # kitty pastes (xterm is typed into)
    dictate(desk, [["Git status."], [" New line."]])
    assert desk.paster.text == "git status new line"
    assert desk.typist.text == ""
    desk = Desk(window=XTERM)
    dictate(desk, [["Git status."], [" New line."]])
    assert desk.typist.text == "git status new line"
