import cv2
import numpy as np
import pytest

from device.capture import CaptureError, ImageFolderSource, VideoFileSource, open_source
from tools.data.face_video import Segment, write_video


def test_video_file_is_decoded_with_its_own_timestamps(tmp_path):
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    path = tmp_path / "v.avi"
    n = write_video(path, [Segment(face, 1.0), Segment(None, 1.0)], fps=10)
    source = open_source(str(path))
    assert isinstance(source, VideoFileSource)
    frames = list(source.frames())
    source.close()
    assert len(frames) == n == 20
    assert frames[0].image.shape == (480, 640, 3)
    times = [f.t for f in frames]
    assert times == sorted(times)
    assert times[10] == pytest.approx(1.0, abs=0.01)
    # the face really is there in the first half and not in the second
    assert frames[0].image.std() > frames[15].image.std()


def test_image_folder_in_name_order(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((60, 80, 3), i * 50, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path), fps=4)
    assert isinstance(source, ImageFolderSource)
    frames = list(source.frames())
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 50, 100]
    assert [f.t for f in frames] == [0.0, 0.25, 0.5]


def test_unreadable_image_becomes_an_empty_frame(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    frames = list(open_source(str(tmp_path)).frames())
    assert frames[0].image.size == 0


def test_an_empty_image_is_said_and_takes_no_frame(tmp_path, caplog):
    """A 0-byte file (a copy cut short) is not a frame: the next image keeps frame 0's time."""
    (tmp_path / "a.png").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "b.png"), np.full((64, 64, 3), 50, np.uint8))
    with caplog.at_level("WARNING", logger="facecue"):
        frames = list(open_source(str(tmp_path), fps=4).frames())
    assert [(f.index, f.t, int(f.image[0, 0, 0])) for f in frames] == [(0, 0.0, 50)]
    assert caplog.messages == [f"image {tmp_path / 'a.png'} is empty (0 bytes): skipped, not a frame"]


@pytest.mark.parametrize("spec, message", [
    ("/nonexistent/video.mp4", "source '/nonexistent/video.mp4': no such file or folder"),
    ("/dev/null", "is not a camera, a video file or an image folder"),
    ("/dev/video99", "cannot be opened"),
])
def test_bad_sources_are_one_line(spec, message):
    with pytest.raises(CaptureError, match=message):
        open_source(spec)


def test_empty_folder(tmp_path):
    with pytest.raises(CaptureError, match="holds no images"):
        open_source(str(tmp_path))


def test_auto_names_what_it_tried():
    with pytest.raises(CaptureError) as err:
        open_source("auto")
    assert "picamera2" in str(err.value) and "/dev/video0" in str(err.value)


def test_realtime_paces_a_file_without_counting_the_wait_as_capture(tmp_path):
    import time

    from device.frame_reader import END, FrameReader

    path = tmp_path / "v.avi"
    write_video(path, [Segment(None, 1.0)], fps=10)
    for realtime in (False, True):
        reader = FrameReader(open_source(str(path)), realtime=realtime)
        start, items = time.monotonic(), []
        while (item := reader.get(timeout=5)) is not END:
            items.append(item)
        elapsed = time.monotonic() - start
        reader.close()
        assert len(items) == 10
        if realtime:
            assert elapsed >= 0.85  # the last frame is due at 0.9 s
            # Frames are 100 ms apart: a counted wait would put the typical frame near 100 ms.
            # The median, not the largest, so one frame delayed by a busy machine does not fail it.
            assert sorted(ms for _, ms in items)[len(items) // 2] < 50
        else:
            assert elapsed < 0.85
