"""The tools that measure the person cue and make the twface video: geometry on real photos, and the
video's layout where ../shared holds twface."""
from __future__ import annotations

import json

import numpy as np
import pytest

from device.config import DetectConfig, PeopleConfig
from device.people import person_cue
from device.tracker import tracker_from_config
from tools.data.twface import TWFACE_DIR, head_alpha, paste_head
from tools.eval.people import IPD, _focal, _own_face, distance_scene, eye_px, face_width_from


def test_the_head_is_cut_out_with_a_soft_ellipse():
    alpha = head_alpha(60, 40)
    assert alpha[30, 20] == 1.0 and alpha[0, 0] == 0.0 and alpha[0, 20] < 0.1
    frame = np.zeros((100, 100, 3), np.uint8)
    assert paste_head(frame, np.full((30, 20, 3), 200, np.uint8), 10, 10, 40) == (40, 60)
    assert frame[40, 30].tolist() == [200, 200, 200] and frame[10, 10].tolist() == [0, 0, 0]


def test_face_width_is_the_eye_ruler_times_the_box_to_eyes_ratio(astronaut):
    tracker = tracker_from_config(DetectConfig())
    face = _own_face(tracker, astronaut)
    width, n = face_width_from([astronaut], tracker)
    assert n == 1 and width == pytest.approx(IPD * face.w / eye_px(face))
    with pytest.raises(ValueError, match="no face"):
        face_width_from([np.zeros((200, 200, 3), np.uint8)], tracker)


def test_a_head_placed_at_a_distance_is_said_near_it(astronaut):
    pytest.importorskip("skimage")
    tracker = tracker_from_config(DetectConfig())
    own = _own_face(tracker, astronaut)
    cfg = PeopleConfig(face_width=IPD * own.w / eye_px(own))  # this photo's own ratio: only the scene's error left
    rng = np.random.default_rng(0)
    frame = distance_scene(astronaut, own, 0.9, cfg, rng)
    assert frame is not None and frame.shape == (480, 640, 3)
    cue = person_cue(tracker.all_faces(frame), 640, cfg)
    assert cue.count == 1 and cue.distance_m == pytest.approx(0.9, rel=0.15)
    assert distance_scene(astronaut, own, 0.05, cfg, rng) is None  # would not fit the frame
    assert _focal(PeopleConfig(fov=90.0), 640) == pytest.approx(320.0)


@pytest.mark.skipif(not (TWFACE_DIR / "labels.csv").is_file(), reason="twface is not in ../shared/data")
def test_the_people_video_shows_each_person_in_turn_with_gaps(tmp_path):
    from tools.data.people_video import main

    out = tmp_path / "people.avi"
    assert main(["--out", str(out), "--people", "2", "--seconds", "0.4", "--gap", "0.6", "--seed", "3"]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    schedule = doc["schedule"]
    people = [e["person"] for e in schedule]
    assert len(set(people)) == 2 and people == sorted(people, key=people.index)  # one person after another
    for before, after in zip(schedule, schedule[1:], strict=False):
        gap = after["start_s"] - before["end_s"]
        assert gap == pytest.approx(0.0 if before["person"] == after["person"] else 0.6, abs=1e-3)
    assert all(abs(e["end_s"] - e["start_s"] - 0.4) < 1e-3 for e in schedule)
    again = tmp_path / "again.avi"
    assert main(["--out", str(again), "--people", "2", "--seconds", "0.4", "--gap", "0.6", "--seed", "3"]) == 0
    assert json.loads(again.with_suffix(".json").read_text())["schedule"] == schedule  # the seed decides all


def test_the_poses_judged_by_eye_name_distinct_validation_faces(valid_faces):
    from tools.data.dataset import data_dir
    from tools.eval.people import FACING_LABELS

    doc = json.loads(FACING_LABELS.read_text())
    frontal, turned = set(doc["frontal"]), set(doc["turned"])
    assert (len(frontal), len(turned)) == (51, 12) and not frontal & turned
    with np.load(data_dir() / "valid.npz") as data:
        assert frontal | turned <= {str(n) for n in data["names"]}
