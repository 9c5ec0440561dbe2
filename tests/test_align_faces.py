"""tools.data.align_faces: crops re-framed by their own landmarks, as the device frames live faces."""
from __future__ import annotations

import cv2
import numpy as np

from device.detect import YuNetDetector
from tools.data.align_faces import align_crops, crop_landmarks, main, scene_crops
from tools.data.dataset import load_faces


def her_crop(astronaut: np.ndarray, tilt: float = 0.0) -> np.ndarray:
    """A 48x48 grey crop of her face, framed loosely as FER2013's crops are (and maybe tilted)."""
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    if tilt:
        grey = cv2.warpAffine(grey, cv2.getRotationMatrix2D((223, 120), tilt, 1.0), grey.shape[::-1])
    return cv2.resize(grey[50:190, 153:293], (48, 48), interpolation=cv2.INTER_AREA)


def test_a_face_crop_is_re_framed_and_a_faceless_one_is_kept(astronaut, tmp_path, capsys):
    face, blank = her_crop(astronaut), np.full((48, 48), 128, np.uint8)
    points = crop_landmarks(face, YuNetDetector(0.5))
    assert points is not None and points[0][0] < points[1][0] and all(0 <= c < 48 for p in points for c in p)
    out, aligned = align_crops(np.stack([face, blank]))
    assert aligned.tolist() == [True, False]
    assert np.array_equal(out[1], blank) and out.shape == (2, 48, 48) and out.dtype == np.uint8
    assert np.corrcoef(out[0].ravel(), face.ravel())[0, 1] > 0.5  # the same face, framed anew

    path = tmp_path / "crops.npz"
    np.savez(path, images=np.stack([face, blank]), labels=np.array([3, 4], np.uint8),
             classes=np.array(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]))
    assert main(["--data", str(path), "--out", str(tmp_path / "aligned.npz")]) == 0
    assert "1 of 2 faces aligned" in capsys.readouterr().out
    again = load_faces(tmp_path / "aligned.npz")
    assert np.array_equal(again.images, out) and again.labels.tolist() == [3, 4]
    assert np.load(tmp_path / "aligned.npz")["aligned"].tolist() == [True, False]


def test_a_tilted_crop_comes_out_closer_to_the_upright_one(astronaut):
    upright, tilted = her_crop(astronaut), her_crop(astronaut, tilt=15)
    out, aligned = align_crops(np.stack([upright, tilted]))
    assert aligned.all()
    before = np.corrcoef(upright.ravel(), tilted.ravel())[0, 1]
    after = np.corrcoef(out[0].ravel(), out[1].ravel())[0, 1]
    assert after > before


def test_a_missing_file_is_one_line_and_exit_1(tmp_path, capsys):
    from tools.cli import main as facecue_model

    assert facecue_model(["align-faces", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facecue: error: ") and err.count("\n") == 1


def test_in_scenes_cuts_the_face_from_a_scene_and_keeps_the_rest_aligned(astronaut):
    face, blank = her_crop(astronaut), np.full((48, 48), 128, np.uint8)
    out, found = scene_crops(np.stack([face, face, blank]), seed=3)
    assert found.tolist() == [True, True, False]
    assert np.array_equal(out[2], blank)  # no face in it: re-framed in its own crop, which finds none either
    aligned = align_crops(face[None])[0][0]
    for cut in out[:2]:  # the same face, framed by the template, with the scene's light and resampling
        assert np.corrcoef(cut.ravel(), aligned.ravel())[0, 1] > 0.6
    assert not np.array_equal(out[0], out[1])  # two scenes, two lights and sizes
    again, _ = scene_crops(np.stack([face, face, blank]), seed=3)
    assert np.array_equal(again, out)  # the seed decides the scenes
