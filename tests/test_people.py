"""The person cue: count, distance in words, facing, from real detections; and the facing earcon."""
from __future__ import annotations

import logging

import pytest

from audio.compose import PAUSE
from audio.timeline import TimelineWriter
from audio.voice import VoicePack
from core.frames import FaceBox, FaceChange
from device.announce import Announcer
from device.config import DetectConfig, PeopleConfig
from device.people import (
    FacingWatch,
    PersonCue,
    cue_keys,
    cue_text,
    distance_m,
    distance_word,
    is_facing,
    person_cue,
    yaw_deg,
)
from device.tracker import tracker_from_config
from tests.photos import place

CFG = PeopleConfig()


def face(x: float, w: float, nose_shift: float = 0.0) -> FaceBox:
    """A face box with eyes 0.4 w apart and the nose ``nose_shift`` eye-distances off their midpoint."""
    eyes = 0.4 * w
    cx = x + w / 2
    marks = ((cx - eyes / 2, 40.0), (cx + eyes / 2, 40.0), (cx + nose_shift * eyes, 55.0),
             (cx - eyes / 3, 70.0), (cx + eyes / 3, 70.0))
    return FaceBox(int(x), 20, int(w), int(w), marks, 0.9)


def test_distance_is_the_pinhole_cameras():
    cfg = PeopleConfig(fov=90.0, face_width=0.15)  # focal length = half the frame width
    assert distance_m(160, 640, cfg) == pytest.approx(0.15 * 320 / 160)
    assert distance_m(80, 640, cfg) == pytest.approx(2 * distance_m(160, 640, cfg))
    with pytest.raises(ValueError, match="positive"):
        distance_m(0, 640, cfg)


@pytest.mark.parametrize("metres, word", [(0.3, "close"), (0.8, "arm_length"), (2.5, "few_metres"), (9, "far")])
def test_distance_words(metres, word):
    assert distance_word(metres) == word


def test_yaw_from_the_nose_and_facing_within_the_limit():
    assert yaw_deg(face(0, 100)) == pytest.approx(0.0)
    assert yaw_deg(face(0, 100, 0.45)) == pytest.approx(45.0)
    assert yaw_deg(face(0, 100, -0.45)) == pytest.approx(-45.0)
    assert is_facing(face(0, 100, 0.2), CFG) and not is_facing(face(0, 100, 0.45), CFG)
    assert is_facing(FaceBox(0, 0, 50, 50), CFG) is None  # Haar: no landmarks, nothing said


def test_the_nearest_face_speaks_for_the_distance_and_facing():
    boxes = [face(0, 60), face(300, 150, 0.5)]
    cue = person_cue(boxes, 640, CFG)
    assert cue.count == 2 and cue.facing is False
    assert cue.distance_m == pytest.approx(distance_m(150, 640, CFG))
    assert person_cue([], 640, CFG) == PersonCue(0, None, None)


def test_cue_words():
    assert cue_keys(PersonCue(0, None, None)) == ["nobody"]
    assert cue_keys(PersonCue(1, 0.8, True)) == ["1", "person", PAUSE, "arm_length", PAUSE, "facing"]
    assert cue_keys(PersonCue(12, 3.0, None)) == ["9", "people", PAUSE, "few_metres"]
    assert cue_text(PersonCue(2, 0.84, False)) == "2 people, 0.8 m, turned away"


def test_the_earcon_comes_when_a_face_turns_to_the_wearer_and_holds():
    watch = FacingWatch(CFG)
    frames = [face(0, 100)] * 10 + [face(0, 100, 0.6)] * 10 + [face(0, 100)] * 10 + [None] * 3 + [face(0, 100)] * 10
    said = [a for k, box in enumerate(frames) for a in watch.update(box, k / 15)]
    assert [a.change for a in said] == [FaceChange.FACING]  # an arrival already facing is not news
    assert said[0].t == pytest.approx(20 / 15 + FacingWatch.HOLD, abs=1 / 15)


def test_the_answer_is_logged_and_said_from_the_clips_even_while_muted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="facecue")
    voice = VoicePack("speech", "en")
    announcer = Announcer(voice, TimelineWriter(tmp_path / "heard.wav", muted=True))
    cue = PersonCue(1, 0.8, True)
    announcer.people(cue, 1.0)
    announcer.close(end_t=5.0)
    assert [r.getMessage() for r in caplog.records] == ["button people: 1 person, 0.8 m, facing"]
    phrase = voice.phrase(cue_keys(cue))
    assert phrase.duration > sum(voice.clips[k].duration for k in ("1", "person", "arm_length", "facing"))


def test_a_real_photo_counts_one_facing_person_at_the_distance_of_its_size(astronaut, coffee):
    tracker = tracker_from_config(DetectConfig())
    for scale in (1.0, 0.6):  # the face about 90 and 54 px wide
        frame = place(astronaut, coffee, scale, (40, 30))
        cue = person_cue(tracker.all_faces(frame), frame.shape[1], CFG)
        assert cue.count == 1 and cue.facing is True
        want = distance_m(90 * scale, 640, CFG)
        assert cue.distance_m == pytest.approx(want, rel=0.3)
    assert person_cue(tracker.all_faces(coffee), 640, CFG).count == 0
    two = place(astronaut, place(astronaut, coffee, 0.7, (300, 150)), 0.6, (0, 0))
    assert person_cue(tracker.all_faces(two), 640, CFG).count == 2
