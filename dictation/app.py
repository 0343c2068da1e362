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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dictation import SAMPLE_RATE
from dictation.config import (
    Config,
    ConfigWatcher,
    RecognizerConfig,
    default_config_path,
    load_config,
)
from dictation.errors import ConfigError, DeviceError, DictationError, ModelError
from dictation.eventlog import EventLog
from dictation.inject.keystate import GuardedXTestTyping, ModifierWatch
from dictation.output.pipeline import NOTIFY_TITLE, OutputPipeline, OutputSettings
from dictation.output.replacements import ReplacementRules

if TYPE_CHECKING:
    from dictation.asr.recognizer import Recognizer
    from dictation.asr.whisper.streaming import StreamingConfig, StreamingSession
    from dictation.audio.mic import CaptureCursor, Microphone
    from dictation.hotkey import Action, HotkeyListener
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
MIC_BLOCK_S = 0.1
"""Seconds of audio per microphone callback. The stream runs all the time (pre-roll), so this
sets the idle cost: 0.02 s blocks cost ~1.9 % of a core, 0.1 s blocks ~0.8 % (measured on the
harness); the worker reads every ~40 ms plus decode time, so larger blocks add little lag."""
LIVE_TIMEOUT_S = 10.0
"""Seconds to wait for the hotkey listener to hear keys at start-up."""
READY_LINE = "dictation: ready"
TYPING_KEYS = frozenset({"shift_l", "ctrl_l"})
"""Hotkeys the typing back-ends press themselves (capitals, Ctrl+V): muted while typing."""


class State(enum.StrEnum):
    """What the app is doing (``dictation status`` and the tray show it)."""

    STARTING = "starting"
    IDLE = "idle"
    LISTENING = "listening"
    FINISHING = "finishing"
    ERROR = "error"


@dataclass(frozen=True)
class Command:
    """Work for the worker: ``start``, ``stop``, ``toggle``, ``quit``, ``select_model``
    (arg: model name), ``select_mic`` (arg: device name, None = system default),
    ``copy_last``, ``open_settings``."""

    name: str
    arg: str | None = None


COMMAND_NAMES = ("start", "stop", "toggle", "quit", "select_model", "select_mic", "copy_last",
                 "open_settings")


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


def streaming_config(rc: RecognizerConfig) -> StreamingConfig:
    """The streaming session settings of the ``[recognizer]`` config."""
    from dictation.asr.whisper.streaming import StreamingConfig
    from dictation.audio.segmenter import SegmenterConfig

    release = min(SegmenterConfig.release, rc.vad_threshold)
    segmenter = SegmenterConfig(threshold=rc.vad_threshold, release=release,
                                endpoint_silence_s=rc.endpoint_silence_s,
                                max_segment_s=rc.max_segment_s,
                                cut_search_s=min(SegmenterConfig.cut_search_s,
                                                 rc.max_segment_s / 2))
    return StreamingConfig(segmenter=segmenter, decode_interval_s=rc.decode_interval_s)


def output_settings(config: Config) -> OutputSettings:
    return OutputSettings(terminal_classes=config.typing.terminal_classes,
                          terminal_mode=config.typing.terminal_mode,
                          rules=ReplacementRules(config.replacements))


