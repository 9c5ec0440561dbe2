import numpy as np

from device.detect import FaceDetector
from tools.face_video import compose_frame


def test_no_face_in_an_empty_frame():
    assert FaceDetector().detect(compose_frame(None)) is None


def test_most_pasted_faces_are_found_where_they_are(valid_faces):
    detector = FaceDetector()
    found = 0
    for image in valid_faces.images[:60]:
        frame = compose_frame(image, upscale=3.0, centre=(0.5, 0.45))
        box = detector.detect(frame)
        if box is None:
            continue
        found += 1
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        assert abs(cx - 320) < 40 and abs(cy - 216) < 40, box
        assert 100 <= box.w <= 220  # the 144px face, give or take the cascade's own margin
    assert found / 60 >= 0.6  # about 70-80 % of FER crops are found by the cascade


def test_largest_face_wins(valid_faces):
    detector = FaceDetector()
    for image in valid_faces.images:
        small = compose_frame(image, upscale=2.0, centre=(0.2, 0.3))
        big = compose_frame(image, upscale=4.0, centre=(0.7, 0.5))
        if detector.detect(small) is not None and detector.detect(big) is not None:
            break
    frame = small.copy()
    frame[:, 320:] = big[:, 320:]
    box = detector.detect(frame)
    assert box is not None and box.x > 320 and box.w > 150


def test_grey_frames_work_too(valid_faces):
    frame = compose_frame(valid_faces.images[0])[:, :, 0]
    assert frame.ndim == 2
    FaceDetector().detect(np.ascontiguousarray(frame))
