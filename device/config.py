"""The daemon's TOML configuration: every key defaulted, typed and validated.

A wrong key or value is reported at start, in one line naming the section
and key, instead of surfacing as a crash an hour into wearing the device.
The dataclasses below are the single source of the defaults; the default
file that ``install.sh`` writes is rendered from them
(``facecue config --print-default``).
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from audio.phrases import PHRASES
from core.labels import EXPRESSIONS
from device.reading import Refused, read_regular

DEFAULT_CONFIG_PATH = Path("/etc/facecue/config.toml")
MAX_CONFIG_BYTES = 1 << 20  # the default file is 4 KB


class ConfigError(ValueError):
    """A configuration problem, phrased as one line for the person setting up."""


def _opt(default: Any, help: str, *, choices: tuple = (), min: float | None = None,
         max: float | None = None, positive: bool = False) -> Any:
    meta = {"help": help, "choices": choices, "min": min, "max": max, "positive": positive}
    if callable(default):  # a mutable default (list) needs a factory
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


# An S3 address: a bucket name as S3 allows it, then an optional prefix. The one
# pattern for the config's check and for the sync's own parse of it (device.manifest).
S3_ADDRESS = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?")


def _is_http_address(text: str) -> bool:
    """``http(s)://HOST[:PORT][/...]``: what an S3-compatible endpoint must look like."""
    try:
        url = urlsplit(text)
        return url.scheme in ("http", "https") and bool(url.hostname) and (url.port or 0) >= 0
    except ValueError:  # a bracket left open, a port that is no number or out of range
        return False


MAX_CAMERA_INDEX = 100  # far above the cameras one board has; /dev/videoN names any other


@dataclass(frozen=True)
class CameraConfig:
    source: str = _opt("auto", "auto (Pi camera, then /dev/video0), picamera, a camera index or "
                       "/dev/videoN, a video file, or a folder of images")
    width: int = _opt(640, "capture width in pixels", min=64, max=4096)
    height: int = _opt(480, "capture height in pixels", min=48, max=4096)
    fps: float = _opt(15.0, "camera frame rate; also the pace of an image folder", min=0.5, max=120)
    realtime: bool = _opt(False, "pace video files and image folders at their own frame rate")

    def __post_init__(self) -> None:
        # OpenCV reads a large index as a backend choice plus an index, and one past
        # a C int as no number at all: the error would name neither the key nor the value.
        # "²" is a digit to str.isdigit and no number to int().
        if self.source.isdigit() and not (self.source.isascii() and int(self.source) < MAX_CAMERA_INDEX) \
                and not Path(self.source).exists():
            raise ConfigError(f"[camera] source {self.source} is no camera index (0 to {MAX_CAMERA_INDEX - 1}) "
                              "and no file")


@dataclass(frozen=True)
class DetectConfig:
    method: str = _opt("yunet", "face detector: yunet (learned, gives landmarks for the aligned crop) or haar "
                       "(the seed study's cascade)", choices=("yunet", "haar"))
    scale: float = _opt(0.0, "downscale of the frame a full search runs on; 0: the detector's own "
                        "(yunet 1.0, haar 0.5)", min=0.0, max=1.0)
    min_face: int = _opt(48, "smallest face width, in full-frame pixels", min=12, max=2000)
    score_threshold: float = _opt(0.8, "yunet: detection score needed to accept a face", min=0.05, max=1.0)
    scale_factor: float = _opt(1.15, "haar: image pyramid step", min=1.01, max=2.0)
    min_neighbors: int = _opt(5, "haar: detections needed to accept a face", min=1, max=50)
    tracking: bool = _opt(True, "follow a found face in a small region instead of searching every frame whole")
    rescan_every: float = _opt(1.0, "tracking: seconds between full-frame searches for a nearer face",
                               min=0.05, max=10)
    idle_every: float = _opt(0.3, "tracking: seconds between full-frame searches while no face is in view",
                             min=0.0, max=5)

    def __post_init__(self) -> None:
        if 0.0 < self.scale < 0.1:
            raise ConfigError(f"[detect] scale must be 0 (the detector's own) or 0.1 to 1, got {self.scale}")


@dataclass(frozen=True)
class ModelConfig:
    path: str = _opt("", "a .tflite to use; empty: the synced model in store, else the shipped one")
    store: str = _opt("/var/lib/facecue/models", "folder where `facecue sync` installs models")
    threads: int = _opt(1, "interpreter threads", min=1, max=16)
    check_every: float = _opt(5.0, "seconds between checks for a newly synced model", min=0.5, max=3600)


