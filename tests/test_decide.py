from itertools import pairwise

import numpy as np
import pytest

from core.frames import Expression, FaceChange, FaceCue, Prediction
from device.config import DecideConfig
from device.decide import Decider

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def pred(label: str, p: float = 0.9) -> Prediction:
    probs = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
    probs[LABELS.index(label)] = p
    return Prediction(probs, LABELS)


def feed(decider, items, fps=15.0, start=0.0):
    """items: (label or None, seconds[, top probability]); returns announcements with their times."""
    out, t = [], start
    for label, seconds, *p in items:
        for _ in range(int(seconds * fps)):
            out += decider.update(pred(label, *p) if label else None, t)
            t += 1 / fps
    return out, t


HEDGING = DecideConfig(hedge=True, hedge_min_confidence=0.45, min_confidence=0.7)


def test_an_unsure_expression_is_hedged_only_when_hedging_is_on():
    steady = [("sad", 10.0, 0.55)]
    assert feed(Decider(DecideConfig(hedge=False)), steady)[0] == []
    out, _ = feed(Decider(HEDGING), steady)
    assert [(a.label, a.hedged) for a in out] == [("sad", True)]
    assert out[0].confidence == pytest.approx(0.55)


def test_below_the_hedge_bound_stays_silent():
    assert feed(Decider(HEDGING), [("sad", 10.0, 0.4)])[0] == []


def test_a_sure_expression_is_never_hedged():
    out, _ = feed(Decider(HEDGING), [("happy", 10.0, 0.9)])
    assert [(a.label, a.hedged) for a in out] == [("happy", False)]


def test_a_hedge_firms_up_into_a_sure_word_after_the_cooldown_but_never_back():
    out, _ = feed(Decider(HEDGING), [("sad", 2.0, 0.55), ("sad", 5.0, 0.9), ("sad", 5.0, 0.55)])
    assert [(a.label, a.hedged) for a in out] == [("sad", True), ("sad", False)]
    assert out[1].t - out[0].t >= HEDGING.cooldown
    d = Decider(HEDGING)
    feed(d, [("sad", 2.0, 0.55)])
    assert d.current().hedged and d.current().label == "sad"  # the repeat button says "maybe sad" too


def test_stable_expression_is_said_once():
    out, _ = feed(Decider(DecideConfig()), [("happy", 30.0)])
    assert [a.label for a in out] == ["happy"]
    assert 0.8 <= out[0].t <= 1.5


def test_flicker_is_not_said():
    d = Decider(DecideConfig(stable_for=0.8, smoothing=0.0))
    out, _ = feed(d, [("happy", 0.3), ("sad", 0.3)] * 10)
    assert out == []


def test_change_is_said_after_cooldown():
    d = Decider(DecideConfig(cooldown=3.0))
    out, _ = feed(d, [("happy", 1.5), ("sad", 1.0), ("surprise", 5.0)])
    labels = [a.label for a in out]
    assert labels[0] == "happy"
    assert labels[-1] == "surprise"
    assert all(b.t - a.t >= 3.0 for a, b in pairwise(out))


def test_low_confidence_is_silent():
    d = Decider(DecideConfig(min_confidence=0.6))
    out = []
    for i in range(100):
        out += d.update(pred("fear", 0.4), i / 15)
    assert out == []


def test_no_face_is_silent_by_default_and_face_returns_fresh():
    d = Decider(DecideConfig())
    out, t = feed(d, [("happy", 2.0), (None, 5.0), ("happy", 2.0)])
    assert [a.label for a in out] == ["happy", "happy"]


def test_face_earcons_when_enabled():
    d = Decider(DecideConfig(face_earcons=True))
    out, _ = feed(d, [("happy", 2.0), (None, 3.0)])
    assert out[0] == FaceCue(FaceChange.ARRIVED, 0.0) and out[2].change is FaceChange.LEFT
    assert isinstance(out[1], Expression) and out[1].label == "happy"


def test_quiet_labels_are_never_said():
    d = Decider(DecideConfig(quiet_labels=["neutral"]))
    out, _ = feed(d, [("neutral", 5.0)])
    assert out == []


def test_repeat_reports_last_or_noface():
    d = Decider(DecideConfig())
    assert d.current() is None
    feed(d, [("sad", 2.0)])
    assert d.current().label == "sad" and not d.current().hedged
    feed(d, [(None, 3.0)], start=2.0)
    assert d.current() is None


def test_an_hour_of_a_steady_face_says_one_word():
    d = Decider(DecideConfig())
    out, _ = feed(d, [("neutral", 3600.0)], fps=5)
    assert len(out) == 1
