"""``facecue doctor``: one table that tells a helper what works and what does not.

Each check is independent and catches its own failure, so one broken part
(no camera, say) never hides the state of the others.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.words import count
from device.config import Config

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def check_model(cfg: Config) -> Check:
    from device.classify import Classifier
    from device.model_slot import ModelSlot

    slot = ModelSlot(cfg.model)
    path = slot.candidates()[0]
    try:
        classifier = Classifier(path, num_threads=cfg.model.threads)
    except Exception as exc:
        return Check("model", FAIL, str(exc))
    acc = classifier.info.meta.get("accuracy", {}).get("valid_int8")
    acc_text = f", valid accuracy {acc:.1%}" if isinstance(acc, float) else ""
    return Check("model", OK, f"{path} version {classifier.info.version}, sha256 verified{acc_text}")


def check_camera(cfg: Config) -> Check:
    from device.capture import CaptureError, open_source

    c = cfg.camera
    try:
        source = open_source(c.source, c.width, c.height, c.fps)
    except CaptureError as exc:
        return Check("camera", FAIL, str(exc))
    try:
        start = time.monotonic()
        frame = next(iter(source.frames()), None)
    except CaptureError as exc:
        return Check("camera", FAIL, str(exc))
    finally:
        source.close()
    if frame is None or frame.image.size == 0:
        return Check("camera", FAIL, f"{source.name} opened but gave no frame")
    h, w = frame.image.shape[:2]
    return Check("camera", OK, f"{source.name} {w}x{h}, first frame in {time.monotonic() - start:.2f}s")


def check_detector(cfg: Config) -> Check:
    import numpy as np

    from device.detect import DetectorError
    from device.tracker import tracker_from_config

    try:
        tracker = tracker_from_config(cfg.detect)
        tracker.scan(np.zeros((cfg.camera.height, cfg.camera.width, 3), np.uint8))
    except DetectorError as exc:
        return Check("face detector", FAIL, str(exc))
    return Check("face detector", OK, f"{cfg.detect.method}, full search at scale {tracker.scale}")


def check_audio(cfg: Config) -> Check:
    """The ``[audio] device`` a player would open, not merely some output."""
    from audio.playback import AudioUnavailable, list_output_devices, resolve_output

    wanted = f"[audio] device {cfg.audio.device!r}" if cfg.audio.device else "default output"
    try:
        index, name = resolve_output(cfg.audio.device)
        devices = list_output_devices()
    except AudioUnavailable as exc:
        return Check("audio", FAIL, f"{wanted}: {exc}")
    names = ", ".join(f"{i}: {n}" for i, n in devices[:4])
    return Check("audio", OK, f"{wanted} is {index}: {name}; {count(len(devices), 'output')}: {names}")


def check_voice(cfg: Config) -> Check:
    from device.announce import voice_for

    try:
        voice = voice_for(cfg.audio)
    except ValueError as exc:
        return Check("voice", FAIL, str(exc))
    return Check("voice", OK, f"{cfg.audio.mode}, language {cfg.audio.language}, {len(voice.labels())} sounds")


def check_gpio(cfg: Config) -> Check:
    pins = [p for p in (cfg.buttons.repeat_pin, cfg.buttons.mute_pin, cfg.haptics.pin) if p]
    import warnings

    try:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory

        with warnings.catch_warnings():  # gpiozero warns once per driver it falls back from
            warnings.simplefilter("ignore")
            factory = Device.pin_factory or Device._default_pin_factory()
    except (ImportError, BadPinFactory) as exc:
        status = FAIL if pins else WARN
        return Check("gpio", status, f"no GPIO ({type(exc).__name__}); pins configured: {pins or 'none'}")
    return Check("gpio", OK, f"{type(factory).__name__}; pins configured: {pins or 'none'}")


CHECKS: tuple[Callable[[Config], Check], ...] = (
    check_model, check_detector, check_camera, check_audio, check_voice, check_gpio)


def run_checks(cfg: Config, out=sys.stdout) -> int:
    """Print the table; exit status 1 when any check FAILs."""
    results = []
    for check in CHECKS:
        try:
            results.append(check(cfg))
        except Exception as exc:  # a check must never take the others down
            results.append(Check(check.__name__.removeprefix("check_"), FAIL, f"{type(exc).__name__}: {exc}"))
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{r.name:<{width}}  {r.status:<4}  {r.detail}", file=out)
    return 1 if any(r.status == FAIL for r in results) else 0