@dataclass(frozen=True)
class DecideConfig:
    smoothing: float = _opt(0.4, "time constant (s) of the probability smoothing", min=0.0, max=10)
    stable_for: float = _opt(0.8, "seconds an expression must hold before it is said", min=0.0, max=30)
    min_confidence: float = _opt(0.65, "smoothed (calibrated) probability needed to say an expression",
                                 min=0.0, max=1.0)
    cooldown: float = _opt(3.0, "minimum seconds between two announcements", min=0.0, max=600)
    face_lost_after: float = _opt(1.0, "seconds without a face before it counts as gone", min=0.1, max=60)
    face_earcons: bool = _opt(False, "soft tone when a face appears or leaves")
    quiet_labels: list[str] = _opt(list, "expressions never announced, e.g. [\"neutral\"]", choices=EXPRESSIONS)
    hedge: bool = _opt(False, "say an expression below min_confidence as \"maybe ...\", quieter")
    hedge_min_confidence: float = _opt(0.55, "smoothed probability needed for a hedge (none at or above "
                                       "min_confidence); chosen per model by facecue-model hedge",
                                       min=0.0, max=1.0)


@dataclass(frozen=True)
class AudioConfig:
    mode: str = _opt("speech", "speech (spoken words) or earcon (tones)", choices=("speech", "earcon"))
    language: str = _opt("en", "language of the spoken clips (en, id)", choices=tuple(sorted(PHRASES)))
    volume: float = _opt(0.8, "playback volume, 0 to 1", min=0.0, max=1.0)
    device: str = _opt("", "output device: PyAudio index or part of its name; empty: default")
    muted: bool = _opt(False, "start muted")


@dataclass(frozen=True)
class ButtonsConfig:
    repeat_pin: str = _opt("", "GPIO of the main button (e.g. \"GPIO17\"); empty: no buttons")
    mute_pin: str = _opt("", "GPIO of a second, mute button; empty: one-button mode")
    long_press: float = _opt(1.0, "seconds held for mute/unmute", min=0.2, max=10)
    status_hold: float = _opt(3.0, "seconds held to hear the status", min=0.5, max=30)
    bounce_time: float = _opt(0.05, "debounce seconds", min=0.0, max=1.0)
    double_press: float = _opt(0.4, "seconds between two short presses that ask who is there; 0: no person "
                               "cue, a short press repeats at once", min=0.0, max=2.0)

    def __post_init__(self) -> None:
        if self.long_press >= self.status_hold:
            raise ConfigError(f"[buttons] long_press ({self.long_press}) must be shorter than "
                              f"status_hold ({self.status_hold})")


@dataclass(frozen=True)
class PeopleConfig:
    """The person cue (a double press): how many, how near, facing or not."""

    fov: float = _opt(62.2, "the camera's horizontal field of view, degrees (Pi Camera Module 2: 62.2, "
                      "Module 3: 66, Module 1: 53.5)", min=10.0, max=170.0)
    face_width: float = _opt(0.134, "metres: an adult face's width as YuNet boxes it (63 mm between the pupils "
                             "times its box-to-eyes ratio on the Caltech photos)", min=0.05, max=0.4)
    facing_within: float = _opt(30.0, "degrees a head may turn and still face the wearer", min=1.0, max=89.0)
    facing_earcon: bool = _opt(False, "soft tone when the person in front turns to face the wearer")


@dataclass(frozen=True)
class HapticsConfig:
    pin: str = _opt("", "GPIO of a vibration motor (e.g. \"GPIO18\"); empty: none")


