"""Every app option, its default, and the TOML file that overrides them.

The file is ``$XDG_CONFIG_HOME/dictation/config.toml`` (``~/.config/...`` by default); every
key is optional. ``dictation config`` prints :func:`render_default_config`, a commented file of
all options at their defaults. Invalid values, wrong types and unknown keys are errors that
name the key as written in TOML (``typing.backend``), the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dictation.audio.segmenter import SegmenterConfig
from dictation.errors import ConfigError
from dictation.hotkey import DEFAULT_HOTKEY, HOTKEY_NAMES, parse_hotkey

TYPING_BACKENDS = ("auto", "xtest", "xdotool", "clipboard", "wtype", "portal", "ydotool",
                   "wlclipboard", "pynput")
TERMINAL_MODES = ("paste", "type")
COMPUTE_TYPES = ("int8", "float32")
"""recognizer.compute values (see :func:`dictation.asr.whisper.loaders.set_compute`)."""
DEFAULT_COMPUTE = "int8"
"""Chosen with ``dictation bench --stream`` on dev (tiny.en, 1 thread, quiet machine;
reports/bench-stream-tiny.en.md against bench-stream-tiny.en-float32.md): int8 took 18 % off
streaming's CPU seconds (4.22x -> 3.47x faster-whisper's offline compute) at a streamed WER of
4.66 % (float32: 4.98 %). The one loop int8 once ran into (a six-digit string) is now decoded
again in Whisper's full window
(:attr:`dictation.asr.whisper.decoder.WhisperStreamConfig.loop_retry_full_window`)."""
OFFLINE_COMPUTE = "float32"
"""What offline transcription (``dictation transcribe`` without ``--stream``, ``dictation
bench`` offline) computes with unless told: float32 equals faster-whisper's greedy output on
dev (4.50 %), where int8 made a few near-tie words go the other way (5.14 %), and one decode
per window makes its saving small."""
TERMINAL_CLASSES = (
    "xterm", "uxterm", "gnome-terminal", "gnome-terminal-server", "konsole", "kitty",
    "alacritty", "wezterm", "org.wezfurlong.wezterm", "foot", "tilix", "terminator",
    "xfce4-terminal", "urxvt", "st", "lxterminal", "mate-terminal", "qterminal", "terminology",
    "ghostty",
    # Wayland app_ids (sway/Hyprland report these instead of WM_CLASS)
    "footclient", "org.gnome.terminal", "org.gnome.console", "kgx", "org.kde.konsole",
    "com.mitchellh.ghostty", "org.kde.yakuake", "rio", "blackbox", "com.raggesilver.blackbox",
)


def _xdg_dir(variable: str, fallback: str) -> Path:
    """An XDG base directory; relative values are ignored, as the XDG spec requires."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / fallback


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/dictation/config.toml``."""
    return _xdg_dir("XDG_CONFIG_HOME", ".config") / "dictation" / "config.toml"


def default_journal_path() -> Path:
    """``$XDG_DATA_HOME/dictation/journal.jsonl``."""
    return _xdg_dir("XDG_DATA_HOME", ".local/share") / "dictation" / "journal.jsonl"


@dataclass(frozen=True)
class HotkeyConfig:
    """[hotkey]: the double-tap gesture (see :mod:`dictation.hotkey`)."""

    key: str = DEFAULT_HOTKEY
    double_tap_window_s: float = 0.4
    """Longest pause (s) from the first tap's release to the second tap's press."""
    max_tap_s: float = 0.35
    """Longest press (s) that is still a tap; longer is a hold."""
    evdev: bool = False
    """Wayland: hear the double tap by reading /dev/input keyboards (python-evdev, the user in
    the ``input`` group). Off by default: such a listener sees every key typed on the machine."""


@dataclass(frozen=True)
class AudioConfig:
    """[audio]: the microphone."""

    microphone: str | int | None = None
    """None: the system's default input; str: part of a device name; int: a device index."""
    pre_roll_s: float = 0.5
    """Audio (s) kept from before the hotkey, so the first word is not cut."""


