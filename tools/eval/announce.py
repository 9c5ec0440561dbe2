"""What the device would say on a labelled video, scored against what was on screen.

The video is one made by ``facecue-model scenes video`` (validation faces on
real backgrounds, each held a few seconds, no-face gaps between people), and
its schedule ``X.json`` says which face, with which true expression, was on
screen when. The frames go through the device's own
:class:`~device.pipeline.Pipeline` one by one, exactly as the daemon feeds them
(frame times from the video's own clock, so no real-time pacing is needed and
every run gives the same words), and what it says is scored two ways:

* faces announced right: the share of faces shown for which at least one of the
  expressions said about them was the face's true label (what the wearer wants
  to learn about each person), and
* announcements right: the share of the expressions said that were right (how
  far the wearer can trust a word).

Beside them it prints a ceiling (:func:`ceiling`): for how many faces the
detector found a face at all, and for how many the mean of the model's
probabilities over those frames is right. The decide stage only smooths those
same probabilities, so that count is about the most faces one word each can get
right, whatever the ``[decide]`` settings.

Scoring convention:

* A face is on screen over ``[start_s, end_s)`` of the schedule (a frame at
  ``t = start_s`` shows it; the frame at ``t = end_s`` does not).
* An announcement at time ``t`` belongs to the face on screen at ``t``; if none
  is, to the last face that left at most ``grace`` seconds before ``t`` (the
  smoothing lags the picture a little). An announcement that belongs to no face
  (in a gap, past the grace) is wrong. Each announcement belongs to at most one
  face, so ``faces_right <= said_right``.
* Only expressions (the model's labels) count; events (``face``, ``noface``,
  ``muted``, ...) are neither said nor scored.
* A face announced several times is announced right if any of its
  announcements was right; each of them counts in ``said``/``said_right``.
* Hedges ("maybe sad", ``[decide] hedge``) are scored like sure words and also
  counted apart: the precision of each kind, and the faces announced right by
  either (the recall). Words per minute are expressions said per minute of a
  face on screen; the delay is from a face's start to its first right word.

``--sweep`` re-scores a small grid of ``[decide]`` settings. Only the decide
stage is re-run: detection and classification run once per frame and their
per-frame ``(t, prediction or None)`` are replayed through a fresh
:class:`~device.decide.Decider` per setting, which sees nothing else, so each
row is what the device would have said with that setting.

CLI::

    facecue-model scenes video --data ../shared/data/fer2013/valid.npz --n 60 --out /tmp/ann/valid_scenes.avi
    facecue-model announce --video /tmp/ann/valid_scenes.avi [--schedule X.json] [--model M]
        [--config C.toml] [--set decide.min_confidence=0.6 ...] [--sweep [--vary KEY=V1,V2 ...]] [--list]
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import itertools
import json
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.frames import Announcement, Expression, Prediction
from device.argparser import Parser, UsageError, bounded
from device.capture import CaptureError, VideoFileSource
from device.classify import Classifier, ModelError
from device.config import Config, ConfigError, DecideConfig, from_dict, load
from device.decide import Decider
from device.pipeline import BadFrame, Pipeline
from device.tracker import tracker_from_config
from models import DEFAULT_MODEL
from tools.data.dataset import DatasetError
from tools.data.ferplus import load_votes

Schedule = list[tuple[float, float, str]]
FramePredictions = list[tuple[float, Prediction | None]]

# The grid --sweep scores unless --vary replaces a key's values or adds a key.
SWEEP_GRID: dict[str, tuple[float, ...]] = {"stable_for": (0.4, 0.8, 1.2),
                                            "min_confidence": (0.4, 0.5, 0.6, 0.7, 0.8)}
SWEEP_KEYS = ("smoothing", "stable_for", "min_confidence", "cooldown", "face_lost_after", "hedge_min_confidence")


class EvalError(ValueError):
    """An input (video, schedule, votes, model) that cannot be used, phrased as one line:
    a run-time failure (exit 1); a bad option is a UsageError (exit 2)."""


# --- scoring -------------------------------------------------------------------------------------------------------

def _pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f} %" if den else "n/a"


@dataclass(frozen=True)
class AnnounceScore:
    faces: int  # faces shown (schedule segments)
    faces_right: int  # faces for which at least one expression said while shown (+ grace) was the true label
    faces_announced: int  # faces with any expression said about them
    said: int  # expression announcements in total, sure and hedged (events are not expressions)
    said_right: int  # of them, matching the face on screen at that time
    hedged: int = 0  # of ``said``, the hedges ("maybe sad")
    hedged_right: int = 0  # of them, right
    face_seconds: float = 0.0  # seconds with a face on screen (the schedule's total)
    delays: tuple[float, ...] = ()  # per face announced right: seconds from its start to the first right word

    @property
    def faces_right_share(self) -> float:
        """Share of faces announced right by a sure word or a hedge (nan with no faces)."""
        return self.faces_right / self.faces if self.faces else math.nan

    @property
    def said_right_share(self) -> float:
        """Share of announcements that were right (nan when nothing was said)."""
        return self.said_right / self.said if self.said else math.nan

    @property
    def sure(self) -> int:
        return self.said - self.hedged

    @property
    def sure_right(self) -> int:
        return self.said_right - self.hedged_right

    @property
    def words_per_minute(self) -> float:
        """Expressions said (a hedge counts once) per minute of face on screen."""
        return 60.0 * self.said / self.face_seconds if self.face_seconds else math.nan

    @property
    def median_delay(self) -> float:
        return float(np.median(self.delays)) if self.delays else math.nan

    def line(self) -> str:
        return (f"faces {self.faces} announced right {self.faces_right} ({_pct(self.faces_right, self.faces)}) "
                f"any {self.faces_announced}; said {self.said}, right {self.said_right} "
                f"({_pct(self.said_right, self.said)}): sure {self.sure}, right {self.sure_right} "
                f"({_pct(self.sure_right, self.sure)}); hedged {self.hedged}, right {self.hedged_right} "
                f"({_pct(self.hedged_right, self.hedged)}); {self.words_per_minute:.1f} words per minute of face; "
                f"first right word after a median {self.median_delay:.2f} s")


def _check_schedule(schedule: Sequence[tuple[float, float, str]]) -> None:
    previous_end = -math.inf
    for k, (start, end, _) in enumerate(schedule):
        if not start < end:
            raise EvalError(f"schedule entry {k}: start {start} is not before end {end}")
        if start < previous_end:
            raise EvalError(f"schedule entry {k}: starts at {start} before the previous face ends at {previous_end}")
        previous_end = end


def attribute(t: float, schedule: Sequence[tuple[float, float, str]], grace: float) -> int | None:
    """Index of the face an announcement at ``t`` is about: the one on screen, else the last one
    that left at most ``grace`` s before; None in a gap. ``schedule`` sorted, not overlapping."""
    k = bisect.bisect_right([start for start, _, _ in schedule], t) - 1  # last face that started by t
    if k < 0:
        return None
    start, end, _ = schedule[k]
    return k if t < end + grace else None


def score_announcements(announcements: Sequence[Announcement], schedule: Sequence[tuple[float, float, str]],
                        labels: tuple[str, ...], grace: float = 0.5) -> AnnounceScore:
    """Score what was said against the ``(start_s, end_s, true label)`` schedule; only announcements
    whose label is one of ``labels`` (the model's expressions) count. See the module docstring."""
    if grace < 0:
        raise ValueError(f"grace must be >= 0, got {grace}")
    _check_schedule(schedule)
    expressions = set(labels)
    announced: set[int] = set()
    first_right: dict[int, float] = {}
    said = said_right = hedged = hedged_right = 0
    for a in announcements:
        if not isinstance(a, Expression) or a.label not in expressions:
            continue
        said += 1
        hedged += a.hedged
        k = attribute(a.t, schedule, grace)
        if k is None:
            continue
        announced.add(k)
        if a.label == schedule[k][2]:
            said_right += 1
            hedged_right += a.hedged
            first_right.setdefault(k, a.t - schedule[k][0])
    face_seconds = sum(end - start for start, end, _ in schedule)
    return AnnounceScore(len(schedule), len(first_right), len(announced), said, said_right, hedged, hedged_right,
                         face_seconds, tuple(first_right[k] for k in sorted(first_right)))


def verdicts(announcements: Sequence[Announcement], schedule: Sequence[tuple[float, float, str]],
             labels: tuple[str, ...], grace: float = 0.5) -> list[tuple[Expression, str | None, bool]]:
    """Each expression said, with the true label of the face it is about (None: no face) and whether it was right."""
    out = []
    for a in announcements:
        if not isinstance(a, Expression) or a.label not in labels:
            continue
        k = attribute(a.t, schedule, grace)
        truth = None if k is None else schedule[k][2]
        out.append((a, truth, truth == a.label))
    return out


# --- running the device's pipeline ---------------------------------------------------------------------------------

def _run(video: Path, model: Path, cfg: Config) -> tuple[list[Announcement], FramePredictions, tuple[str, ...]]:
    """Every frame of ``video`` through the pipeline as the daemon runs it (bad frames skipped):
    (announcements, per-frame (t, prediction or None), the model's labels)."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(cfg.model.threads)
    try:
        classifier = Classifier(model, num_threads=cfg.model.threads)
        pipeline = Pipeline(tracker_from_config(cfg.detect), Decider(cfg.decide))
        source = VideoFileSource(Path(video))
        announcements: list[Announcement] = []
        per_frame: FramePredictions = []
        try:
            for frame in source.frames():
                try:
                    result = pipeline.step(frame, classifier)
                except BadFrame:
                    continue
                announcements.extend(result.announcements)
                per_frame.append((frame.t, result.prediction))
        finally:
            source.close()
    finally:
        cv2.setNumThreads(previous)
    return announcements, per_frame, classifier.labels


def run_video(video: Path, model: Path, cfg: Config) -> list[Announcement]:
    """Every announcement (expressions and events) the pipeline makes on ``video``, frame by frame."""
    return _run(video, model, cfg)[0]


def frame_predictions(video: Path, model: Path, cfg: Config) -> FramePredictions:
    """Detect and classify every frame once: ``(t, prediction or None)``, for :func:`replay`."""
    return _run(video, model, cfg)[1]


def replay(per_frame: FramePredictions, decide: DecideConfig) -> list[Announcement]:
    """What a fresh Decider with ``decide`` says on cached per-frame predictions: the same as
    re-running the whole pipeline with that ``[decide]``, since the Decider sees nothing else."""
    decider = Decider(decide)
    out: list[Announcement] = []
    for t, prediction in per_frame:
        out.extend(decider.update(prediction, t))
    return out


@dataclass(frozen=True)
class Ceiling:
    faces: int  # faces shown (schedule segments)
    found: int  # faces with a prediction in at least one of their frames
    right: int  # of them, those whose mean probabilities over those frames have the true label on top

    def line(self) -> str:
        return (f"ceiling: a face found for {self.found} of {self.faces} people; one word each from the mean of "
                f"their frames would be right for {self.right} ({_pct(self.right, self.faces)})")


def ceiling(per_frame: FramePredictions, schedule: Schedule) -> Ceiling:
    """What the detector and model leave a ``[decide]`` stage to work with: per face shown, was it
    found in any of its frames (``start_s <= t < end_s``), and is the top class of its frames' mean
    probabilities the true label. The decide stage only smooths those probabilities, so the second
    count is about what tuning ``[decide]`` can reach with one word per person: a target well above
    it needs a better detector or model, not other settings."""
    _check_schedule(schedule)
    seen: list[list[Prediction]] = [[] for _ in schedule]
    for t, prediction in per_frame:
        k = attribute(t, schedule, grace=0.0)
        if prediction is not None and k is not None:
            seen[k].append(prediction)
    right = sum(ps[0].labels[int(np.argmax(np.mean([p.probs for p in ps], axis=0)))] == label
                for ps, (_, _, label) in zip(seen, schedule, strict=True) if ps)
    return Ceiling(len(schedule), sum(bool(ps) for ps in seen), right)


@dataclass(frozen=True)
class SweepRow:
    decide: DecideConfig
    score: AnnounceScore


def sweep(per_frame: FramePredictions, schedule: Schedule, labels: tuple[str, ...], base: DecideConfig,
          grid: dict[str, Sequence[float]] | None = None, grace: float = 0.5) -> list[SweepRow]:
    """Score every combination of ``grid`` (``[decide]`` key -> values; the rest as in ``base``)
    on the cached frames. Each key's configured value joins its values, so the table always
    holds the configured setting."""
    grid = {k: tuple(sorted({*v, getattr(base, k)})) for k, v in (SWEEP_GRID if grid is None else grid).items()}
    rows = []
    for values in itertools.product(*grid.values()):
        decide = dataclasses.replace(base, **{k: float(v) for k, v in zip(grid, values, strict=True)})
        rows.append(SweepRow(decide, score_announcements(replay(per_frame, decide), schedule, labels, grace)))
    return rows


def sweep_table(rows: Sequence[SweepRow], base: DecideConfig) -> str:
    """The sweep as a fixed-width table of every key that varies; ``*`` marks the configured setting."""
    keys = [k for k in SWEEP_KEYS if len({getattr(r.decide, k) for r in rows}) > 1] or ["min_confidence"]
    head = ("  " + " ".join(f"{k:>{max(len(k), 5)}}" for k in keys) +
            f" | {'faces':>5} {'right':>5} {'right %':>7} {'any':>4} | {'said':>4} {'right':>5} {'right %':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        d, s = r.decide, r.score
        mark = "*" if all(getattr(d, k) == getattr(base, k) for k in SWEEP_KEYS) else " "
        lines.append(f"{mark} " + " ".join(f"{getattr(d, k):>{max(len(k), 5)}.2f}" for k in keys) +
                     f" | {s.faces:>5} {s.faces_right:>5} {_pct(s.faces_right, s.faces):>7} {s.faces_announced:>4} | "
                     f"{s.said:>4} {s.said_right:>5} {_pct(s.said_right, s.said):>7}")
    return "\n".join(lines)


def parse_vary(items: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``--vary KEY=V1,V2,...`` items over the default grid: each replaces or adds one key."""
    grid = dict(SWEEP_GRID)
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().removeprefix("decide.")
        if not sep or key not in SWEEP_KEYS:
            raise UsageError(f"--vary {item!r}: expected KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}")
        try:
            numbers = tuple(float(v) for v in values.split(","))
        except ValueError:
            raise UsageError(f"--vary {item!r}: values must be numbers separated by commas") from None
        if not all(math.isfinite(v) and v >= 0 for v in numbers):
            raise UsageError(f"--vary {item!r}: values must be finite and >= 0")
        grid[key] = numbers
    return grid


# --- inputs --------------------------------------------------------------------------------------------------------

def load_schedule(path: Path) -> Schedule:
    """The ``(start_s, end_s, class name)`` schedule from the JSON ``tools.data.scenes video`` writes:
    ``{"classes": [...], "schedule": [{"start_s", "end_s", "label" (index), "class" (name)}, ...]}``."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EvalError(f"schedule {path} not found (write it with `facecue-model scenes video`)") from None
    except OSError as exc:
        raise EvalError(f"schedule {path} unreadable: {exc.strerror}") from None
    except ValueError as exc:
        raise EvalError(f"schedule {path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("schedule"), list):
        raise EvalError(f"schedule {path}: expected an object with a 'schedule' list")
    classes = doc.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise EvalError(f"schedule {path}: 'classes' must be a list of names")
    out: Schedule = []
    for k, entry in enumerate(doc["schedule"]):
        where = f"schedule {path} entry {k}"
        if not isinstance(entry, dict):
            raise EvalError(f"{where}: expected an object")
        start, end = entry.get("start_s"), entry.get("end_s")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start, end)):
            raise EvalError(f"{where}: start_s and end_s must be numbers, got {start!r} and {end!r}")
        name = entry.get("class")
        if name is None:
            label = entry.get("label")
            if classes is None or not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(
                    classes):
                raise EvalError(f"{where}: needs a 'class' name, or a 'label' index into 'classes'")
            name = classes[label]
        if not isinstance(name, str):
            raise EvalError(f"{where}: 'class' must be a name, got {name!r}")
        out.append((float(start), float(end), name))
    try:
        _check_schedule(out)
    except EvalError as exc:
        raise EvalError(f"schedule {path}: {exc}") from None
    return out


def _parse_value(text: str) -> Any:
    """A --set value as TOML (0.6, true, ["neutral"]), else as a bare string (haar)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_sets(cfg: Config, sets: Sequence[str]) -> Config:
    """``cfg`` with ``section.key=value`` overrides, validated like the config file."""
    data = {f.name: dataclasses.asdict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    for item in sets:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. decide.min_confidence=0.6")
        data.setdefault(section, {})[name] = _parse_value(value.strip())
    try:  # unknown sections and keys, and bad values, are refused as in a config file
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"--set: {exc}") from None


def relabel_by_votes(schedule_file: Path, schedule: Schedule, votes_file: Path) -> Schedule:
    """The schedule with each face's expression replaced by its FER+ raters' majority, so that a
    model trained on the votes is scored against what ten people saw. The schedule's entries
    name their face by ``index`` into the validation split the votes belong to; a face the
    raters could not read (no majority among the seven) keeps its FER2013 label."""
    doc = json.loads(Path(schedule_file).read_text())
    classes, entries = doc.get("classes"), doc["schedule"]
    indices = [entry.get("index") for entry in entries]
    if not isinstance(classes, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise EvalError(f"schedule {schedule_file}: --votes needs 'classes' and each face's 'index'")
    try:
        votes = load_votes(votes_file, tuple(classes))
    except DatasetError as exc:
        raise EvalError(f"--votes {exc}") from None
    n = len(votes.usable)
    if any(not 0 <= i < n for i in indices):
        raise EvalError(f"schedule {schedule_file}: its faces are not rows of {votes_file}")
    majority = votes.majority
    return [(start, end, classes[majority[i]] if majority[i] >= 0 else name)
            for (start, end, name), i in zip(schedule, indices, strict=True)]


def read_truth(schedule_file: Path, votes_file: Path | None) -> Schedule:
    """A video's schedule, its faces labelled by ``votes_file``'s raters where one is given."""
    schedule = load_schedule(schedule_file)
    return schedule if votes_file is None else relabel_by_votes(schedule_file, schedule, votes_file)


@dataclass(frozen=True)
class VideoRun:
    """A labelled video played through the daemon's pipeline: its truth and what was said."""

    schedule: Schedule
    model: Path
    announcements: list[Announcement]
    per_frame: FramePredictions
    labels: tuple[str, ...]


def play_labelled_video(video: Path, schedule_file: Path | None, votes_file: Path | None, model: Path | None,
              cfg: Config) -> VideoRun:
    """The video's truth (its schedule, relabelled by ``votes_file`` where given) and the run of
    ``model`` (default: the config's, else the shipped one) over it; one ``EvalError`` line
    for a missing video or schedule, or a model or video that cannot be used."""
    if not video.is_file():
        raise EvalError(f"video {video} not found")
    schedule = read_truth(schedule_file or video.with_suffix(".json"), votes_file)
    model = model or (Path(cfg.model.path) if cfg.model.path else DEFAULT_MODEL)
    try:
        return VideoRun(schedule, model, *_run(video, model, cfg))
    except (CaptureError, ModelError) as exc:
        raise EvalError(str(exc)) from None


VOTES_HELP = ("score against the FER+ majority of each face (a validation-face video's schedule names its "
              "faces by index), e.g. ../shared/data/ferplus/valid.npz")


# --- CLI -----------------------------------------------------------------------------------------------------------

def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = Parser(prog="facecue-model announce", description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, required=True, help="labelled video (facecue-model scenes video)")
    p.add_argument("--schedule", type=Path, help="its schedule JSON (default: the video's name with .json)")
    p.add_argument("--model", type=Path, help="model .tflite (default: [model] path of the config, else the "
                   "shipped model)")
    p.add_argument("--config", type=Path, help="daemon TOML config (default: all defaults)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key, e.g. decide.min_confidence=0.6 (repeatable)")
    p.add_argument("--votes", type=Path, metavar="FERPLUS.npz", help=VOTES_HELP)
    p.add_argument("--grace", type=bounded(float, at_least=0), default=0.5,
                   help="seconds after a face leaves in which an "
                   "announcement still counts for it (default 0.5)")
    p.add_argument("--sweep", action="store_true", help="also score a grid of [decide] settings (default "
                   + ", ".join(f"{k} over {', '.join(map(str, v))}" for k, v in SWEEP_GRID.items()) + ")")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help=f"with --sweep, the values of one [decide] key ({', '.join(SWEEP_KEYS)}); repeatable")
    p.add_argument("--list", action="store_true", help="print every expression said, with the truth")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    cfg = apply_sets(load(args.config), args.sets)
    grid = parse_vary(args.vary)
    run = play_labelled_video(args.video, args.schedule, args.votes, args.model, cfg)
    schedule, model, announcements, per_frame, labels = (run.schedule, run.model, run.announcements,
                                                         run.per_frame, run.labels)
    unknown = sorted({name for _, _, name in schedule} - set(labels))
    if unknown:
        raise EvalError(f"schedule classes {', '.join(unknown)} are not labels of the model ({', '.join(labels)})")
    faces = sum(p is not None for _, p in per_frame)
    d = cfg.decide
    print(f"{args.video}: {len(per_frame)} frames, a face found in {faces}; model {model.name}; decide smoothing "
          f"{d.smoothing} stable_for {d.stable_for} min_confidence {d.min_confidence} cooldown {d.cooldown} "
          f"face_lost_after {d.face_lost_after} hedge {d.hedge} hedge_min_confidence {d.hedge_min_confidence}")
    if args.list:
        for a, truth, ok in verdicts(announcements, schedule, labels, args.grace):
            said = f"maybe {a.label}" if a.hedged else a.label
            print(f"  t {a.t:7.2f}  said {said:<14} {a.confidence:.2f}  truth {truth or '(no face)':<9} "
                  f"{'right' if ok else 'WRONG'}")
    print(score_announcements(announcements, schedule, labels, args.grace).line())
    print(ceiling(per_frame, schedule).line())
    if args.sweep:
        rows = sweep(per_frame, schedule, labels, d, grid, grace=args.grace)
        print(sweep_table(rows, d))
    return 0
