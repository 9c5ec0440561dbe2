"""The detector bench: its matching rule, and a small run on real scenes (needs ../shared's Caltech photos)."""
from __future__ import annotations

import json

import pytest

from core.frames import FaceBox
from tools.bench.detect import main, matches
from tools.data.scenes import CALTECH_DIR


def test_a_box_matches_the_face_by_centre_and_width_not_by_its_style():
    truth = (100, 100, 80, 100)
    assert matches(FaceBox(100, 100, 80, 100), truth)
    assert matches(FaceBox(95, 105, 95, 95), truth)  # a square Haar-style box on the same face
    assert not matches(FaceBox(200, 100, 80, 100), truth)  # beside it
    assert not matches(FaceBox(110, 120, 30, 30), truth)  # an eye, not the face
    assert not matches(FaceBox(40, 40, 240, 240), truth)  # a box around the whole head and shoulders


@pytest.mark.skipif(not CALTECH_DIR.is_dir(), reason="../shared/data/caltech_faces is absent")
def test_a_small_run_reports_every_detector_on_the_same_frames(tmp_path, capsys):
    out = tmp_path / "detect.json"
    assert main(["--faces", "4", "--empty", "4", "--only", "yunet, full frame, score 0.8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| yunet, full frame, score 0.8 (default) | 1.000 |" in text
    assert "Pi estimates (not measured)" in text

    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert row["false_per_200"] == 0.0 and row["tracked_found"] == 1.0
    assert row["full_ms"] > 0 and row["tracked_ms"] > 0 and report["pi4_over_here"] > 1
