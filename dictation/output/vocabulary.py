"""The user's vocabulary: the ``[[replacements]]`` rules of config.toml, edited in place.

``dictation vocab add "get hub" GitHub`` appends a ``[[replacements]]`` table; ``vocab rm``
removes the tables of a pattern and nothing else: the user's comments, other sections and
their order stay as written. Every edit is validated by parsing the whole new file
(:func:`dictation.config.parse_config`) before it replaces the old one, atomically, mode 0600.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path

from dictation.config import Config, Replacement, load_config, parse_config
from dictation.errors import ConfigError

_HEADER = re.compile(r"^\s*\[")
"""A line that opens a table ([section] or [[array]])."""
_REPLACEMENTS_HEADER = re.compile(r"^\s*\[\[\s*replacements\s*\]\]\s*(#.*)?$")


def _blocks(text: str) -> list[list[str]]:
    """The file as blocks of lines: the preamble, then one block per table header (its
    header line and every line up to the next header)."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if _HEADER.match(line):
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def _pattern_of(block: list[str]) -> str | None:
    """The ``pattern`` of a ``[[replacements]]`` block, or None for any other block."""
    if not block or not _REPLACEMENTS_HEADER.match(block[0]):
        return None
    try:
        table = tomllib.loads("".join(block[1:]))
    except tomllib.TOMLDecodeError:
        return None
    pattern = table.get("pattern")
    return pattern if isinstance(pattern, str) else None


def _toml_string(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _write(path: Path, text: str) -> Config:
    config = parse_config(tomllib.loads(text), source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return config


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def bias_phrases(rules: tuple[Replacement, ...]) -> tuple[str, ...]:
    """What recognition is biased towards (:attr:`dictation.asr.driver.StreamingConfig.
    vocabulary`): the distinct replacements that are words ("GitHub", "Cline", "e-mail"), not
    symbols, deletions or text with symbols ("✓", "", "féllow ✓": a prompt holding those makes
    the recogniser write them itself, and the rule's pattern no longer matches). The spoken
    commands are not added: measured on dev (``scripts/bench_vocabulary.py --commands``),
    biasing every decode towards them made digit strings worse (3.59 -> 4.58 % WER on the
    files without rare words)."""
    return tuple(dict.fromkeys(
        text for text in (r.replacement.strip() for r in rules)
        if any(c.isalpha() for c in text) and all(c.isalnum() or c in " '-." for c in text)))


def list_rules(path: Path) -> tuple[Replacement, ...]:
    """The rules of the config at ``path`` (validated)."""
    return load_config(path).replacements if path.exists() else ()


def add_rule(path: Path, pattern: str, replacement: str) -> Config:
    """Add (or, if ``pattern`` has a rule already, replace) the rule ``pattern`` ->
    ``replacement``; returns the new config."""
    if not pattern.strip():
        raise ConfigError("a vocabulary pattern cannot be empty")
    text = "".join("".join(b) for b in _blocks(_read(path)) if _pattern_of(b) != pattern)
    if text and not text.endswith("\n"):
        text += "\n"
    text += (f"\n[[replacements]]\npattern = {_toml_string(pattern)}\n"
             f"replacement = {_toml_string(replacement)}\n")
    return _write(path, text)


def remove_rule(path: Path, pattern: str) -> Config:
    """Remove the rules for ``pattern`` (compared case-insensitively); ConfigError if there is
    none."""
    blocks = _blocks(_read(path))
    key = pattern.casefold()
    kept = [b for b in blocks if (p := _pattern_of(b)) is None or p.casefold() != key]
    if len(kept) == len(blocks):
        raise ConfigError(f"no vocabulary rule for {pattern!r} in {path}")
    return _write(path, "".join("".join(b) for b in kept))