@dataclass(frozen=True)
class LogConfig:
    stats_every: float = _opt(30.0, "seconds between frame-rate/latency lines", min=1, max=3600)
    level: str = _opt("info", "log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class SyncConfig:
    """``facecue sync``: where models are published and how to fetch them. It installs
    into [model] store, the folder the daemon reads."""

    source: str = _opt("", "s3://BUCKET/PREFIX the models are published to; empty: sync is not set up "
                       "(the timer's runs do nothing)")
    endpoint_url: str = _opt("", "an S3-compatible store (e.g. https://minio.example.org); empty: AWS")
    region: str = _opt("", "AWS region of the bucket; empty: the AWS default, else us-east-1")
    anonymous: bool = _opt(False, "unsigned requests to a public-read bucket: no credentials on the device")
    public_key: str = _opt("/etc/facecue/model-signing.pub", "the Ed25519 public key manifests must be signed with")
    state_dir: str = _opt("/var/lib/facecue/sync", "where sync keeps its state (ETag, backoff, floors, "
                          "manifest serials, rollbacks)")
    connect_timeout: float = _opt(5.0, "seconds to connect to the store", positive=True, max=300)
    read_timeout: float = _opt(20.0, "seconds one read from the store may take", positive=True, max=3600)
    max_attempts: int = _opt(3, "tries of each request", positive=True, max=20)
    download_deadline: float = _opt(900.0, "seconds for the manifest and all downloads of one run together",
                                    positive=True, max=86400)
    backoff_base: float = _opt(1800.0, "seconds to wait after a failed run; doubles with each further failure",
                               positive=True, max=7 * 86400)
    backoff_max: float = _opt(86400.0, "the longest wait between failed runs, seconds", positive=True,
                               max=30 * 86400)

    def __post_init__(self) -> None:
        # Refused with the rest of the config (`facecue config --check`, exit 2), not found
        # by a sync run that then counts it as a failed try and backs off for hours.
        if self.source and not S3_ADDRESS.fullmatch(self.source):
            raise ConfigError(f"[sync] source {self.source!r} is not an s3://BUCKET/PREFIX address")
        if self.endpoint_url and not _is_http_address(self.endpoint_url):
            raise ConfigError(f"[sync] endpoint_url {self.endpoint_url!r} is not an http:// or https:// "
                              "address with a host")


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = field(default_factory=CameraConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    decide: DecideConfig = field(default_factory=DecideConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    people: PeopleConfig = field(default_factory=PeopleConfig)
    haptics: HapticsConfig = field(default_factory=HapticsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)


def _check_value(label: str, f: dataclasses.Field, hint: Any, value: Any) -> Any:
    where = f"{label}{f.name}"
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # list[str]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        kind = "a finite float" if hint is float else getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{where} must be {kind}, got {value!r}")
    if any("\0" in v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)):
        raise ConfigError(f"{where} must not contain a NUL byte, got {value!r}")  # no path or name holds one
    meta = f.metadata
    if meta["positive"] and not value > 0:
        raise ConfigError(f"{where} must be a positive number, got {value!r}")
    for item in value if isinstance(value, list) else [value]:
        if meta["choices"] and item not in meta["choices"]:
            raise ConfigError(f"{where} must be one of {', '.join(meta['choices'])}, got {item!r}")
    if meta["min"] is not None and value < meta["min"]:
        raise ConfigError(f"{where} must be >= {meta['min']}, got {value!r}")
    if meta["max"] is not None and value > meta["max"]:
        raise ConfigError(f"{where} must be <= {meta['max']}, got {value!r}")
    return value


def _section(name: str, cls: type, data: Any) -> Any:
    """``data`` checked key by key into ``cls``; errors name each key as ``[name] key``."""
    label = f"[{name}] "
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {label}{unknown[0]}; known: {', '.join(fields)}")
    return cls(**{k: _check_value(label, fields[k], hints[k], v) for k, v in data.items()})


def with_overrides(cfg: Config, overrides: dict[str, dict[str, Any]]) -> Config:
    """``cfg`` with command-line ``overrides`` (section: key: value; None: not given),
    checked by the same validator as the file: a flag is held to its key's rules, and
    every command (run, say, sync) applies its flags this one way."""
    sections = {}
    for name, values in overrides.items():
        given = {k: v for k, v in values.items() if v is not None}
        sections[name] = _section(name, type(getattr(cfg, name)), {**dataclasses.asdict(getattr(cfg, name)), **given})
    return dataclasses.replace(cfg, **sections)


def from_dict(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    sections = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; known: {', '.join(sections)}")
    return Config(**{name: _section(name, sections[name], value) for name, value in data.items()})


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML table in ``path``, or one ConfigError line naming the file.

    Refused in one line: not a regular file (``/dev/zero``, a pipe), too large,
    unreadable, not UTF-8, not TOML, or nested past what the parser can follow.
    FileNotFoundError passes through: a missing default file means defaults,
    which only the caller knows.
    """
    try:
        text = read_regular(Path(path), MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise
    except Refused as exc:
        raise ConfigError(f"config file {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} unreadable: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}): not a TOML file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is not valid TOML: nested too deeply") from None


def load(path: Path | None) -> Config:
    """Read ``path``; ``None`` or a missing default file means all defaults."""
    if path is None:
        return Config()
    try:
        data = read_toml(path)
    except FileNotFoundError:
        if Path(path) == DEFAULT_CONFIG_PATH:
            return Config()
        raise ConfigError(f"config file {path} not found") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def render_default() -> str:
    """The default config as commented TOML (what install.sh writes)."""
    lines = ["# facecue configuration. Every key is optional; shown here with its default.", ""]
    config = Config()
    for section in dataclasses.fields(Config):
        lines.append(f"[{section.name}]")
        values = getattr(config, section.name)
        for f in dataclasses.fields(values):
            lines.append(f"# {f.metadata['help']}")
            lines.append(f"{f.name} = {_toml_value(getattr(values, f.name))}")
        lines.append("")
    return "\n".join(lines)
