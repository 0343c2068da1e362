"""``dictation doctor``: checks each part the app needs, in the order the app uses them, and
prints one line per check: ``PASS``/``FAIL`` (or ``SKIP`` when it cannot be checked here),
what was found, and for a failure what to do. The exit code is 1 when a check failed.

Checks: configuration; display server and desktop; hotkey route (the X11 listener hearing a
probe key, or the desktop-shortcut route on Wayland); microphone (records 1 s and reports its
level); typing route (types into a scratch window it opens and reads it back, where the
platform allows); voice activity detection; model load (weights checked) and a short
transcription of the recorded second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dictation import SAMPLE_RATE
from dictation.errors import DictationError

SCRATCH_TEXT = "dictation doctor ✓"
"""What the typing check types into its scratch window (non-ASCII on purpose)."""
SILENT_DBFS = -90.0
"""A recording below this level (dBFS) is silence: a muted or disconnected microphone."""


@dataclass(frozen=True)
class Result:
    name: str
    status: str
    """PASS, FAIL or SKIP."""
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.detail}"
        return f"{text}\n     fix: {self.fix}" if self.fix else text


class Doctor:
    """Runs the checks (see the module docstring); :attr:`results` collects them."""

    def __init__(self, config_path: object = None, out: Callable[[str], None] = print) -> None:
        self.config_path = config_path
        self.out = out
        self.results: list[Result] = []
        self.recording: np.ndarray | None = None

    def report(self, result: Result) -> None:
        self.results.append(result)
        self.out(result.line())

    def run(self) -> int:
        checks = (self.check_config, self.check_display, self.check_hotkey,
                  self.check_microphone, self.check_typing, self.check_vad, self.check_model)
        for check in checks:
            try:
                check()
            except Exception as exc:  # a check must never hide the others
                self.report(Result(check.__name__.removeprefix("check_"), "FAIL",
                                   f"the check itself failed: {exc!r}",
                                   "report this with the line above"))
        failed = [r for r in self.results if r.status == "FAIL"]
        self.out(f"{len(self.results) - len(failed)} of {len(self.results)} checks passed"
                 if failed else f"all {len(self.results)} checks passed (or were skipped)")
        return 1 if failed else 0

    # --- checks ---------------------------------------------------------------------------
    def check_config(self) -> None:
        from pathlib import Path

        from dictation.config import default_config_path, load_config

        path = Path(str(self.config_path)) if self.config_path else default_config_path()
        try:
            self.config = load_config(Path(str(self.config_path)) if self.config_path
                                      else None)
        except DictationError as exc:
            from dictation.config import Config

            self.config = Config()
            self.report(Result("config", "FAIL", str(exc),
                               f"edit {path} (`dictation config` prints every option)"))
            return
        where = str(path) if path.exists() else f"defaults ({path} does not exist)"
        self.report(Result("config", "PASS", where))

    def check_display(self) -> None:
        from dictation.inject import detect_session

        session = detect_session()
        desktop = os.environ.get("XDG_CURRENT_DESKTOP") or os.environ.get(
            "DESKTOP_SESSION") or "unknown desktop"
        display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY") or "-"
        if session == "unknown":
            self.report(Result("display", "FAIL", "no graphical session (neither DISPLAY nor "
                               "WAYLAND_DISPLAY is set)",
                               "run the app inside your desktop session"))
            return
        self.report(Result("display", "PASS", f"{session} ({display}), {desktop}"))

    def check_hotkey(self) -> None:
        from dictation.inject import detect_session

        session = detect_session()
        if session == "wayland":
            self.report(Result("hotkey", "PASS", "Wayland: global keys come from a desktop "
                               "shortcut running `dictation toggle`"))
            return
        from dictation.hotkey import HotkeyListener

        listener = HotkeyListener(lambda action, at: None, self.config.hotkey.key)
        try:
            listener.start()
            live = listener.wait_live(10)
        except DictationError as exc:
            self.report(Result("hotkey", "FAIL", str(exc), "use `dictation toggle` from a "
                               "desktop shortcut, or fix the display connection"))
            return
        finally:
            listener.stop()
        if not live:
            self.report(Result("hotkey", "FAIL", f"the key listener heard no key within 10 s "
                               f"({listener.error or 'no X RECORD events'})",
                               "the X server needs the RECORD extension; else use a desktop "
                               "shortcut running `dictation toggle`"))
            return
        self.report(Result("hotkey", "PASS", f"{self.config.hotkey.key} heard through the X "
                           "RECORD listener"))

    def check_microphone(self) -> None:
        from dictation.audio.mic import Microphone

        mic = Microphone(self.config.audio.microphone, block_s=0.05)
        try:
            mic.open()
            cursor = mic.start_capture(pre_roll_s=0.0)
            chunks: list[np.ndarray] = []
            deadline = time.monotonic() + 3.0
            while sum(map(len, chunks)) < SAMPLE_RATE and time.monotonic() < deadline:
                time.sleep(0.05)
                chunks.append(cursor.read())
            mic.check()
        except DictationError as exc:
            self.report(Result("microphone", "FAIL", str(exc),
                               "connect a microphone, start the sound server, or pick another "
                               "device with `dictation devices` and [audio] microphone"))
            return
        finally:
            mic.close()
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        self.recording = audio[:SAMPLE_RATE]
        if len(audio) < SAMPLE_RATE // 2:
            self.report(Result("microphone", "FAIL", f"{mic.device}: only {len(audio)} samples "
                               "in 3 s", "the device delivers no audio: pick another one"))
            return
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        level = 20 * np.log10(rms) if rms > 0 else float("-inf")
        if level < SILENT_DBFS:
            self.report(Result("microphone", "FAIL", f"{mic.device}: 1 s recorded, silent "
                               f"({level:.0f} dBFS)", "unmute the microphone or raise its "
                               "input volume (pavucontrol / system settings)"))
            return
        self.report(Result("microphone", "PASS", f"{mic.device}: 1 s recorded, level "
                           f"{level:.0f} dBFS (speech is about -30 to -10)"))

    def check_typing(self) -> None:
        from dictation.inject import choose_backend, detect_session

        try:
            injector = choose_backend(self.config.typing.backend)
        except DictationError as exc:
            self.report(Result("typing", "FAIL", str(exc), "install xdotool (X11) or wtype "
                               "(Wayland), or pick another [typing] backend"))
            return
        if detect_session() != "x11":
            self.report(Result("typing", "PASS", f"{injector.name} (not tried: the scratch "
                               "window is read back on X11 only)"))
            return
        typed = scratch_window_roundtrip(injector.type_text)
        if typed is None:
            self.report(Result("typing", "SKIP", f"{injector.name}: the scratch window did "
                               "not get the keyboard focus"))
        elif typed == SCRATCH_TEXT:
            self.report(Result("typing", "PASS", f"{injector.name} typed {SCRATCH_TEXT!r} into "
                               "a scratch window, read back exactly"))
        else:
            self.report(Result("typing", "FAIL", f"{injector.name} typed {typed!r} instead of "
                               f"{SCRATCH_TEXT!r}", "pick another [typing] backend "
                               "(xtest, xdotool, clipboard)"))

    def check_vad(self) -> None:
        from dictation.audio.vad import FRAME_SAMPLES, VadStream, load_vad_net

        try:
            vad = VadStream(load_vad_net())
        except (DictationError, OSError) as exc:
            self.report(Result("vad", "FAIL", str(exc), "reinstall dictation"))
            return
        silence = max(vad.probability(np.zeros(FRAME_SAMPLES, dtype=np.float32))
                      for _ in range(3))
        if silence >= self.config.recognizer.vad_threshold:
            self.report(Result("vad", "FAIL", f"silence scored as speech ({silence:.2f})",
                               "reinstall dictation (the VAD weights look damaged)"))
            return
        self.report(Result("vad", "PASS", f"Silero VAD loaded; silence scores {silence:.2f}"))

    def check_model(self) -> None:
        from dictation.asr.recognizer import load_recognizer
        from dictation.integrity import check_recognizer

        model = self.config.recognizer.model
        started = time.perf_counter()
        try:
            recognizer = load_recognizer(model, download=False, progress=False)
            check_recognizer(recognizer)
        except DictationError as exc:
            self.report(Result("model", "FAIL", str(exc), "`dictation models` lists what is "
                               "installed; set [recognizer] model"))
            return
        loaded = time.perf_counter() - started
        audio = self.recording if self.recording is not None and len(self.recording) else \
            np.zeros(SAMPLE_RATE, dtype=np.float32)
        started = time.perf_counter()
        text = recognizer.transcribe(audio)
        took = time.perf_counter() - started
        self.report(Result("model", "PASS", f"{model} loaded in {loaded:.1f} s; 1 s of the "
                           f"microphone transcribed in {took:.2f} s: {text!r}"))


def scratch_window_roundtrip(type_text: Callable[[str], None],
                             timeout_s: float = 10.0) -> str | None:
    """Open a small Tk text window, give it the keyboard focus, type :data:`SCRATCH_TEXT` with
    ``type_text`` and return what the window received (None: it never got the focus)."""
    import tkinter

    from dictation.output.focus import focused_window

    root = tkinter.Tk()
    root.title("dictation doctor")
    text = tkinter.Text(root, width=40, height=2)
    text.pack()
    done = threading.Event()
    errors: list[BaseException] = []
    try:
        deadline = time.monotonic() + timeout_s
        focused = False
        while time.monotonic() < deadline:
            root.update()
            root.focus_force()
            text.focus_set()
            root.update()
            window = focused_window()
            if window is not None and window.title == "dictation doctor":
                focused = True
                break
            time.sleep(0.05)
        if not focused:
            return None

        def work() -> None:
            try:
                type_text(SCRATCH_TEXT)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, daemon=True).start()
        while not done.is_set() and time.monotonic() < deadline:
            root.update()
            time.sleep(0.01)
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            root.update()
            time.sleep(0.01)
        if errors:
            raise errors[0]
        return text.get("1.0", "end-1c")
    finally:
        root.destroy()


def run_doctor(config_path: object = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return Doctor(config_path).run()