def notify_send(title: str, body: str) -> None:
    """A desktop notification without a tray (notify-send), else only the log."""
    exe = shutil.which("notify-send")
    if exe is None:
        return
    try:
        subprocess.run([exe, "--app-name", NOTIFY_TITLE, title, body], timeout=5, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("notify-send failed: %s", exc)


# --------------------------------------------------------------------------- the app


class DictationApp:
    """The worker and everything it owns. Collaborators (recognizer, microphone, output
    pipeline, hotkey) are created by :meth:`startup`; tests may set them directly and drive
    :meth:`handle`, :meth:`listen_tick` and :meth:`idle_poll` without threads."""

    def __init__(self, config: Config, *, watcher: ConfigWatcher | None = None,
                 with_tray: bool = False, events: EventLog | None = None,
                 load_model: Callable[[str], Recognizer] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.watcher = watcher
        self.with_tray = with_tray
        self.events = events or EventLog(None)
        self._load_model = load_model
        self._clock = clock
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
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
        self.modifiers = ModifierWatch()
        self.output = OutputPipeline(None, output_settings(config), notify=self.notify,
                                     muted=self._typing_muted, log_event=self.events,
                                     wait_keys=self.modifiers.wait_released)
        self.journal: TranscriptJournal | None = None
        self.session: StreamingSession | None = None
        self.cursor: CaptureCursor | None = None
        self.quitting = False
        self.exit_code = 0
        self._pending_model: str | None = None
        self._audio_seen = False
        self._next_poll = 0.0
        self._next_model_scan = 0.0
        self._next_mic_retry = 0.0

    # --- edges: called from other threads -------------------------------------------------
    def post(self, command: Command) -> None:
        """Queue work for the worker (any thread, also signal handlers)."""
        self.commands.put(command)

    def on_hotkey(self, action: Action) -> None:
        """HotkeyListener callback (listener thread)."""
        self.events("hotkey", action=action.value)
        self.post(Command(action.value))

    def on_control(self, command: str) -> str:
        """ControlServer handler (its thread): queue the command, answer at once."""
        if command == "status":
            return self.status()
        state = self.state
        if command == "start" and state is not State.IDLE:
            return f"not started: {self.status()}"
        if command == "stop" and state is not State.LISTENING:
            return f"not stopped: {self.status()}"
        self.post(Command(command))
        return f"{command} requested (was {state.value})"

    def status(self) -> str:
        """One line: state, model, microphone (and the error)."""
        mic = self.current_microphone() or "default"
        text = f"{self.state.value} model={self.model_name} mic={mic}"
        return f"{text} error={self.error}" if self.state is State.ERROR and self.error else text

    # tray providers (tray thread): plain attribute reads
    def model_names(self) -> list[str]:
        names = list(self.models)
        return names if self.model_name in names else [*names, self.model_name]

    def current_model(self) -> str:
        return self.model_name

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
            self.tray.set_state(shown, error or detail)

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
        self._next_model_scan = self._clock() + MODEL_SCAN_S
        self._load_initial_model()
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
        listener = HotkeyListener(self.on_hotkey, hk.key, hk.double_tap_window_s, hk.max_tap_s)
        # typing presses Shift_L / Control_L only: any other hotkey tapped while text is being
        # typed is the user's (e.g. the stop tap right after speaking)
        listener.detector.mute_hotkey = listener.key in TYPING_KEYS
        try:
            listener.start()
        except DictationError as exc:
            self.notify("Hotkey unavailable", f"{exc}; use the tray menu or `dictation toggle`")
            return
        self.hotkey = listener

    def _typing_muted(self) -> AbstractContextManager[None]:
        return self.hotkey.muted() if self.hotkey is not None else contextlib.nullcontext()

    def _choose_injectors(self) -> None:
        from dictation.inject import choose_backend

        typing = self.config.typing
        try:
            injector = choose_backend(typing.backend)
            self.output.injector = (GuardedXTestTyping(self.modifiers)
                                    if injector.name == "xtest" else injector)
        except DictationError as exc:
            self.output.injector = None
            self.notify("Cannot type", f"{exc}. Dictated text goes to the clipboard and the "
                                       "journal instead.")
        self.output.paster = None
        if typing.terminal_mode == "paste":
            try:
                self.output.paster = choose_backend("clipboard")
            except DictationError as exc:
                log.info("no clipboard paste for terminals (%s); typing into them instead", exc)

    def _open_journal(self) -> None:
        from dictation.output.journal import TranscriptJournal

        self.journal = None
        if self.config.journal.enabled:
            self.journal = TranscriptJournal(self.config.journal.path)
            try:
                self.journal.ensure_writable()
            except DictationError as exc:
                self.notify("Journal", str(exc))
        self.output.journal = self.journal

    def _load(self, name: str) -> Recognizer:
        spec = self.models.get(name, name)
        if self._load_model is not None:
            return self._load_model(spec)
        from dictation.asr.recognizer import load_recognizer

        return load_recognizer(spec, compute=self.config.recognizer.compute)

    def _load_initial_model(self) -> None:
        from dictation.asr.catalog import DEFAULT_MODEL_ID

        try:
            self.recognizer = self._load(self.model_name)
            return
        except ModelError as exc:
            if not self.with_tray or self.model_name == DEFAULT_MODEL_ID:
                raise
            self.notify("Model", f"{exc} Using {DEFAULT_MODEL_ID} instead.")
        self.model_name = DEFAULT_MODEL_ID
        self.recognizer = self._load(DEFAULT_MODEL_ID)

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
            command: Command | None = self.commands.get(timeout=timeout)
        except queue.Empty:
            command = None
        if command is not None:
            self._guarded(self.handle, command)
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
            self.session = self.cursor = None
            if self.hotkey is not None:
                self.hotkey.set_active(False)
            if self.state in (State.LISTENING, State.FINISHING):
                self.set_state(State.IDLE)

    def handle(self, command: Command) -> None:
        """Carry out one command (on the worker)."""
        name = command.name
        if name == "toggle":
            name = "stop" if self.state is State.LISTENING else "start"
        if name == "start":
            self._start()
        elif name == "stop":
            if self.state is State.LISTENING:
                self._stop()
        elif name == "quit":
            self.quitting = True
        elif name == "select_model" and command.arg:
            if self.state is State.LISTENING:
                self._pending_model = command.arg  # switched once this dictation ends
            else:
                self._switch_model(command.arg)
        elif name == "select_mic":
            self._switch_microphone(command.arg)
        elif name == "copy_last":
            self._copy_last()
        elif name == "open_settings":
            self._open_settings()
        else:
            log.warning("unknown command %r", command)

    # --- dictation ------------------------------------------------------------------------
    def _start(self) -> None:
        if self.state is State.ERROR:
            self.notify("Cannot start dictation", self.error or "see the log")
            return
        if self.state is not State.IDLE or self.mic is None or self.recognizer is None:
            return
        try:
            self.cursor = self.mic.start_capture(self.config.audio.pre_roll_s)
        except DeviceError as exc:
            self._fail(exc, "Microphone")
            return
        self.session = self.recognizer.session(streaming_config(self.config.recognizer))
        self._audio_seen = False
        if self.hotkey is not None:
            self.hotkey.set_active(True)
        self.set_state(State.LISTENING)
        if self.config.ui.audio_cues:
            self.mic.play_cue("start")
        self.output.begin()

    def listen_tick(self) -> None:
        """Recognize the audio that arrived since the last tick and deliver what it commits."""
        assert self.cursor is not None and self.session is not None
        pcm = self.cursor.read()
        if len(pcm):
            if not self._audio_seen:
                self._audio_seen = True
                self.events("recording_started", samples=len(pcm))
            for event in self.session.feed(pcm):
                self.output.handle(event)
        elif self.mic is not None and self.mic.error is not None:
            error = self.mic.error
            self._stop()
            self._fail(error, "Microphone")

    def _stop(self) -> None:
        """End the capture, recognize the rest, deliver it; back to idle."""
        assert self.mic is not None and self.session is not None
        self.events("stopped")
        if self.hotkey is not None:
            self.hotkey.set_active(False)
        self.set_state(State.FINISHING)
        cursor = self.mic.stop_capture() or self.cursor
        if self.config.ui.audio_cues:
            self.mic.play_cue("stop")
        started = time.perf_counter()
        rest = cursor.read() if cursor is not None else np.zeros(0, dtype=np.float32)
        events = self.session.feed(rest) if len(rest) else []
        events += self.session.finish()
        recognized = time.perf_counter()
        for event in events:
            self.output.handle(event)
        self.output.end()
        self.events("finished", rest_s=round(len(rest) / SAMPLE_RATE, 3),
                    recognize_s=round(recognized - started, 3),
                    deliver_s=round(time.perf_counter() - recognized, 3))
        self.session = self.cursor = None
        self.set_state(State.IDLE)
        if self._pending_model is not None:
            name, self._pending_model = self._pending_model, None
            self._switch_model(name)

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
                mic.reopen(mic.spec)
            except DeviceError as exc:
                log.info("microphone still unavailable: %s", exc)
            else:
                self.set_state(State.IDLE)
                self.notify("Microphone", f"{mic.device} works again.")
        if self._clock() >= self._next_model_scan:
            self._next_model_scan = self._clock() + MODEL_SCAN_S
            models = available_models()
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
            self.handle(Command("select_model", config.recognizer.model))

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

    def _copy_last(self) -> None:
        from dictation.inject.clipboard import copy_to_clipboard

        text = None
        if self.journal is not None:
            with contextlib.suppress(DictationError):
                text = self.journal.last_text()
        text = text or self.output.last_text
        if not text:
            self.notify(NOTIFY_TITLE, "Nothing dictated yet.")
            return
        try:
            copy_to_clipboard(text)
        except DictationError as exc:
            self.notify("Copy failed", str(exc))

    def _open_settings(self) -> None:
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
        app.post(Command("quit"))

    for s in sigs:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _configure_logging() -> None:
    level = os.environ.get("DICTATION_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="dictation: %(levelname)s %(name)s: %(message)s")


def _tray_actions(app: DictationApp) -> Any:
    from dictation.tray import TrayActions

    def post(name: str) -> Callable[[], None]:
        return lambda: app.post(Command(name))

    return TrayActions(
        on_toggle=post("toggle"),
        on_select_model=lambda name: app.post(Command("select_model", name)),
        on_select_microphone=lambda name: app.post(Command("select_mic", name)),
        on_copy_last=post("copy_last"),
        on_open_settings=post("open_settings"),
        on_quit=post("quit"),
        models=app.model_names,
        current_model=app.current_model,
        microphones=app.microphone_names,
        current_microphone=app.current_microphone,
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
    from dictation.control import COMMANDS, ControlServer

    _configure_logging()
    config = load_config(config_path)  # no file at the default location: the defaults
    watcher = ConfigWatcher(config_path or default_config_path(), config)
    app = DictationApp(watcher.config, watcher=watcher, with_tray=with_tray,
                       events=EventLog.from_env())
    server = ControlServer(app.on_control, commands=(*COMMANDS, "quit"))
    server.start()  # refuses a second instance before the slow start-up
    try:
        with _signals_post_quit(app):
            if with_tray:
                return _run_with_tray(app)
            return app.run()
    finally:
        server.stop()
