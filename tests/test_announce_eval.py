"""tools.eval.announce: scoring what the device says against a labelled video's schedule."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.frames import Expression, FaceChange, FaceCue, Prediction
from device.argparser import UsageError
from device.config import Config, ConfigError
from tools.cli import main as facecue_model
from tools.eval.announce import (
    SWEEP_GRID,
    AnnounceScore,
    Ceiling,
    EvalError,
    _run,
    apply_sets,
    ceiling,
    load_schedule,
    main,
    parse_vary,
    replay,
    run_video,
    score_announcements,
    sweep,
    sweep_table,
)

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
TWO = [(1.0, 4.0, "happy"), (5.0, 8.0, "sad")]


def say(label: str, t: float, confidence: float = 0.7) -> Expression:
    return Expression(label, confidence, t)


def counts(s: AnnounceScore) -> tuple[int, int, int, int, int]:
    """Faces, faces right, faces announced, said, said right."""
    return s.faces, s.faces_right, s.faces_announced, s.said, s.said_right


# --- scoring by hand -----------------------------------------------------------------------------------------------

def test_right_announcement_scores_face_and_word():
    s = score_announcements([say("happy", 2.0), say("sad", 6.0)], TWO, LABELS)
    assert counts(s) == (2, 2, 2, 2, 2)


def test_wrong_announcement_counts_as_announced_not_right():
    s = score_announcements([say("angry", 2.0)], TWO, LABELS)
    assert counts(s) == (2, 0, 1, 1, 0)


def test_announcement_in_gap_or_before_first_face_is_wrong():
    s = score_announcements([say("happy", 0.5), say("happy", 4.7), say("sad", 4.9)], TWO, LABELS)
    assert counts(s) == (2, 0, 0, 3, 0)


def test_grace_after_face_leaves():
    inside = score_announcements([say("happy", 4.3)], TWO, LABELS)
    assert (inside.faces_right, inside.said_right) == (1, 1)
    at_edge = score_announcements([say("happy", 4.5)], TWO, LABELS)  # [start, end + grace): 4.5 is past it
    assert (at_edge.faces_right, at_edge.faces_announced, at_edge.said_right) == (0, 0, 0)
    after = score_announcements([say("sad", 8.6)], TWO, LABELS)
    assert (after.said, after.said_right, after.faces_announced) == (1, 0, 0)
    no_grace = score_announcements([say("happy", 4.1)], TWO, LABELS, grace=0.0)
    assert no_grace.said_right == 0
    wide = score_announcements([say("happy", 4.9)], TWO, LABELS, grace=1.0)
    assert wide.said_right == 1


def test_face_on_screen_wins_over_grace_of_previous():
    schedule = [(1.0, 4.0, "happy"), (4.2, 7.0, "sad")]
    s = score_announcements([say("happy", 4.3)], schedule, LABELS)
    assert (s.faces_announced, s.faces_right, s.said_right) == (1, 0, 0)  # it is about the sad face now
    s = score_announcements([say("sad", 4.3)], schedule, LABELS)
    assert (s.faces_right, s.said_right) == (1, 1)


def test_earcons_and_labels_beyond_the_model_are_not_counted():
    events = [FaceCue(change, 1.5 + 0.25 * i) for i, change in enumerate(FaceChange)]
    s = score_announcements(events + [say("contempt", 2.0)], TWO, LABELS)
    assert counts(s) == (2, 0, 0, 0, 0)
    s = score_announcements(events + [say("happy", 2.0)], TWO, LABELS)
    assert (s.said, s.said_right, s.faces_right) == (1, 1, 1)


def test_repeated_announcements_of_one_face():
    s = score_announcements([say("sad", 1.9), say("happy", 2.5), say("happy", 3.9)], TWO, LABELS)
    assert counts(s) == (2, 1, 1, 3, 2)
    s = score_announcements([say("sad", 1.9), say("angry", 3.5)], TWO, LABELS)
    assert (s.faces_right, s.faces_announced, s.said, s.said_right) == (0, 1, 2, 0)


def test_line_and_shares():
    s = AnnounceScore(faces=40, faces_right=24, faces_announced=30, said=35, said_right=28, hedged=10,
                      hedged_right=5, face_seconds=120.0, delays=(0.8, 1.0, 2.0))
    assert s.line() == ("faces 40 announced right 24 (60.0 %) any 30; said 35, right 28 (80.0 %): sure 25, right 23 "
                        "(92.0 %); hedged 10, right 5 (50.0 %); 17.5 words per minute of face; first right word "
                        "after a median 1.00 s")
    assert s.faces_right_share == pytest.approx(0.6) and s.said_right_share == pytest.approx(0.8)
    silent = score_announcements([], TWO, LABELS)
    assert silent.line().startswith("faces 2 announced right 0 (0.0 %) any 0; said 0, right 0 (n/a): sure 0")
    assert np.isnan(silent.said_right_share) and np.isnan(silent.median_delay)
    assert silent.words_per_minute == 0.0


def test_hedges_count_apart_and_the_delay_is_to_the_first_right_word():
    said = [Expression("sad", 0.5, 2.0, hedged=True), Expression("happy", 0.8, 2.5),
            Expression("angry", 0.5, 6.2, hedged=True), Expression("sad", 0.9, 7.5)]
    s = score_announcements(said, TWO, LABELS)
    assert (s.said, s.said_right, s.hedged, s.hedged_right, s.sure, s.sure_right) == (4, 2, 2, 0, 2, 2)
    assert s.faces_right == 2 and s.delays == pytest.approx((1.5, 2.5))
    assert s.face_seconds == 6.0 and s.words_per_minute == pytest.approx(40.0)


def _probs(**top: float) -> Prediction:
    probs = np.array([top.get(label, 0.0) for label in LABELS])
    return Prediction(probs, LABELS)


def test_ceiling_counts_faces_found_and_the_mean_of_their_frames():
    schedule = TWO + [(9.0, 12.0, "fear")]  # the fear face is never found
    per_frame = [
        (0.5, _probs(happy=0.9)),                 # before the first face: no one's
        (1.0, _probs(happy=0.6, sad=0.4)),        # happy face: its mean is happy
        (3.0, None),
        (4.0, _probs(sad=1.0)),                   # t == end: the happy face has left
        (5.5, _probs(angry=0.6, sad=0.4)),        # sad face: angry first, but the mean is sad (0.65 vs 0.3)
        (6.0, _probs(sad=0.9, angry=0.0)),
        (10.0, None),
    ]
    assert ceiling(per_frame, schedule) == Ceiling(faces=3, found=2, right=2)
    wrong = per_frame[:4] + [(5.5, _probs(angry=0.9, sad=0.1)), (6.0, _probs(sad=0.6, angry=0.4))]
    assert ceiling(wrong, schedule) == Ceiling(faces=3, found=2, right=1)  # mean angry 0.65 over sad 0.35
    assert ceiling([], schedule).line() == ("ceiling: a face found for 0 of 3 people; one word each from the mean "
                                            "of their frames would be right for 0 (0.0 %)")


def test_overlapping_schedule_is_refused():
    with pytest.raises(EvalError):
        score_announcements([], [(1.0, 4.0, "happy"), (3.0, 6.0, "sad")], LABELS)
    with pytest.raises(EvalError):
        score_announcements([], [(4.0, 4.0, "happy")], LABELS)


# --- inputs --------------------------------------------------------------------------------------------------------

def _scenes_json(path: Path, schedule: list[tuple[float, float, int]], classes=LABELS) -> Path:
    """A schedule in the layout ``python -m tools.data.scenes video`` writes."""
    doc = {"video": path.with_suffix(".avi").name, "fps": 15.0, "size": [640, 480], "classes": list(classes),
           "source": "test", "seed": 0,
           "schedule": [{"start_s": a, "end_s": b, "label": lab, "class": classes[lab], "index": k}
                        for k, (a, b, lab) in enumerate(schedule)]}
    path.write_text(json.dumps(doc))
    return path


def test_load_schedule_reads_scenes_layout(tmp_path):
    path = _scenes_json(tmp_path / "v.json", [(1.0, 4.0, 3), (5.0, 8.0, 5)])
    assert load_schedule(path) == TWO
    doc = json.loads(path.read_text())
    for entry in doc["schedule"]:
        del entry["class"]  # the label index alone is enough with classes
    path.write_text(json.dumps(doc))
    assert load_schedule(path) == TWO


@pytest.mark.parametrize("doc", [
    [1, 2, 3],
    {"schedule": {"start_s": 1}},
    {"schedule": [{"start_s": "1", "end_s": 4, "class": "happy"}]},
    {"schedule": [{"start_s": 1, "end_s": 4}]},
    {"classes": ["happy"], "schedule": [{"start_s": 1, "end_s": 4, "label": 3}]},
    {"schedule": [{"start_s": 5, "end_s": 4, "class": "happy"}]},
])
def test_load_schedule_refuses_bad_layout(tmp_path, doc):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(EvalError, match="schedule"):
        load_schedule(path)


def test_apply_sets():
    cfg = apply_sets(Config(), ["decide.min_confidence=0.6", "decide.quiet_labels=[\"neutral\"]", "detect.method=haar",
                                "decide.face_earcons=true"])
    assert cfg.decide.min_confidence == 0.6 and cfg.decide.quiet_labels == ["neutral"]
    assert cfg.detect.method == "haar" and cfg.decide.face_earcons is True
    for bad in ("decide.foo=1", "nosuch.x=1", "decide.min_confidence", "min_confidence=0.5",
                "decide.min_confidence=2", "decide.stable_for=abc"):
        with pytest.raises(ConfigError):
            apply_sets(Config(), [bad])


def test_cli_errors_are_one_line(tmp_path, capsys):
    """A missing or broken input is a run-time failure (1), a bad --set a usage error (2)."""
    video = tmp_path / "v.avi"
    assert facecue_model(["announce", "--video", str(video)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: ") and err.count("\n") == 1 and "not found" in err
    video.write_bytes(b"not read before the schedule is checked")
    (tmp_path / "v.json").write_text(json.dumps({"schedule": "nope"}))
    assert facecue_model(["announce", "--video", str(video)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: schedule") and err.count("\n") == 1
    assert facecue_model(["announce", "--video", str(video), "--set", "decide.nope=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: ") and "unknown key [decide] nope" in err and err.count("\n") == 1
    assert facecue_model(["announce", "--video", str(video), "--vary", "nope=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: --vary 'nope=1'") and err.count("\n") == 1


# --- end to end on a real face -------------------------------------------------------------------------------------

def _astronaut_face(photo: np.ndarray) -> np.ndarray:
    """A grey square around the astronaut's face (~90 px at x 178-268, y 63-176), forehead to chin like FER."""
    return np.ascontiguousarray(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)[55:185, 158:288])


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, astronaut, model_path):
    """A short scenes video of the astronaut twice (once mirrored), its schedule and the pipeline's output."""
    from tools.data.scenes import scene_video

    face = _astronaut_face(astronaut)
    video = tmp_path_factory.mktemp("ann") / "faces.avi"
    raw = scene_video(video, [face, face[:, ::-1].copy()], [3, 4], seconds_per_face=3.0, gap=1.0, fps=15.0, seed=0)
    _scenes_json(video.with_suffix(".json"), raw)
    announcements, per_frame, labels = _run(video, model_path, Config())
    schedule = [(a, b, labels[lab]) for a, b, lab in raw]
    return video, schedule, announcements, per_frame, labels


