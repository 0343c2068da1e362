"""The desktop app: hotkey + microphone + streaming recognizer + typing, with a tray icon.

Threads stay at the edges. The pynput hotkey listener, the control socket and the tray menu only
post :class:`Command` s into one queue; ONE worker runs the loop (:meth:`DictationApp.run`):

* idle: wait for a command (at most :data:`IDLE_POLL_S`), then poll the config file and the
  microphone;
* listening: ``pcm = cursor.read()``, ``for event in session.feed(pcm): output.handle(event)``,
  waiting :data:`LISTEN_POLL_S` for a command between reads;
* stop: end the capture, feed the rest, ``session.finish()``, deliver those events, back to
  idle.

With the tray (``dictation`` / ``dictation app``) the tray's event loop owns the main thread and
the worker runs on its own thread; without it (``dictation listen``) the worker runs on the
main thread. SIGTERM / SIGINT post ``quit``. Readiness (model loaded, microphone open, hotkey
live) is printed as ``dictation: ready`` on stderr; timing events go to the file named by
``DICTATION_EVENT_LOG`` (:mod:`dictation.eventlog`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dictation import SAMPLE_RATE
from dictation.asr.events import EndOfSegment
from dictation.audio.dead_input import DeadInputDetector, InputChange
from dictation.audio.spool import AudioSpool, BackPressure, CaptureDrain
from dictation.commands import CONTROL_COMMANDS, Command, Request, Trigger, dispatch
from dictation.config import (
    Config,
    ConfigWatcher,
    RecognizerConfig,
    default_config_path,
    load_config,
)
from dictation.errors import ConfigError, DeviceError, DictationError, ModelError
from dictation.eventlog import EventLog
from dictation.heap import release_free_memory
from dictation.hotkey import Action
from dictation.inject.keystate import GuardedXTestTyping, ModifierWatch
from dictation.output import history
from dictation.output.focus import WindowInfo, focused_window
from dictation.output.pipeline import NOTIFY_TITLE, OutputPipeline, OutputSettings
from dictation.output.replacements import ReplacementRules
from dictation.output.vocabulary import bias_phrases
from dictation.session import Routes, plan_routes
from dictation.session import detect as detect_session

if TYPE_CHECKING:
    from dictation.asr.driver import StreamingConfig
    from dictation.asr.session import Recognizer, Session
    from dictation.audio.mic import CaptureCursor, Microphone
    from dictation.hotkey import HotkeyListener
    from dictation.model_pull import ModelPuller
    from dictation.output.journal import TranscriptJournal
    from dictation.tray import Tray

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
"""Seconds between config / microphone checks while idle (the worker sleeps in between)."""
LISTEN_POLL_S = 0.04
"""Seconds the worker waits for a command between two microphone reads while listening."""
MODEL_SCAN_S = 10.0
"""Seconds between two looks for newly installed models (for the tray menu)."""
MIC_RETRY_S = 5.0
"""Seconds between attempts to reopen a failed microphone."""
MEMORY_TRIM_S = 5.0
"""During a dictation, free C-heap pages are given back (:func:`dictation.heap.
release_free_memory`) at the end of a segment at most this often, seconds: each decode's
buffers are freed into the heap, which otherwise keeps them until the dictation ends (the
30-minute soak grew 24 % that way, reports/soak.md; every 30 s it still grew 10.5 % in 15
minutes, reports/soak-heap-trim.md; every 5 s RSS swung between 580 and 900 MiB over 10
minutes without a clear trend, reports/soak-trim-5s.md). A trim takes well under a
millisecond."""
MIC_BLOCK_S = 0.1
"""Seconds of audio per microphone callback. The stream runs all the time (pre-roll), so this
sets the idle cost: 0.02 s blocks cost ~1.9 % of a core, 0.1 s blocks ~0.8 % (measured on the
harness); the worker reads every ~40 ms plus decode time, so larger blocks add little lag."""
LIVE_TIMEOUT_S = 10.0
"""Seconds to wait for the hotkey listener to hear keys at start-up."""
READY_LINE = "dictation: ready"
TYPING_KEYS = frozenset({"shift_l", "ctrl_l"})
"""Hotkeys the typing back-ends press themselves (capitals, Ctrl+V): muted while typing."""
RECENT_TEXTS = 8
"""Dictated texts the tray's Recent submenu offers."""
HOTKEY_COMMANDS = {Action.START: Command.START, Action.STOP: Command.STOP}
"""What each hotkey gesture posts."""


class State(enum.StrEnum):
    """What the app is doing (``dictation status`` and the tray show it)."""

    STARTING = "starting"
    IDLE = "idle"
    LISTENING = "listening"
    FINISHING = "finishing"
    ERROR = "error"


# --------------------------------------------------------------------------- helpers


def local_models_dir() -> Path:
    """``$XDG_DATA_HOME/dictation/models``: each sub-folder holding a model is offered as a model
    named after the folder."""
    data = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data) if os.path.isabs(data) else Path.home() / ".local" / "share"
    return base / "dictation" / "models"


