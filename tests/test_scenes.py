"""tools.data.scenes: real-background frames with exact truth, deterministic, and no paste artefacts."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage", reason="scikit-image (the dev extra) ships the background photos")

from tools.cli import main as facecue_model  # noqa: E402
from tools.data import scenes  # noqa: E402

W, H = scenes.SIZE
needs_caltech = pytest.mark.skipif(not scenes.CALTECH_DIR.is_dir(),
                                   reason=f"{scenes.CALTECH_DIR} (Caltech photos) is absent")


def _faces(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in 48x48 grey 'faces': a bright disc on a mid-grey square, varied per face."""
    rng = np.random.default_rng(7)
    faces = np.full((n, 48, 48), 90, np.uint8)
    for k in range(n):
        cv2.circle(faces[k], (24, 24), 18, int(150 + 10 * k), -1)
        faces[k] = np.clip(faces[k] + rng.integers(0, 20, (48, 48)), 0, 255).astype(np.uint8)
    return faces, np.arange(n) % 7


def _inside(box, size=scenes.SIZE) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= size[0] and y + h <= size[1]


def test_backgrounds_load_without_shared_data(monkeypatch, tmp_path):
    monkeypatch.setattr(scenes, "CALTECH_DIR", tmp_path / "absent")
    monkeypatch.setenv("FACECUE_DATA", str(tmp_path / "absent"))
    bgs = scenes.backgrounds()
    assert len(bgs) == len(scenes.BACKGROUND_NAMES) >= 10
    for bg in bgs:
        assert bg.shape == (H, W, 3) and bg.dtype == np.uint8
        assert bg.std() > 10  # a real, textured photo, not a flat frame
    small = scenes.backgrounds((320, 240))
    assert all(b.shape == (240, 320, 3) for b in small)


def test_no_background_is_a_photo_with_people():
    assert not {"astronaut", "camera", "chelsea", "coins"} & set(scenes.BACKGROUND_NAMES)


def test_empty_frames_are_deterministic_and_faceless():
    a, b = scenes.empty_frames(5, seed=3), scenes.empty_frames(5, seed=3)
    assert all(x.face is None and x.ignore == () for x in a)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    c = scenes.empty_frames(5, seed=4)
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c, strict=True))
    assert all(x.image.shape == (H, W, 3) for x in a)
    with pytest.raises(ValueError):
        scenes.empty_frames(-1)


def test_paste_face_leaves_no_hard_border():
    bg = scenes.backgrounds()[0]
    face = np.full((48, 48), 255, np.uint8)  # the worst case: white on a darker photo
    box = (200, 150, 120, 120)
    out = scenes.paste_face(bg, face, box)
    assert out.shape == bg.shape and out.dtype == np.uint8
    assert np.array_equal(np.delete(out, np.s_[150:270], 0), np.delete(bg, np.s_[150:270], 0))
    diff = np.abs(out.astype(int) - bg.astype(int)).max(axis=2)
    x, y, w, h = box
    ring = np.concatenate([diff[y, x:x + w], diff[y + h - 1, x:x + w], diff[y:y + h, x], diff[y:y + h, x + w - 1]])
    assert ring.max() <= 6, "the paste's outermost pixels should be (almost) the background"
    assert (diff[y + 40:y + 80, x + 40:x + 80] > 0).mean() > 0.9  # yet the face itself is there
    # and the step from one pixel to the next never jumps like a pasted square's edge would
    grey = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(int)
    grey_bg = cv2.cvtColor(bg, cv2.COLOR_BGR2GRAY).astype(int)
    step = np.abs(np.diff(grey[y + 50, x - 5:x + 30])) - np.abs(np.diff(grey_bg[y + 50, x - 5:x + 30]))
    assert step.max() < 40


def test_paste_face_rejects_box_outside_frame():
    bg = scenes.backgrounds()[0]
    with pytest.raises(ValueError, match="inside"):
        scenes.paste_face(bg, np.zeros((48, 48), np.uint8), (600, 10, 60, 60))


def test_fer_scene_set_boxes_widths_and_determinism():
    faces, labels = _faces()
    a = scenes.fer_scene_set(faces, labels, [str(c) for c in range(7)], 8, seed=1, face_px=(60, 250))
    b = scenes.fer_scene_set(faces, labels, [str(c) for c in range(7)], 8, seed=1, face_px=(60, 250))
    assert a["images"].shape == (8, H, W, 3) and a["images"].dtype == np.uint8
    assert a["boxes"].shape == (8, 4) and len(a["labels"]) == 8
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.array_equal(a["labels"], labels[a["source"]])
    widths = a["boxes"][:, 2]
    assert widths.min() >= 60 and widths.max() <= 250 and widths.max() - widths.min() > 120  # stratified
    assert all(_inside(box) for box in a["boxes"]) and np.array_equal(a["boxes"][:, 2], a["boxes"][:, 3])
    with pytest.raises(ValueError):
        scenes.fer_scene_set(faces, labels[:2], ["x"], 2)


