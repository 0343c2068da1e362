"""Downloads from the Hugging Face Hub with a plain HTTP client; every hub model uses this.

Files are fetched from ``{endpoint}/{repo}/resolve/{revision}/{filename}`` (the endpoint is
``$HF_ENDPOINT``, default https://huggingface.co, read at call time) into the standard Hugging
Face cache layout, so other tools find them too:

    {cache}/models--{owner}--{name}/blobs/{digest}               the file, named by its digest
    {cache}/models--{owner}--{name}/blobs/{digest}.part          a partial download (resumable)
    {cache}/models--{owner}--{name}/snapshots/{revision}/{file}  -> ../../blobs/{digest}

A download
- asks the server for each file's size and digest first (HEAD, redirects not followed: the hub
  puts an LFS file's SHA-256 in ``X-Linked-Etag`` and a small file's git blob id in ``ETag``),
  and checks that the disk has room for what is left to fetch;
- resumes a ``.part`` file left by an interrupted download (HTTP Range) and retries a dropped
  connection a few times within one call;
- hashes while it writes and refuses a file whose digest differs from the catalogue's SHA-256
  pin (or, for an unpinned file, the hub's record): the partial file is deleted, nothing is
  installed;
- installs atomically: the blob appears by rename only once complete and verified, and the
  snapshot links of a model are made only after every one of its files is in place;
- reports progress through a callback (bytes done / total, per file and for the whole model);
- turns network and disk failures into :class:`ModelError` messages that say what to do.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import Any, Literal

from dictation.errors import ModelError

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0
"""Socket timeout of each connect / read, seconds."""
RETRIES = 3
"""Attempts after a dropped connection within one download call (each resumes with Range)."""
DISK_MARGIN_BYTES = 50 << 20
"""Free space kept beyond a download's size, so that a pull never fills the disk to the brim."""

USER_AGENT = "dictation (model download)"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")

Algorithm = Literal["sha256", "git-sha1"]


@dataclass(frozen=True)
class Digest:
    """What a file's content must hash to: SHA-256, or git's blob SHA-1 (small hub files)."""

    algorithm: Algorithm
    value: str


@dataclass(frozen=True)
class RemoteFile:
    """What the server says about one file before it is fetched."""

    name: str
    url: str
    size: int | None
    digest: Digest | None
    commit: str | None


@dataclass(frozen=True)
class Progress:
    """Download progress of one model, in bytes."""

    model_id: str
    file: str
    file_done: int
    file_total: int | None
    done: int
    """Bytes of the whole model on disk so far (resumed parts and finished files included)."""
    total: int | None

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(self.done / self.total, 1.0)


ProgressCallback = Callable[[Progress], None]


