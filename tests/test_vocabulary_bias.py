"""The user's vocabulary biases Whisper through the prompt (dictation.asr.whisper.decoder)."""

from __future__ import annotations

from dictation.asr.whisper.decoder import vocabulary_prompt
from dictation.config import Replacement
from dictation.output.vocabulary import bias_phrases


def fake_encode(text: str) -> list[int]:
    """One token per character: enough to check the layout and the budget."""
    return [ord(c) for c in text]


def test_vocabulary_prompt_is_one_sentence_of_whole_phrases() -> None:
    tokens = vocabulary_prompt(["GitHub", " Cline ", ""], fake_encode)
    assert "".join(map(chr, tokens)) == " GitHub, Cline."


def test_vocabulary_prompt_keeps_whole_phrases_within_the_budget() -> None:
    tokens = vocabulary_prompt(["GitHub", "Cline", "Anthropic"], fake_encode, max_tokens=16)
    assert "".join(map(chr, tokens)) == " GitHub, Cline."
    assert vocabulary_prompt([], fake_encode) == []
    assert vocabulary_prompt(["a very long phrase indeed"], fake_encode, max_tokens=5) == []


def test_bias_phrases_are_the_word_replacements() -> None:
    rules = (Replacement("get hub", "GitHub"), Replacement("klein", "Cline"),
             Replacement("check mark", "✓"), Replacement("um", ""),
             Replacement("fellow", "féllow ✓"), Replacement("email", "e-mail"),
             Replacement("git hub", "GitHub"))
    assert bias_phrases(rules) == ("GitHub", "Cline", "e-mail")
