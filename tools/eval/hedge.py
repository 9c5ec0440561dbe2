"""Choose ``[decide] hedge_min_confidence``, and whether hedging is on, by a rule fixed in advance.

The device says an expression it is not sure of as a hedge ("maybe sad") when
the smoothed probability is at least ``hedge_min_confidence`` but below
``min_confidence``. Where that bound sits depends on the model's calibration,
so it is chosen again for every model, on a scene video of FER2013 validation
(or training) faces made for this choice alone, never on ``twface`` (which is
for measuring only). The rule was written down before anything was measured:

1. Candidates: bounds from ``LOWEST`` up to ``min_confidence - STEP`` in steps
   of ``STEP``; every other ``[decide]`` key as configured.
2. A bound qualifies when, on the video,
   a. its hedges are right at least twice as often as a guess among the
      model's labels (2/7): the lower end of the 95 % Wilson interval of
      their precision is at least that;
   b. the words (sure words and hedges) per minute of face time are at most
      ``MAX_WORDS_PER_MINUTE``;
   c. the sure words' precision is no more than ``SURE_SLACK`` below their
      precision with hedging off (a hedge must not crowd out sure words).
3. Of the qualifying bounds, the one with the most faces announced right by a
   sure word or a hedge; a tie goes to the higher bound (fewer words).
4. Hedging is on by default only if that bound announces right at least
   ``MIN_GAIN`` more of the faces than hedging off does.

CLI (detection and classification run once; each bound replays the decide stage)::

    facecue-model scenes video --data ../shared/data/fer2013/valid.npz --n 150 --seed 101 \\
        --out /tmp/hedge/choose.avi
    facecue-model hedge --video /tmp/hedge/choose.avi [--model M] [--config C.toml] [--set ...]
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device.argparser import Parser
from device.config import DecideConfig, load
from tools.eval.announce import (
    VOTES_HELP,
    AnnounceScore,
    EvalError,
    FramePredictions,
    Schedule,
    apply_sets,
    play_labelled_video,
    replay,
    score_announcements,
)

LOWEST = 0.2
STEP = 0.05
MAX_WORDS_PER_MINUTE = 12.0
SURE_SLACK = 0.02
MIN_GAIN = 0.05
Z95 = 1.959964


def wilson_low(right: int, n: int, z: float = Z95) -> float:
    """Lower end of the Wilson score interval of ``right`` of ``n`` (0 when n is 0)."""
    if n == 0:
        return 0.0
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


@dataclass(frozen=True)
class HedgeRow:
    bound: float | None  # None: hedging off
    score: AnnounceScore
    qualifies: bool
    why_not: str  # the first rule a bound fails ("" when it qualifies)


@dataclass(frozen=True)
class HedgeChoice:
    off: HedgeRow
    rows: tuple[HedgeRow, ...]
    chosen: HedgeRow | None  # the qualifying bound with the most faces right, if any
    hedge_on: bool


def candidates(min_confidence: float) -> list[float]:
    """Bounds ``LOWEST``, ``LOWEST + STEP``, ... below ``min_confidence``, rounded to the step's digits."""
    out, k = [], 0
    while (b := round(LOWEST + k * STEP, 2)) <= min_confidence - STEP + 1e-9:
        out.append(b)
        k += 1
    return out


def _judge(score: AnnounceScore, off: AnnounceScore, guess: float) -> str:
    if wilson_low(score.hedged_right, score.hedged) < 2 * guess:
        return f"hedges right {score.hedged_right}/{score.hedged}: not surely above twice a guess"
    if not score.words_per_minute <= MAX_WORDS_PER_MINUTE:
        return f"{score.words_per_minute:.1f} words per minute"
    off_sure = off.sure_right / off.sure if off.sure else 0.0
    if score.sure and score.sure_right / score.sure < off_sure - SURE_SLACK:
        return "sure words less precise"
    return ""


