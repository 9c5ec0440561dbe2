"""tools.eval.hedge: the rule that picks [decide] hedge_min_confidence, on per-frame predictions made by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.frames import Prediction
from device.config import DecideConfig
from tools.cli import main as facecue_model
from tools.eval.hedge import MAX_WORDS_PER_MINUTE, candidates, choose, table, verdict, wilson_low

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def _pred(label: str, p: float) -> Prediction:
    probs = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
    probs[LABELS.index(label)] = p
    return Prediction(probs, LABELS)


def _video(faces: list[tuple[str, str | None, float]], seconds: float = 3.0, gap: float = 2.0, fps: float = 15.0):
    """Per-frame predictions and the schedule of faces (truth, what the model says or None where no
    face is found, its probability)."""
    per_frame, schedule, t = [], [], 0.0
    for truth, said, p in faces:
        for _ in range(int(gap * fps)):
            per_frame.append((t, None))
            t += 1 / fps
        start = t
        for _ in range(int(seconds * fps)):
            per_frame.append((t, _pred(said, p) if said else None))
            t += 1 / fps
        schedule.append((start, t, truth))
    return per_frame, schedule


def test_wilson_lower_bound():
    assert wilson_low(0, 0) == 0.0
    assert wilson_low(50, 100) == pytest.approx(0.4038, abs=1e-4)
    assert wilson_low(10, 10) < 1.0


def test_candidates_stop_a_step_below_min_confidence():
    assert candidates(0.4) == [0.2, 0.25, 0.3, 0.35]
    assert candidates(0.2) == []


def test_hedges_that_are_mostly_right_are_chosen_and_turned_on():
    # 60 faces: 10 sure and right, 20 at 0.5 of which 14 right, 30 never found: hedges at bounds <= 0.5 help
    faces = ([("happy", "happy", 0.9)] * 10 + [("sad", "sad", 0.5)] * 14 + [("sad", "fear", 0.5)] * 6
             + [("angry", None, 0.0)] * 30)
    per_frame, schedule = _video(faces)
    choice = choose(per_frame, schedule, LABELS, DecideConfig())
    assert choice.off.score.faces_right == 10
    assert choice.chosen is not None and choice.hedge_on
    assert choice.chosen.bound == 0.5  # every bound up to 0.5 gains the same: the tie goes to the highest
    assert choice.chosen.score.faces_right == 24 and choice.chosen.score.hedged == 20
    assert all(not r.qualifies for r in choice.rows if r.bound > 0.5)  # no hedges there at all
    assert "hedge_min_confidence = 0.50" in verdict(choice) and "chosen" in table(choice)


def test_hedges_no_better_than_a_guess_are_refused():
    faces = ([("happy", "happy", 0.9)] * 10 + [("sad", wrong, 0.5) for wrong in ("fear", "angry", "neutral")] * 7
             + [("angry", None, 0.0)] * 30)
    per_frame, schedule = _video(faces)
    choice = choose(per_frame, schedule, LABELS, DecideConfig())
    assert choice.chosen is None and not choice.hedge_on
    assert verdict(choice) == "no bound qualifies: [decide] hedge = false"


def test_too_many_words_disqualify_a_bound():
    # no gap and one-second faces: a word a second is far above the limit
    faces = [("sad", "sad", 0.5), ("happy", "happy", 0.5)] * 20
    per_frame, schedule = _video(faces, seconds=1.2, gap=0.0)
    choice = choose(per_frame, schedule, LABELS, DecideConfig(stable_for=0.2, cooldown=0.0))
    assert choice.chosen is None
    assert all(r.score.words_per_minute > MAX_WORDS_PER_MINUTE for r in choice.rows if r.bound <= 0.45)
    assert all(r.score.hedged_right == r.score.hedged for r in choice.rows)  # right, yet too many


def test_cli_refuses_a_missing_video_in_one_line(tmp_path, capsys):
    assert facecue_model(["hedge", "--video", str(tmp_path / "none.avi")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.avi not found" in err
    assert not math.isnan(wilson_low(1, 2))
