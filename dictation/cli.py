"""Command line: ``dictation [command]``. With no command the tray app starts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dictation import SAMPLE_RATE, __version__
from dictation.commands import CONTROL_COMMANDS, CONTROL_HELP, Command
from dictation.errors import DeviceError, DictationError


class _Parser(argparse.ArgumentParser):
    """Builds the configuration epilog only when help is printed (it imports the config
    module), so that ``dictation toggle`` stays light."""

    def format_help(self) -> str:
        if self.epilog is None and self.prog == "dictation":
            from dictation.config import config_help_lines, default_config_path

            self.epilog = ("configuration (" + str(default_config_path())
                           + "; every key optional):\n  " + "\n  ".join(config_help_lines()))
        return super().format_help()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. ``dictation bench``'s options come from the benchmark
    package, which imports torch: they are added only when ``argv`` (None: all of them) names
    ``bench``, so the control commands import nothing heavy."""
    parser = _Parser(
        prog="dictation", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Local streaming dictation: double-tap the hotkey, speak, and the words are "
                    "typed into the focused window as you speak; one tap stops. No audio leaves "
                    "this machine.")
    parser.add_argument("--version", action="version", version=f"dictation {__version__}")
    parser.add_argument("--config", type=Path, help="config file (default: the XDG location)")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("app", help="the tray app (the default)")
    sub.add_parser("listen", help="the app without a tray icon (hotkey + typing only)")

    tr = sub.add_parser("transcribe", help="transcribe audio files")
    tr.add_argument("files", nargs="+", type=Path, metavar="FILE")
    tr.add_argument("--model", default=None,
                    help="model id or folder (default: config, moonshine-base-en)")
    tr.add_argument("--stream", action="store_true",
                    help="feed each file through the streaming session as if live (simulated "
                         "clock: faster than real time, each decode sees only audio up to now)")
    tr.add_argument("--json", action="store_true",
                    help="one JSON object per line: file, event, audio_time_s, text, segment")
    tr.add_argument("--chunk", type=float, default=0.1, help="--stream chunk size (s)")
    tr.add_argument("--compute", choices=("int8", "float32"), default=None,
                    help="model arithmetic (default: float32 offline, the config's "
                         "recognizer.compute with --stream)")

    bench = sub.add_parser("bench", help="WER, speed and latency on a speech set")
    if argv is None or "bench" in argv:
        from dictation.bench.run import add_bench_arguments

        add_bench_arguments(bench)
    for command in CONTROL_COMMANDS:
        sub.add_parser(command.value, help=CONTROL_HELP[command])
    sc = sub.add_parser("shortcut", help="the desktop shortcut running `dictation toggle` "
                                         "(Wayland's hotkey); --install writes it")
    sc.add_argument("--install", action="store_true",
                    help="write it where the desktop reads it (never changes your own lines)")
    sc.add_argument("--key", default="ctrl+alt+d", help="key combination (default ctrl+alt+d)")
    sc.add_argument("--command", dest="bind_command", default=None,
                    help="command to bind (default: this installation's `dictation toggle`)")
    sc.add_argument("--desktop", choices=("sway", "i3", "hyprland", "gnome", "kde"),
                    help="override the detected desktop")
    cfg = sub.add_parser("config", help="print every option with its default")
    cfg.add_argument("--write", action="store_true",
                     help="write that default file to the config path (never overwrites)")
    from dictation.models_cli import add_models_parser

    add_models_parser(sub)
    sub.add_parser("devices", help="list microphones")

    hist = sub.add_parser("history", help="what was dictated (the private journal)")
    hist.add_argument("--search", metavar="WORDS", help="only entries containing every word")
    hist.add_argument("--copy", type=int, metavar="N",
                      help="copy entry N (1 = the newest listed) to the clipboard")
    hist.add_argument("--export", type=Path, metavar="FILE",
                      help="write the entries listed to FILE (time<TAB>text; .jsonl: JSON lines)")
    hist.add_argument("--last", type=int, default=20, metavar="N",
                      help="how many entries to list (default 20; 0: all)")
    hist.add_argument("--clear", action="store_true", help="delete every entry")

    vocab = sub.add_parser("vocab", help="words and phrases typed as you want them")
    vocab_sub = vocab.add_subparsers(dest="vocab_command", metavar="action", required=True)
    vocab_sub.add_parser("list", help="list the rules")
    add = vocab_sub.add_parser("add", help="add a rule: PATTERN is typed as REPLACEMENT")
    add.add_argument("pattern", help="the words as recognised, e.g. 'get hub'")
    add.add_argument("replacement", help="what to type instead, e.g. 'GitHub'")
    rm = vocab_sub.add_parser("rm", help="remove the rule for PATTERN")
    rm.add_argument("pattern")
    sub.add_parser("doctor", help="check display, hotkey, microphone, typing, model, VAD, "
                                  "config; PASS/FAIL with the fix")
    return parser


