#!/usr/bin/env python3
"""Footprint of the running app and the speed of its control commands, on the harness desktop.

Starts a harness session and ``python -X importtime -m dictation app`` in it (as
``scripts/bench_app.py`` does), then measures:

* memory when ready, after dictating one WAV, and again after ``--idle-s`` idle: VmRSS, RssAnon,
  RssFile, VmHWM (``/proc/PID/status``) and the thread count;
* idle CPU (utime + stime over ``--idle-s`` seconds, percent of one core), before and after the
  dictation;
* ``dictation status`` wall time, p50 and p90 of ``--calls`` fresh processes, with the app
  running and with no app (a private, empty XDG_RUNTIME_DIR);
* which notable modules the app imported (from its ``-X importtime`` log).

Prints a Markdown summary (``--out`` writes it too). Linux only. Usage::

    python scripts/app_footprint.py [--idle-s 20] [--calls 20] [--wav whisper-jfk]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_app import DEV_SET, HOTKEY, Desktop, cpu_seconds, start_app  # noqa: E402

NOTABLE = ("torch", "numpy", "transformers", "huggingface_hub", "tqdm", "requests", "httpx",
           "scipy", "gi", "pystray", "PIL", "sounddevice", "soundfile", "soxr", "pynput",
           "Xlib", "tokenizers", "safetensors", "silero_vad", "onnxruntime", "faster_whisper",
           "ctranslate2", "dictation.bench")


def memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, VmHWM (MiB) and Threads of ``pid``."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024
        elif key == "Threads":
            values[key] = int(rest)
    return values


def idle_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (``/proc/PID/task/*/comm``; same names summed)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def idle_cpu_by_thread(pid: int, seconds: float) -> str:
    """Idle CPU (% of a core) of each thread that used any, busiest first."""
    before, t0 = thread_cpu(pid), time.monotonic()
    time.sleep(seconds)
    after, wall = thread_cpu(pid), time.monotonic() - t0
    used = {n: 100 * (c - before.get(n, 0.0)) / wall for n, c in after.items()}
    return ", ".join(f"{n} {u:.2f} %" for n, u in sorted(used.items(), key=lambda x: -x[1])
                     if u > 0)


def time_status(env: dict[str, str], calls: int, code: str | None = None
                ) -> tuple[float, float, float, str]:
    """p50 and p90 wall ms and p50 CPU ms (user + sys, robust to a busy machine) of ``calls``
    fresh ``python -m dictation status`` (or ``python -c code``), and the last output line."""
    command = [sys.executable, *(["-c", code] if code else ["-m", "dictation", "status"])]
    times, cpu, last = [], [], ""
    for _ in range(calls):
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        times.append(1000 * (time.perf_counter() - t0))
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(1000 * (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime))
        text = (out.stdout + out.stderr).strip().splitlines()
        last = text[-1] if text else ""
    times.sort()
    return (statistics.median(times), times[int(0.9 * (len(times) - 1))],
            statistics.median(cpu), last)


def imported(stderr_path: Path) -> list[str]:
    names = set()
    for line in stderr_path.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return [n for n in NOTABLE if n in names or any(m.startswith(n + ".") for m in names)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--wav", default="whisper-jfk", help="dev utterance to dictate once")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    lines = [f"# App footprint ({args.model})", ""]

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as empty:
        os.chmod(empty, 0o700)
        env = {**os.environ, "PYTHONPATH": str(repo), "XDG_RUNTIME_DIR": empty}
        p50, p90, cpu, _ = time_status(env, args.calls, code="pass")
        say(f"- `python -c pass` (the interpreter's floor on this machine now): p50 {p50:.0f} "
            f"ms, p90 {p90:.0f} ms, CPU p50 {cpu:.0f} ms")
        p50, p90, cpu, reply = time_status(env, args.calls)
        say(f"- `dictation status`, no app: p50 {p50:.0f} ms, p90 {p90:.0f} ms, CPU p50 "
            f"{cpu:.0f} ms ({args.calls} calls; {reply})")
    with Desktop() as desktop, tempfile.TemporaryDirectory() as home_dir:
        home = Path(home_dir)
        os.environ["PYTHONPROFILEIMPORTTIME"] = "1"  # the app's imports, listed on its stderr
        try:
            app = start_app(home, desktop.env, args.model)
        finally:
            os.environ.pop("PYTHONPROFILEIMPORTTIME")
        pid = app.proc.pid
        try:
            time.sleep(2.0)
            say(f"- ready: {memory(pid)}")
            say(f"- idle CPU after start: {idle_cpu(pid, args.idle_s):.2f} % of a core "
                f"({args.idle_s:g} s)")
            env = {**os.environ, **desktop.env, "PYTHONPATH": str(repo),
                   "XDG_RUNTIME_DIR": str(home / "run")}
            p50, p90, cpu, reply = time_status(env, args.calls)
            say(f"- `dictation status`, app running: p50 {p50:.0f} ms, p90 {p90:.0f} ms, CPU "
                f"p50 {cpu:.0f} ms ({args.calls} calls; {reply})")
            n = len(app.events())
            desktop.xdotool("key", "--delay", "80", HOTKEY, HOTKEY)
            app.wait_event("state", n)
            desktop.run("play", str(DEV_SET / "wav" / f"{args.wav}.wav"), timeout=120)
            n = len(app.events())
            desktop.xdotool("key", HOTKEY)
            app.wait_event("finished", n, timeout=120)
            time.sleep(1.0)
            say(f"- after dictating {args.wav}: {memory(pid)}")
            say(f"- idle CPU after the dictation: {idle_cpu(pid, args.idle_s):.2f} % of a core")
            say(f"- after {args.idle_s:g} s idle: {memory(pid)}")
            say(f"- idle CPU by thread: {idle_cpu_by_thread(pid, args.idle_s)}")
            say(f"- notable modules imported: {', '.join(imported(app.stderr_path))}")
        finally:
            app.proc.terminate()
            try:
                app.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                app.proc.kill()
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
