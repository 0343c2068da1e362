"""Does the user's vocabulary bias recognition? Streams dev files whose references hold rare
words (and control files that hold none) through the streaming session twice, without and with
those words as the session's vocabulary (what ``[[replacements]]`` give the app), and reports
how often each listed word came out right and the WER of both runs (the project scorer).

    python scripts/bench_vocabulary.py [--set ../shared/data/dev] [--model tiny.en]

Simulated clock (decodes at fixed stream positions), so the result does not depend on the
machine's load. Progress goes to stderr; the report (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dictation.asr.driver import StreamingConfig  # noqa: E402
from dictation.asr.events import Commit  # noqa: E402
from dictation.asr.recognizer import load_recognizer  # noqa: E402
from dictation.asr.replay import replay  # noqa: E402
from dictation.audio.files import load_audio, read_dataset  # noqa: E402
from dictation.bench.run import load_scorer, score_hypotheses  # noqa: E402
from dictation.config import SpokenConfig  # noqa: E402
from dictation.output.spoken import PUNCTUATION_COMMANDS, enabled_phrases  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VOCABULARY = ("Gutenberg", "woodcutters", "flour", "mutton", "thereunder", "pears")
"""Rare words of dev that tiny.en gets wrong without help."""
FILES = ("ljspeech-lj001-0007", "ljspeech-lj001-0003", "ls-1089-134686-0000",
         "ls-1089-134686-0000-noise1-5db", "sb-lj050-0131", "sb-spk2-snt6")
CONTROLS = ("whisper-jfk", "ljspeech-lj001-0001", "sb-spk1-snt1", "sb-spk2-snt2",
            "moonshine-two-cities", "ls-1089-134691-0000", "moonshine-digits-evmaki-01")
"""Files without the listed words: the vocabulary must not make them worse."""


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=REPO.parent / "shared" / "data" / "dev")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--commands", action="store_true",
                        help="bias towards the spoken commands of several words instead of the "
                             "rare words, over the whole set: does it make anything worse? (It "
                             "does: the app leaves them out of the bias.)")
    args = parser.parse_args()
    utterances = {u.id: u for u in read_dataset(args.set)}
    chosen = [utterances[i] for i in (*FILES, *CONTROLS)]
    vocabulary: tuple[str, ...] = VOCABULARY
    if args.commands:
        vocabulary = tuple(p.capitalize() for p in sorted(enabled_phrases(SpokenConfig()))
                           if " " in p and p not in PUNCTUATION_COMMANDS)
        chosen = [utterances[i] for i in FILES] + [
            u for u in utterances.values() if u.id not in FILES]
    recognizer = load_recognizer(args.model)
    scorer = load_scorer()
    listed = {w.lower() for w in VOCABULARY}
    rows = []
    for label, bias in (("without", ()), ("with", vocabulary)):
        hyps = []
        for n, utt in enumerate(chosen, 1):
            print(f"[{label} vocabulary] {n}/{len(chosen)} {utt.id}", file=sys.stderr,
                  flush=True)
            session = recognizer.open_session(StreamingConfig(vocabulary=bias))
            events = replay(session, load_audio(utt.path), chunk_s=0.1)
            hyps.append("".join(t.event.text for t in events if isinstance(t.event, Commit)))
        hits = total = 0
        for utt, hyp in zip(chosen, hyps, strict=True):
            ref_words = [w for w in words(utt.transcript) if w in listed]
            hyp_words = words(hyp)
            total += len(ref_words)
            hits += sum(min(ref_words.count(w), hyp_words.count(w)) for w in set(ref_words))
        n_files = len(FILES)
        target = score_hypotheses(scorer, chosen[:n_files], hyps[:n_files])
        control = score_hypotheses(scorer, chosen[n_files:], hyps[n_files:])
        rows.append((label, hits, total, float(target.result["wer"]),
                     float(control.result["wer"]), hyps))
    print(f"# Vocabulary bias ({args.model}, streamed, simulated clock)\n")
    print(f"Vocabulary: {', '.join(vocabulary)}\n")
    print("| run | listed words right | WER, files with them | WER, control files |")
    print("| --- | --- | --- | --- |")
    for label, hits, total, target_wer, control_wer, _ in rows:
        print(f"| {label} vocabulary | {hits}/{total} | {100 * target_wer:.2f} % | "
              f"{100 * control_wer:.2f} % |")
    print("\n| file | without | with |\n| --- | --- | --- |")
    for i, utt in enumerate(chosen):
        print(f"| {utt.id} | {rows[0][5][i].strip()} | {rows[1][5][i].strip()} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