@dataclass(frozen=True)
class RecognizerConfig:
    """[recognizer]: the model and the streaming segmenter."""

    model: str = "moonshine-base-en"
    """Catalogue id or model folder (the catalogue's ``DEFAULT_MODEL_ID``; Whisper tiny.en is
    the fallback when it cannot be loaded)."""
    vad_threshold: float = SegmenterConfig.threshold
    """Speech probability (0..1) above which a VAD frame counts as speech."""
    endpoint_silence_s: float = SegmenterConfig.endpoint_silence_s
    """Silence (s) that closes a segment."""
    max_segment_s: float = SegmenterConfig.max_segment_s
    """A segment is closed when it reaches this length (s)."""
    compute: str = DEFAULT_COMPUTE
    """How the model computes: "int8" (dynamic int8 weights for the linear layers that run
    over audio frames: less CPU, see ``DEFAULT_COMPUTE``) or "float32". A test keeps the
    default equal to the loader's."""
    decode_interval_s: float = 0.4
    """Audio (s) between two decodes of the open segment (the streaming session's default;
    a test keeps them equal: asr/driver.py imports torch, too heavy for reading the config)."""


@dataclass(frozen=True)
class TypingConfig:
    """[typing]: how committed text reaches the focused window."""

    backend: str = "auto"
    terminal_mode: str = "paste"
    """How text goes into terminal windows: "paste" (clipboard + ctrl+shift+v) or "type"."""
    terminal_classes: tuple[str, ...] = TERMINAL_CLASSES
    """Window classes (WM_CLASS, case-insensitive) treated as terminals."""


@dataclass(frozen=True)
class UiConfig:
    """[ui]: feedback to the user."""

    notifications: bool = True
    audio_cues: bool = False


@dataclass(frozen=True)
class JournalConfig:
    """[journal]: every committed text is appended here (JSON lines), so nothing is lost."""

    enabled: bool = True
    path: Path = field(default_factory=default_journal_path)
    retention_days: float = 0.0
    """Entries older than this many days are removed (at start and by ``dictation history``);
    0 keeps everything."""


@dataclass(frozen=True)
class SpokenConfig:
    """[spoken]: commands recognised when said as a phrase of their own (a pause before and
    after); inside a sentence the words stay words."""

    punctuation: bool = True
    """comma, period / full stop, question mark, exclamation mark / point, colon."""
    line_breaks: bool = True
    """new line, new paragraph."""
    scratch_that: bool = True
    """"scratch that" deletes the last phrase typed (only where that is safe)."""
    stop_dictation: bool = True
    """"stop dictation" ends the dictation like the stop tap."""


APP_RULE_KINDS = ("terminal", "code", "chat", "prose")


@dataclass(frozen=True)
class AppRule:
    """[[app_rules]]: how text is shaped for the windows whose class / app_id is in ``match``
    (compared case-insensitively). Users' rules come before the built-in ones
    (:mod:`dictation.output.app_rules`)."""

    match: tuple[str, ...]
    kind: str = "prose"
    """"terminal" (phrases delivered whole), "code", "chat" or "prose"."""
    capitalise: bool = True
    """Start each phrase as recognised (sentence case); false: in lower case."""
    final_period: bool = True
    """Keep the period the recogniser ends a phrase with."""
    spoken_commands: bool = True
    """Recognise spoken punctuation and commands ([spoken]) in these windows."""
    line_breaks: bool = True
    """Type spoken "new line" / "new paragraph" (false in chat apps: Return sends)."""


@dataclass(frozen=True)
class Replacement:
    """[[replacements]]: ``pattern`` (a literal phrase, matched case-insensitively on word
    boundaries) is replaced by ``replacement`` in committed text."""

    pattern: str
    replacement: str


