"""`dictation models [list|pull|rm|use|info] [ID]`: the model catalogue from the command line.

- `list` (the default): every catalogue model, its size and whether it is installed;
- `pull ID`: download a hub model (progress bar, resumes a partial download, verified);
- `rm ID`: delete a downloaded hub model from the cache (the embedded one cannot be removed);
- `use ID`: make ID the model of the config file (`[recognizer] model`), keeping every
  other line of the file; the file is written atomically with mode 0600;
- `info ID`: what the catalogue says about ID and where its files are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import tempfile
import tomllib
from pathlib import Path

from dictation.asr import catalog, hub_download
from dictation.errors import ConfigError, ModelError

_SECTION_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_MODEL_KEY_RE = re.compile(r"^\s*model\s*=")


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    """The ``models`` command and its actions."""
    models = sub.add_parser("models", help="list, download, remove or choose models",
                            description=__doc__.split("\n\n")[1] if __doc__ else None,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_argument("action", nargs="?", default="list",
                        choices=("list", "pull", "rm", "use", "info"))
    models.add_argument("model_id", nargs="?", metavar="ID", help="catalogue model id")


def cmd_models(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return _list()
    if not args.model_id:
        raise ModelError(f"`dictation models {action}` needs a model id; `dictation models` "
                         "lists them.")
    entry = _entry(args.model_id)
    if action == "pull":
        model = catalog.resolve(entry.id, download=True, progress=True)
        print(f"{entry.id} is installed in {model.path}")
        return 0
    if action == "rm":
        return _remove(entry, args.config)
    if action == "use":
        return _use(entry, args.config)
    return _info(entry)


def _entry(model_id: str) -> catalog.ModelEntry:
    entries = catalog.load_catalog()
    if model_id not in entries:
        raise ModelError(f"Unknown model {model_id!r}. Known models: {', '.join(entries)}.")
    return entries[model_id]


def _list() -> int:
    installed = set(catalog.installed_models())
    entries = catalog.list_models()
    id_width = max((len(e.id) for e in entries), default=0)
    format_width = max((len(e.format) for e in entries), default=0)
    for entry in entries:
        install = getattr(entry, "install", None)  # how to install a non-hub model, if told
        if entry.id in installed:
            mark = "installed"
        elif entry.source == "hub":
            mark = "download" if entry.revision is not None else "unpinned"
        else:
            mark = "missing"
        hint = f" (install: {install})" if install and mark == "missing" else ""
        print(f"{entry.id:<{id_width}} {entry.format:<{format_width}} {entry.size_mb:>5} MB  "
              f"{mark:<9}  "
              f"{entry.description}{hint}")
    return 0


def _info(entry: catalog.ModelEntry) -> int:
    installed = entry.id in catalog.installed_models()
    family = getattr(entry, "family", None)  # the catalogue's family field, where parsed
    rows = [("id", entry.id), ("description", entry.description),
            *([("family", str(family))] if family else []), ("format", entry.format),
            ("source", entry.source), ("licence", entry.licence),
            ("size", f"about {entry.size_mb} MB"),
            ("installed", "yes" if installed else "no")]
    if entry.source == "package":
        rows.append(("package", str(entry.package)))
    else:
        rows.append(("repository", f"{hub_download.endpoint()}/{entry.repo}"))
        rows.append(("revision", entry.revision or "not pinned yet (never downloaded)"))
    if installed:
        rows.append(("path", str(catalog.resolve(entry.id, download=False).path)))
    for key, value in rows:
        print(f"{key + ':':<13}{value}")
    print("files:")
    for name in entry.files:
        pin = entry.sha256.get(name)
        print(f"  {name:<28} " + (f"sha256 {pin}" if pin else "checked against the hub's record"
                                  if entry.source == "hub" else "in the package"))
    return 0


def _remove(entry: catalog.ModelEntry, config_path: Path | None) -> int:
    if entry.source != "hub":
        raise ModelError(f"{entry.id} is embedded (Python package {entry.package}) and cannot be "
                         "removed; it is the offline fallback.")
    assert entry.repo is not None
    if entry.revision is None:
        print(f"{entry.id} is not pinned, so it was never downloaded.")
        return 0
    cache = catalog.cache_root()
    freed = hub_download.remove_model(entry.repo, entry.revision, entry.files, cache)
    stamp = cache / ("models--" + entry.repo.replace("/", "--")) / "dictation-verified"
    (stamp / f"{entry.revision}.json").unlink(missing_ok=True)
    print(f"removed {entry.id} ({freed / 1e6:.0f} MB freed)")
    try:
        from dictation.config import load_config

        if load_config(config_path).recognizer.model == entry.id:
            print(f"note: the config still chooses {entry.id}; the app will download it again. "
                  f"Choose another with `dictation models use ID`.")
    except ConfigError:
        pass
    return 0


def _use(entry: catalog.ModelEntry, config_path: Path | None) -> int:
    if entry.id not in catalog.installed_models():
        raise ModelError(f"{entry.id} is not installed; run `dictation models pull {entry.id}` "
                         "first.")
    from dictation.config import default_config_path

    path = config_path or default_config_path()
    set_config_model(path, entry.id)
    print(f"{path}: [recognizer] model = {entry.id!r}; restart the app (or it reloads the "
          "config) to switch.")
    return 0


def set_config_model(path: Path, model_id: str) -> None:
    """Set ``[recognizer] model`` in the TOML config at ``path``, keeping every other line
    (comments included). The new text is checked by the config parser before it replaces the
    old file atomically; the file ends up with mode 0600, a new folder with 0700."""
    from dictation.config import parse_config

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines(keepends=True)
    value = f"model = {json.dumps(model_id)}\n"
    section: str | None = None
    header_at: int | None = None
    replaced = False
    for i, line in enumerate(lines):
        match = _SECTION_RE.match(line)
        if match and not line.lstrip().startswith("[["):
            section = match.group(1).strip().strip("\"'")
            if section == "recognizer":
                header_at = i
            continue
        if section == "recognizer" and _MODEL_KEY_RE.match(line):
            lines[i] = value
            replaced = True
            break
    if not replaced:
        if header_at is None:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines += (["\n"] if lines else []) + ["[recognizer]\n", value]
        else:
            lines.insert(header_at + 1, value)
    new_text = "".join(lines)
    try:
        parse_config(tomllib.loads(new_text), source=str(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it, then run again.") from exc
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), stat.S_IRUSR | stat.S_IWUSR)
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
