"""Per-app rules: how text is shaped for the window it goes to, chosen by its window class
(X11 ``WM_CLASS``) or app_id (Wayland).

Built-in kinds (:data:`BUILTIN_RULES`), which the user's ``[[app_rules]]`` in config.toml come
before:

* terminals and TUIs: no auto-capitalisation, no final period, each phrase delivered whole;
* code editors: verbatim (no spoken commands: "new line" is two words there);
* chat apps: nothing sent automatically (no spoken line breaks: Return would send the message);
* everything else: prose (every spoken command, sentence case, the recogniser's punctuation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dictation.config import TERMINAL_CLASSES, AppRule, SpokenConfig
from dictation.output.focus import is_terminal
from dictation.output.spoken import TextStyle

CODE_EDITOR_CLASSES = ("code", "code-oss", "vscodium", "cursor", "zed", "dev.zed.zed",
                       "sublime_text", "jetbrains-idea", "jetbrains-pycharm", "jetbrains-clion",
                       "jetbrains-goland", "jetbrains-webstorm", "emacs", "gvim", "nvim-qt",
                       "neovide")
CHAT_CLASSES = ("slack", "discord", "signal", "telegramdesktop", "org.telegram.desktop",
                "element", "microsoft teams - preview", "teams-for-linux", "whatsapp",
                "zoom", "mattermost", "rocket.chat")

BUILTIN_RULES: tuple[AppRule, ...] = (
    AppRule(kind="terminal", match=TERMINAL_CLASSES, capitalise=False, final_period=False,
            spoken_commands=True, line_breaks=False),
    AppRule(kind="code", match=CODE_EDITOR_CLASSES, capitalise=True, final_period=True,
            spoken_commands=False, line_breaks=False),
    AppRule(kind="chat", match=CHAT_CLASSES, capitalise=True, final_period=True,
            spoken_commands=True, line_breaks=False),
)
PROSE = AppRule(kind="prose", match=(), capitalise=True, final_period=True,
                spoken_commands=True, line_breaks=True)


@dataclass(frozen=True)
class Shaping:
    """What the output does for one window: its rule, the text style, the spoken commands."""

    rule: AppRule
    style: TextStyle
    spoken: SpokenConfig

    @property
    def terminal(self) -> bool:
        """Phrases are delivered whole (terminals and TUIs)."""
        return self.rule.kind == "terminal"


def rule_for(window_class: str | None, user_rules: tuple[AppRule, ...] = (),
             terminal_classes: tuple[str, ...] = TERMINAL_CLASSES) -> AppRule:
    """The first rule (the user's, then the built-in ones, whose terminal rule names
    ``terminal_classes``) naming ``window_class`` (case-insensitive); prose if none."""
    if not window_class:
        return PROSE
    builtin = (replace(BUILTIN_RULES[0], match=terminal_classes), *BUILTIN_RULES[1:])
    for rule in (*user_rules, *builtin):
        if is_terminal(window_class, rule.match):  # the same case-insensitive comparison
            return rule
    return PROSE


def shaping_for(window_class: str | None, spoken: SpokenConfig,
                user_rules: tuple[AppRule, ...] = (),
                terminal_classes: tuple[str, ...] = TERMINAL_CLASSES) -> Shaping:
    """How to shape text for ``window_class``: the rule's style, and the user's spoken
    commands minus what the rule turns off."""
    rule = rule_for(window_class, user_rules, terminal_classes)
    if not rule.spoken_commands:
        spoken = SpokenConfig(punctuation=False, line_breaks=False, scratch_that=False,
                              stop_dictation=spoken.stop_dictation)
    elif not rule.line_breaks:
        spoken = replace(spoken, line_breaks=False)
    return Shaping(rule, TextStyle(capitalise=rule.capitalise, final_period=rule.final_period),
                   spoken)
