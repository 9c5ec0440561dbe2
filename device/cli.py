"""The ``facecue`` command: run, doctor, say, config and sync, for the device and whoever sets it up.

Every failure a person can cause ends in one line on stderr, never a traceback,
under the one exit-code rule of :mod:`device.argparser`: 2 for a bad command
line or config, 1 for a missing camera, a broken model or another run-time failure.
The model maker's commands (eval, bench, ...) are ``facecue-model``'s, never this one's.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from device import __version__
from device.argparser import Parser, UsageError, run
from device.config import DEFAULT_CONFIG_PATH, ConfigError, load, render_default, with_overrides


def setup_logging(level: str) -> None:
    """Plain lines on stdout; journald adds its own timestamps under systemd."""
    under_journal = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journal else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(stream=sys.stdout, level=level.upper(), format=fmt, force=True)


def _voice_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``--mode`` and ``--language`` as ``[audio]`` overrides (None: not given)."""
    return {"mode": args.mode, "language": args.language}


def _audio_out(path: Path | None) -> Path | None:
    """``--audio-out``, refused before the run rather than after it (a usage error: the
    path named cannot be written): the WAV is written when the run ends, so a bad path
    would only fail once all was heard.
    Only a new name or a regular file (or a link to one) is replaced: the WAV is
    renamed onto it, so a device node or a named pipe there would be replaced too."""
    if path is None:
        return None
    if path.is_dir():
        raise UsageError(f"--audio-out {path} is a folder; name a .wav file to write")
    if not path.parent.is_dir():
        raise UsageError(f"--audio-out {path}: no folder {path.parent}")
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise UsageError(f"--audio-out {path} is not a regular file; name a .wav file to write")
    return path


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, metavar="FILE",
                   help=f"TOML config (default {DEFAULT_CONFIG_PATH}; missing means defaults)")


def cmd_run(args: argparse.Namespace) -> int:
    from device.announce import build_announcer
    from device.loop import Daemon, RunOptions
    from device.presses import press_buttons

    # store_true flags: None unless given, so that they never switch the file's true off
    cfg = with_overrides(load(args.config), {
        "camera": {"source": args.source, "realtime": args.realtime or None},
        "model": {"path": None if args.model is None else str(args.model)},
        "audio": {**_voice_overrides(args), "muted": args.muted or None}})
    setup_logging(args.log_level or cfg.log.level)
    under_systemd = "NOTIFY_SOCKET" in os.environ
    options = RunOptions(retry_forever=args.retry or under_systemd)
    daemon = Daemon(cfg, build_announcer(cfg, audio_out=_audio_out(args.audio_out)), options)
    daemon.install_signal_handlers()
    with press_buttons(cfg.buttons, daemon.inbox):
        return daemon.run()


def cmd_doctor(args: argparse.Namespace) -> int:
    from device.doctor import run_checks

    return run_checks(load(args.config))


def cmd_say(args: argparse.Namespace) -> int:
    from device.announce import say

    cfg = with_overrides(load(args.config), {"audio": _voice_overrides(args)})
    return say(cfg, args.label, _audio_out(args.audio_out))


def cmd_config(args: argparse.Namespace) -> int:
    if args.print_default:
        sys.stdout.write(render_default())
        return 0
    load(args.check)
    print(f"{args.check}: ok")
    return 0


# Commands that parse their own options: name -> (module with main(argv), summary).
DELEGATES = {"sync": ("device.sync", "fetch, verify and install a newer model")}


def _add_command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary is also the head of its own --help."""
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def _add_voice_args(p: argparse.ArgumentParser) -> None:
    """--mode and --language, shared by ``run`` and ``say``."""
    from audio.voice import MODES, available_languages

    p.add_argument("--mode", choices=MODES,
                   help="speech: spoken words; earcon: a tone pattern per expression (default: [audio] mode)")
    p.add_argument("--language", help=f"language of the spoken clips: {', '.join(available_languages())} "
                                      "(default: [audio] language)")


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = _add_command(sub, "run", "run the device in the foreground")
    _add_config_arg(run)
    run.add_argument("--source", help="camera index, /dev/videoN, picamera, video file or image folder")
    run.add_argument("--realtime", action="store_true", help="pace a file source at its own frame rate")
    run.add_argument("--audio-out", type=Path, metavar="WAV",
                     help="write what the user would hear to this WAV instead of playing it")
    run.add_argument("--model", type=Path, metavar="TFLITE", help="a .tflite model (with its .json beside it)")
    _add_voice_args(run)
    run.add_argument("--muted", action="store_true",
                     help="start muted: announcements are logged, not played, until the mute button")
    run.add_argument("--retry", action="store_true", help="wait for the camera/model instead of exiting")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                     help="how much to log on stdout (default: [log] level)")
    run.set_defaults(func=cmd_run)


def _add_say(sub: argparse._SubParsersAction) -> None:
    from audio.voice import LABELS

    say = _add_command(sub, "say", "play one sound as the device would, e.g. facecue say happy")
    _add_config_arg(say)
    say.add_argument("label", metavar="LABEL", help=f"what to play: {', '.join(LABELS)}")
    _add_voice_args(say)
    say.add_argument("--audio-out", type=Path, metavar="WAV",
                     help="write the sound to this WAV instead of playing it")
    say.set_defaults(func=cmd_say)


def _add_config(sub: argparse._SubParsersAction) -> None:
    config = _add_command(sub, "config", "print the default config or check one")
    group = config.add_mutually_exclusive_group(required=True)
    group.add_argument("--print-default", action="store_true",
                       help="print every setting with its default and meaning, as a config.toml")
    group.add_argument("--check", type=Path, metavar="FILE",
                       help="validate FILE: unknown keys and out-of-range values are named")
    config.set_defaults(func=cmd_config)


def build_parser() -> argparse.ArgumentParser:
    """The device's own commands, and :data:`DELEGATES`, listed without importing them."""
    p = Parser(prog="facecue", description="Speaks the facial expression in front of you.")
    p.add_argument("--version", action="version", version=f"facecue {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="one of these; facecue COMMAND --help for its options")
    _add_run(sub)
    doctor = _add_command(sub, "doctor", "check camera, audio, model and GPIO; exit status 1 when one fails")
    _add_config_arg(doctor)
    doctor.set_defaults(func=cmd_doctor)
    _add_say(sub)
    _add_config(sub)
    for name, (_, text) in DELEGATES.items():
        sub.add_parser(name, help=text + f" (facecue {name} --help)", add_help=False)
    return p


def _failures() -> tuple[type[Exception], ...]:
    """What a run can fail on that a person can fix: said in one line, exit status 1."""
    from audio.player import AudioUnavailable
    from device.capture import CaptureError
    from device.classify import ModelError
    from device.detect import DetectorError

    return AudioUnavailable, CaptureError, ModelError, DetectorError, OSError, ValueError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATES:
        import importlib

        return importlib.import_module(DELEGATES[argv[0]][0]).main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    return run(lambda: args.func(args), lambda: (ConfigError,), _failures)


if __name__ == "__main__":
    sys.exit(main())
