"""Microphone capture: an always-open input stream feeding a 16 kHz ring buffer with pre-roll.

The input stream is opened once (at the device's native rate, or 16 kHz when the device takes
it), downmixed to mono and resampled to 16 kHz with soxr's streaming resampler inside the audio
callback, then written to a `RingBuffer`. Starting dictation only places a `CaptureCursor` at
"now minus pre-roll"; it never waits for a device to open.

Threads: the PortAudio callback (and its finished-callback) are the only other threads; they
touch nothing but the ring buffer and a few plain attributes. Everything else runs on the
caller's thread, and `RingBuffer` / `CaptureCursor` work without any device, so tests drive
them with plain arrays.

Key-event time -> audio position: the callback stamps each block with the caller's clock
(``time.monotonic`` by default, the clock the hotkey listener stamps key events with).
`Microphone.position_at(t)` maps a time to the ring position recorded then, so a capture can
start and end where the key was pressed, not where the worker happens to be (see
:func:`position_at_time`).

Audio cues: `play_cue()` mutes the next ``duration + cue_tail_s`` seconds of the ring (from
the current write position on), so a capture cursor reads zeros there and the beep never
reaches the recognizer. `mute_for()` exposes the same mechanism for other sounds.

sounddevice is imported lazily: PortAudio reads the audio environment (e.g. ``PULSE_SERVER``)
once, when it is first imported, so set the environment before the first call into this module
that touches a device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from dictation import SAMPLE_RATE
from dictation.errors import DeviceError

log = logging.getLogger(__name__)

DeviceSpec = str | int | None
"""None = the system's default input; int = a PortAudio device index; str = a case-insensitive
substring of the device name."""


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class InputDevice:
    """One audio input device as PortAudio reports it."""

    index: int
    name: str
    default_samplerate: float
    """Hz."""
    max_input_channels: int
    is_default: bool
    hostapi: str = ""

    def __str__(self) -> str:
        default = ", default" if self.is_default else ""
        return f"[{self.index}] {self.name} ({self.hostapi}{default})"


def _sounddevice() -> ModuleType:
    """Import sounddevice (which initialises PortAudio), turning a missing library into a
    DeviceError."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when libportaudio is missing
        raise DeviceError(
            f"PortAudio is not available ({e}). Install it (Debian/Ubuntu: "
            "`sudo apt install libportaudio2`) and start again."
        ) from e
    return sounddevice


def refresh_audio_system() -> None:
    """Make PortAudio look for sound servers and devices again. It lists them once, when it
    starts, so a sound server started (or restarted) or a microphone plugged in after that is
    only seen after a refresh. Call it with no stream open. Raises DeviceError."""
    sd = _sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as e:
        raise DeviceError(f"Cannot restart the audio system (PortAudio): {e}") from e