def available_models(models_dir: Path | None = None) -> dict[str, str]:
    """Models the user can switch to without a download: menu name -> what
    :func:`dictation.asr.recognizer.load_recognizer` takes (a catalogue id, or a folder path)."""
    from dictation.asr.catalog import detect_format, installed_models

    models: dict[str, str] = {}
    try:
        models.update((model_id, model_id) for model_id in installed_models())
    except DictationError as exc:
        log.warning("cannot list the installed models: %s", exc)
    folder = models_dir if models_dir is not None else local_models_dir()
    with contextlib.suppress(OSError):
        for child in sorted(folder.iterdir()):
            try:
                if not child.is_dir():
                    continue
                detect_format(child)
            except ModelError:
                continue
            models.setdefault(child.name, str(child))
    return models


def streaming_config(rc: RecognizerConfig, vocabulary: tuple[str, ...] = ()) -> StreamingConfig:
    """The streaming session settings of the ``[recognizer]`` config, biased towards the
    ``vocabulary`` (the replacements of the user's vocabulary rules)."""
    from dictation.asr.driver import StreamingConfig
    from dictation.audio.segmenter import SegmenterConfig

    release = min(SegmenterConfig.release, rc.vad_threshold)
    segmenter = SegmenterConfig(threshold=rc.vad_threshold, release=release,
                                endpoint_silence_s=rc.endpoint_silence_s,
                                max_segment_s=rc.max_segment_s,
                                cut_search_s=min(SegmenterConfig.cut_search_s,
                                                 rc.max_segment_s / 2))
    return StreamingConfig(segmenter=segmenter, decode_interval_s=rc.decode_interval_s,
                           vocabulary=vocabulary)


def output_settings(config: Config) -> OutputSettings:
    return OutputSettings(terminal_classes=config.typing.terminal_classes,
                          terminal_mode=config.typing.terminal_mode,
                          rules=ReplacementRules(config.replacements),
                          spoken=config.spoken, app_rules=config.app_rules)


