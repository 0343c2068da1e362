"""`dictation history` (the journal searched, copied, exported, pruned, cleared) and
`dictation vocab` (the config's [[replacements]] edited in place)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dictation import cli
from dictation.config import Replacement, load_config
from dictation.errors import ConfigError
from dictation.output import history, vocabulary
from dictation.output.journal import TranscriptJournal

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _journal(path: Path, texts: list[tuple[str, datetime]]) -> None:
    for text, when in texts:
        TranscriptJournal(path, now=lambda when=when: when).append(
            text, window_class="Text", typed=True)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    journal = tmp_path / "journal.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(f'[journal]\npath = "{journal}"\n')
    _journal(journal, [("An old note.", NOW - timedelta(days=40)),
                       ("Buy milk and bread.", NOW - timedelta(days=2)),
                       ("The meeting moved to Friday.", NOW - timedelta(hours=1))])
    return config, journal


def test_history_lists_newest_first_and_searches(setup: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = setup
    assert cli.main(["--config", str(config), "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.strip().split("  ", 2)[2] for line in lines] == [
        "The meeting moved to Friday.", "Buy milk and bread.", "An old note."]
    assert cli.main(["--config", str(config), "history", "--search", "MILK bread"]) == 0
    assert capsys.readouterr().out.strip().endswith("Buy milk and bread.")


def test_history_export_is_private(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = setup
    out = tmp_path / "export.txt"
    assert cli.main(["--config", str(config), "history", "--export", str(out)]) == 0
    assert [line.split("\t")[1] for line in out.read_text().splitlines()] == [
        "An old note.", "Buy milk and bread.", "The meeting moved to Friday."]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_history_copy_puts_the_entry_on_the_clipboard(
        setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = setup
    copied: list[str] = []
    monkeypatch.setattr("dictation.inject.clipboard.copy_to_clipboard", copied.append)
    assert cli.main(["--config", str(config), "history", "--copy", "2"]) == 0
    assert copied == ["Buy milk and bread."]
    assert cli.main(["--config", str(config), "history", "--copy", "9"]) == 1


def test_prune_keeps_the_retention_period_and_the_file_private(setup: tuple[Path, Path]) -> None:
    _, journal = setup
    assert history.prune(journal, 30, NOW) == 1
    assert [e.text for e in history.read_entries(journal)] == [
        "Buy milk and bread.", "The meeting moved to Friday."]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert history.prune(journal, 0, NOW) == 0  # 0 keeps everything


def test_clear(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, journal = setup
    assert cli.main(["--config", str(config), "history", "--clear"]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert history.read_entries(journal) == []


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    _journal(journal, [("kept", NOW)])
    with open(journal, "a") as f:
        f.write('{"time": "2026-')
    assert [e.text for e in history.read_entries(journal)] == ["kept"]


def test_vocab_add_list_rm_keeps_the_users_lines(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text("# my settings\n[typing]\nterminal_mode = \"type\"  # I like typing\n")
    assert cli.main(["--config", str(config), "vocab", "add", "get hub", "GitHub"]) == 0
    assert cli.main(["--config", str(config), "vocab", "add", "klein", "Cline"]) == 0
    assert cli.main(["--config", str(config), "vocab", "add", "quote", 'say "hi" \\ ✓']) == 0
    assert load_config(config).replacements == (
        Replacement("get hub", "GitHub"), Replacement("klein", "Cline"),
        Replacement("quote", 'say "hi" \\ ✓'))
    capsys.readouterr()
    assert cli.main(["--config", str(config), "vocab", "list"]) == 0
    assert "'get hub' -> 'GitHub'" in capsys.readouterr().out
    assert cli.main(["--config", str(config), "vocab", "rm", "Get Hub"]) == 0
    text = config.read_text()
    assert text.startswith("# my settings\n[typing]\nterminal_mode = \"type\"  # I like typing\n")
    assert "get hub" not in text
    assert load_config(config).typing.terminal_mode == "type"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_vocab_add_replaces_the_rule_of_the_same_pattern(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    vocabulary.add_rule(config, "get hub", "Github")
    vocabulary.add_rule(config, "get hub", "GitHub")
    assert vocabulary.list_rules(config) == (Replacement("get hub", "GitHub"),)


def test_vocab_rm_of_an_unknown_pattern_says_so(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    vocabulary.add_rule(config, "get hub", "GitHub")
    with pytest.raises(ConfigError, match="no vocabulary rule"):
        vocabulary.remove_rule(config, "nothing")


def test_vocab_never_writes_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[typing]\nterminal_mode = \"type\"\n")
    with pytest.raises(ConfigError):
        vocabulary.add_rule(config, "  ", "x")
    assert config.read_text() == "[typing]\nterminal_mode = \"type\"\n"