def _model_id(args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    from dictation.config import load_config

    return load_config(args.config).recognizer.model


def _compute(args: argparse.Namespace) -> str:
    """``transcribe``'s compute type: ``--compute``, else the app's (the config's) when
    streaming, else :data:`~dictation.config.OFFLINE_COMPUTE`."""
    from dictation.config import OFFLINE_COMPUTE, load_config

    if args.compute:
        return str(args.compute)
    return load_config(args.config).recognizer.compute if args.stream else OFFLINE_COMPUTE


def cmd_transcribe(args: argparse.Namespace) -> int:
    from dictation.asr.events import Commit, EndOfSegment, Partial
    from dictation.asr.recognizer import load_recognizer
    from dictation.asr.replay import replay
    from dictation.audio.files import load_audio
    from dictation.integrity import check_recognizer

    recognizer = load_recognizer(_model_id(args), compute=_compute(args))
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
            text = recognizer.transcribe(audio)
            if args.json:
                print(json.dumps({"file": str(path), "event": "transcript",
                                  "audio_time_s": round(len(audio) / SAMPLE_RATE, 3),
                                  "text": text}), flush=True)
            else:
                print(f"{path}: {text}" if len(args.files) > 1 else text, flush=True)
            continue
        names = {Partial: "partial", Commit: "commit", EndOfSegment: "end_of_segment"}
        committed = []
        for timed in replay(recognizer.open_session(), audio, chunk_s=args.chunk):
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


def cmd_control(command: Command) -> int:
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


def cmd_history(args: argparse.Namespace) -> int:
    from datetime import datetime

    from dictation.config import load_config
    from dictation.output import history

    journal = load_config(args.config).journal
    if args.clear:
        print(f"removed {history.clear(journal.path)} entries from {journal.path}")
        return 0
    history.prune(journal.path, journal.retention_days, datetime.now().astimezone())
    entries = history.read_entries(journal.path)
    if args.search:
        entries = history.search(entries, args.search)
    if args.last > 0:
        entries = entries[-args.last:]
    newest_first = entries[::-1]
    if args.copy is not None:
        if not 1 <= args.copy <= len(newest_first):
            print(f"dictation: no entry {args.copy} (there are {len(newest_first)})",
                  file=sys.stderr)
            return 1
        from dictation.inject.clipboard import copy_to_clipboard

        copy_to_clipboard(newest_first[args.copy - 1].text)
        print(f"copied entry {args.copy} to the clipboard")
        return 0
    if args.export is not None:
        print(f"wrote {history.export(entries, args.export)} entries to {args.export}")
        return 0
    for n, entry in enumerate(newest_first, 1):
        mark = "" if entry.typed else "  (not typed)"
        print(f"{n:>3}  {entry.time[:19].replace('T', ' ')}  {entry.text}{mark}")
    return 0


def cmd_vocab(args: argparse.Namespace) -> int:
    from dictation.config import default_config_path
    from dictation.output import vocabulary

    path = args.config or default_config_path()
    if args.vocab_command == "add":
        vocabulary.add_rule(path, args.pattern, args.replacement)
        print(f"{args.pattern!r} -> {args.replacement!r} ({path})")
    elif args.vocab_command == "rm":
        vocabulary.remove_rule(path, args.pattern)
        print(f"removed {args.pattern!r} ({path})")
    else:
        for rule in vocabulary.list_rules(path):
            print(f"{rule.pattern!r} -> {rule.replacement!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0] in CONTROL_COMMANDS:
        # the shortcut a desktop binds: answered without argparse (which alone costs more
        # start-up than the rest of the command)
        try:
            return cmd_control(Command(argv[0]))
        except DictationError as exc:
            print(f"dictation: {exc}", file=sys.stderr)
            return 2
    args = build_parser(argv).parse_args(argv)
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
        if command in CONTROL_COMMANDS:
            return cmd_control(Command(command))
        if command == "shortcut":
            from dictation.shortcut import main as shortcut_main

            return shortcut_main(args.install, args.key, args.bind_command, args.desktop)
        if command == "config":
            return cmd_config(args)
        if command == "models":
            from dictation.models_cli import cmd_models

            return cmd_models(args)
        if command == "devices":
            return cmd_devices()
        if command == "history":
            return cmd_history(args)
        if command == "vocab":
            return cmd_vocab(args)
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
