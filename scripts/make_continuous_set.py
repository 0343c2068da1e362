#!/usr/bin/env python3
"""A continuous-dictation version of a speech set: each speaker's utterances joined into one
recording, as if dictated in one go with natural pauses.

For every speaker (column ``speaker`` of ``transcripts.tsv``), in the set's order: each
utterance is trimmed to its speech (Silero VAD, the project's own, plus a margin of
``--margin-s`` on each side), and the trimmed utterances are joined with a pause of silence
drawn uniformly from [``--min-pause-s``, ``--max-pause-s``] between two of them (a seeded RNG per
speaker: the same seed and set give the same bytes, whichever speakers are chosen). The
references are joined the same way (with a space), so clause boundaries that were utterance
boundaries are now mid-recording, as in real dictation: read sentences, digit strings, noisy
copies, all kept.

Writes a set folder that ``dictation bench --set OUT`` reads: ``wav/<id>.wav`` (16 kHz mono
16-bit) and ``transcripts.tsv`` with the input's columns (id ``cont-<speaker>``; ``condition``
``continuous`` + the joined conditions), plus ``parts.tsv`` (where each source utterance lies
in its recording, seconds) for finding which clause a deletion came from. Progress goes to
stderr. Usage::

    python scripts/make_continuous_set.py --set ../shared/data/dev --out /tmp/dev-continuous \\
        [--seed 0] [--speaker ID ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (the VAD)

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import soundfile as sf  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dictation import SAMPLE_RATE  # noqa: E402
from dictation.audio.files import TRANSCRIPTS_FILE, load_audio  # noqa: E402
from dictation.audio.vad import FRAME_SAMPLES, SileroVadNet, VadStream, load_vad_net  # noqa: E402

PARTS_FILE = "parts.tsv"
JOINED_COLUMNS = ("transcript", "reference_raw")
"""Text columns joined with a space; other columns keep their distinct values joined by ``;``."""


@dataclass(frozen=True)
class Options:
    seed: int = 0
    min_pause_s: float = 0.2
    max_pause_s: float = 0.8
    margin_s: float = 0.1
    """Audio kept before the first and after the last speech frame of each utterance (s)."""
    vad_threshold: float = 0.5


@dataclass(frozen=True)
class Part:
    """Where one source utterance lies in its joined recording."""

    id: str
    start_s: float
    end_s: float
    pause_after_s: float


def speech_bounds(audio: npt.NDArray[np.float32], net: SileroVadNet, threshold: float,
                  margin_s: float) -> tuple[int, int]:
    """(start, end) samples of the speech in ``audio``: the first and last 32 ms VAD frame at or
    above ``threshold``, widened by ``margin_s``; the whole clip when no frame is speech."""
    vad = VadStream(net)
    speech = [i for i in range(len(audio) // FRAME_SAMPLES)
              if vad.probability(audio[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]) >= threshold]
    if not speech:
        return 0, len(audio)
    margin = round(margin_s * SAMPLE_RATE)
    return (max(0, speech[0] * FRAME_SAMPLES - margin),
            min(len(audio), (speech[-1] + 1) * FRAME_SAMPLES + margin))


def read_rows(set_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of ``transcripts.tsv`` (every column kept)."""
    with (set_dir / TRANSCRIPTS_FILE).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    if "speaker" not in header:
        raise SystemExit(f"{set_dir / TRANSCRIPTS_FILE} has no speaker column")
    return header, rows


def join_speaker(speaker: str, rows: list[dict[str, str]], set_dir: Path, net: SileroVadNet,
                 options: Options) -> tuple[npt.NDArray[np.float32], list[Part]]:
    """One speaker's utterances trimmed and joined with seeded pauses; and where each lies."""
    rng = random.Random(f"{options.seed}:{speaker}")
    pieces: list[npt.NDArray[np.float32]] = []
    parts: list[Part] = []
    at = 0
    for k, row in enumerate(rows):
        audio = load_audio(set_dir / row["path"])
        start, end = speech_bounds(audio, net, options.vad_threshold, options.margin_s)
        pieces.append(audio[start:end])
        pause = 0
        if k + 1 < len(rows):
            pause = round(rng.uniform(options.min_pause_s, options.max_pause_s) * SAMPLE_RATE)
            pieces.append(np.zeros(pause, dtype=np.float32))
        parts.append(Part(row["id"], at / SAMPLE_RATE, (at + end - start) / SAMPLE_RATE,
                          pause / SAMPLE_RATE))
        at += end - start + pause
    return np.concatenate(pieces), parts


