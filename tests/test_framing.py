"""tools.eval.framing: the device's crop of a real head measured like a FER2013 crop."""
from __future__ import annotations

import cv2
import numpy as np

from tests.photos import astronaut
from tools.cli import main as facecue_model
from tools.eval.framing import geometry, main

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def test_geometry_of_known_points():
    points = np.array([[[14, 18], [32, 18], [23, 27], [16, 36], [30, 36]]], np.float64)
    assert np.allclose(geometry(points), [[18, 36, 18, 18, 1.0]])


def test_the_astronaut_measured_in_both_framings(tmp_path, capsys):
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY)
    crops = np.stack([cv2.resize(grey[20 + d:160 + d, 110 + d:250 + d], (48, 48), interpolation=cv2.INTER_AREA)
                      for d in range(6)])
    np.savez(tmp_path / "crops.npz", images=crops, labels=np.zeros(6, np.uint8), classes=np.array(CLASSES))
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "astronaut.jpg"), astronaut())
    assert main(["--crops", str(tmp_path / "crops.npz"), "--photos", str(tmp_path / "photos")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("landmarks in the 48x48 crop, px: 6 of 6 FER2013 crops, 1 device crops of 1 photos")
    device_row = next(line for line in out if line.startswith("device crop of real heads"))
    eye_line = float(device_row.split()[5])
    assert abs(eye_line - 0.3823 * 48) < 1.5  # the template's eye line, found again in the crop


def test_a_folder_without_photos_is_one_line(tmp_path, capsys):
    assert facecue_model(["framing", "--crops", str(tmp_path / "none.npz"), "--photos", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"facecue: error: {tmp_path}: no .jpg or .png photos\n"
