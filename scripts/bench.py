#!/usr/bin/env python3
"""Benchmark the recognizer on a speech set and write the report into the repository's reports/.

    PYTHONPATH=. python scripts/bench.py --set ../shared/data/dev [--stream] [--model ID]

Same options as ``dictation bench`` (see :mod:`dictation.bench.run`); the report lands in
reports/bench-<mode>-<model>.md with the hypotheses TSV beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dictation.bench.run import add_bench_arguments, bench_main

REPORTS_DIR = Path(__file__).resolve().parents[1] / "reports"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark WER, speed and streaming latency "
                                                 "on a speech set.")
    add_bench_arguments(parser)
    parser.set_defaults(report_dir=str(REPORTS_DIR))
    return bench_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
