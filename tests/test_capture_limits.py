"""File sources within bounds: frames too large to hold are refused with one line before
they are decoded, and a damaged video that ends early says so.

The files are real: images written by OpenCV whose headers are then made to claim
30000x30000 pixels (so the test itself stays small), a video really too large, and an
MJPG video really damaged in its middle. Each is run through `facecue run` as the user
would run it. A real 4096x4096 video, the largest allowed, is read through the frame
reader to show that it holds one such frame at a time, not eight (400 MB).
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.capture import MAX_FRAME_PIXELS, image_size

ROOT = Path(__file__).resolve().parents[1]
LIMIT = "frames from files are limited to 16.8 megapixels (4096x4096)"


def run_facecue(tmp_path: Path, source: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "config.toml"
    config.write_text("")
    return subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--source",
                           str(source), "--audio-out", str(tmp_path / "a.wav")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` and whose data is a few zero rows:
    a few hundred bytes that OpenCV would allocate the full frame for."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(bytes((3 * width + 1) * 4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG with its start-of-frame size rewritten."""
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".pgm", ".ppm", ".tif", ".webp"])
def test_image_size_is_read_from_the_header_of_each_format(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    channels = 1 if suffix == ".pgm" else 3
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (23, 37, channels), dtype=np.uint8))
    assert image_size(path) == (37, 23)


def test_headers_not_understood_give_no_size(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    (tmp_path / "b.jpg").write_bytes(jpeg_claiming(16, 16)[:40])  # cut before the frame header
    assert image_size(tmp_path / "a.png") is None and image_size(tmp_path / "b.jpg") is None


@pytest.mark.parametrize("name, content", [("a.png", png_claiming(30000, 30000)),
                                           ("a.jpg", jpeg_claiming(30000, 30000))])
def test_a_huge_image_is_refused_with_one_line_before_it_is_decoded(tmp_path, name, content):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((96, 96, 3), 128, np.uint8))
    (folder / name).write_bytes(content)
    assert len(content) < 2000
    run = run_facecue(tmp_path, folder)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"facecue: error: image {folder / name} is 30000x30000 pixels; {LIMIT}"]


def test_the_limit_is_a_pixel_count_that_fits_real_cameras():
    for width, height in [(3840, 2160), (4056, 3040), (4608, 2592), (4096, 4096)]:
        assert width * height <= MAX_FRAME_PIXELS
    assert 4097 * 4096 > MAX_FRAME_PIXELS


def test_a_huge_video_is_refused_at_open_with_one_line(tmp_path):
    path = tmp_path / "big.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (5000, 4000))
    writer.write(np.zeros((4000, 5000, 3), np.uint8))
    writer.release()
    run = run_facecue(tmp_path, path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"facecue: error: video file {path} is 5000x4000 pixels; {LIMIT}"]


def write_noise_video(path: Path, frames: int) -> None:
    """Noise frames, so MJPG cannot compress them to almost nothing and the middle of
    the file is frame data rather than headers."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    writer.release()


def test_a_video_damaged_in_the_middle_says_how_many_frames_it_gave(tmp_path):
    intact, damaged = tmp_path / "intact.avi", tmp_path / "damaged.avi"
    write_noise_video(intact, 40)
    data = bytearray(intact.read_bytes())
    middle, span = len(data) // 2, len(data) // 10
    data[middle:middle + span] = bytes(span)
    damaged.write_bytes(bytes(data))
    # What OpenCV does with it: it skips the frames it cannot decode and says nothing.
    cap = cv2.VideoCapture(str(damaged))
    stated, read = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.read()[0]:
        read += 1
    cap.release()
    assert stated == 40 and 20 <= read < 38

    run = run_facecue(tmp_path, damaged)
    assert run.returncode == 0, run.stdout + run.stderr
    warnings = [line for line in run.stdout.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, run.stdout
    assert warnings[0].endswith(f"WARNING video file {damaged} gave {read} of its 40 frames "
                                "(the file is damaged or cut short)")
    assert f"end of {damaged} after {read} frames" in run.stdout
    assert "facecue: error" not in run.stderr

    run = run_facecue(tmp_path, intact)
    assert run.returncode == 0 and " WARNING " not in run.stdout, run.stdout + run.stderr


def test_only_regular_files_of_a_folder_are_read(tmp_path):
    """A FIFO named like an image would block the read forever; it is not an image."""
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((96, 96, 3), 128, np.uint8))
    os.mkfifo(folder / "a.jpg")
    (folder / "b.png").mkdir()
    run = run_facecue(tmp_path, folder)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"end of {folder} after 1 frame\n" in run.stdout  # one frame, not "1 frames"


def test_a_video_of_the_largest_frames_keeps_one_frame_waiting(tmp_path):
    """The reader of a file runs ahead of the loop by at most 64 MB of pixels: one
    4096x4096 frame (50 MB), where eight would hold 400 MB while the loop is busy."""
    from device.capture import open_source
    from device.frame_reader import END, FrameReader

    path = tmp_path / "big.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (4096, 4096))
    for i in range(6):
        writer.write(np.full((4096, 4096, 3), 40 * i, np.uint8))
    writer.release()
    reader = FrameReader(open_source(str(path)))
    frames, most = 0, 0
    try:
        while True:
            time.sleep(0.3)  # a busy loop: the reader runs ahead as far as it is let
            queued = [item for item in list(reader.queue.queue) if isinstance(item, tuple)]
            most = max(most, sum(frame.image.nbytes for frame, _ in queued))
            item = reader.get(timeout=10)
            if item is END:
                break
            assert isinstance(item, tuple), item
            frames += 1
    finally:
        reader.close()
    assert frames == 6
    assert most == 4096 * 4096 * 3, f"{most / 2**20:.0f} MB queued"
