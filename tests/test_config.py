"""Config loading, validation, rendering, writing and reloading (real files in tmp_path)."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
from pathlib import Path

import pytest

from dictation.config import (
    OPTIONS,
    SECTIONS,
    TERMINAL_CLASSES,
    Config,
    ConfigWatcher,
    Replacement,
    config_help_lines,
    default_config_path,
    default_journal_path,
    load_config,
    parse_config,
    reload_config,
    render_default_config,
    write_default_config,
)
from dictation.errors import ConfigError


@pytest.fixture(autouse=True)
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    from dictation.asr.catalog import DEFAULT_MODEL_ID

    c = Config()
    assert c.recognizer.model == DEFAULT_MODEL_ID == "moonshine-base-en"
    assert c.hotkey.key == "ctrl_r" and c.hotkey.double_tap_window_s == 0.4
    assert c.audio.microphone is None and c.audio.pre_roll_s == 0.5
    assert c.typing.backend == "auto" and c.typing.terminal_mode == "paste"
    assert "gnome-terminal-server" in c.typing.terminal_classes and "ghostty" in TERMINAL_CLASSES
    assert c.ui.audio_cues is False and c.ui.notifications is True
    assert c.recognizer.vad_threshold == 0.5 and c.recognizer.endpoint_silence_s == 0.3
    assert c.recognizer.max_segment_s == 20.0 and c.recognizer.decode_interval_s == 0.4
    assert c.replacements == ()


def test_xdg_locations(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_config_path() == xdg / "config" / "dictation" / "config.toml"
    assert Config().journal.path == xdg / "data" / "dictation" / "journal.jsonl"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(xdg / "home"))
    assert default_journal_path() == xdg / "home" / ".local/share/dictation/journal.jsonl"


def test_every_dataclass_field_is_an_option() -> None:
    config = Config()
    for section in SECTIONS:
        names = {f.name for f in dataclasses.fields(getattr(config, section))}
        assert names == {o.name for o in OPTIONS if o.section == section}, section
    assert set(SECTIONS) | {"replacements", "app_rules"} == {
        f.name for f in dataclasses.fields(Config)}


def test_missing_default_file_gives_defaults_but_missing_explicit_file_is_an_error(
        tmp_path: Path) -> None:
    assert load_config() == Config()
    with pytest.raises(ConfigError, match="does not exist.*dictation config"):
        load_config(tmp_path / "nope.toml")


def test_full_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", """
[hotkey]
key = "F9"
double_tap_window_s = 0.5
[audio]
microphone = "USB"
pre_roll_s = 1
[recognizer]
model = "base.en"
vad_threshold = 0.6
[typing]
backend = "xdotool"
terminal_mode = "type"
terminal_classes = ["XTerm", "kitty"]
[ui]
audio_cues = true
notifications = false
[journal]
enabled = false
path = "~/notes/journal.jsonl"
[[replacements]]
pattern = "check mark"
replacement = "✓"
[[replacements]]
pattern = "new line"
replacement = "\\n"
""")
    c = load_config(path)
    assert c.hotkey.key == "f9" and c.hotkey.double_tap_window_s == 0.5
    assert c.audio.microphone == "USB" and c.audio.pre_roll_s == 1.0
    assert isinstance(c.audio.pre_roll_s, float)
    assert c.recognizer.model == "base.en" and c.recognizer.vad_threshold == 0.6
    assert c.recognizer.max_segment_s == 20.0  # untouched keys keep their defaults
    assert c.typing.backend == "xdotool" and c.typing.terminal_mode == "type"
    assert c.typing.terminal_classes == ("xterm", "kitty")
    assert c.ui.audio_cues is True and c.ui.notifications is False
    assert c.journal.enabled is False
    assert c.journal.path == Path.home() / "notes" / "journal.jsonl"
    assert c.replacements == (Replacement("check mark", "✓"), Replacement("new line", "\n"))


@pytest.mark.parametrize("toml, value", [
    ('microphone = 3', 3), ('microphone = "default"', None), ('microphone = "Default"', None),
    ('microphone = "hw:1"', "hw:1"),
])
def test_microphone_forms(tmp_path: Path, toml: str, value: object) -> None:
    assert load_config(write(tmp_path / "c.toml", f"[audio]\n{toml}\n")).audio.microphone == value


@pytest.mark.parametrize("section, line, key, expected", [
    ("typing", 'backend = "xdotoool"', "typing.backend", "one of 'auto', 'xtest'"),
    ("typing", "backend = 3", "typing.backend", "one of 'auto'"),
    ("typing", 'terminal_mode = "paste-it"', "typing.terminal_mode", "one of 'paste', 'type'"),
    ("typing", 'terminal_classes = "xterm"', "typing.terminal_classes", "a list of window"),
    ("typing", 'terminal_classes = ["xterm", ""]', "typing.terminal_classes", "a list"),
    ("hotkey", 'key = "space"', "hotkey.key", "one of 'ctrl_r'"),
    ("hotkey", "double_tap_window_s = 2", "hotkey.double_tap_window_s", "from 0.15 to 1"),
    ("hotkey", 'double_tap_window_s = "0.4"', "hotkey.double_tap_window_s", "a number"),
    ("hotkey", "max_tap_s = 0.05", "hotkey.max_tap_s", "from 0.1 to 1"),
    ("audio", "pre_roll_s = 0.25", "audio.pre_roll_s", "from 0.5 to 5"),
    ("audio", "pre_roll_s = true", "audio.pre_roll_s", "a number"),
    ("audio", "microphone = -1", "audio.microphone", "device index >= 0"),
    ("audio", 'microphone = ""', "audio.microphone", "'default'"),
    ("audio", "microphone = false", "audio.microphone", "'default'"),
    ("recognizer", 'model = ""', "recognizer.model", "a model name"),
    ("recognizer", "vad_threshold = 1.0", "recognizer.vad_threshold", "> 0 and < 1"),
    ("recognizer", "vad_threshold = 0", "recognizer.vad_threshold", "> 0 and < 1"),
    ("recognizer", "endpoint_silence_s = 0", "recognizer.endpoint_silence_s", "from 0.1 to 5"),
    ("recognizer", "max_segment_s = 31", "recognizer.max_segment_s", "from 2 to 30"),
    ("recognizer", "decode_interval_s = 0.01", "recognizer.decode_interval_s", "from 0.05"),
    ("ui", 'notifications = "yes"', "ui.notifications", "true or false"),
    ("ui", "audio_cues = 1", "ui.audio_cues", "true or false"),
    ("journal", "enabled = 0", "journal.enabled", "true or false"),
    ("journal", 'path = "relative/journal.jsonl"', "journal.path", "an absolute path"),
])
def test_invalid_values_name_key_value_and_allowed(tmp_path: Path, section: str, line: str,
                                                   key: str, expected: str) -> None:
    path = write(tmp_path / "c.toml", f"[{section}]\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    bad_value = line.split(" = ", 1)[1]
    assert f"{key} = {bad_value}" in message
    assert expected in message
    assert str(path) in message


@pytest.mark.parametrize("text, key, suggestion", [
    ("[typing]\nbakend = 'auto'\n", "typing.bakend", "typing.backend"),
    ("[typng]\nbackend = 'auto'\n", "typng", "typing"),
    ("[typing]\nmodel = 'tiny'\n", "typing.model", "recognizer.model"),
    ("[hotkey]\nwindow = 0.4\n", "hotkey.window", "hotkey.double_tap_window_s"),
    ("[hotkey]\nzzz = 0.4\n", "hotkey.zzz", None),
    ("[[replacements]]\npatern = 'a'\nreplacement = 'b'\n", "replacements[0].patern",
     "replacements[0].pattern"),
])
def test_unknown_keys_are_errors_with_did_you_mean(tmp_path: Path, text: str, key: str,
                                                   suggestion: str | None) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"unknown option {key!r}")) as err:
        load_config(write(tmp_path / "c.toml", text))
    if suggestion is None:
        assert "did you mean" not in str(err.value)
        assert "hotkey.double_tap_window_s" in str(err.value)  # lists what is known there
    else:
        assert f"did you mean {suggestion!r}" in str(err.value)


@pytest.mark.parametrize("text, match", [
    ("typing = 'xdotool'\n", r"typing = \"xdotool\" is invalid; expected a table"),
    ("replacements = 'x'\n", "replacements must be an array of tables"),
    ("[[replacements]]\npattern = 'a'\n", r"replacements\[0\] has no replacement"),
    ("[[replacements]]\npattern = ''\nreplacement = 'b'\n", r"replacements\[0\]\.pattern = \"\""),
    ("[[replacements]]\npattern = 'a'\nreplacement = 3\n", r"replacements\[0\]\.replacement = 3"),
    ("replacements = [1]\n", r"replacements\[0\] = 1 is invalid"),
    ("[recognizer]\nendpoint_silence_s = 3\nmax_segment_s = 2\n",
     "recognizer.endpoint_silence_s = 3 must be less than recognizer.max_segment_s = 2"),
])
def test_structural_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path / "c.toml", text))


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[typing]\nbackend = auto\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": not valid TOML.*line 2"):
        load_config(path)


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[ui]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)  # a directory


def test_rendered_default_config_round_trips() -> None:
    text = render_default_config()
    assert parse_config(tomllib.loads(text)) == Config()
    for option in OPTIONS:  # every option is present and set, with its help as a comment
        assert re.search(rf"^{option.name} = ", text, re.M), option.key
        assert option.help in text
    assert "# [[replacements]]" in text


def test_rendered_replacement_example_is_valid_when_uncommented() -> None:
    text = render_default_config().replace("# [[replacements]]", "[[replacements]]")
    text = text.replace('# pattern = "check mark"', 'pattern = "check mark"')
    text = text.replace('# replacement = "✓"', 'replacement = "✓"')
    assert parse_config(tomllib.loads(text)).replacements == (Replacement("check mark", "✓"),)


def test_help_lines_show_key_default_and_allowed() -> None:
    lines = config_help_lines()
    assert len(lines) == len(OPTIONS) + 2  # and one line each for the rule arrays
    backend = next(line for line in lines if line.startswith("typing.backend"))
    assert backend.startswith('typing.backend = "auto"  # one of ')
    assert "'wtype'" in backend and "'ydotool'" in backend
    assert any(line.startswith('audio.microphone = "default"') for line in lines)
    classes = next(line for line in lines if line.startswith("typing.terminal_classes"))
    assert f"({len(TERMINAL_CLASSES)} in all)" in classes and len(classes) < 150


def test_write_default_config_is_private_and_never_overwrites(xdg: Path) -> None:
    path = write_default_config()
    assert path == default_config_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path.parent.parent).st_mode) == 0o700  # created too
    assert load_config(path) == Config()
    path.write_text("[ui]\naudio_cues = true\n")
    with pytest.raises(ConfigError, match="already exists"):
        write_default_config(path)
    assert load_config(path).ui.audio_cues is True


def test_write_default_config_leaves_existing_dirs_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    path = write_default_config(shared / "dictation" / "config.toml")
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_reload_keeps_last_good_config_on_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[typing]\nbackend = 'xdotool'\n")
    good, error = reload_config(path, Config())
    assert error is None and good.typing.backend == "xdotool"
    write(path, "[typing]\nbackend = 'telepathy'\n")
    kept, error = reload_config(path, good)
    assert kept is good
    assert isinstance(error, ConfigError) and "typing.backend" in str(error)


def test_watcher_reloads_on_change_and_survives_bad_edits(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[ui]\naudio_cues = true\n")
    watcher = ConfigWatcher(path)
    assert watcher.config.ui.audio_cues is True
    assert watcher.poll() is None  # unchanged
    write(path, "[ui]\naudio_cues = false\nnotifications = false\n")
    result = watcher.poll()
    assert result is not None
    config, error = result
    assert error is None and config.ui.notifications is False
    write(path, "[ui]\naudio_cues = maybe\n")  # a half-saved edit
    result = watcher.poll()
    assert result is not None
    config, error = result
    assert error is not None and "not valid TOML" in str(error)
    assert config is watcher.config and config.ui.notifications is False  # last good kept
    path.unlink()  # editors delete and rewrite: not a change
    assert watcher.poll() is None and watcher.config.ui.notifications is False
    write(path, "[hotkey]\nkey = 'alt_r'\n")
    result = watcher.poll()
    assert result is not None and result[0].hotkey.key == "alt_r" and result[1] is None
