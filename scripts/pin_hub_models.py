#!/usr/bin/env python3
"""Print the pinned commit and SHA-256 of every file of hub models, for models/catalog.toml.

    PYTHONPATH=. python scripts/pin_hub_models.py [ID ...] [--ref main]

Needs the network (or $HF_ENDPOINT). With no ID, every hub entry of the catalogue that has no
revision yet. Large (LFS) files are not downloaded: the hub's record gives their SHA-256;
small files are fetched and hashed (their git blob id is checked on the way). Review the
printed TOML and paste it into the entry; nothing is written by this script.
"""

from __future__ import annotations

import argparse
import sys

from dictation.asr.catalog import load_catalog
from dictation.asr.hub_download import pin_files
from dictation.errors import DictationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", metavar="ID")
    parser.add_argument("--ref", default="main", help="branch or tag to pin (default main)")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    ids = args.ids or [e.id for e in catalog.values() if e.source == "hub" and e.revision is None]
    status = 0
    for model_id in ids:
        entry = catalog.get(model_id)
        if entry is None or entry.source != "hub" or entry.repo is None:
            print(f"# {model_id}: not a hub entry of the catalogue", file=sys.stderr)
            status = 1
            continue
        print(f"# {model_id}: asking the hub about {entry.repo}@{args.ref} ...", file=sys.stderr,
              flush=True)
        try:
            commit, pins = pin_files(model_id, entry.repo, entry.files, args.ref)
        except DictationError as exc:
            print(f"# {model_id}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f'[models."{model_id}"]\nrevision = "{commit}"\n')
        print(f'[models."{model_id}".sha256]')
        for name, digest in pins.items():
            print(f'"{name}" = "{digest}"')
        print()
    return status


if __name__ == "__main__":
    sys.exit(main())
