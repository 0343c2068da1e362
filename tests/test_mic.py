"""Microphone capture: RingBuffer / CaptureCursor / find_device driven with plain arrays, and the
real input stream on the harness's virtual microphone (PulseAudio, marker ``e2e``).

The device tests run the microphone in a child process (this file run as a script): PortAudio
reads the audio environment (PULSE_SERVER) when sounddevice is first imported, so the child
must start after the harness session has exported it. The parent plays real speech into the
virtual mic and checks what the child captured.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dictation import SAMPLE_RATE
from dictation.audio.mic import CaptureCursor, InputDevice, RingBuffer, find_device
from dictation.errors import DeviceError

REPO = Path(__file__).resolve().parents[1]
DEV_WAV = REPO.parent / "shared" / "data" / "dev" / "wav" / "ljspeech-lj001-0002.wav"


def ramp(start: int, n: int) -> np.ndarray:
    """Samples whose values are their absolute positions (exact in float32 below 2**24)."""
    return np.arange(start, start + n, dtype=np.float32)


def ring_of(samples: int) -> RingBuffer:
    return RingBuffer(samples / SAMPLE_RATE)


# --------------------------------------------------------------------------- RingBuffer


def test_ring_reads_everything_written_in_order() -> None:
    ring = ring_of(100)
    ring.write(ramp(0, 30))
    ring.write(ramp(30, 20))
    out, first = ring.read_since(0)
    assert first == 0 and ring.position == 50
    np.testing.assert_array_equal(out, ramp(0, 50))
    out, first = ring.read_since(42)
    assert first == 42
    np.testing.assert_array_equal(out, ramp(42, 8))
    assert ring.read_since(50)[0].size == 0


def test_ring_wraps_around_the_array_end() -> None:
    ring = ring_of(10)
    ring.write(ramp(0, 7))
    ring.write(ramp(7, 7))  # positions 10..13 land at array indices 0..3
    out, first = ring.read_since(4)
    assert first == 4
    np.testing.assert_array_equal(out, ramp(4, 10))
    out, first = ring.read_since(8, until=12)
    np.testing.assert_array_equal(out, ramp(8, 4))


def test_ring_overflow_drops_the_oldest_and_counts_it() -> None:
    ring = ring_of(10)
    ring.write(ramp(0, 25))  # one write larger than the ring
    assert ring.position == 25 and ring.oldest_position == 15 and ring.overwritten == 15
    out, first = ring.read_since(3)
    assert first == 15  # positions 3..14 are gone; the caller sees where the data restarts
    np.testing.assert_array_equal(out, ramp(15, 10))
    ring.write(ramp(25, 4))
    assert ring.overwritten == 19
    np.testing.assert_array_equal(ring.read_since(0)[0], ramp(19, 10))


def test_ring_rejects_a_non_positive_capacity() -> None:
    with pytest.raises(ValueError, match="capacity_s"):
        RingBuffer(0)


def test_ring_mute_zeroes_only_the_marked_interval_including_future_samples() -> None:
    ring = ring_of(100)
    ring.write(ramp(1, 20))  # values 1..20 at positions 0..19: none is zero
    ring.mute(15, 25)  # 15..19 written, 20..24 not yet
    ring.write(ramp(21, 20))
    out, _ = ring.read_since(0)
    assert np.all(out[15:25] == 0)
    np.testing.assert_array_equal(out[:15], ramp(1, 15))
    np.testing.assert_array_equal(out[25:], ramp(26, 15))


def test_ring_concurrent_writer_never_tears_a_read() -> None:
    """A writer thread (like the audio callback) appends ramps while this thread reads: every
    read must be a gap-free, in-order run of positions. The writer waits for a read after
    every burst of 8 blocks (less than the ring holds), so the two really interleave however
    busy the machine is; within a burst they race."""
    ring = ring_of(4096)
    total = 400_000
    done = threading.Event()
    read_once = threading.Semaphore(0)

    def writer() -> None:
        pos = 0
        while pos < total:
            ring.write(ramp(pos, 160))
            pos += 160
            if pos % (8 * 160) == 0:
                read_once.acquire(timeout=5)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    position, reads = 0, 0
    while not (done.is_set() and position >= ring.position):
        out, first = ring.read_since(position)
        if out.size:
            np.testing.assert_array_equal(out, ramp(first, out.size))
            reads += 1
            read_once.release()
        position = first + out.size
    t.join()
    assert position == total and reads > 1


# --------------------------------------------------------------------------- CaptureCursor


def test_cursor_includes_pre_roll_and_stops_at_the_end_position() -> None:
    ring = ring_of(16000)
    ring.write(ramp(0, 8000))  # 0.5 s before dictation starts
    pre_roll = 4000
    cursor = CaptureCursor(ring, ring.position - pre_roll)
    ring.write(ramp(8000, 1000))
    np.testing.assert_array_equal(cursor.read(), ramp(4000, 5000))
    assert cursor.read().size == 0
    ring.write(ramp(9000, 500))
    cursor.stop()
    ring.write(ramp(9500, 500))  # after the stop: not part of this capture
    assert cursor.stopped and not cursor.done
    np.testing.assert_array_equal(cursor.read(), ramp(9000, 500))
    assert cursor.done and cursor.read().size == 0 and cursor.dropped_samples == 0


def test_cursor_that_falls_behind_counts_dropped_samples() -> None:
    ring = ring_of(100)
    cursor = CaptureCursor(ring, 0)
    ring.write(ramp(0, 40))
    np.testing.assert_array_equal(cursor.read(), ramp(0, 40))
    ring.write(ramp(40, 250))  # reader asleep: positions 40..189 are overwritten
    out = cursor.read()
    assert cursor.dropped_samples == 150
    np.testing.assert_array_equal(out, ramp(190, 100))
    assert cursor.position == 290


# --------------------------------------------------------------------------- find_device

DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 48000.0, 2, False, "ALSA"),
    InputDevice(3, "USB Microphone: Audio (hw:2,0)", 44100.0, 1, False, "ALSA"),
    InputDevice(5, "pulse", 44100.0, 32, False, "ALSA"),
    InputDevice(6, "default", 44100.0, 32, True, "ALSA"),
]


def test_find_device_by_default_index_and_name() -> None:
    assert find_device(None, DEVICES).index == 6
    assert find_device(3, DEVICES).name.startswith("USB")
    assert find_device("3", DEVICES).index == 3
    assert find_device("usb microphone", DEVICES).index == 3
    assert find_device("PULSE", DEVICES).index == 5


def test_find_device_exact_name_beats_substring() -> None:
    devices = [*DEVICES, InputDevice(7, "default (pulse)", 44100.0, 2, False, "ALSA")]
    assert find_device("default", devices).index == 6


def test_find_device_errors_list_the_available_inputs() -> None:
    with pytest.raises(DeviceError) as err:
        find_device("Blue Yeti", DEVICES)
    msg = str(err.value)
    assert "'Blue Yeti'" in msg
    assert all(d.name in msg for d in DEVICES)
    with pytest.raises(DeviceError, match=r"index 9.*USB Microphone"):
        find_device(9, DEVICES)
    with pytest.raises(DeviceError, match=r"several.*ALC257.*USB Microphone"):
        find_device("(hw:", DEVICES)
    with pytest.raises(DeviceError, match="no input devices found"):
        find_device(None, [])


# --------------------------------------------------------------------------- real device (e2e)


class Child:
    """This file run as a script in the harness environment: it owns the Microphone and takes
    line commands on stdin; replies are JSON lines on stdout."""

    def __init__(self, mode: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, mode, *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )

    def reply(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"microphone child gave no reply; stderr:\n{err[-3000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def send(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def audio_desktop() -> Iterator[dict[str, str]]:
    """A harness session with the virtual microphone only (no text box, tray or WM)."""
    from harness import desktop_session

    with desktop_session(E2E_WM="none", E2E_TRAY="0", E2E_NOTIFY="0", E2E_TEXTBOX="0") as env:
        yield env


def play_in_background(wav: Path) -> subprocess.Popen[bytes]:
    from harness import SESSION_SCRIPT

    return subprocess.Popen([str(SESSION_SCRIPT), "play", str(wav)], env=os.environ.copy())


def read_wav(path: Path) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    return np.asarray(audio)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


BLOCK_S = 0.1
"""Seconds of the played file located on their own in the capture (see `locate_blocks`)."""


def locate_blocks(rec: np.ndarray, ref: np.ndarray) -> list[tuple[int, int, float]]:
    """Each voiced BLOCK_S block of `ref` (rms > 0.01) found on its own in `rec`: (sample index
    of the block in `ref`, its best position in `rec`, normalised correlation there).

    Blocks, not the whole file, because PulseAudio's player can stall on a busy machine and
    the virtual mic then carries silence in the middle of the file (one CI run: whole-file
    correlation 0.42 with nothing dropped on the capture side). A stall shifts the later
    blocks; it does not change them."""
    n = 1 << int(np.ceil(np.log2(rec.size + ref.size)))
    spectrum = np.fft.rfft(rec, n)
    block = int(BLOCK_S * SAMPLE_RATE)
    assert rec.size >= ref.size, f"captured {rec.size} samples < reference {ref.size}"
    energy = np.concatenate([[0.0], np.cumsum(rec.astype(np.float64) ** 2)])
    norms = np.sqrt(energy[block:] - energy[:-block]) + 1e-6  # |rec[at : at + block]| per at
    found = []
    for i in range(0, ref.size - block + 1, block):
        piece = ref[i : i + block]
        if np.sqrt(np.mean(piece**2)) <= 0.01:
            continue
        corr = np.fft.irfft(spectrum * np.conj(np.fft.rfft(piece, n)), n)[: rec.size - block + 1]
        at = int(np.argmax(corr / norms))
        found.append((i, at, ncc(rec[at : at + block], piece)))
    return found


def assert_file_in_order(found: list[tuple[int, int, float]], *, may_miss: int = 2) -> None:
    """The file's voiced blocks are in the capture, in order, each at a shift (position in the
    capture minus position in the file) no smaller than the one before: the player may have
    inserted silence, nothing may be missing or reordered. Up to `may_miss` blocks may match
    badly (a block a stall cut in two)."""
    matched = [(i, at) for i, at, score in found if score > 0.9]
    report = ", ".join(f"{i}->{at}:{score:.2f}" for i, at, score in found)
    assert len(found) >= 8, f"too few voiced blocks to judge: {report}"
    assert len(found) - len(matched) <= may_miss, f"blocks not found in the capture: {report}"
    shifts = [at - i for i, at in matched]
    assert all(b >= a - 2 for a, b in pairwise(shifts)), f"out of order: {report}"


def test_file_in_order_allows_a_player_stall_but_not_lost_or_reordered_audio() -> None:
    """The check the device tests use, on the real file: silence inserted by a stalled player
    passes; audio lost (0.3 s, or 0.05 s) or two halves swapped fail."""
    ref = read_wav(DEV_WAV)
    lead = np.zeros(2000, np.float32)
    half = ref.size // 2
    stalled = np.concatenate([lead, ref[:half], np.zeros(4800, np.float32), ref[half:], lead])
    assert_file_in_order(locate_blocks(stalled, ref))
    for lost in (4800, 800):
        cut = np.concatenate([lead, ref[:half], ref[half + lost :], lead, np.zeros(lost)])
        with pytest.raises(AssertionError, match="not found|out of order"):
            assert_file_in_order(locate_blocks(cut.astype(np.float32), ref))
    swapped = np.concatenate([lead, ref[half:], ref[:half], lead])
    with pytest.raises(AssertionError, match="not found|out of order"):
        assert_file_in_order(locate_blocks(swapped, ref))


def capture(child: Child, wav: Path, cue: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Play `wav`; once the child hears it, start a capture with pre-roll (and optionally play
    a cue 0.4 s later); stop after playback; return the capture and the child's report."""
    player = play_in_background(wav)
    try:
        assert child.send("wait-audio")["heard"], "no audio reached the microphone"
        time.sleep(0.3)  # let some speech go by before the capture starts: it is pre-roll now
        started = child.send("start")
        if cue:
            time.sleep(0.4)
            started.update(child.send("cue"))
        assert player.wait(timeout=30) == 0
    finally:
        if player.poll() is None:
            player.kill()
    time.sleep(0.3)
    report = child.send("stop")
    report.update(started)
    return np.load(report["npy"]), report