@dataclass(frozen=True)
class Config:
    """All app options."""

    hotkey: HotkeyConfig = field(default_factory=HotkeyConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    typing: TypingConfig = field(default_factory=TypingConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    spoken: SpokenConfig = field(default_factory=SpokenConfig)
    app_rules: tuple[AppRule, ...] = ()
    replacements: tuple[Replacement, ...] = ()


# --- option table: one row per TOML key drives validation, rendering and help ----------------

Check = Callable[[Any], Any]
"""Turns a TOML value into the option's value; raises ValueError(expected) when invalid."""


@dataclass(frozen=True)
class Option:
    section: str
    name: str
    check: Check
    expected: str
    """What is allowed, in words (shown in errors and help)."""
    help: str

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError
        return value
    return check


def _number(low: float, high: float, open_range: bool = False) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError
        inside = low < value < high if open_range else low <= value <= high
        if not inside:
            raise ValueError
        return float(value)
    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value


def _hotkey(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    try:
        return parse_hotkey(value)
    except ConfigError:
        raise ValueError from None


def _microphone(value: Any) -> str | int | None:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        if value < 0:
            raise ValueError
        return value
    if isinstance(value, str) and value.strip():
        return None if value.strip().lower() == "default" else value
    raise ValueError


def _class_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError
    return tuple(v.strip().lower() for v in value)


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError
    return path


def _range(low: float, high: float, unit: str = "", open_range: bool = False) -> str:
    if open_range:
        return f"a number > {low:g} and < {high:g}{unit}"
    return f"a number from {low:g} to {high:g}{unit}"


def _choices(choices: tuple[str, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


OPTIONS: tuple[Option, ...] = (
    Option("hotkey", "key", _hotkey, _choices(HOTKEY_NAMES),
           "Key to double-tap to start dictating; one tap stops."),
    Option("hotkey", "double_tap_window_s", _number(0.15, 1.0), _range(0.15, 1.0, " (seconds)"),
           "Longest pause between the two taps (first release to second press)."),
    Option("hotkey", "max_tap_s", _number(0.1, 1.0), _range(0.1, 1.0, " (seconds)"),
           "Longest press that still counts as a tap (longer is a hold)."),
    Option("hotkey", "evdev", _boolean, "true or false",
           "Wayland: read /dev/input for the double tap (sees every key; see README)."),
    Option("audio", "microphone", _microphone,
           "'default', part of a device name, or a device index >= 0",
           "Input device: 'default', part of its name, or its index (`dictation devices`)."),
    Option("audio", "pre_roll_s", _number(0.5, 5.0), _range(0.5, 5.0, " (seconds)"),
           "Audio kept from before the hotkey so the first word is not cut."),
    Option("recognizer", "model", _text,
           "a model name such as 'moonshine-base-en' or 'tiny.en', or a model directory",
           "Model to transcribe with (`dictation models` lists them)."),
    Option("recognizer", "vad_threshold", _number(0.0, 1.0, open_range=True),
           _range(0.0, 1.0, open_range=True), "Speech probability above which audio is speech."),
    Option("recognizer", "endpoint_silence_s", _number(0.1, 5.0), _range(0.1, 5.0, " (seconds)"),
           "Silence that ends a segment (its text is then final)."),
    Option("recognizer", "max_segment_s", _number(2.0, 30.0), _range(2.0, 30.0, " (seconds)"),
           "Longest segment; longer speech is split."),
    Option("recognizer", "compute", _one_of(COMPUTE_TYPES), _choices(COMPUTE_TYPES),
           "Model arithmetic: 'float32' (the default) or 'int8' (less CPU)."),
    Option("recognizer", "decode_interval_s", _number(0.05, 5.0),
           _range(0.05, 5.0, " (seconds)"), "Audio between two decodes of the open segment."),
    Option("typing", "backend", _one_of(TYPING_BACKENDS), _choices(TYPING_BACKENDS),
           "How text is typed; 'auto' picks what works on this desktop."),
    Option("typing", "terminal_mode", _one_of(TERMINAL_MODES), _choices(TERMINAL_MODES),
           "In terminals: paste through the clipboard, or type key by key."),
    Option("typing", "terminal_classes", _class_list, "a list of window class names",
           "Window classes (WM_CLASS) treated as terminals."),
    Option("ui", "notifications", _boolean, "true or false", "Desktop notifications on errors."),
    Option("ui", "audio_cues", _boolean, "true or false", "Short sounds on start and stop."),
    Option("journal", "enabled", _boolean, "true or false",
           "Append every committed text to the journal (nothing dictated is lost)."),
    Option("journal", "path", _path, "an absolute path (~ allowed)", "Journal file (JSON lines)."),
    Option("journal", "retention_days", _number(0.0, 36500.0), _range(0.0, 36500.0, " (days)"),
           "Remove journal entries older than this; 0 keeps everything."),
    Option("spoken", "punctuation", _boolean, "true or false",
           "Said alone, 'comma', 'period', 'question mark', ... type the mark."),
    Option("spoken", "line_breaks", _boolean, "true or false",
           "Said alone, 'new line' and 'new paragraph' break the line."),
    Option("spoken", "scratch_that", _boolean, "true or false",
           "Said alone, 'scratch that' deletes the last phrase typed (if focus never moved)."),
    Option("spoken", "stop_dictation", _boolean, "true or false",
           "Said alone, 'stop dictation' stops like the stop tap."),
)
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(o.section for o in OPTIONS))
REPLACEMENT_KEYS = ("pattern", "replacement")


def _all_keys() -> list[str]:
    return [o.key for o in OPTIONS] + [f"replacements.{k}" for k in REPLACEMENT_KEYS]


def _unknown(key: str, candidates: list[str], source: str) -> ConfigError:
    name = key.rsplit(".", 1)[-1]  # e.g. `[typing] model`: the right name in the wrong section
    close = [c for c in _all_keys() if "." in key and c.rsplit(".", 1)[-1] == name][:1]
    if not close:  # compare names only: the shared "section." prefix would match anything
        by_name = {c.rsplit(".", 1)[-1]: c for c in candidates}
        matches = difflib.get_close_matches(name, list(by_name), n=1)
        matches = matches or [n for n in by_name if len(name) >= 4 and name in n][:1]
        close = [by_name[m] for m in matches]
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return ConfigError(f"{source}: unknown option {key!r}{hint} Known here: "
                       f"{', '.join(candidates)}")


def _bad(key: str, value: Any, expected: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: {key} = {_toml(value)} is invalid; expected {expected}")


def parse_config(data: Mapping[str, Any], source: str = "config") -> Config:
    """Build a :class:`Config` from parsed TOML, validating every key and value."""
    by_section: dict[str, dict[str, Option]] = {s: {} for s in SECTIONS}
    for option in OPTIONS:
        by_section[option.section][option.name] = option
    config = Config()
    for section, table in data.items():
        if section == "replacements":
            config = replace(config, replacements=_parse_replacements(table, source))
            continue
        if section == "app_rules":
            config = replace(config, app_rules=_parse_app_rules(table, source))
            continue
        if section not in by_section:
            raise _unknown(section, [*SECTIONS, "replacements", "app_rules"], source)
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section} = {_toml(table)} is invalid; expected a "
                              f"table ([{section}] followed by its keys)")
        values: dict[str, Any] = {}
        for name, raw in table.items():
            known = by_section[section].get(name)
            if known is None:
                raise _unknown(f"{section}.{name}", [o.key for o in by_section[section].values()],
                               source)
            try:
                values[name] = known.check(raw)
            except ValueError:
                raise _bad(known.key, raw, known.expected, source) from None
        config = replace(config, **{section: replace(getattr(config, section), **values)})
    _check_consistency(config, source)
    return config


def _parse_replacements(raw: Any, source: str) -> tuple[Replacement, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: replacements must be an array of tables: write each rule "
                          "as [[replacements]] with pattern = \"...\" and replacement = \"...\"")
    rules = []
    for i, rule in enumerate(raw):
        where = f"replacements[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{source}: {where} = {_toml(rule)} is invalid; expected a table "
                              "with pattern and replacement")
        for name in rule:
            if name not in REPLACEMENT_KEYS:
                raise _unknown(f"{where}.{name}", [f"{where}.{k}" for k in REPLACEMENT_KEYS],
                               source)
        for name in REPLACEMENT_KEYS:
            if name not in rule:
                raise ConfigError(f"{source}: {where} has no {name}; each rule needs pattern and "
                                  "replacement")
        pattern, replacement = rule["pattern"], rule["replacement"]
        if not isinstance(pattern, str) or not pattern.strip():
            raise _bad(f"{where}.pattern", pattern, "a non-empty string", source)
        if not isinstance(replacement, str):
            raise _bad(f"{where}.replacement", replacement, "a string (may be empty)", source)
        rules.append(Replacement(pattern, replacement))
    return tuple(rules)


APP_RULE_CHECKS: dict[str, tuple[Check, str]] = {
    "match": (_class_list, "a list of window class names / app_ids"),
    "kind": (_one_of(APP_RULE_KINDS), _choices(APP_RULE_KINDS)),
    "capitalise": (_boolean, "true or false"),
    "final_period": (_boolean, "true or false"),
    "spoken_commands": (_boolean, "true or false"),
    "line_breaks": (_boolean, "true or false"),
}


def _parse_app_rules(raw: Any, source: str) -> tuple[AppRule, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: app_rules must be an array of tables: write each rule as "
                          "[[app_rules]] with match = [\"window class\", ...] and its settings")
    rules = []
    for i, rule in enumerate(raw):
        where = f"app_rules[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{source}: {where} = {_toml(rule)} is invalid; expected a table "
                              "with match and settings")
        if "match" not in rule:
            raise ConfigError(f"{source}: {where} has no match (the window classes it is for)")
        values: dict[str, Any] = {}
        for name, value in rule.items():
            if name not in APP_RULE_CHECKS:
                raise _unknown(f"{where}.{name}", [f"{where}.{k}" for k in APP_RULE_CHECKS],
                               source)
            check, expected = APP_RULE_CHECKS[name]
            try:
                values[name] = check(value)
            except ValueError:
                raise _bad(f"{where}.{name}", value, expected, source) from None
        rules.append(AppRule(**values))
    return tuple(rules)


def _check_consistency(config: Config, source: str) -> None:
    r = config.recognizer
    for name in ("endpoint_silence_s", "decode_interval_s"):
        if getattr(r, name) >= r.max_segment_s:
            raise ConfigError(f"{source}: recognizer.{name} = {getattr(r, name):g} must be less "
                              f"than recognizer.max_segment_s = {r.max_segment_s:g}")


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file. ``path=None`` reads :func:`default_config_path` and
    gives the defaults when it does not exist; a ``path`` given explicitly must exist."""
    explicit = path is not None
    path = path if path is not None else default_config_path()
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if not explicit:
            return Config()
        raise ConfigError(f"config file {path} does not exist; write one with all defaults "
                          f"with `dictation config > {path}`") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                          "as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def reload_config(path: Path | None, last_good: Config) -> tuple[Config, ConfigError | None]:
    """Load ``path`` again; on any error keep running on ``last_good`` and return the error."""
    try:
        return load_config(path), None
    except ConfigError as exc:
        return last_good, exc


class ConfigWatcher:
    """Reloads the config file when it changes (call :meth:`poll` now and then; no thread).

    A deleted file is not a change (editors delete and rewrite while saving): the current
    config stays until the file is back.
    """

    def __init__(self, path: Path | None = None, config: Config | None = None) -> None:
        self.path = path if path is not None else default_config_path()
        self._signature = self._stat()
        self.config = config if config is not None else load_config(self.path)
        """The last good config."""

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def poll(self) -> tuple[Config, ConfigError | None] | None:
        """None if the file did not change; else the config now in force (the new one, or the
        last good one) and the error that kept the new one out."""
        signature = self._stat()
        if signature is None or signature == self._signature:
            return None
        self._signature = signature
        self.config, error = reload_config(self.path, self.config)
        return self.config, error


# --- rendering -----------------------------------------------------------------------------

def _toml(value: Any) -> str:
    """A value as TOML source (also used to show bad values in errors)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _default_value(option: Option, defaults: Config) -> Any:
    value = getattr(getattr(defaults, option.section), option.name)
    if option.key == "audio.microphone" and value is None:
        return "default"
    return value


def config_help_lines() -> list[str]:
    """One line per option: ``typing.backend = "auto"  # one of: ...``."""
    defaults = Config()
    lines = []
    for o in OPTIONS:
        value = _default_value(o, defaults)
        shown = _toml(value)
        if isinstance(value, tuple) and len(value) > 4:  # long lists: the first few
            shown = "[" + ", ".join(_toml(v) for v in value[:3]) + f", ... ({len(value)} in all)]"
        lines.append(f"{o.key} = {shown}  # {o.expected}")
    lines.append('[[replacements]] pattern = "...", replacement = "..."  # any number of rules')
    lines.append('[[app_rules]] match = ["..."], kind = "prose", capitalise = true, '
                 'final_period = true, spoken_commands = true, line_breaks = true')
    return lines


def render_default_config() -> str:
    """A commented TOML file setting every option to its default."""
    defaults = Config()
    out = [
        "# dictation configuration. Every key is optional; these are the defaults.",
        f"# Location: {default_config_path()}",
        "# Changes are picked up while the app runs; an invalid file is reported and ignored.",
    ]
    for section in SECTIONS:
        out += ["", f"[{section}]"]
        for o in (o for o in OPTIONS if o.section == section):
            value = _default_value(o, defaults)
            out.append(f"# {o.help} Allowed: {o.expected}.")
            if isinstance(value, tuple) and len(value) > 4:
                out.append(f"{o.name} = [")
                out += [f"    {_toml(v)}," for v in value]
                out.append("]")
            else:
                out.append(f"{o.name} = {_toml(value)}")
    out += [
        "",
        "# Replacements applied to committed text: a literal phrase (matched case-insensitively",
        "# on word boundaries) and what to type instead. Add as many [[replacements]] as needed:",
        "# [[replacements]]",
        '# pattern = "check mark"',
        '# replacement = "✓"',
        "",
        "# Per-app rules by window class / app_id, before the built-in ones (terminals: no",
        "# capital, no final period; code editors: no spoken commands; chat apps: no spoken",
        "# line breaks, as Return would send the message):",
        "# [[app_rules]]",
        '# match = ["obsidian"]',
        '# kind = "prose"  # terminal (phrases delivered whole), code, chat or prose',
        "# capitalise = true",
        "# final_period = true",
        "# spoken_commands = true",
        "# line_breaks = true",
    ]
    return "\n".join(out) + "\n"


def write_default_config(path: Path | None = None) -> Path:
    """Write :func:`render_default_config` to ``path`` (default location if None) with mode
    0o600, creating missing directories with mode 0o700. Never overwrites an existing file."""
    path = path if path is not None else default_config_path()
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; not overwriting it (see the defaults with "
                          "`dictation config`)") from None
    except OSError as exc:
        raise ConfigError(f"cannot create config file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), stat.S_IRUSR | stat.S_IWUSR)
        f.write(render_default_config())
    return path