def _joined_row(speaker: str, rows: list[dict[str, str]], header: list[str], path: str,
                duration_s: float) -> dict[str, str]:
    row: dict[str, str] = {}
    for column in header:
        values = [r.get(column, "") for r in rows]
        if column in JOINED_COLUMNS:
            row[column] = " ".join(v.strip() for v in values if v.strip())
        else:
            row[column] = ";".join(dict.fromkeys(v for v in values if v))
    row.update(id=f"cont-{speaker}", path=path, duration_s=f"{duration_s:.3f}", speaker=speaker)
    if "condition" in header:
        row["condition"] = "continuous+" + "+".join(dict.fromkeys(r["condition"] for r in rows))
    if "source_path" in header:
        row["source_path"] = "+".join(r["id"] for r in rows)
    return row


def make_continuous_set(set_dir: Path, out_dir: Path, options: Options = Options(),
                        speakers: list[str] | None = None, progress: bool = True) -> Path:
    """Build the continuous set of ``set_dir`` in ``out_dir`` (created; files overwritten);
    returns its ``transcripts.tsv``. ``speakers`` limits it to those (set order kept)."""
    header, rows = read_rows(set_dir)
    by_speaker: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row)
    if speakers is not None:
        unknown = sorted(set(speakers) - set(by_speaker))
        if unknown:
            raise SystemExit(f"no speaker {', '.join(unknown)} in {set_dir}")
        by_speaker = {s: r for s, r in by_speaker.items() if s in speakers}
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    net = load_vad_net()
    out_rows: list[dict[str, str]] = []
    all_parts: list[tuple[str, Part]] = []
    for n, (speaker, group) in enumerate(by_speaker.items(), 1):
        if progress:
            print(f"make_continuous_set: [{n}/{len(by_speaker)}] {speaker}: {len(group)} "
                  "utterances", file=sys.stderr, flush=True)
        audio, parts = join_speaker(speaker, group, set_dir, net, options)
        rel = f"wav/cont-{speaker}.wav"
        sf.write(out_dir / rel, audio, SAMPLE_RATE, subtype="PCM_16")
        out_rows.append(_joined_row(speaker, group, header, rel, len(audio) / SAMPLE_RATE))
        all_parts += [(f"cont-{speaker}", p) for p in parts]
    index = out_dir / TRANSCRIPTS_FILE
    with index.open("w", encoding="utf-8") as f:  # plain TSV, as read (QUOTE_NONE)
        for values in [header, *([r[c] for c in header] for r in out_rows)]:
            f.write("\t".join(v.replace("\t", " ").replace("\n", " ") for v in values) + "\n")
    with (out_dir / PARTS_FILE).open("w", encoding="utf-8") as f:
        f.write("recording\tid\tstart_s\tend_s\tpause_after_s\n")
        for recording, p in all_parts:
            f.write(f"{recording}\t{p.id}\t{p.start_s:.3f}\t{p.end_s:.3f}\t"
                    f"{p.pause_after_s:.3f}\n")
    if progress:
        total = sum(float(r["duration_s"]) for r in out_rows)
        print(f"make_continuous_set: {len(out_rows)} recordings, {total:.1f} s, in {out_dir}",
              file=sys.stderr, flush=True)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="set_dir", type=Path,
                        default=REPO.parent / "shared" / "data" / "dev",
                        help="source set folder (default ../shared/data/dev)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the set to")
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--min-pause-s", type=float, default=Options.min_pause_s)
    parser.add_argument("--max-pause-s", type=float, default=Options.max_pause_s)
    parser.add_argument("--margin-s", type=float, default=Options.margin_s,
                        help="audio kept around each utterance's speech (s)")
    parser.add_argument("--speaker", action="append", default=None,
                        help="only this speaker (repeatable)")
    args = parser.parse_args(argv)
    if not 0 <= args.min_pause_s <= args.max_pause_s:
        parser.error("need 0 <= --min-pause-s <= --max-pause-s")
    options = Options(seed=args.seed, min_pause_s=args.min_pause_s,
                      max_pause_s=args.max_pause_s, margin_s=args.margin_s)
    make_continuous_set(args.set_dir, args.out, options, speakers=args.speaker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