def notify_send(title: str, body: str) -> None:
    """A desktop notification without a tray: notify-send, else the notification service over
    D-Bus with gdbus (GLib's, present where notify-send is not installed), else only the log."""
    exe = shutil.which("notify-send")
    gdbus = shutil.which("gdbus")
    if exe is not None:
        command = [exe, "--app-name", NOTIFY_TITLE, title, body]
    elif gdbus is not None:
        command = [gdbus, "call", "--session", "--dest", "org.freedesktop.Notifications",
                   "--object-path", "/org/freedesktop/Notifications", "--method",
                   "org.freedesktop.Notifications.Notify", NOTIFY_TITLE, "0", "", title, body,
                   "[]", "{}", "10000"]
    else:
        return
    try:
        subprocess.run(command, timeout=5, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("notification failed: %s", exc)


# --------------------------------------------------------------------------- the app


class DictationApp:
    """The worker and everything it owns. Collaborators (recognizer, microphone, output
    pipeline, hotkey) are created by :meth:`startup`; tests may set them directly and drive
    :meth:`handle`, :meth:`listen_tick` and :meth:`idle_poll` without threads."""

    def __init__(self, config: Config, *, watcher: ConfigWatcher | None = None,
                 with_tray: bool = False, events: EventLog | None = None,
                 load_model: Callable[[str], Recognizer] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 focus: Callable[[], WindowInfo | None] = focused_window) -> None:
        self.config = config
        self.watcher = watcher
        self.with_tray = with_tray
        self.events = events or EventLog(None)
        self._load_model = load_model
        self._clock = clock
        self._focus = focus
        self._stop_asked_at: float | None = None
        """Time of a stop asked for but not yet handled: no audio after it is recognized."""
        self._trimmed_at = clock()
        """When free heap memory was last given back (see :data:`MEMORY_TRIM_S`)."""
        self.commands: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.state = State.STARTING
        self.error: str | None = None
        """Why the app is in the error state."""
        self.tray: Tray | None = None
        self.recognizer: Recognizer | None = None
        self.model_name = config.recognizer.model
        """The model in use, as the menu names it."""
        self.models: dict[str, str] = {}
        """Menu name -> model spec (see :func:`available_models`)."""
        self.microphones: list[str] = []
        """Input device names (for the menu; PortAudio's list is fixed once it started)."""
        self.mic: Microphone | None = None
        self.hotkey: HotkeyListener | None = None
        self.desktop = detect_session()
        """The desktop session (Wayland/X11, which desktop): decides the routes below."""
        self.routes: Routes | None = None
        """How the app types, hears its hotkey and follows the focus (status, tooltip)."""
        self._hotkey_route = ("none", "not started")
        self.modifiers = ModifierWatch()
        self.output = OutputPipeline(None, output_settings(config), notify=self.notify,
                                     muted=self._typing_muted, log_event=self.events,
                                     wait_keys=self.modifiers.wait_released,
                                     on_stop=lambda: self.post(Command.STOP))
        self.journal: TranscriptJournal | None = None
        self.recent: list[str] = []
        """The newest dictated texts, newest first (see :data:`RECENT_TEXTS`)."""
        self.session: Session | None = None
        self.cursor: CaptureCursor | None = None
        self.spool: AudioSpool | None = None
        self.drain: CaptureDrain | None = None
        self.drain_in_thread = True
        """Move audio from the ring into the spool on a thread (tests drive it by hand)."""
        self.pressure = BackPressure()
        self._base_streaming: StreamingConfig | None = None
        self._gaps_reported = 0
        self.quitting = False
        self.exit_code = 0
        self._pending_model: str | None = None
        self._puller: ModelPuller | None = None
        self._downloadable: list[tuple[str, str]] = []
        self._audio_seen = False
        self._dead_input = DeadInputDetector()
        self._next_poll = 0.0
        self._next_model_scan = 0.0
        self._next_mic_retry = 0.0

    # --- edges: called from other threads -------------------------------------------------
    def post(self, command: Command, arg: str | None = None) -> None:
        """Queue work for the worker (any thread, also signal handlers)."""
        self.commands.put(Request(command, arg))

    def on_hotkey(self, action: Action, at: float) -> None:
        """HotkeyListener callback (listener thread); ``at``: the tap's press time."""
        self.events("hotkey", action=action.value, late_s=round(self._clock() - at, 3))
        self.commands.put(self._triggered(HOTKEY_COMMANDS[action], at))

    def on_control(self, command: Command) -> str:
        """ControlServer handler (its thread): queue the command, answer at once."""
        if command is Command.STATUS:
            return self.status()
        state = self.state
        if command is Command.START and state is not State.IDLE:
            return f"not started: {self.status()}"
        if command is Command.STOP and state is not State.LISTENING:
            return f"not stopped: {self.status()}"
        if command in (Command.START, Command.STOP, Command.TOGGLE):
            self.commands.put(self._triggered(command, self._clock()))
        else:
            self.post(command)
        return f"{command.value} requested (was {state.value})"

    def _triggered(self, command: Command, at: float) -> Request:
        """(Listener / control thread) ``command`` asked at ``at``: a stop marks the audio after
        ``at`` as not to be recognized at once; a start (or a toggle that may start) latches
        the window focused now."""
        stopping = command is Command.STOP or (command is Command.TOGGLE
                                               and self.state is State.LISTENING)
        if stopping:
            if self._stop_asked_at is None:
                self._stop_asked_at = at
            return Request(command, trigger=Trigger(at, None))
        return Request(command, trigger=Trigger(at, self._focus()))

    def status(self) -> str:
        """One line: state, model, microphone (and the error)."""
        mic = self.current_microphone() or "default"
        text = f"{self.state.value} model={self.model_name} mic={mic}"
        if self.state is State.ERROR and self.error:
            text = f"{text} error={self.error}"
        routes = self.routes
        return text if routes is None else "\n".join([text, *routes.lines()])

    # tray providers (tray thread): plain attribute reads
    def model_names(self) -> list[str]:
        names = list(self.models)
        return names if self.model_name in names else [*names, self.model_name]

    def current_model(self) -> str:
        return self.model_name

    def downloadable_models(self) -> list[tuple[str, str]]:
        """(id, label) of hub models the tray offers to download (refreshed by the scan)."""
        return list(self._downloadable)

    def download_status(self) -> str | None:
        status = self._puller.status() if self._puller is not None else None
        return None if status is None else status.label()

    def download_model(self, model_id: str) -> None:
        """Tray action: pull a hub model in the background; switch to it once it is ready."""
        from dictation.model_pull import ModelPuller

        if self._puller is None:
            self._puller = ModelPuller(on_change=self._refresh_tray,
                                       on_ready=self._model_downloaded,
                                       on_error=self._model_download_failed)
        if not self._puller.start(model_id):
            self.notify("Model download", "Another model is being downloaded; wait for it.")

    def _refresh_tray(self) -> None:
        if self.tray is not None:
            self.tray.refresh_menu()

    def _model_downloaded(self, model_id: str) -> None:
        """Download thread: every file is verified; the worker switches to the model."""
        self._scan_downloadable()
        self.events("model_downloaded", id=model_id)
        self.post(Command.SELECT_MODEL, model_id)

    def _model_download_failed(self, model_id: str, message: str) -> None:
        self.events("error", message=message)
        self.notify("Model not downloaded", f"{message} Still using {self.model_name}.")

    def _scan_downloadable(self) -> None:
        from dictation.model_pull import downloadable_models

        try:
            self._downloadable = downloadable_models()
        except DictationError as exc:
            log.warning("cannot list the downloadable models: %s", exc)

    def microphone_names(self) -> list[str]:
        return list(self.microphones)

    def current_microphone(self) -> str | None:
        mic = self.mic
        if mic is None or mic.spec is None:
            return None
        return mic.device.name if mic.device is not None else str(mic.spec)

    # --- user feedback --------------------------------------------------------------------
    def notify(self, title: str, body: str) -> None:
        """Tell the user (desktop notification when enabled; always the log)."""
        log.warning("%s: %s", title, body)
        if not self.config.ui.notifications:
            return
        if self.tray is not None:
            self.tray.notify(title, body)
        else:
            notify_send(title, body)

    def set_state(self, state: State, error: str | None = None) -> None:
        self.state = state
        self.error = error if state is State.ERROR else None
        self.events("state", state=state.value)
        if self.tray is not None:
            from dictation.tray import TrayState

            shown = TrayState.IDLE if state is State.STARTING else TrayState(state.value)
            detail = f"loading {self.model_name}" if state is State.STARTING else self.model_name
            self.tray.set_state(shown, error or self._with_routes(detail))

    def _with_routes(self, detail: str) -> str:
        """The tray tooltip: ``detail``, then the typing/hotkey routes when known."""
        return detail if self.routes is None else f"{detail}\n{self.routes.short()}"

    def _fail(self, error: DictationError, title: str = NOTIFY_TITLE) -> None:
        """Enter the error state and tell the user why."""
        self.events("error", message=str(error))
        self.set_state(State.ERROR, str(error))
        self.notify(title, str(error))

    # --- start-up and shut-down -----------------------------------------------------------
    def startup(self) -> None:
        """Open the microphone, start the hotkey, pick the typing back-end, load the model,
        wait until the hotkey hears keys; then print the ready line. A missing microphone
        raises DeviceError without a tray; with one the app shows the error and keeps running.
        """
        from dictation.audio.mic import Microphone, list_input_devices

        self.set_state(State.STARTING)
        self.mic = Microphone(self.config.audio.microphone, block_s=MIC_BLOCK_S)
        mic_error: DeviceError | None = None
        try:
            self.mic.open()
        except DeviceError as exc:
            mic_error = exc
            self.notify("No microphone", str(exc))
            if not self.with_tray:
                raise
        with contextlib.suppress(DeviceError):
            self.microphones = [d.name for d in list_input_devices()]
        self._start_hotkey()
        self._choose_injectors()
        self._open_journal()
        self.models = available_models()
        self._scan_downloadable()
        self._next_model_scan = self._clock() + MODEL_SCAN_S
        self._load_initial_model()
        release_free_memory()  # the checkpoint read while loading
        if self.hotkey is not None and not self.hotkey.wait_live(LIVE_TIMEOUT_S):
            error = self.hotkey.error or DictationError(
                f"the hotkey listener did not start within {LIVE_TIMEOUT_S:g} s")
            self.notify("Hotkey unavailable", f"{error}; use the tray menu or "
                                              "`dictation toggle`")
        if mic_error is not None:
            self.events("error", message=str(mic_error))
            self.set_state(State.ERROR, str(mic_error))
        else:
            self.set_state(State.IDLE)
        self._next_poll = self._clock() + IDLE_POLL_S
        print(READY_LINE, file=sys.stderr, flush=True)
        self.events("ready", model=self.model_name, state=self.state.value)

    def _start_hotkey(self) -> None:
        from dictation.hotkey import HotkeyListener

        hk = self.config.hotkey
        if self.desktop.wayland:
            self._start_wayland_hotkey()
            return
        self._hotkey_route = ("double tap", f"{hk.key}, heard through pynput")
        listener = HotkeyListener(self.on_hotkey, hk.key, hk.double_tap_window_s, hk.max_tap_s)
        # typing presses Shift_L / Control_L only: any other hotkey tapped while text is being
        # typed is the user's (e.g. the stop tap right after speaking)
        listener.detector.mute_hotkey = listener.key in TYPING_KEYS
        try:
            listener.start()
        except DictationError as exc:
            self.notify("Hotkey unavailable", f"{exc}; use the tray menu or `dictation toggle`")
            self._hotkey_route = ("none", str(exc))
            return
        self.hotkey = listener

    def _start_wayland_hotkey(self) -> None:
        """Wayland gives no application global keys: the desktop's shortcut runs `dictation
        toggle` (control socket); with ``hotkey.evdev`` a /dev/input listener hears the double
        tap as well."""
        from dictation.session import WAYLAND_SHORTCUT_HINT

        route = ("desktop shortcut", f"Wayland has no global keys for apps: "
                                     f"{WAYLAND_SHORTCUT_HINT}")
        if self.config.hotkey.evdev:
            from dictation.hotkey_evdev import EvdevHotkeyListener

            hk = self.config.hotkey
            listener = EvdevHotkeyListener(self.on_hotkey, hk.key, hk.double_tap_window_s,
                                           hk.max_tap_s)
            try:
                listener.start()
            except DictationError as exc:
                self.notify("Hotkey unavailable", f"{exc}; {WAYLAND_SHORTCUT_HINT}")
            else:
                self.hotkey = listener
                route = ("evdev double tap + desktop shortcut",
                         f"{hk.key} read from {', '.join(listener.device_names)} "
                         "(hotkey.evdev = true)")
        self._hotkey_route = route

    def _typing_muted(self) -> AbstractContextManager[None]:
        return self.hotkey.muted() if self.hotkey is not None else contextlib.nullcontext()

    def _choose_injectors(self) -> None:
        from dictation.inject import PASTE_BACKEND, choose_backend, skipped_before

        typing = self.config.typing
        typing_name: str | None = None
        why = "chosen in the configuration" if typing.backend != "auto" else \
            f"the first that works on {self.desktop.label()}"
        try:
            injector = choose_backend(typing.backend, self.desktop.kind)
            typing_name = injector.name
            if typing.backend == "auto":
                why = "; ".join([why, *skipped_before(injector.name, self.desktop.kind)])
            self.output.injector = (GuardedXTestTyping(self.modifiers)
                                    if injector.name == "xtest" else injector)
        except DictationError as exc:
            self.output.injector = None
            why = str(exc)
            self.notify("Cannot type", f"{exc}. Dictated text goes to the clipboard and the "
                                       "journal instead.")
        self.output.paster = None
        paste_backend = PASTE_BACKEND.get(self.desktop.kind)
        if typing.terminal_mode == "paste" and paste_backend is not None:
            try:
                self.output.paster = choose_backend(paste_backend, self.desktop.kind)
            except DictationError as exc:
                log.info("no clipboard paste for terminals (%s); typing into them instead", exc)
        self.routes = plan_routes(
            self.desktop, typing=typing_name, typing_why=why,
            paster=paste_backend if self.output.paster is not None else None,
            hotkey=self._hotkey_route[0], hotkey_why=self._hotkey_route[1])
        for line in self.routes.lines():
            log.info("%s", line)
        if self.routes.focus.name == "off" and self.desktop.wayland:
            log.warning("focus latch off: %s", self.routes.focus.why)

    def _open_journal(self) -> None:
        from dictation.output.journal import TranscriptJournal

        self.journal = None
        if self.config.journal.enabled:
            self.journal = TranscriptJournal(self.config.journal.path)
            try:
                self.journal.ensure_writable()
                history.prune(self.journal.path, self.config.journal.retention_days,
                              datetime.now().astimezone())
                self.recent = [e.text for e in reversed(self.journal.read_recent(RECENT_TEXTS))]
            except DictationError as exc:
                self.notify("Journal", str(exc))
        self.output.journal = self.journal

    def _load(self, name: str) -> Recognizer:
        spec = self.models.get(name, name)
        if self._load_model is not None:
            return self._load_model(spec)
        from dictation.asr.recognizer import load_recognizer
        from dictation.integrity import check_recognizer

        recognizer = load_recognizer(spec, compute=self.config.recognizer.compute)
        check_recognizer(recognizer)  # corrupt weights: a ModelError naming the file
        return recognizer

    def _load_initial_model(self) -> None:
        from dictation.asr.catalog import FALLBACK_MODEL_ID

        try:
            self.recognizer = self._load(self.model_name)
            return
        except ModelError as exc:
            if not self.with_tray or self.model_name == FALLBACK_MODEL_ID:
                raise
            self.notify("Model", f"{exc} Using {FALLBACK_MODEL_ID} instead.")
        self.model_name = FALLBACK_MODEL_ID
        self.recognizer = self._load(FALLBACK_MODEL_ID)

    def shutdown(self) -> None:
        """Stop listening (delivering what is left), the hotkey and the microphone."""
        if self.state is State.LISTENING:
            self._stop()
        if self.hotkey is not None:
            self.hotkey.stop()
            self.hotkey = None
        if self.mic is not None:
            self.mic.close()
        self.modifiers.close()

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        """start-up, then :meth:`step` until ``quit``; returns the exit code."""
        try:
            self.startup()
            while not self.quitting:
                self.step()
        finally:
            self.shutdown()
        return self.exit_code

    def step(self) -> None:
        """One turn of the loop: read and recognize audio while listening, handle at most one
        command, and poll config/microphone when due while not listening."""
        if self.state is State.LISTENING:
            self.listen_tick()
            timeout = LISTEN_POLL_S
        else:
            timeout = min(IDLE_POLL_S, max(0.0, self._next_poll - self._clock()))
        try:
            request: Request | None = self.commands.get(timeout=timeout)
        except queue.Empty:
            request = None
        if request is not None:
            self._guarded(self.handle, request)
        if self.state is not State.LISTENING and self._clock() >= self._next_poll:
            self._guarded(self.idle_poll)
            self._next_poll = self._clock() + IDLE_POLL_S

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        """Run ``work``; an unexpected exception ends the dictation instead of the app."""
        try:
            work(*args)
        except Exception as exc:
            log.exception("internal error")
            self.events("error", message=repr(exc))
            self.notify(NOTIFY_TITLE, f"Internal error: {exc!r}. Dictated text is in the "
                                      "journal.")
            with contextlib.suppress(Exception):
                self.output.end()
            if self.mic is not None:
                self.mic.stop_capture()
            self._close_spool()
            self.session = self.cursor = None
            if self.hotkey is not None:
                self.hotkey.set_active(False)
            if self.state in (State.LISTENING, State.FINISHING):
                self.set_state(State.IDLE)

    def handle(self, request: Request) -> None:
        """Carry out one request (on the worker), through :data:`dictation.commands.HANDLERS`.
        """
        dispatch(self, request)

    # --- command handlers (dictation.commands.CommandHandlers) -----------------------------
    @property
    def listening(self) -> bool:
        return self.state is State.LISTENING

    def start_dictation(self, trigger: Trigger | None = None) -> None:
        self._start(trigger)

    def stop_dictation(self, trigger: Trigger | None = None) -> None:
        if self.state is State.LISTENING:
            self._stop(trigger)

    def quit(self) -> None:
        self.quitting = True

    def select_model(self, name: str) -> None:
        if self.state is State.LISTENING:
            self._pending_model = name  # switched once this dictation ends
        else:
            self._switch_model(name)

    def select_microphone(self, name: str | None) -> None:
        self._switch_microphone(name)

    # --- dictation ------------------------------------------------------------------------
    def _start(self, trigger: Trigger | None = None) -> None:
        if self.state is State.ERROR:
            self.notify("Cannot start dictation", self.error or "see the log")
            return
        if self.state is not State.IDLE or self.mic is None or self.recognizer is None:
            return
        try:
            self.cursor = self.mic.start_capture(self.config.audio.pre_roll_s,
                                                 at=trigger.at if trigger else None)
        except DeviceError as exc:
            self._fail(exc, "Microphone")
            return
        self.session = self.recognizer.open_session(streaming_config(
            self.config.recognizer, bias_phrases(self.config.replacements)))
        self._base_streaming = self.session.config  # the family's settings filled in
        self.spool = AudioSpool(self.cursor.start_position)
        self.drain = CaptureDrain(self.cursor, self.spool)
        if self.drain_in_thread:
            self.drain.start()
        self.pressure = BackPressure()
        self._gaps_reported = 0
        self._audio_seen = False
        self._dead_input = DeadInputDetector()
        self._stop_asked_at = None
        if self.hotkey is not None:
            self.hotkey.set_active(True)
        self.set_state(State.LISTENING)
        if self.config.ui.audio_cues:
            self.mic.play_cue("start")
        last_key = self.hotkey.take_last_key() if self.hotkey is not None else None
        self.output.begin(trigger.window if trigger is not None else "now", last_key)

    def listen_tick(self) -> None:
        """Recognize the audio that arrived since the last tick and deliver what it commits."""
        assert self.cursor is not None and self.session is not None
        assert self.spool is not None and self.drain is not None
        self.drain.drain_once()
        self._apply_back_pressure()
        pcm = self.spool.read(self._hold_position())
        self._report_gaps()
        if len(pcm):
            if not self._audio_seen:
                self._audio_seen = True
                self.events("recording_started", samples=len(pcm))
            self._watch_input(pcm)
            for event in self.session.feed(pcm):
                self.output.handle(event)
                if isinstance(event, EndOfSegment):
                    self._trim_memory()
        elif self.mic is not None and self.mic.error is not None:
            error = self.mic.error
            self._stop()
            self._fail(error, "Microphone")

    def _watch_input(self, pcm: np.ndarray) -> None:
        """Tell the user when the microphone delivers exact digital silence (muted, or the
        recording moved to a silent source: :mod:`dictation.audio.dead_input`), and when its
        signal is back. Listening goes on either way."""
        change = self._dead_input.feed(pcm)
        if change is None:
            return
        device = self.mic.device if self.mic is not None else None
        name = device.name if device is not None else "The microphone"
        if change is InputChange.DEAD:
            self.events("input_silent", seconds=round(self._dead_input.silent_s, 2))
            message = (f"{name} has delivered no signal at all for "
                       f"{self._dead_input.silent_s:.0f} s: it may be muted, or unplugged and "
                       "the sound server moved the recording to another source. Check the "
                       "system's sound settings or pick a microphone in the tray menu; "
                       "dictation goes on.")
            log.warning("%s", message)
            self.notify("Microphone silent", message)
            self._show_listening("no microphone signal")
        else:
            self.events("input_back")
            log.info("%s delivers a signal again", name)
            self._show_listening()

    def _show_listening(self, note: str | None = None) -> None:
        """The tray's listening state, its tooltip with ``note`` (a problem of this
        dictation) after the model's name."""
        if self.tray is None:
            return
        from dictation.tray import TrayState

        detail = self.model_name if note is None else f"{self.model_name}: {note}"
        self.tray.set_state(TrayState.LISTENING, self._with_routes(detail))

    def _trim_memory(self) -> None:
        """Give free heap pages back, at most every :data:`MEMORY_TRIM_S`."""
        now = self._clock()
        if now - self._trimmed_at >= MEMORY_TRIM_S:
            self._trimmed_at = now
            release_free_memory()

    def _apply_back_pressure(self) -> None:
        """Cut the recognizer's work down while it is behind, in the order
        :mod:`dictation.audio.spool` states; back to normal once it caught up."""
        assert self.spool is not None and self.session is not None
        backlog_s = self.spool.pending / SAMPLE_RATE
        level = self.pressure.level
        if self.pressure.update(backlog_s) == level or self._base_streaming is None:
            return
        from dataclasses import replace

        from dictation.audio.spool import SLOW_DECODE_FACTOR

        base = self._base_streaming
        config = base
        if self.pressure.level == 1:  # fewer intermediate decodes
            config = replace(base, decode_interval_s=base.decode_interval_s * SLOW_DECODE_FACTOR)
        elif self.pressure.level == 2:  # commit at segment endpoints only
            config = replace(base, catch_up_s=0.0)
        self.session.config = config
        self.events("back_pressure", level=self.pressure.level, backlog_s=round(backlog_s, 2))
        log.info("recognizer %.1f s behind: back-pressure level %d", backlog_s,
                 self.pressure.level)

    def _report_gaps(self) -> None:
        """Speech that could not be kept (spool full, file unwritable, ring overrun) is marked
        in the journal and the user is told, once per gap."""
        assert self.spool is not None
        gaps = self.spool.gaps
        for start, end in gaps[self._gaps_reported:]:
            seconds = (end - start) / SAMPLE_RATE
            self.events("audio_dropped", seconds=round(seconds, 3), at_sample=start)
            self.output.mark_gap(seconds)
            self._show_listening(f"{seconds:.1f} s of speech lost")  # while this dictation runs
        self._gaps_reported = len(gaps)

    def _close_spool(self) -> None:
        if self.drain is not None:
            self.drain.stop()
        if self.spool is not None:
            self.spool.close()
        self.drain = self.spool = None

    def _hold_position(self) -> int | None:
        """Ring position from which audio waits (None: none waits): the start of a hotkey press
        that may be the stop tap, or of a stop asked for and not yet handled. So audio after
        the stop is never recognized, however late the worker handles the stop."""
        times = [self._stop_asked_at]
        if self.hotkey is not None:
            times.append(self.hotkey.hold_since())
        since = min((t for t in times if t is not None), default=None)
        if since is None or self.mic is None:
            return None
        return self.mic.position_at(since)

    def _stop(self, trigger: Trigger | None = None) -> None:
        """End the capture at the stop (the tap's time), recognize the rest, deliver it; back
        to idle."""
        assert self.mic is not None and self.session is not None
        at = trigger.at if trigger is not None else None
        self.events("stopped", late_s=None if at is None else round(self._clock() - at, 3))
        if self.hotkey is not None:
            self.hotkey.set_active(False)
        self.set_state(State.FINISHING)
        cursor = self.mic.stop_capture(at) or self.cursor
        self._stop_asked_at = None
        if self.config.ui.audio_cues:
            self.mic.play_cue("stop")
        started = time.perf_counter()
        rest = np.zeros(0, dtype=np.float32)
        if self.drain is not None and self.spool is not None:
            self.drain.finish()
            # the drain may have moved audio from after the stop already: never recognized
            rest = self.spool.read(cursor.end_position if cursor is not None else None)
            self._report_gaps()
        self._close_spool()
        events = self.session.feed(rest) if len(rest) else []
        events += self.session.finish()
        recognized = time.perf_counter()
        for event in events:
            self.output.handle(event)
        self.output.end()
        if self.output.last_text and self.output.last_text not in self.recent[:1]:
            self.recent = [self.output.last_text, *self.recent][:RECENT_TEXTS]
        if self.hotkey is not None:
            self.hotkey.take_last_key()  # keys pressed while dictating do not count for the next
        capture: dict[str, int] = {}
        if cursor is not None and cursor.end_position is not None:
            capture = {"capture_start": cursor.start_position, "capture_end": cursor.end_position}
        self.events("finished", rest_s=round(len(rest) / SAMPLE_RATE, 3), **capture,
                    recognize_s=round(recognized - started, 3),
                    deliver_s=round(time.perf_counter() - recognized, 3))
        self.session = self.cursor = None
        self.set_state(State.IDLE)
        if self._pending_model is not None:
            name, self._pending_model = self._pending_model, None
            self._switch_model(name)
        release_free_memory()  # the session's buffers, kept by the C heap otherwise

    # --- idle work ------------------------------------------------------------------------
    def idle_poll(self) -> None:
        """Apply config file changes, notice a failed microphone (and retry it), look for new
        models."""
        if self.watcher is not None:
            changed = self.watcher.poll()
            if changed is not None:
                self._apply_config(*changed)
        mic = self.mic
        if mic is not None and self.state is State.IDLE:
            try:
                mic.check()
            except DeviceError as exc:
                self._fail(exc, "Microphone")
                self._next_mic_retry = self._clock() + MIC_RETRY_S
        elif mic is not None and self.state is State.ERROR and self._clock() >= \
                self._next_mic_retry:
            self._next_mic_retry = self._clock() + MIC_RETRY_S
            try:
                mic.reopen(mic.spec, refresh=True)  # a sound server may have (re)started
            except DeviceError as exc:
                log.info("microphone still unavailable: %s", exc)
            else:
                from dictation.audio.mic import list_input_devices

                with contextlib.suppress(DeviceError):
                    self.microphones = [d.name for d in list_input_devices()]
                self.set_state(State.IDLE)
                self.notify("Microphone", f"{mic.device} works again.")
        if self._clock() >= self._next_model_scan:
            self._next_model_scan = self._clock() + MODEL_SCAN_S
            models = available_models()
            self._scan_downloadable()
            if models != self.models:
                self.models = models
                if self.tray is not None:
                    self.tray.refresh_menu()

    def _apply_config(self, config: Config, error: ConfigError | None) -> None:
        if error is not None:
            self.events("error", message=str(error))
            self.notify("Settings not applied", f"{error}. Still using the previous settings.")
            return
        old, self.config = self.config, config
        log.info("configuration reloaded")
        self.output.settings = output_settings(config)
        if config.typing != old.typing:
            self._choose_injectors()
        if config.journal != old.journal:
            self._open_journal()
        if config.hotkey != old.hotkey and self.hotkey is not None:
            self.hotkey.stop()
            self.hotkey = None
            self._start_hotkey()
        if config.audio.microphone != old.audio.microphone:
            self._switch_microphone(config.audio.microphone)
        if config.recognizer.model != old.recognizer.model:
            self.select_model(config.recognizer.model)

    def _switch_model(self, name: str) -> None:
        if name == self.model_name and self.recognizer is not None:
            return
        log.info("loading model %s", name)
        try:
            recognizer = self._load(name)
        except ModelError as exc:
            self.events("error", message=str(exc))
            self.notify("Model not changed", f"{exc} Still using {self.model_name}.")
            return
        self.recognizer, self.model_name = recognizer, name
        release_free_memory()  # the previous model
        self.events("model_switched", id=name)
        self.set_state(self.state, self.error)  # tooltip shows the model
        if self.tray is not None:
            self.tray.refresh_menu()

    def _switch_microphone(self, spec: str | int | None) -> None:
        if self.mic is None:
            return
        try:
            self.mic.reopen(spec)
        except DeviceError as exc:
            self.events("error", message=str(exc))
            if self.mic.is_open and self.mic.error is None and self.state is State.ERROR:
                self.set_state(State.IDLE)  # the previous microphone works again
            self.notify("Microphone not changed", str(exc))
            return
        log.info("microphone: %s", self.mic.device)
        if self.state is State.ERROR:
            self.set_state(State.IDLE)
        if self.tray is not None:
            self.tray.refresh_menu()

    def recent_texts(self) -> list[str]:
        """The newest dictated texts, newest first (the tray's Recent submenu)."""
        return list(self.recent)

    def copy_text(self, text: str) -> None:
        """Put ``text`` (one of :meth:`recent_texts`) on the clipboard (tray thread)."""
        from dictation.inject.clipboard import copy_to_clipboard

        try:
            copy_to_clipboard(text)
        except DictationError as exc:
            self.notify("Copy failed", str(exc))

    def copy_last(self) -> None:
        from dictation.inject.clipboard import copy_to_clipboard

        text = self.output.last_text  # the last dictation of this run
        if not text and self.journal is not None:  # else of an earlier run
            with contextlib.suppress(DictationError):
                text = self.journal.last_text()
        if not text:
            self.notify(NOTIFY_TITLE, "Nothing dictated yet.")
            return
        try:
            copy_to_clipboard(text)
        except DictationError as exc:
            self.notify("Copy failed", str(exc))

    def open_settings(self) -> None:
        from dictation.config import write_default_config

        path = self.watcher.path if self.watcher is not None else default_config_path()
        if not path.exists():
            with contextlib.suppress(ConfigError):
                write_default_config(path)
        opener = shutil.which("xdg-open") or shutil.which("open")
        if opener is None:
            self.notify("Settings", f"Edit {path}; changes apply when you save it.")
            return
        subprocess.Popen([opener, str(path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


# --------------------------------------------------------------------------- entry point


@contextlib.contextmanager
def _signals_post_quit(app: DictationApp) -> Iterator[None]:
    """SIGTERM / SIGINT (and SIGHUP) ask the worker to quit (SimpleQueue.put is reentrant)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = ("SIGTERM", "SIGINT", "SIGHUP")
    sigs = [getattr(signal, n) for n in names if hasattr(signal, n)]
    saved = {s: signal.getsignal(s) for s in sigs}

    def on_signal(signum: int, _frame: Any) -> None:
        app.post(Command.QUIT)

    for s in sigs:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _configure_logging() -> None:
    from dictation.logfile import add_log_file

    level = os.environ.get("DICTATION_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="dictation: %(levelname)s %(name)s: %(message)s")
    add_log_file()


def _tray_actions(app: DictationApp) -> Any:
    from dictation.tray import TrayActions

    return TrayActions(
        post=app.post,
        models=app.model_names,
        current_model=app.current_model,
        microphones=app.microphone_names,
        current_microphone=app.current_microphone,
        recent=app.recent_texts,
        on_copy_text=app.copy_text,
        downloadable=app.downloadable_models,
        on_download=app.download_model,
        download_status=app.download_status,
    )


def _run_with_tray(app: DictationApp) -> int:
    """Tray event loop on this (main) thread, the worker on its own; falls back to no tray
    when no tray can be shown."""
    from dictation.tray import Tray, TrayError

    tray = Tray(_tray_actions(app))
    worker_error: list[BaseException] = []

    def work() -> None:
        try:
            app.run()
        except BaseException as exc:  # reported on the main thread after the tray stopped
            worker_error.append(exc)
        finally:
            tray.stop()

    def setup(_tray: Tray) -> None:
        threading.Thread(target=work, name="dictation-worker", daemon=True).start()

    app.tray = tray
    try:
        tray.run(setup)
    except TrayError as exc:
        app.tray = None
        log.warning("%s Running without a tray icon.", exc)
        return app.run()
    if worker_error:
        raise worker_error[0]
    return app.exit_code


def run_app(config_path: Path | None, with_tray: bool) -> int:
    """``dictation app`` (tray) / ``dictation listen`` (no tray). Returns the exit code; raises
    DictationError (printed by the CLI, exit 2) for a bad config, a second instance, or (without
    the tray) a missing microphone or model."""
    from dictation.control import ControlServer

    _configure_logging()
    try:
        config = load_config(config_path)  # no file at the default location: the defaults
    except ConfigError as exc:  # started from a launcher, nobody sees the terminal
        log.error("%s", exc)
        notify_send("Dictation did not start", f"{exc}")
        raise
    watcher = ConfigWatcher(config_path or default_config_path(), config)
    app = DictationApp(watcher.config, watcher=watcher, with_tray=with_tray,
                       events=EventLog.from_env())
    server = ControlServer(app.on_control, commands=(*CONTROL_COMMANDS, Command.QUIT))
    server.start()  # refuses a second instance before the slow start-up
    try:
        with _signals_post_quit(app):
            if with_tray:
                return _run_with_tray(app)
            return app.run()
    finally:
        server.stop()