@pytest.mark.e2e
@pytest.mark.parametrize("rate", [0, 48000], ids=["device-rate", "resampled-48k"])
def test_capture_matches_played_speech_including_pre_roll(
    audio_desktop: dict[str, str], tmp_path: Path, rate: int
) -> None:
    """Real speech through PulseAudio's virtual mic: the capture holds the whole file, and the
    part played before start_capture() (pre-roll) matches the beginning of the file. With
    rate=48000 the stream runs at 48 kHz and soxr's streaming resampler brings it to 16 kHz."""
    ref = read_wav(DEV_WAV)
    child = Child("child-capture", str(tmp_path), str(rate))
    try:
        opened = child.reply()
        assert opened["stream_rate"] == (rate or SAMPLE_RATE)
        rec, report = capture(child, DEV_WAV)
    finally:
        child.close()
    assert report["error"] is None and report["dropped"] == 0
    found = locate_blocks(rec, ref)
    assert_file_in_order(found)
    pre = report["pre_roll_samples"]  # samples of the capture recorded before start_capture()
    assert 0 < pre <= int(1.5 * SAMPLE_RATE)
    block = int(BLOCK_S * SAMPLE_RATE)
    i0, at0 = next((i, at) for i, at, score in found if score > 0.9)
    shift = at0 - i0  # where the file starts in the capture (< 0: before the capture began)
    assert shift < pre - SAMPLE_RATE // 10, (
        f"the file should have started before start_capture(): {found} (pre-roll {pre})")
    # the file's blocks that lie wholly inside the pre-roll (none cut by the capture's start)
    in_pre_roll = [score for i, _, score in found if shift + i >= 0 and shift + i + block <= pre]
    assert in_pre_roll and all(score > 0.9 for score in in_pre_roll), (
        f"the pre-roll should hold the file's start: {found} (pre-roll {pre} samples)")


