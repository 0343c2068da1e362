"""Per-app rules (dictation.output.app_rules) and their [[app_rules]] config."""

from __future__ import annotations

import tomllib

import pytest

from dictation.config import AppRule, ConfigError, SpokenConfig, parse_config
from dictation.output.app_rules import rule_for, shaping_for
from dictation.output.spoken import TextStyle


@pytest.mark.parametrize(("window_class", "kind"), [
    ("XTerm", "terminal"), ("foot", "terminal"), ("kitty", "terminal"),
    ("Code", "code"), ("jetbrains-pycharm", "code"), ("emacs", "code"),
    ("Slack", "chat"), ("discord", "chat"), ("org.telegram.desktop", "chat"),
    ("firefox", "prose"), ("Text", "prose"), (None, "prose"), ("", "prose"),
])
def test_builtin_kinds(window_class: str | None, kind: str) -> None:
    assert rule_for(window_class).kind == kind


def test_terminal_style_and_commands() -> None:
    shaping = shaping_for("kitty", SpokenConfig())
    assert shaping.terminal
    assert shaping.style == TextStyle(capitalise=False, final_period=False)
    assert shaping.spoken.punctuation and not shaping.spoken.line_breaks


def test_code_editors_are_verbatim_but_stop_dictation_still_works() -> None:
    spoken = shaping_for("code", SpokenConfig()).spoken
    assert not (spoken.punctuation or spoken.line_breaks or spoken.scratch_that)
    assert spoken.stop_dictation


def test_chat_apps_never_get_a_line_break() -> None:
    shaping = shaping_for("Slack", SpokenConfig())
    assert not shaping.spoken.line_breaks and shaping.spoken.punctuation
    assert shaping.style == TextStyle()


def test_user_rules_come_first_and_the_terminal_list_is_the_users() -> None:
    mine = (AppRule(match=("kitty",), kind="prose", capitalise=True),)
    assert rule_for("kitty", mine).kind == "prose"
    assert rule_for("myterm", terminal_classes=("myterm",)).kind == "terminal"
    assert rule_for("xterm", terminal_classes=("myterm",)).kind == "prose"


def test_app_rules_config() -> None:
    config = parse_config(tomllib.loads(
        '[[app_rules]]\nmatch = ["Obsidian"]\nkind = "code"\nline_breaks = false\n'))
    assert config.app_rules == (AppRule(match=("obsidian",), kind="code", line_breaks=False),)
    assert rule_for("obsidian", config.app_rules).kind == "code"


@pytest.mark.parametrize(("text", "message"), [
    ('[[app_rules]]\nkind = "code"\n', "has no match"),
    ('[[app_rules]]\nmatch = ["x"]\nkind = "novel"\n', "app_rules\\[0\\].kind"),
    ('[[app_rules]]\nmatch = ["x"]\ncapitalize = true\n', "did you mean"),
    ('app_rules = 3\n', "array of tables"),
])
def test_invalid_app_rules_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(tomllib.loads(text))
