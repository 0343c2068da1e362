"""Pulling a hub model in the background for the tray, switching to it only once it is ready.

:class:`ModelPuller` runs one download at a time on its own thread (the edge); the app reads
:meth:`ModelPuller.status` from the tray thread to show progress in the Model menu, and gets
``on_ready(model_id)`` only after every file of the model is downloaded and verified (the
catalogue's :func:`dictation.asr.catalog.resolve`), so the switch never sees a half model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from dictation.asr import catalog
from dictation.asr.hub_download import Progress, ProgressCallback
from dictation.errors import DictationError

log = logging.getLogger(__name__)

PullFunction = Callable[[str, ProgressCallback], None]


def pull_model(model_id: str, on_progress: ProgressCallback) -> None:
    """Download and verify a catalogue model (the same code as `dictation models pull`)."""
    catalog.resolve(model_id, download=True, progress=False, on_progress=on_progress)


@dataclass(frozen=True)
class PullStatus:
    """The pull in progress or the last one: fraction in [0, 1] (None = size unknown)."""

    model_id: str
    fraction: float | None = 0.0
    done: bool = False
    error: str | None = None

    @property
    def running(self) -> bool:
        return not self.done and self.error is None

    def label(self) -> str:
        """Menu text: "Downloading ID… 42%", or what became of it."""
        if self.error is not None:
            return f"Download of {self.model_id} failed"
        if self.done:
            return f"{self.model_id} downloaded"
        percent = "" if self.fraction is None else f" {int(100 * self.fraction)}%"
        return f"Downloading {self.model_id}…{percent}"


class ModelPuller:
    """One background model download at a time; callbacks run on the download thread."""

    def __init__(self, *, on_change: Callable[[], None], on_ready: Callable[[str], None],
                 on_error: Callable[[str, str], None],
                 pull: PullFunction = pull_model) -> None:
        self._on_change = on_change
        self._on_ready = on_ready
        self._on_error = on_error
        self._pull = pull
        self._lock = threading.Lock()
        self._status: PullStatus | None = None
        self._thread: threading.Thread | None = None

    def status(self) -> PullStatus | None:
        """The current or last pull (any thread)."""
        return self._status

    def start(self, model_id: str) -> bool:
        """Begin pulling model_id; False (and nothing started) while another pull runs."""
        with self._lock:
            if self._status is not None and self._status.running:
                return False
            self._status = PullStatus(model_id)
            self._thread = threading.Thread(target=self._run, args=(model_id,),
                                            name=f"dictation-pull-{model_id}", daemon=True)
            self._thread.start()
        self._changed()
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running pull (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:  # a tray refresh failing must not stop the download
            log.exception("model pull: progress display failed")

    def _run(self, model_id: str) -> None:
        last_percent = -1

        def progress(report: Progress) -> None:
            nonlocal last_percent
            fraction = report.fraction
            percent = -1 if fraction is None else int(100 * fraction)
            if percent != last_percent:  # one menu refresh per whole percent
                last_percent = percent
                self._status = PullStatus(model_id, fraction)
                self._changed()

        try:
            self._pull(model_id, progress)
        except DictationError as exc:
            self._status = PullStatus(model_id, self._status.fraction if self._status else None,
                                      error=str(exc))
            self._changed()
            self._on_error(model_id, str(exc))
            return
        except Exception as exc:  # reported, never lost on a daemon thread
            log.exception("model pull %s failed", model_id)
            self._status = PullStatus(model_id, None, error=repr(exc))
            self._changed()
            self._on_error(model_id, f"unexpected error: {exc!r}")
            return
        self._status = PullStatus(model_id, 1.0, done=True)
        self._changed()
        self._on_ready(model_id)


def downloadable_models() -> list[tuple[str, str]]:
    """(model id, menu label) of pinned hub models not installed yet, catalogue order."""
    installed = set(catalog.installed_models())
    return [(e.id, f"{e.id} ({e.size_mb} MB)") for e in catalog.list_models()
            if e.source == "hub" and e.revision is not None and e.id not in installed]