@pytest.mark.e2e
def test_cue_is_muted_out_of_the_capture(audio_desktop: dict[str, str], tmp_path: Path) -> None:
    """play_cue() during a capture: the muted span reads exactly zero while speech is playing
    into the mic, and the rest of the capture still matches the file."""
    ref = read_wav(DEV_WAV)
    child = Child("child-capture", str(tmp_path), "0")
    try:
        child.reply()
        rec, report = capture(child, DEV_WAV, cue=True)
    finally:
        child.close()
    m0, m1 = report["mute_start"], report["mute_end"]
    assert 0 < m0 < m1 <= rec.size
    assert np.all(rec[m0:m1] == 0.0)
    found = locate_blocks(rec, ref)
    block = int(BLOCK_S * SAMPLE_RATE)
    overlapping_mute = -(-(m1 - m0) // block) + 1
    assert_file_in_order(found, may_miss=overlapping_mute + 2)
    before = [(i, at) for i, at, score in found if score > 0.9 and at + block <= m0]
    assert before, f"no speech matched before the mute: {found}"
    i, at = before[-1]
    playing = ref[m0 - (at - i) : m1 - (at - i)]  # what the file held there, had nothing stalled
    assert np.sqrt(np.mean(playing**2)) > 0.01, "speech was playing while muted"


@pytest.mark.e2e
def test_missing_device_error_lists_real_devices(audio_desktop: dict[str, str]) -> None:
    child = Child("child-devices")
    try:
        report = child.reply()
    finally:
        child.close()
    names = report["names"]
    assert names, "PortAudio lists no input devices in the harness"
    assert "no-such-microphone" in report["error"]
    assert all(n in report["error"] for n in names)
    assert report["open_error"] == report["error"]


@pytest.mark.e2e
def test_vanished_sound_server_is_reported(audio_desktop: dict[str, str], tmp_path: Path) -> None:
    """Kill the session's PulseAudio (the test's own, started by the harness) under an open
    stream: the microphone must report a DeviceError through on_error, `error` and check()."""
    child = Child("child-capture", str(tmp_path), "0")
    try:
        child.reply()
        session = Path(os.environ["E2E_SESSION_DIR"])
        pids = [line.split() for line in (session / "pids").read_text().splitlines()]
        pulse = [int(pid) for name, pid in pids if name == "pulseaudio"]
        assert len(pulse) == 1
        cmdline = Path(f"/proc/{pulse[0]}/cmdline").read_bytes()
        assert b"pulseaudio" in cmdline
        os.kill(pulse[0], 9)
        report = child.send("wait-error")
    finally:
        child.close()
    assert report["on_error"] and "stopped delivering audio" in report["on_error"]
    assert report["check"] == report["on_error"]


@pytest.mark.e2e
def test_sound_server_restart_is_recovered_without_restarting(audio_desktop: dict[str, str],
                                                              tmp_path: Path) -> None:
    """The app starts while the sound server is down (PortAudio then lists no usable input);
    the server starts later (the session's PulseAudio killed, then started again with the
    same command line and environment): the microphone opens with a refreshed PortAudio and
    hears speech, without restarting the process. Without the refresh PortAudio keeps its
    first device list and never finds the server."""
    child: Child | None = None
    restarted: subprocess.Popen[bytes] | None = None
    try:
        session = Path(os.environ["E2E_SESSION_DIR"])
        pids = [line.split() for line in (session / "pids").read_text().splitlines()]
        [pulse] = [int(pid) for name, pid in pids if name == "pulseaudio"]
        argv = Path(f"/proc/{pulse}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        environ = dict(item.split(b"=", 1) for item in
                       Path(f"/proc/{pulse}/environ").read_bytes().split(b"\0") if b"=" in item)
        assert b"pulseaudio" in argv[0]
        os.kill(pulse, 9)
        time.sleep(0.5)
        child = Child("child-capture", str(tmp_path), "0")
        assert child.reply()["device"] is None  # no server: no microphone
        restarted = subprocess.Popen([a.decode() for a in argv], env={
            k.decode(): v.decode() for k, v in environ.items()},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report = child.send("recover")
        assert report["error"] == "" and report["is_open"], report
        player = play_in_background(DEV_WAV)
        try:
            assert child.send("wait-audio")["heard"]
        finally:
            player.wait(timeout=30)
    finally:
        if child is not None:
            child.close()
        if restarted is not None:
            restarted.kill()
            restarted.wait(timeout=10)


@pytest.mark.e2e
def test_reopen_switches_device_and_keeps_the_old_one_on_failure(
    audio_desktop: dict[str, str], tmp_path: Path
) -> None:
    child = Child("child-capture", str(tmp_path), "0")
    try:
        assert child.reply()["device"] == "default"
        assert child.send("reopen pulse") == {"device": "pulse", "error": "", "is_open": True}
        failed = child.send("reopen no-such-microphone")
        assert failed["device"] == "pulse" and failed["is_open"]
        assert "no-such-microphone" in failed["error"] and "default" in failed["error"]
        player = play_in_background(DEV_WAV)
        try:
            assert child.send("wait-audio")["heard"], "no audio after switching devices"
        finally:
            player.wait(timeout=30)
    finally:
        child.close()


def test_microphone_mute_and_check_without_a_device() -> None:
    """The parts of Microphone that need no stream: muting marks the next samples, and check()
    on a closed microphone says what to do."""
    from dictation.audio.mic import Microphone

    mic = Microphone(buffer_s=1.0)
    mic.ring.write(ramp(1, 1000))
    start, end = mic.mute_for(0.01)
    assert (start, end) == (1000, 1160)
    mic.ring.write(ramp(1001, 400))
    cursor = CaptureCursor(mic.ring, 900)
    out = cursor.read()
    np.testing.assert_array_equal(out[:100], ramp(901, 100))
    assert np.all(out[100:260] == 0) and np.all(out[260:] != 0)
    with pytest.raises(DeviceError, match="not open"):
        mic.check()
    with pytest.raises(DeviceError, match="not open"):
        mic.start_capture()


# --------------------------------------------------------------------------- key time -> audio


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Status:
    input_overflow = False


class FakeStream:
    """Stands in for the PortAudio stream (no device here): always running."""

    active = True


BLOCK = 1600  # 0.1 s


class FedMicrophone:
    """A Microphone whose audio thread is simulated: block k (samples whose values are their
    positions) is captured during [0.1 k, 0.1 (k + 1)) s and delivered ``delays[k]`` seconds
    after its end, the clock set to that arrival time, as a busy machine delivers them."""

    def __init__(self, delays: list[float]) -> None:
        from dictation.audio.mic import Microphone

        self.clock = FakeClock()
        self.mic = Microphone(buffer_s=30.0, block_s=0.1, clock=self.clock, sleep=self.sleep)
        self.mic._stream = FakeStream()  # the stream is the only part that needs a device
        self.delays = delays
        self.delivered = 0

    def deliver_until(self, t: float) -> None:
        """Deliver every block that arrives by ``t`` (in order: a late block delays the next)."""
        while self.delivered < len(self.delays):
            k = self.delivered
            arrival = max(self.clock.t, 0.1 * (k + 1) + self.delays[k])
            if arrival > t:
                break
            self.clock.t = arrival
            self.mic._callback(ramp(k * BLOCK, BLOCK)[:, None], BLOCK, None, _Status())
            self.delivered += 1
        self.clock.t = max(self.clock.t, t)

    def sleep(self, seconds: float) -> None:
        """What waiting does here: time passes and the audio thread delivers."""
        self.deliver_until(self.clock.t + seconds)


JITTER = [0.01, 0.3, 0.02, 0.9, 0.05, 0.01, 0.4, 0.03, 0.2, 0.01] * 10
"""Delivery delays of 100 blocks (s): mostly prompt, some very late (a loaded machine)."""


def test_position_at_time_is_never_after_the_key_press_and_close_to_it() -> None:
    from dictation.audio.mic import position_at_time

    fed = FedMicrophone(JITTER)
    fed.deliver_until(6.0)
    stamps = list(fed.mic._stamps)
    for t in (2.35, 3.0, 4.71):
        got = position_at_time(t, stamps)
        assert got is not None
        truth = int(t * SAMPLE_RATE)
        assert truth - 0.01 * SAMPLE_RATE - 1 <= got <= truth  # earliest block: 10 ms late
    assert position_at_time(1.0, []) is None


def test_stop_handled_late_ends_the_capture_at_the_tap_not_at_the_newest_audio() -> None:
    """Speech after the stop tap is never part of the capture, however late the stop is
    handled; the start includes the pre-roll before the double tap, not before the handling."""
    fed = FedMicrophone(JITTER)
    fed.deliver_until(3.0)
    cursor = fed.mic.start_capture(pre_roll_s=0.5, at=1.0)  # double tap at 1.0 s
    assert abs(cursor.start_position - 0.5 * SAMPLE_RATE) <= 0.01 * SAMPLE_RATE + 1
    fed.deliver_until(9.0)  # the worker is busy until 9 s; the stop tap was at 4.2 s
    assert fed.mic.stop_capture(at=4.2) is cursor
    audio = cursor.read()
    assert audio[-1] < 4.2 * SAMPLE_RATE
    assert audio[-1] >= (4.2 - 0.02) * SAMPLE_RATE
    np.testing.assert_array_equal(audio, ramp(cursor.start_position, len(audio)))
    # the next dictation, started 0.1 s after that tap, does not take the previous one's end
    # again as its pre-roll
    nxt = fed.mic.start_capture(pre_roll_s=0.5, at=4.3)
    assert nxt.start_position == cursor.end_position


def test_stop_right_after_the_tap_waits_for_the_audio_still_on_its_way() -> None:
    fed = FedMicrophone([0.05] * 20 + [0.6] * 20)  # blocks from 2 s on arrive 0.6 s late
    fed.deliver_until(0.5)
    cursor = fed.mic.start_capture(pre_roll_s=0.5, at=0.5)
    fed.deliver_until(2.6)
    assert fed.mic.ring.position < 2.5 * SAMPLE_RATE  # the audio of 2.5 s is not here yet
    fed.mic.stop_capture(at=2.5)  # waits (fake sleep: the audio thread delivers meanwhile)
    audio = cursor.read()
    assert (2.5 - 0.06) * SAMPLE_RATE <= audio[-1] < 2.5 * SAMPLE_RATE


def test_cursor_read_until_leaves_the_rest_for_later() -> None:
    ring = ring_of(16000)
    ring.write(ramp(0, 3000))
    cursor = CaptureCursor(ring, 1000)
    np.testing.assert_array_equal(cursor.read(until=1500), ramp(1000, 500))
    assert cursor.read(until=1200).size == 0
    np.testing.assert_array_equal(cursor.read(), ramp(1500, 1500))


# --------------------------------------------------------------------------- child process


def _child_devices() -> None:
    from dictation.audio.mic import Microphone, list_input_devices

    names = [d.name for d in list_input_devices()]
    error = open_error = ""
    try:
        find_device("no-such-microphone")
    except DeviceError as e:
        error = str(e)
    try:
        Microphone("no-such-microphone").open()
    except DeviceError as e:
        open_error = str(e)
    print(json.dumps({"names": names, "error": error, "open_error": open_error}), flush=True)


def _child_capture(out_dir: str, rate: str) -> None:
    """Commands: wait-audio, start, cue, stop, wait-error (see the tests above)."""
    from dictation.audio.mic import Microphone

    errors: list[str] = []
    mic = Microphone(rate=int(rate) or None, on_error=lambda e: errors.append(str(e)))
    try:
        mic.open()
    except DeviceError as e:  # e.g. no sound server yet
        print(json.dumps({"device": None, "error": str(e)}), flush=True)
    else:
        assert mic.device is not None
        print(json.dumps({"device": mic.device.name, "stream_rate": mic.stream_rate}),
              flush=True)
    cursor: CaptureCursor | None = None
    chunks: list[np.ndarray] = []

    def reply(**kw: Any) -> None:
        print(json.dumps(kw), flush=True)

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "wait-audio":
            probe = CaptureCursor(mic.ring, mic.ring.position)
            deadline = time.monotonic() + 10
            heard = False
            while not heard and time.monotonic() < deadline:
                heard = bool(np.any(probe.read() != 0))
                time.sleep(0.01)
            reply(heard=heard)
        elif cmd == "start":
            at = mic.position_samples
            cursor = mic.start_capture(pre_roll_s=1.5)
            reply(pre_roll_samples=at - cursor.start_position)
        elif cmd == "cue":
            assert cursor is not None
            chunks.append(cursor.read())
            m0, m1 = mic.play_cue("start")
            reply(mute_start=m0 - cursor.start_position, mute_end=m1 - cursor.start_position)
        elif cmd == "stop":
            assert cursor is not None
            mic.stop_capture()
            while not cursor.done:
                chunks.append(cursor.read())
                time.sleep(0.01)
            path = Path(out_dir) / "captured.npy"
            np.save(path, np.concatenate(chunks))
            reply(npy=str(path), dropped=cursor.dropped_samples, error=mic.error and str(mic.error))
        elif cmd.startswith("reopen "):
            try:
                mic.reopen(cmd.split(" ", 1)[1])
                error = ""
            except DeviceError as e:
                error = str(e)
            assert mic.device is not None
            reply(device=mic.device.name, error=error, is_open=mic.is_open)
        elif cmd == "recover":  # what the app's idle retry does, every 0.5 s here
            deadline = time.monotonic() + 20
            error = "not tried"
            while error and time.monotonic() < deadline:
                try:
                    mic.reopen(None, refresh=True)
                    error = ""
                except DeviceError as e:
                    error = str(e)
                    time.sleep(0.5)
            errors.clear()
            reply(error=error, is_open=mic.is_open)
        elif cmd == "wait-error":
            deadline = time.monotonic() + 10
            while not errors and time.monotonic() < deadline:
                time.sleep(0.02)
            try:
                mic.check()
                check = ""
            except DeviceError as e:
                check = str(e)
            reply(on_error=errors[0] if errors else "", check=check)
        else:
            reply(unknown=cmd)
    mic.close()


if __name__ == "__main__":
    if sys.argv[1] == "child-devices":
        _child_devices()
    elif sys.argv[1] == "child-capture":
        _child_capture(sys.argv[2], sys.argv[3])