def test_video_announcements_are_consistent(face_video):
    video, schedule, announcements, per_frame, labels = face_video
    assert labels == LABELS
    end = schedule[-1][1] + 1.0
    assert len(per_frame) == round(end * 15)
    on_face = [p is not None for t, p in per_frame if any(a <= t < b for a, b, _ in schedule)]
    assert sum(on_face) >= len(on_face) // 2  # the detector finds the pasted face in most frames
    expressions = [a for a in announcements if isinstance(a, Expression)]
    assert all(a.label in labels and 0.0 <= a.t <= end and 0.0 <= a.confidence <= 1.0 for a in expressions)
    s = score_announcements(announcements, schedule, labels)
    assert s.faces == 2 and s.said == len(expressions) >= 1
    assert 0 <= s.faces_right <= s.faces_announced <= s.faces
    assert 0 <= s.said_right <= s.said and s.faces_right <= s.said_right
    for a in expressions:  # said only after the expression held stable_for on a face
        assert any(start + Config().decide.stable_for - 1e-6 <= a.t < stop + 1.6 for start, stop, _ in schedule)


def test_replay_matches_the_pipeline(face_video, model_path):
    video, schedule, announcements, per_frame, labels = face_video
    assert replay(per_frame, Config().decide) == announcements
    assert run_video(video, model_path, Config()) == announcements  # deterministic: frame times, not wall time
    noisy = replay(per_frame, dataclasses.replace(Config().decide, face_earcons=True))
    assert {a.change for a in noisy if isinstance(a, FaceCue)} == {FaceChange.ARRIVED, FaceChange.LEFT}
    assert score_announcements(noisy, schedule, labels) == score_announcements(announcements, schedule, labels)