def endpoint() -> str:
    """The hub's base URL: $HF_ENDPOINT, else https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def file_url(repo: str, revision: str, filename: str, base: str | None = None) -> str:
    quoted = urllib.parse.quote(filename)
    return f"{base or endpoint()}/{repo}/resolve/{revision}/{quoted}"


def repo_folder(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def snapshot_path(cache: Path, repo: str, revision: str, filename: str) -> Path:
    return repo_folder(cache, repo) / "snapshots" / revision / filename


def cached_file(cache: Path, repo: str, revision: str, filename: str) -> Path | None:
    """The installed file of ``repo`` at ``revision``, or None."""
    path = snapshot_path(cache, repo, revision, filename)
    return path if path.is_file() else None


def file_digest(path: Path, algorithm: Algorithm) -> str:
    """Hex digest of a file: plain SHA-256, or git's blob id (SHA-1 of "blob SIZE\\0" + bytes)."""
    hasher = _hasher(algorithm, path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def _hasher(algorithm: Algorithm, size: int) -> hashlib._Hash:
    if algorithm == "sha256":
        return hashlib.sha256()
    hasher = hashlib.sha1(usedforsecurity=False)
    hasher.update(b"blob %d\0" % size)
    return hasher


# --------------------------------------------------------------------------- HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # the 3xx comes back as an HTTPError whose headers we read


_HEAD_OPENER = urllib.request.build_opener(_NoRedirect)


def _normalize_etag(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().removeprefix("W/").strip('"').lower()


def _digest_from_headers(headers: Message) -> Digest | None:
    linked = _normalize_etag(headers.get("X-Linked-Etag"))
    if linked and _SHA256_RE.match(linked):
        return Digest("sha256", linked)
    etag = _normalize_etag(headers.get("ETag"))
    if etag and _SHA256_RE.match(etag):
        return Digest("sha256", etag)
    if etag and _SHA1_RE.match(etag):
        return Digest("git-sha1", etag)
    return None


def _int_header(headers: Message, *names: str) -> int | None:
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def _network_error(model_id: str, url: str, exc: BaseException) -> ModelError:
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return ModelError(f"Model {model_id}: the hub has no {url} (HTTP 404); the catalogue "
                              "entry is wrong (report it).")
        if exc.code in (401, 403):
            return ModelError(f"Model {model_id}: the hub refused {url} (HTTP {exc.code}: gated "
                              "or private repository).")
        return ModelError(f"Model {model_id}: the hub answered HTTP {exc.code} for {url}; try "
                          "again later.")
    reason = getattr(exc, "reason", None) or exc
    return ModelError(
        f"Model {model_id} cannot be downloaded: {endpoint()} cannot be reached "
        f"({type(exc).__name__}: {str(reason)[:200]}). Check the network connection and run "
        f"`dictation models pull {model_id}` again (a partial download resumes).")


def head(model_id: str, url: str) -> RemoteFile:
    """Size, digest and commit of one file, from the hub's own response (3xx not followed)."""
    headers: Message | None = None
    current = url
    try:
        for _ in range(5):
            request = urllib.request.Request(current, method="HEAD", headers={
                "Accept-Encoding": "identity", "User-Agent": USER_AGENT})
            try:
                with _HEAD_OPENER.open(request, timeout=TIMEOUT_S) as response:
                    headers = response.headers
                    break
            except urllib.error.HTTPError as exc:
                if exc.code not in (301, 302, 303, 307, 308):
                    raise
                headers = exc.headers
                if headers.get("X-Linked-Etag") or headers.get("X-Linked-Size"):
                    break  # an LFS file: the hub's redirect to its storage carries the record
                current = urllib.parse.urljoin(current, headers.get("Location", ""))
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        raise _network_error(model_id, url, exc) from exc
    assert headers is not None
    return RemoteFile(
        name=url.rsplit("/", 1)[-1],
        url=url,
        size=_int_header(headers, "X-Linked-Size", "Content-Length"),
        digest=_digest_from_headers(headers),
        commit=headers.get("X-Repo-Commit"),
    )


# --------------------------------------------------------------------------- one file


@contextmanager
def _lock(path: Path, model_id: str) -> Iterator[None]:
    """An exclusive lock on the model's cache folder: one download of a model at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ModelError(f"Model {model_id} is being downloaded by another process; wait "
                             "for it to finish.") from exc
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _disk_error(model_id: str, folder: Path, exc: OSError) -> ModelError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ModelError(
            f"Model {model_id}: the disk holding {folder} is full. Free some space and run "
            f"`dictation models pull {model_id}` again; the partial download is kept and resumes.")
    return ModelError(f"Model {model_id}: cannot write to {folder} ({exc}).")


def check_free_space(model_id: str, folder: Path, needed: int) -> None:
    """Refuse to start when the disk lacks ``needed`` bytes plus a margin."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_MARGIN_BYTES:
        raise ModelError(
            f"Model {model_id} needs {needed / 1e6:.0f} MB more on the disk holding {folder}, "
            f"which has {free / 1e6:.0f} MB free (keeping {DISK_MARGIN_BYTES >> 20} MB spare). "
            "Free some space and run the pull again.")


class _RestartFromZero(Exception):
    """The server answered a Range request with the whole file: drop the part, start over."""


def _fetch(model_id: str, remote: RemoteFile, part: Path, digest: Digest,
           report: Callable[[int], None]) -> None:
    """Append the rest of ``remote`` to ``part`` (Range from its size), hashing all of it;
    raise ModelError when the bytes do not hash to ``digest`` (part deleted)."""
    if digest.algorithm == "git-sha1" and remote.size is None:
        raise ModelError(f"Model {model_id}: the hub gave no size for {remote.name}.")
    attempts = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if remote.size is not None and have > remote.size:
            part.unlink()
            have = 0
        hasher = _hasher(digest.algorithm, remote.size or 0)
        if have:
            with part.open("rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    hasher.update(chunk)
        try:
            if remote.size is None or have < remote.size:
                _stream(remote.url, part, have, hasher, report)
            break
        except _RestartFromZero:
            part.unlink(missing_ok=True)
        except urllib.error.HTTPError as exc:
            raise _network_error(model_id, remote.url, exc) from exc
        except (urllib.error.URLError, HTTPException, TimeoutError, ConnectionError) as exc:
            if attempts >= RETRIES:
                raise _network_error(model_id, remote.url, exc) from exc
            attempts += 1
        except OSError as exc:
            raise _disk_error(model_id, part.parent, exc) from exc
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        raise ModelError(f"Model {model_id}: {remote.name} arrived with {size} bytes, the hub "
                         f"announced {remote.size}; run the pull again.")
    actual = hasher.hexdigest()
    if actual != digest.value:
        part.unlink()
        label = "SHA-256" if digest.algorithm == "sha256" else "git blob id"
        raise ModelError(
            f"Model {model_id}: the downloaded {remote.name} is not the expected file (its "
            f"{label} is {actual}, expected {digest.value}); refused and deleted. Nothing was "
            "installed. If this repeats, the hub copy changed or the connection is tampered "
            "with.")


def _stream(url: str, part: Path, have: int, hasher: Any,
            report: Callable[[int], None]) -> None:
    """GET url from byte ``have`` on, appending to part and feeding hasher."""
    headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        if have and response.status != 206:
            raise _RestartFromZero
        length = _int_header(response.headers, "Content-Length")
        received = 0
        with part.open("ab") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                report(have + received)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and received < length:
            raise ConnectionError(f"connection closed after {received} of {length} bytes")


# --------------------------------------------------------------------------- a model


def download_model(model_id: str, repo: str, revision: str, files: Sequence[str],
                   pins: dict[str, str], cache: Path,
                   progress: ProgressCallback | None = None) -> dict[str, Digest]:
    """Fetch every missing file of ``repo`` at ``revision`` into ``cache`` and link the
    snapshot; returns the verified digest of each file fetched. ``pins`` maps file names to
    SHA-256s that take precedence over the hub's record."""
    folder = repo_folder(cache, repo)
    blobs = folder / "blobs"
    missing = [name for name in files if cached_file(cache, repo, revision, name) is None]
    if not missing:
        return {}
    with _lock(folder / ".dictation-download.lock", model_id):
        remotes = {name: head(model_id, file_url(repo, revision, name)) for name in missing}
        digests: dict[str, Digest] = {}
        for name, remote in remotes.items():
            if remote.commit and remote.commit != revision:
                raise ModelError(f"Model {model_id}: the hub served {name} from commit "
                                 f"{remote.commit}, not the pinned {revision}; refused.")
            if name in pins:
                digests[name] = Digest("sha256", pins[name])
            elif remote.digest is not None:
                digests[name] = remote.digest
            else:
                raise ModelError(f"Model {model_id}: the hub gave no checksum for {name} and "
                                 "the catalogue pins none; refused (report it).")
        parts = {name: blobs / f"{digests[name].value}.part" for name in missing}
        blob_done = {name: (blobs / digests[name].value).is_file() for name in missing}
        current = {name: (remotes[name].size or 0) if blob_done[name]
                   else (parts[name].stat().st_size if parts[name].exists() else 0)
                   for name in missing}
        sizes = [remotes[name].size for name in missing]
        total = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
        still = sum((remotes[n].size or 0) - current[n] for n in missing if not blob_done[n])
        check_free_space(model_id, blobs, max(still, 0))
        for name in missing:
            if blob_done[name]:
                continue
            remote = remotes[name]

            def report(file_done: int, name: str = name, remote: RemoteFile = remote) -> None:
                current[name] = file_done
                if progress is not None:
                    progress(Progress(model_id, name, file_done, remote.size,
                                      sum(current.values()), total))

            report(current[name])
            _fetch(model_id, remote, parts[name], digests[name], report)
            os.replace(parts[name], blobs / digests[name].value)
        _link_snapshot(folder, revision, {name: digests[name].value for name in missing},
                       model_id)
        return digests


def _link_snapshot(folder: Path, revision: str, blob_names: dict[str, str],
                   model_id: str) -> None:
    """Make snapshots/{revision}/{file} -> ../../blobs/{digest}, each link by atomic rename."""
    snapshot = folder / "snapshots" / revision
    try:
        for name, blob in blob_names.items():
            link = snapshot / name
            link.parent.mkdir(parents=True, exist_ok=True)
            target = os.path.relpath(folder / "blobs" / blob, link.parent)
            tmp = link.with_name(link.name + ".link-tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
    except OSError as exc:
        raise _disk_error(model_id, snapshot, exc) from exc


def pin_files(model_id: str, repo: str, files: Sequence[str], ref: str = "main",
              scratch: Path | None = None) -> tuple[str, dict[str, str]]:
    """The commit ``ref`` points at and the SHA-256 of each file there, for the catalogue.

    LFS files give their SHA-256 in the hub's record; small files are fetched (into
    ``scratch``, a temporary folder) and hashed, their git blob id checked on the way."""
    import tempfile

    records = {name: head(model_id, file_url(repo, ref, name)) for name in files}
    commits = {r.commit for r in records.values()}
    if len(commits) != 1 or None in commits:
        raise ModelError(f"Model {model_id}: the hub gave no single commit for {ref} "
                         f"({sorted(str(c) for c in commits)}); try again.")
    commit = str(commits.pop())
    pins: dict[str, str] = {}
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        for name, record in records.items():
            if record.digest is not None and record.digest.algorithm == "sha256":
                pins[name] = record.digest.value
                continue
            if record.digest is None:
                raise ModelError(f"Model {model_id}: the hub gave no checksum for {name}.")
            at_commit = head(model_id, file_url(repo, commit, name))
            part = Path(tmp) / "file.part"
            part.unlink(missing_ok=True)
            _fetch(model_id, at_commit, part, record.digest, lambda _done: None)
            pins[name] = file_digest(part, "sha256")
    return commit, pins


def remove_model(repo: str, revision: str, files: Sequence[str], cache: Path) -> int:
    """Delete a model's snapshot links, and the blobs and partial downloads no other snapshot
    of the repository uses; returns the bytes freed."""
    folder = repo_folder(cache, repo)
    if not folder.is_dir():
        return 0
    snapshot = folder / "snapshots" / revision
    for name in files:
        (snapshot / name).unlink(missing_ok=True)
    for directory in sorted(snapshot.rglob("*"), reverse=True) if snapshot.exists() else []:
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    if snapshot.is_dir() and not any(snapshot.iterdir()):
        snapshot.rmdir()
    used = {p.resolve().name for p in (folder / "snapshots").rglob("*") if p.is_symlink()}
    freed = 0
    blobs = folder / "blobs"
    for blob in list(blobs.iterdir()) if blobs.is_dir() else []:
        if blob.name.removesuffix(".part") not in used:
            freed += blob.stat().st_size
            blob.unlink()
    if not used:
        shutil.rmtree(folder, ignore_errors=True)
    return freed
