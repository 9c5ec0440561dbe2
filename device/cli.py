"""The ``facecue`` command: run, doctor, say, eval, sync, bench, config.

Every failure a person can cause (bad config, missing camera, broken model)
ends in one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from device import __version__
from device.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load, render_default


def setup_logging(level: str) -> None:
    """Plain lines on stdout; journald adds its own timestamps under systemd."""
    under_journal = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journal else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(stream=sys.stdout, level=level.upper(), format=fmt, force=True)


def _with_overrides(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply command-line overrides on top of the config file."""
    camera, model, audio = cfg.camera, cfg.model, cfg.audio
    if args.source:
        camera = dataclasses.replace(camera, source=args.source)
    if args.realtime:
        camera = dataclasses.replace(camera, realtime=True)
    if args.model:
        model = dataclasses.replace(model, path=str(args.model))
    if args.mode:
        audio = dataclasses.replace(audio, mode=args.mode)
    if args.language:
        audio = dataclasses.replace(audio, language=args.language)
    if args.muted:
        audio = dataclasses.replace(audio, muted=True)
    return dataclasses.replace(cfg, camera=camera, model=model, audio=audio)


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                   help=f"TOML config (default {DEFAULT_CONFIG_PATH}; missing means defaults)")


def cmd_run(args: argparse.Namespace) -> int:
    from device.announce import build_announcer
    from device.loop import Daemon, RunOptions

    cfg = _with_overrides(load(args.config), args)
    setup_logging(args.log_level or cfg.log.level)
    under_systemd = "NOTIFY_SOCKET" in os.environ
    options = RunOptions(retry_forever=args.retry or under_systemd)
    announcer = build_announcer(cfg, audio_out=args.audio_out)
    daemon = Daemon(cfg, announcer, options)
    daemon.install_signal_handlers()
    announcer.attach(daemon, cfg)
    return daemon.run()


def cmd_doctor(args: argparse.Namespace) -> int:
    from device.doctor import run_checks

    return run_checks(load(args.config))


def cmd_say(args: argparse.Namespace) -> int:
    from device.announce import say

    cfg = load(args.config)
    audio = dataclasses.replace(cfg.audio, **{k: v for k, v in
                                              (("mode", args.mode), ("language", args.language)) if v})
    return say(dataclasses.replace(cfg, audio=audio), args.label, args.audio_out)


def cmd_config(args: argparse.Namespace) -> int:
    if args.print_default:
        sys.stdout.write(render_default())
        return 0
    load(args.check)
    print(f"{args.check}: ok")
    return 0


# Subcommands whose code lives in tools/ (some need extras); they parse their own options.
DELEGATES = {
    "eval": ("tools.evaluate", "accuracy of a model on an npz data set"),
    "sync": ("tools.sync", "fetch, verify and install a newer model"),
    "bench": ("tools.bench", "speed/accuracy table beside the DeepLens study"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facecue", description="Speaks the facial expression in front of you.")
    p.add_argument("--version", action="version", version=f"facecue {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the device in the foreground")
    _add_config_arg(run)
    run.add_argument("--source", help="camera index, /dev/videoN, picamera, video file or image folder")
    run.add_argument("--realtime", action="store_true", help="pace a file source at its own frame rate")
    run.add_argument("--audio-out", type=Path, help="write what the user would hear to this WAV instead of playing it")
    run.add_argument("--model", type=Path, help="a .tflite model (with its .json beside it)")
    run.add_argument("--mode", choices=("speech", "earcon"))
    run.add_argument("--language")
    run.add_argument("--muted", action="store_true")
    run.add_argument("--retry", action="store_true", help="wait for the camera/model instead of exiting")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    run.set_defaults(func=cmd_run)

    doctor = sub.add_parser("doctor", help="check camera, audio, model and GPIO")
    _add_config_arg(doctor)
    doctor.set_defaults(func=cmd_doctor)

    say = sub.add_parser("say", help="play one clip, e.g. `facecue say happy`")
    _add_config_arg(say)
    say.add_argument("label")
    say.add_argument("--mode", choices=("speech", "earcon"))
    say.add_argument("--language")
    say.add_argument("--audio-out", type=Path, help="write the clip to this WAV instead of playing it")
    say.set_defaults(func=cmd_say)

    config = sub.add_parser("config", help="print the default config or check one")
    group = config.add_mutually_exclusive_group(required=True)
    group.add_argument("--print-default", action="store_true")
    group.add_argument("--check", type=Path, metavar="FILE")
    config.set_defaults(func=cmd_config)

    for name, (_, text) in DELEGATES.items():
        sub.add_parser(name, help=text + f" (facecue {name} --help)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATES:
        import importlib

        return importlib.import_module(DELEGATES[argv[0]][0]).main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"facecue: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the known, user-caused errors all subclass these
        from device.capture import CaptureError
        from device.classify import ModelError
        from device.detect import DetectorError

        if isinstance(exc, (CaptureError, ModelError, DetectorError, OSError, ValueError)):
            print(f"facecue: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