def test_sweep_rows_replay_each_setting(face_video):
    _, schedule, announcements, per_frame, labels = face_video
    base = Config().decide
    rows = sweep(per_frame, schedule, labels, base,
                 {"min_confidence": (base.min_confidence, 0.99), "smoothing": (0.0, base.smoothing)})
    assert len(rows) == 4
    mine = [r for r in rows if (r.decide.smoothing, r.decide.min_confidence) == (base.smoothing, base.min_confidence)]
    assert mine[0].score == score_announcements(announcements, schedule, labels)
    strict = [r for r in rows if r.decide.min_confidence == 0.99]
    assert all(r.score.said <= mine[0].score.said for r in strict)
    table = sweep_table(rows, base)
    assert len(table.splitlines()) == 2 + 4 and sum(line.startswith("*") for line in table.splitlines()) == 1
    assert table.split()[:2] == ["smoothing", "min_confidence"]  # the keys that vary, no others


def test_vary_sets_the_sweep_grid_and_refuses_what_is_not_a_decide_number():
    assert parse_vary(["cooldown=1,3", "decide.stable_for=0.5"]) == {
        "stable_for": (0.5,), "min_confidence": SWEEP_GRID["min_confidence"], "cooldown": (1.0, 3.0)}
    for bad, message in (("volume=1", "KEY one of"), ("cooldown=fast", "numbers"), ("cooldown=nan", "finite")):
        with pytest.raises(UsageError, match=message):
            parse_vary([bad])


