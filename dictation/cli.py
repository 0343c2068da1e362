"""Command line: ``dictation [command]``. With no command the tray app starts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dictation import SAMPLE_RATE, __version__
from dictation.errors import DeviceError, DictationError


def _help_epilog() -> str:
    from dictation.config import config_help_lines, default_config_path

    return ("configuration (" + str(default_config_path()) + "; every key optional):\n  "
            + "\n  ".join(config_help_lines()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dictation", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Local streaming dictation: double-tap the hotkey, speak, and the words are "
                    "typed into the focused window as you speak; one tap stops. No audio leaves "
                    "this machine.", epilog=_help_epilog())
    parser.add_argument("--version", action="version", version=f"dictation {__version__}")
    parser.add_argument("--config", type=Path, help="config file (default: the XDG location)")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("app", help="the tray app (the default)")
    sub.add_parser("listen", help="the app without a tray icon (hotkey + typing only)")

    tr = sub.add_parser("transcribe", help="transcribe audio files")
    tr.add_argument("files", nargs="+", type=Path, metavar="FILE")
    tr.add_argument("--model", default=None, help="model id or folder (default: config, tiny.en)")
    tr.add_argument("--stream", action="store_true",
                    help="feed each file through the streaming session as if live (simulated "
                         "clock: faster than real time, each decode sees only audio up to now)")
    tr.add_argument("--json", action="store_true",
                    help="one JSON object per line: file, event, audio_time_s, text, segment")
    tr.add_argument("--chunk", type=float, default=0.1, help="--stream chunk size (s)")

    from dictation.bench.run import add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="WER, speed and latency on a speech set"))
    for name, text in (("toggle", "start or stop dictation in the running app"),
                       ("start", "start dictation in the running app"),
                       ("stop", "stop dictation in the running app"),
                       ("status", "state of the running app")):
        sub.add_parser(name, help=text)
    cfg = sub.add_parser("config", help="print every option with its default")
    cfg.add_argument("--write", action="store_true",
                     help="write that default file to the config path (never overwrites)")
    sub.add_parser("models", help="list known models and which are installed")
    sub.add_parser("devices", help="list microphones")
    sub.add_parser("doctor", help="check display, hotkey, microphone, typing, model, VAD, "
                                  "config; PASS/FAIL with the fix")
    return parser


def _model_id(args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    from dictation.config import load_config

    return load_config(args.config).recognizer.model


def cmd_transcribe(args: argparse.Namespace) -> int:
    from dictation.asr.events import Commit, EndOfSegment, Partial
    from dictation.asr.recognizer import load_recognizer
    from dictation.asr.replay import replay
    from dictation.asr.whisper.transcribe import transcribe_audio
    from dictation.audio.files import load_audio
    from dictation.integrity import check_recognizer

    recognizer = load_recognizer(_model_id(args))
    check_recognizer(recognizer)  # corrupt weights: refused, naming the file (exit 2)
    failures = 0
    for path in args.files:
        try:
            audio = load_audio(path)
        except DictationError as exc:
            print(f"dictation: {exc}", file=sys.stderr)
            failures += 1
            continue
        if not args.stream:
            text = transcribe_audio(recognizer.loaded, recognizer.vad, audio)
            if args.json:
                print(json.dumps({"file": str(path), "event": "transcript",
                                  "audio_time_s": round(len(audio) / SAMPLE_RATE, 3),
                                  "text": text}), flush=True)
            else:
                print(f"{path}: {text}" if len(args.files) > 1 else text, flush=True)
            continue
        names = {Partial: "partial", Commit: "commit", EndOfSegment: "end_of_segment"}
        committed = []
        for timed in replay(recognizer.session(), audio, chunk_s=args.chunk):
            event = timed.event
            if isinstance(event, Commit):
                committed.append(event.text)
            if args.json:
                print(json.dumps({"file": str(path), "event": names[type(event)],
                                  "audio_time_s": round(event.audio_time_s, 3),
                                  "text": event.text, "segment": event.segment}), flush=True)
            elif not isinstance(event, Partial):
                kind = names[type(event)]
                print(f"[{event.audio_time_s:7.2f} s] {kind:<14} {event.text}", flush=True)
        if not args.json:
            print(f"{path}: {''.join(committed)}", flush=True)
    return 1 if failures else 0


def cmd_control(command: str) -> int:
    from dictation.control import send_command

    print(send_command(command))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from dictation.config import load_config, render_default_config, write_default_config

    if args.write:
        print(f"wrote {write_default_config(args.config)}")
        return 0
    load_config(args.config)  # report an invalid file (names the key) before printing
    print(render_default_config(), end="")
    return 0


def cmd_models() -> int:
    from dictation.asr.catalog import installed_models, list_models

    installed = set(installed_models())
    for entry in list_models():
        mark = "installed" if entry.id in installed else "download"
        print(f"{entry.id:<26} {entry.format:<4} {entry.size_mb:>5} MB  {mark:<9}  "
              f"{entry.description}")
    return 0


def cmd_devices() -> int:
    from dictation.audio.mic import list_input_devices

    devices = list_input_devices()
    if not devices:
        server = os.environ.get("PULSE_SERVER")
        raise DeviceError(
            "No microphone found: no input device is connected, or the sound server "
            f"(PulseAudio / PipeWire{', PULSE_SERVER=' + server if server else ''}) is not "
            "running. Start it (e.g. `systemctl --user start pipewire-pulse` or "
            "`pulseaudio --start`) or connect a microphone, then try again.")
    for device in devices:
        default = " (default)" if device.is_default else ""
        print(f"{device.index:>3}  {device.name}{default}  {device.default_samplerate:.0f} Hz")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "app"
    try:
        if command in ("app", "listen"):
            from dictation.app import run_app

            return run_app(config_path=args.config, with_tray=command == "app")
        if command == "transcribe":
            return cmd_transcribe(args)
        if command == "bench":
            from dictation.bench.run import bench_main

            return bench_main(args)
        if command in ("toggle", "start", "stop", "status"):
            return cmd_control(command)
        if command == "config":
            return cmd_config(args)
        if command == "models":
            return cmd_models()
        if command == "devices":
            return cmd_devices()
        if command == "doctor":
            from dictation.doctor import run_doctor

            return run_doctor(args.config)
    except DictationError as exc:
        print(f"dictation: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(command)


if __name__ == "__main__":
    sys.exit(main())