def list_input_devices() -> list[InputDevice]:
    """All devices with at least one input channel, in PortAudio's order."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise DeviceError(f"Cannot list audio devices: {e}") from e
    if default_in is None or default_in < 0:
        default_in = -1
    result = []
    for info in devices:
        if info["max_input_channels"] <= 0:
            continue
        result.append(
            InputDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                default_samplerate=float(info["default_samplerate"]),
                max_input_channels=int(info["max_input_channels"]),
                is_default=int(info["index"]) == int(default_in),
                hostapi=str(hostapis[info["hostapi"]]["name"]),
            )
        )
    return result


def _describe(devices: list[InputDevice]) -> str:
    if not devices:
        return "no input devices found (is a microphone connected and the sound server running?)"
    return "available inputs: " + "; ".join(str(d) for d in devices)


def find_device(spec: DeviceSpec, devices: list[InputDevice] | None = None) -> InputDevice:
    """Resolve a device spec (None = default input, int = index, str = case-insensitive name
    substring; an exact name match wins over substring matches). Raises DeviceError listing the
    available inputs when nothing (or more than one device) matches."""
    devices = list_input_devices() if devices is None else devices
    if spec is None:
        for d in devices:
            if d.is_default:
                return d
        if devices:
            return devices[0]
        raise DeviceError(f"No default microphone: {_describe(devices)}.")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        for d in devices:
            if d.index == index:
                return d
        raise DeviceError(
            f"No input device with index {index}; {_describe(devices)}. "
            "Choose one of these (index or part of the name)."
        )
    needle = spec.strip().casefold()
    exact = [d for d in devices if d.name.casefold() == needle]
    if exact:
        return exact[0]
    matches = [d for d in devices if needle in d.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(
            f"No input device matches {spec!r}; {_describe(devices)}. "
            "Choose one of these (index or part of the name)."
        )
    raise DeviceError(
        f"{spec!r} matches several input devices: {_describe(matches)}. "
        "Use more of the name, or the index."
    )


# --------------------------------------------------------------------------- time -> position

CLOCK_STAMPS = 256
"""(clock, position) stamps of the newest audio blocks kept to map times to positions (at
0.1 s blocks: the last 25.6 s; the clock offset is re-estimated from them, so a drift between
the sound card's and the system's clock never accumulates)."""


def position_at_time(t: float, stamps: Iterable[tuple[float, int]],
                     sample_rate: int = SAMPLE_RATE) -> int | None:
    """The absolute sample position captured at time ``t`` (seconds of the stamps' clock).

    ``stamps`` are ``(arrival time, position one past the block's last sample)`` of audio
    blocks. A block can only arrive after its last sample was captured, and arrives late by
    however long the audio thread waited, so ``arrival - position / rate`` is at least the true
    clock offset of sample 0: the heuristic *earliest-arrival anchor* takes its minimum over
    the stamps as the offset (the least delayed block). The result is never later than the
    true position at ``t`` (so a stop cut never includes audio from after the key press), and
    earlier by that block's delivery latency at most. None without stamps."""
    offset = min((arrived - position / sample_rate for arrived, position in stamps),
                 default=None)
    if offset is None:
        return None
    return int(np.floor((t - offset) * sample_rate))


# --------------------------------------------------------------------------- ring buffer


class RingBuffer:
    """Bounded ring of mono float32 samples addressed by absolute sample positions.

    Position 0 is the first sample ever written; `position` is one past the newest. When the
    ring is full, writing drops the oldest samples (counted in `overwritten`); it never blocks
    beyond a short copy under a lock. Intervals marked with `mute()` read back as zeros.
    """

    def __init__(self, capacity_s: float, sample_rate: int = SAMPLE_RATE) -> None:
        if capacity_s <= 0:
            raise ValueError(f"capacity_s must be > 0 seconds, got {capacity_s}")
        self.sample_rate = sample_rate
        self.capacity = max(1, int(round(capacity_s * sample_rate)))
        """Samples."""
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._end = 0
        self._mutes: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        """Absolute position (samples) one past the newest sample written."""
        return self._end

    @property
    def oldest_position(self) -> int:
        """Absolute position (samples) of the oldest sample still held."""
        return max(0, self._end - self.capacity)

    @property
    def overwritten(self) -> int:
        """Samples dropped so far because the ring was full."""
        return self.oldest_position

    def write(self, samples: np.ndarray) -> None:
        """Append mono samples (any float dtype; stored as float32)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        n = len(x)
        if n == 0:
            return
        with self._lock:
            end = self._end
            if n > self.capacity:  # only the newest `capacity` samples can survive
                x = x[n - self.capacity :]
                end += n - self.capacity
            start = end % self.capacity
            first = min(len(x), self.capacity - start)
            self._buf[start : start + first] = x[:first]
            self._buf[: len(x) - first] = x[first:]
            self._end += n

    def mute(self, start: int, end: int) -> None:
        """Make absolute positions [start, end) read back as zeros (also samples not yet
        written)."""
        if end <= start:
            return
        with self._lock:
            oldest = max(0, self._end - self.capacity)
            self._mutes = [(a, b) for a, b in self._mutes if b > oldest]
            self._mutes.append((start, end))

    def read_since(self, position: int, until: int | None = None) -> tuple[np.ndarray, int]:
        """Copy the samples from absolute `position` to `until` (default: the newest).

        Returns (samples, first): `first` is the absolute position of samples[0]; it is later
        than `position` when those samples were already overwritten (first - position were
        lost)."""
        with self._lock:
            end = self._end if until is None else min(until, self._end)
            first = max(position, self._end - self.capacity, 0)
            if end <= first:
                return np.zeros(0, dtype=np.float32), max(first, position)
            a, b = first % self.capacity, end % self.capacity
            wraps = b <= a  # the span runs over the end of the array
            out = np.concatenate((self._buf[a:], self._buf[:b])) if wraps else self._buf[a:b].copy()
            for m0, m1 in self._mutes:
                lo, hi = max(m0, first), min(m1, end)
                if lo < hi:
                    out[lo - first : hi - first] = 0.0
        return out, first


class CaptureCursor:
    """Reads one capture from a RingBuffer: every sample from `start_position` on, up to
    `end_position` once the capture is stopped.

    Works on a bare RingBuffer (no device), so tests can drive it directly."""

    def __init__(self, ring: RingBuffer, start_position: int) -> None:
        self.ring = ring
        self.start_position = start_position
        """Absolute sample position of the first sample this capture covers (pre-roll incl.)."""
        self.position = start_position
        """Absolute sample position of the next sample `read()` returns."""
        self.end_position: int | None = None
        """Set by `stop()`: absolute position one past the last sample of the capture."""
        self.dropped_samples = 0
        """Samples lost because the reader fell more than the ring's capacity behind."""

    def read(self, until: int | None = None) -> np.ndarray:
        """New 16 kHz float32 samples since the previous read (empty when nothing new), up to
        absolute position ``until`` when given (audio after it is left for a later read)."""
        end = self.end_position
        if until is not None:
            end = until if end is None else min(end, until)
        if end is not None and end <= self.position:
            return np.zeros(0, dtype=np.float32)
        samples, first = self.ring.read_since(self.position, end)
        if first > self.position:
            lost = first - self.position
            self.dropped_samples += lost
            log.warning(
                "capture fell %.2f s behind the %.0f s ring buffer; that audio was dropped",
                lost / self.ring.sample_rate,
                self.ring.capacity / self.ring.sample_rate,
            )
        self.position = first + len(samples)
        return samples

    def stop(self, at: int | None = None) -> None:
        """End the capture at absolute position `at` (default: the ring's current position)."""
        if self.end_position is None:
            self.end_position = self.ring.position if at is None else at

    @property
    def stopped(self) -> bool:
        return self.end_position is not None

    @property
    def done(self) -> bool:
        """Stopped and everything up to the end has been read."""
        return self.end_position is not None and self.position >= self.end_position


# --------------------------------------------------------------------------- microphone


def cue_tone(kind: str, sample_rate: int = 48_000) -> np.ndarray:
    """A short float32 beep: 'start' rises (660 -> 880 Hz), 'stop' falls; about 0.12 s."""
    if kind not in ("start", "stop"):
        raise ValueError(f"cue kind must be 'start' or 'stop', got {kind!r}")
    freqs = (660.0, 880.0) if kind == "start" else (880.0, 660.0)
    part = int(0.06 * sample_rate)
    t = np.arange(part) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    tone = np.concatenate([np.sin(2 * np.pi * f * t) * fade for f in freqs])
    return (0.25 * tone).astype(np.float32)


class Microphone:
    """An always-open input stream writing 16 kHz mono audio into a RingBuffer.

    Lifecycle: `open()` (or `with Microphone(...)`), any number of `start_capture()` /
    `stop_capture()`, `reopen(device)` to switch inputs, `close()`.

    Failures: a stream that ends without `close()` (device unplugged, sound server gone) or
    errors inside the callback set `error` and call `on_error` from the audio thread; `check()`
    also reports a stream that delivered no audio for `stall_timeout_s` seconds. Both raise or
    deliver a DeviceError whose message says what to do.
    """

    def __init__(
        self,
        device: DeviceSpec = None,
        *,
        buffer_s: float = 30.0,
        rate: int | None = None,
        block_s: float = 0.02,
        stall_timeout_s: float = 2.0,
        cue_tail_s: float = 0.3,
        on_error: Callable[[DeviceError], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec: DeviceSpec = device
        self.ring = RingBuffer(buffer_s)
        self.rate = rate
        """Stream rate to ask for, Hz; None = 16 kHz when the device takes it, else its default
        rate. Audio is resampled to 16 kHz either way."""
        self.block_s = block_s
        """Seconds of audio per callback."""
        self.stall_timeout_s = stall_timeout_s
        self.cue_tail_s = cue_tail_s
        """Seconds muted after a cue ends (output + input latency, room echo)."""
        self.on_error = on_error
        self.clock = clock
        self.sleep = sleep
        self.device: InputDevice | None = None
        self.stream_rate = 0
        """Hz the stream runs at (the device's, before resampling)."""
        self.error: DeviceError | None = None
        self.overflows = 0
        """Callbacks that reported an input overflow (audio lost inside PortAudio)."""
        self._stream: Any = None
        self._resampler: Any = None
        self._channels = 1
        self._closing = False
        self._last_audio_at = 0.0
        self._cursor: CaptureCursor | None = None
        self._stamps: deque[tuple[float, int]] = deque(maxlen=CLOCK_STAMPS)
        self._last_capture_end = 0

    # ---- lifecycle

    def __enter__(self) -> Microphone:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    @property
    def position_samples(self) -> int:
        """Absolute position (16 kHz samples) of the newest captured audio."""
        return self.ring.position

    def open(self) -> None:
        """Open and start the stream on `self.spec`. Raises DeviceError."""
        if self._stream is not None:
            return
        sd = _sounddevice()
        devices = list_input_devices()
        device = find_device(self.spec, devices)
        rate, channels = self._pick_settings(sd, device, self.rate)
        resampler = None
        if rate != SAMPLE_RATE:
            import soxr

            resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._resampler, self._channels = resampler, channels
        self._closing = False
        self.error = None
        self._stamps.clear()  # a new stream has its own clock offset
        try:
            stream = sd.InputStream(
                device=device.index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=max(1, int(rate * self.block_s)),
                latency="low",
                callback=self._callback,
                finished_callback=self._finished,
            )
            self._last_audio_at = self.clock()
            stream.start()
        except sd.PortAudioError as e:
            raise DeviceError(
                f"Cannot open microphone {device}: {e}. Close other programs using it or pick "
                f"another microphone; {_describe(devices)}."
            ) from e
        self._stream, self.device, self.stream_rate = stream, device, rate
        log.info(
            "microphone open: %s at %d Hz, %d channel(s)%s",
            device,
            rate,
            channels,
            "" if resampler is None else f", resampled to {SAMPLE_RATE} Hz",
        )

    @staticmethod
    def _pick_settings(
        sd: ModuleType, device: InputDevice, wanted: int | None
    ) -> tuple[int, int]:
        """(rate Hz, channels): `wanted`, else 16 kHz when the device accepts it, else its
        default rate; mono when accepted, else all its channels (downmixed in the callback)."""
        rates = [wanted] if wanted else [SAMPLE_RATE, int(round(device.default_samplerate))]
        for rate in rates:
            for channels in dict.fromkeys((1, device.max_input_channels)):
                try:
                    sd.check_input_settings(
                        device=device.index, samplerate=rate, channels=channels, dtype="float32"
                    )
                    return rate, channels
                except (sd.PortAudioError, ValueError):
                    continue
        raise DeviceError(
            f"Microphone {device} accepts none of {', '.join(map(str, rates))} Hz as float32 "
            "audio; pick another microphone."
        )

    def close(self) -> None:
        """Stop and close the stream (the ring buffer and its positions are kept)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._closing = True
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        finally:
            self._closing = False
        log.info("microphone closed: %s", self.device)

    def reopen(self, device: DeviceSpec, refresh: bool = False) -> None:
        """Switch to another input (tray menu). Positions continue; an active capture carries on
        with the new device's audio. ``refresh``: let PortAudio find sound servers and devices
        again first (recovery after a sound-server restart or a hot-plug). On failure the old
        device is opened again and the DeviceError is raised."""
        old = self.spec
        self.close()
        if refresh:
            refresh_audio_system()
        self.spec = device
        try:
            self.open()
        except DeviceError:
            self.spec = old
            try:
                self.open()
            except DeviceError as e2:
                log.error("could not reopen the previous microphone either: %s", e2)
            raise

    # ---- audio thread

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        try:
            mono = indata[:, 0] if self._channels == 1 else indata.mean(axis=1)
            if self._resampler is not None:
                mono = self._resampler.resample_chunk(mono)
            self.ring.write(mono)
            self._last_audio_at = self.clock()
            self._stamps.append((self._last_audio_at, self.ring.position))
        except Exception as e:  # never let an exception vanish in PortAudio's thread
            self._fail(DeviceError(f"Audio processing failed in the microphone stream: {e!r}"))
            raise _sounddevice().CallbackAbort from e

    def _finished(self) -> None:
        if not self._closing:
            self._fail(
                DeviceError(
                    f"Microphone {self.device} stopped delivering audio (unplugged, or the sound "
                    "server stopped). Reconnect it or choose another microphone."
                )
            )

    def _fail(self, error: DeviceError) -> None:
        if self.error is not None:
            return
        self.error = error
        log.error("%s", error)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                log.exception("microphone on_error callback failed")

    # ---- caller's thread

    def check(self) -> None:
        """Raise the DeviceError if the stream failed, ended, or stalled (no audio for
        `stall_timeout_s` seconds of `clock`)."""
        if self.error is None and self._stream is None:
            raise DeviceError("The microphone is not open; call open() first.")
        if self.error is None and not self._stream.active:
            self._fail(
                DeviceError(
                    f"Microphone {self.device} stream is no longer running. Reconnect it or "
                    "choose another microphone."
                )
            )
        if self.error is None and self.clock() - self._last_audio_at > self.stall_timeout_s:
            self._fail(
                DeviceError(
                    f"Microphone {self.device} delivered no audio for more than "
                    f"{self.stall_timeout_s:g} s. Check that it is connected and not muted, or "
                    "choose another microphone."
                )
            )
        if self.error is not None:
            raise self.error

    def position_at(self, t: float | None) -> int:
        """The absolute ring position captured at time ``t`` (seconds of `clock`; None: the
        newest sample). May lie ahead of the newest sample when that audio is still on its way
        (see :meth:`wait_for`); see :func:`position_at_time` for how."""
        if t is None:
            return self.ring.position
        position = position_at_time(t, list(self._stamps))
        return self.ring.position if position is None else position

    def wait_for(self, position: int, timeout_s: float) -> bool:
        """Wait until the ring holds audio up to ``position`` (at most ``timeout_s`` seconds
        of `clock`, or until the stream fails); True when it does."""
        deadline = self.clock() + timeout_s
        while self.ring.position < position:
            if self.error is not None or self.clock() >= deadline:
                return False
            self.sleep(0.005)
        return True

    def start_capture(self, pre_roll_s: float = 0.5, at: float | None = None) -> CaptureCursor:
        """Begin a capture that includes up to `pre_roll_s` seconds recorded before time ``at``
        (seconds of `clock`, e.g. the double tap's; None: now). It never starts before the end
        of the previous capture, so no audio is transcribed twice. A capture still running is
        stopped first. Raises the DeviceError of a failed stream."""
        self.check()
        if self._cursor is not None:
            self.stop_capture()
        anchor = min(self.position_at(at), self.ring.position)
        start = max(self.ring.oldest_position, self._last_capture_end,
                    anchor - int(pre_roll_s * SAMPLE_RATE))
        self._cursor = CaptureCursor(self.ring, min(start, self.ring.position))
        return self._cursor

    def stop_capture(self, at: float | None = None,
                     wait_s: float | None = None) -> CaptureCursor | None:
        """End the current capture at the audio captured at time ``at`` (seconds of `clock`,
        e.g. the stop tap's; None: the newest sample); its cursor can still read the rest.
        Audio of that moment still on its way is waited for (at most ``wait_s`` seconds,
        default two blocks + 0.5 s). Returns that cursor (None when nothing was capturing)."""
        cursor, self._cursor = self._cursor, None
        if cursor is None:
            return None
        end = max(cursor.start_position, self.position_at(at))
        if end > self.ring.position:
            wait = 2 * self.block_s + 0.5 if wait_s is None else wait_s
            if not self.wait_for(end, wait):
                log.warning("the audio up to the stop did not arrive within %.2f s; the "
                            "capture ends at the newest sample", wait)
                end = self.ring.position
        cursor.stop(end)
        self._last_capture_end = end
        return cursor

    def mute_for(self, seconds: float) -> tuple[int, int]:
        """Zero the next `seconds` of captured audio, counted from the newest sample. Returns
        the muted interval [start, end) in absolute 16 kHz sample positions."""
        start = self.ring.position
        end = start + int(round(seconds * SAMPLE_RATE))
        self.ring.mute(start, end)
        return start, end

    def play_cue(self, kind: str, output_device: int | str | None = None) -> tuple[int, int]:
        """Play the 'start' or 'stop' beep on the output device without blocking, muting the
        capture for the beep plus `cue_tail_s` so the recognizer never hears it. Returns the
        muted interval (absolute 16 kHz positions). A failing output device is logged, not
        raised (a cue is optional)."""
        sd = _sounddevice()
        rate = 48_000
        tone = cue_tone(kind, rate)
        muted = self.mute_for(len(tone) / rate + self.cue_tail_s)
        try:
            sd.play(tone, samplerate=rate, device=output_device)
        except (sd.PortAudioError, ValueError) as e:
            log.warning("could not play the %s cue: %s", kind, e)
        return muted
