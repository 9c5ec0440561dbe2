"""Earcons: one learnable tone pattern per label, told apart by ear."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from audio.dsp import TARGET_ACTIVE_DB, active_level_db
from audio.earcons import PATTERNS, SOFT_DB, earcon, face_earcon
from audio.phrases import EVENTS
from audio.sound import Sound
from core.labels import EXPRESSIONS

FRAME = 320  # 20 ms


def contour(sound: Sound) -> list[int]:
    """Per 20 ms: the nearest semitone (MIDI number) of the strongest
    frequency, or 0 for a pause: the rhythm and melody a listener hears."""
    x = sound.pcm.astype(float)
    frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    out = []
    for f, r in zip(frames, rms, strict=True):
        if r < 0.2 * rms.max():
            out.append(0)
            continue
        spectrum = np.abs(np.fft.rfft(f * np.hanning(FRAME), 4 * FRAME))
        hz = np.argmax(spectrum) * sound.sample_rate / (4 * FRAME)
        out.append(int(round(69 + 12 * np.log2(hz / 440))))
    return out


def frames_apart(a: list[int], b: list[int]) -> int:
    n = max(len(a), len(b))
    a, b = a + [0] * (n - len(a)), b + [0] * (n - len(b))
    return sum(x != y for x, y in zip(a, b, strict=True))


def test_every_expression_and_event_has_an_earcon():
    assert set(PATTERNS) == set(EXPRESSIONS + EVENTS)


def test_earcons_differ_in_rhythm_or_pitch_for_at_least_100_ms():
    contours = {label: contour(earcon(label)) for label in PATTERNS}
    closest = min((frames_apart(contours[a], contours[b]), a, b)
                  for a, b in itertools.combinations(contours, 2))
    assert closest[0] >= 5, closest


def test_pleasant_rises_and_unpleasant_falls():
    def first_last(label: str) -> tuple[int, int]:
        notes = [n for n in contour(earcon(label)) if n]
        return notes[0], notes[-1]

    for label in ("happy", "surprise", "unmuted", "model_updated"):
        a, b = first_last(label)
        assert b > a, label
    for label in ("sad", "disgust", "muted", "noface"):
        a, b = first_last(label)
        assert b < a, label


def test_earcons_are_short_and_as_loud_as_speech():
    for label in PATTERNS:
        s = earcon(label)
        assert 0.1 < s.duration <= 1.3, label
        assert active_level_db(s) == pytest.approx(TARGET_ACTIVE_DB, abs=0.1), label
        assert s.pcm[0] == 0 and s.pcm[-1] == 0, label  # faded: no click


def test_face_earcons_are_soft_short_glides_in_opposite_directions():
    up, down = contour(face_earcon("face")), contour(face_earcon("noface"))
    assert up[-1] > up[0] and down[-1] < down[0]
    for label in ("face", "noface"):
        s = face_earcon(label)
        assert s.duration <= 0.2
        assert active_level_db(s) == pytest.approx(TARGET_ACTIVE_DB + SOFT_DB, abs=0.1)


def test_generation_is_deterministic():
    assert np.array_equal(earcon("fear").pcm, earcon("fear").pcm)


def test_unknown_labels_list_the_known_ones():
    with pytest.raises(ValueError, match=r"no earcon for 'joy'; available: happy, sad, angry, .*, error$"):
        earcon("joy")
    with pytest.raises(ValueError, match=r"available: face, noface"):
        face_earcon("happy")