def choose(per_frame: FramePredictions, schedule: Schedule, labels: tuple[str, ...], base: DecideConfig,
           grace: float = 0.5) -> HedgeChoice:
    """Apply the module's rule to cached per-frame predictions of a labelled video."""
    guess = 1.0 / len(labels)
    off_score = score_announcements(replay(per_frame, dataclasses.replace(base, hedge=False)), schedule, labels,
                                    grace)
    rows = []
    for bound in candidates(base.min_confidence):
        decide = dataclasses.replace(base, hedge=True, hedge_min_confidence=bound)
        score = score_announcements(replay(per_frame, decide), schedule, labels, grace)
        why = _judge(score, off_score, guess)
        rows.append(HedgeRow(bound, score, not why, why))
    good = [r for r in rows if r.qualifies]
    chosen = max(good, key=lambda r: (r.score.faces_right, r.bound)) if good else None
    gain = (chosen.score.faces_right - off_score.faces_right) / max(off_score.faces, 1) if chosen else 0.0
    return HedgeChoice(HedgeRow(None, off_score, True, ""), tuple(rows), chosen, gain >= MIN_GAIN - 1e-9)


def table(choice: HedgeChoice) -> str:
    head = (f"{'bound':>6} | {'faces':>5} {'right':>5} {'recall':>7} | {'sure':>4} {'right':>7} | "
            f"{'hedges':>6} {'right':>7} | {'w/min':>5} {'delay':>5} | verdict")
    lines = [head, "-" * len(head)]
    for r in (choice.off, *choice.rows):
        s = r.score
        bound = "off" if r.bound is None else f"{r.bound:.2f}"
        mark = "chosen" if r is choice.chosen else ("" if r.bound is None else (r.why_not or "qualifies"))
        lines.append(f"{bound:>6} | {s.faces:>5} {s.faces_right:>5} {_share(s.faces_right, s.faces):>7} | "
                     f"{s.sure:>4} {_share(s.sure_right, s.sure):>7} | {s.hedged:>6} "
                     f"{_share(s.hedged_right, s.hedged):>7} | {s.words_per_minute:>5.1f} {s.median_delay:>5.2f} | "
                     f"{mark}")
    return "\n".join(lines)


def _share(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "n/a"


def verdict(choice: HedgeChoice) -> str:
    if choice.chosen is None:
        return "no bound qualifies: [decide] hedge = false"
    return (f"[decide] hedge = {'true' if choice.hedge_on else 'false'}, "
            f"hedge_min_confidence = {choice.chosen.bound:.2f}"
            + ("" if choice.hedge_on else f" (it gains fewer than {MIN_GAIN:.0%} of the faces)"))


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog="facecue-model hedge", description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, required=True, help="a scene video of FER2013 validation or training "
                   "faces (facecue-model scenes video); never twface")
    p.add_argument("--schedule", type=Path, help="its schedule JSON (default: the video's name with .json)")
    p.add_argument("--votes", type=Path, metavar="FERPLUS.npz", help=VOTES_HELP)
    p.add_argument("--model", type=Path, help="model .tflite (default: [model] path, else the shipped model)")
    p.add_argument("--config", type=Path, help="daemon TOML config (default: all defaults)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key (repeatable)")
    args = p.parse_args(argv)
    cfg = apply_sets(load(args.config), args.sets)
    run = play_labelled_video(args.video, args.schedule, args.votes, args.model, cfg)
    schedule, model, per_frame, labels = run.schedule, run.model, run.per_frame, run.labels
    if not schedule:
        raise EvalError(f"schedule of {args.video} shows no face: nothing to choose on")
    choice = choose(per_frame, schedule, labels, cfg.decide)
    print(f"{args.video}: {len(schedule)} faces, {schedule[-1][1]:.0f} s; model {model.name}; "
          f"min_confidence {cfg.decide.min_confidence}")
    print(table(choice))
    print(verdict(choice))
    return 0