def test_write_scene_npz_loads_without_pickle(tmp_path):
    faces, labels = _faces(3)
    arrays = scenes.fer_scene_set(faces, labels, list("abcdefg"), 3, face_px=(60, 80))
    path = scenes.write_scene_npz(tmp_path / "s.npz", arrays)
    with np.load(path, allow_pickle=False) as data:
        assert data["images"].shape == (3, H, W, 3) and np.array_equal(data["boxes"], arrays["boxes"])
    with pytest.raises(ValueError):
        scenes.write_scene_npz(tmp_path / "bad.npz", {**arrays, "labels": arrays["labels"][:1]})


def test_scene_video_schedule_matches_frames(tmp_path):
    faces, labels = _faces(2)
    path = tmp_path / "v.avi"
    schedule = scenes.scene_video(path, faces, labels, seconds_per_face=1.0, gap=0.4, fps=10.0, seed=2)
    assert schedule == [(0.4, 1.4, int(labels[0])), (1.8, 2.8, int(labels[1]))]
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 32 and frames[0].shape == (H, W, 3)
    held = [f.astype(int) for f in frames[4:14]]
    # the face scene is still (a pixel of jitter), the gap scene is another picture
    assert np.mean([np.abs(held[0] - f).mean() for f in held[1:]]) < np.abs(held[0] - frames[0].astype(int)).mean()


def test_cli_fer_and_video(tmp_path):
    faces, labels = _faces(4)
    data = tmp_path / "faces.npz"
    np.savez(data, images=faces, labels=labels.astype(np.uint8), classes=np.array(list("abcdefg")))
    assert scenes.main(["fer", "--data", str(data), "--n", "3", "--out", str(tmp_path / "f.npz")]) == 0
    with np.load(tmp_path / "f.npz") as out:
        assert out["images"].shape == (3, H, W, 3)
    assert scenes.main(["video", "--data", str(data), "--n", "2", "--seconds", "0.5", "--gap", "0.2",
                        "--out", str(tmp_path / "v.avi")]) == 0
    meta = json.loads((tmp_path / "v.json").read_text())
    assert len(meta["schedule"]) == 2 and meta["fps"] == 15.0
    assert facecue_model(["scenes", "fer", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x.npz")]) == 1


def test_caltech_frames_need_the_photos(tmp_path):
    with pytest.raises(FileNotFoundError, match="Caltech"):
        scenes.caltech_frames(1, photo_dir=tmp_path / "absent")


def test_caltech_annotations_cover_every_photo():
    faces, secondary = scenes.caltech_boxes()
    assert len(faces) == 84 and set(secondary) <= set(faces)
    for box in faces.values():
        x, y, w, h = box
        assert 0 <= x and 0 <= y and x + w <= 448 and y + h <= 296 and 90 <= w <= 160 and h > w
    assert all(b[2] < 40 for boxes in secondary.values() for b in boxes)  # only small faces behind
    if scenes.CALTECH_DIR.is_dir():
        assert {p.name for p in scenes.CALTECH_DIR.glob("image_*.jpg")} == set(faces)


@needs_caltech
def test_caltech_frames_boxes_in_frame_and_width_range():
    frames = scenes.caltech_frames(12, seed=0, face_px=(50, 250))
    widths = [f.face[2] for f in frames]
    assert min(widths) >= 50 and max(widths) <= 250 and max(widths) - min(widths) > 150
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert _inside(f.face) and 1.1 < f.face[3] / f.face[2] < 1.6
        assert all(_inside(b) for b in f.ignore)
    again = scenes.caltech_frames(12, seed=0, face_px=(50, 250))
    assert all(np.array_equal(a.image, b.image) and a.face == b.face and a.ignore == b.ignore
               for a, b in zip(frames, again, strict=True))


@needs_caltech
def test_caltech_face_box_lands_on_the_photo_face():
    """The frame's face region is the photo's face region, scaled: the box maps exactly."""
    faces, _ = scenes.caltech_boxes()
    frame = scenes.caltech_frames(1, seed=5, face_px=(120, 120))[0]
    x, y, w, h = frame.face
    crop = cv2.cvtColor(frame.image[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY).astype(np.float32)
    best = -1.0
    for name, (px, py, pw, ph) in faces.items():
        photo = cv2.imread(str(scenes.CALTECH_DIR / name), cv2.IMREAD_GRAYSCALE)
        ref = cv2.resize(photo[py:py + ph, px:px + pw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        best = max(best, float(np.corrcoef(crop.ravel(), ref.ravel())[0, 1]))
    assert best > 0.95


def test_sheet_cli_without_shared(monkeypatch, tmp_path):
    monkeypatch.setattr(scenes, "CALTECH_DIR", tmp_path / "absent")
    out = tmp_path / "sheet.png"
    assert scenes.main(["sheet", "--data", str(tmp_path / "absent.npz"), "--n", "2", "--out", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 4 * 320