def test_cli_scores_the_video(face_video, capsys):
    video, schedule, announcements, per_frame, labels = face_video
    assert main(["--video", str(video), "--sweep", "--list"]) == 0
    out = capsys.readouterr().out
    assert score_announcements(announcements, schedule, labels).line() in out
    assert ceiling(per_frame, schedule).line() in out
    assert "min_conf" in out and out.count("\n*") == 1


def test_no_face_video_says_no_expression(tmp_path, model_path):
    pytest.importorskip("skimage", reason="scikit-image (the dev extra) ships the background photos")
    from tools.data.scenes import scene_video

    video = tmp_path / "empty.avi"
    assert scene_video(video, [], [], gap=3.0, fps=15.0, seed=1) == []
    cfg = apply_sets(Config(), ["decide.face_earcons=true", "decide.min_confidence=0.0", "decide.stable_for=0.0"])
    announcements = run_video(video, model_path, cfg)
    assert [a for a in announcements if isinstance(a, Expression)] == []
    assert score_announcements(announcements, [], LABELS) == AnnounceScore(0, 0, 0, 0, 0)


def test_votes_relabel_each_face_of_the_schedule_by_its_raters(tmp_path):
    import json

    from tools.eval.announce import EvalError, load_schedule, relabel_by_votes

    names = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
    votes = np.zeros((4, 10), np.float32)
    votes[0, names.index("happiness")] = 10  # row 0: happy by the raters
    votes[1, names.index("unknown")] = 10  # row 1: unreadable, keeps its FER2013 label
    votes[3, names.index("sadness")] = 7
    votes[3, names.index("neutral")] = 3
    np.savez(tmp_path / "votes.npz", votes=votes, vote_names=np.array(names))
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    entries = [{"start_s": 1.0, "end_s": 4.0, "class": "angry", "index": 0},
               {"start_s": 5.0, "end_s": 8.0, "class": "fear", "index": 1},
               {"start_s": 9.0, "end_s": 12.0, "class": "neutral", "index": 3}]
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"classes": classes, "schedule": entries}))
    relabelled = relabel_by_votes(path, load_schedule(path), tmp_path / "votes.npz")
    assert [name for _, _, name in relabelled] == ["happy", "fear", "sad"]
    entries[2]["index"] = 9
    path.write_text(json.dumps({"classes": classes, "schedule": entries}))
    with pytest.raises(EvalError, match="not rows of"):
        relabel_by_votes(path, load_schedule(path), tmp_path / "votes.npz")
