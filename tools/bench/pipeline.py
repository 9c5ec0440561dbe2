"""The whole per-frame path at 640x480: decode, detect, preprocess, classify, decide.

Frames come from a video file (the user's, or real faces placed in real
scenes with :mod:`tools.data.scenes`) and go through the device's own
:class:`~device.pipeline.Pipeline`. Decoding happens on the same thread as
the rest, so the one-thread figure really is one core's worth of work.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.capture import VideoFileSource
from device.classify import Classifier
from device.config import Config
from device.decide import Decider
from device.pipeline import STAGES, Pipeline, StageStats
from device.tracker import tracker_from_config
from tools.data.scenes import CALTECH_DIR, SceneFrame, caltech_frames, empty_frames, held, place_photo, write_frames

SCENE_FPS = 15.0
WARMUP_FRAMES = 5


ASTRONAUT_FACE = (178, 63, 90, 113)  # her face in scikit-image's astronaut photo (YuNet's box)


def scene_faces(n: int, seed: int = 0) -> tuple[list[SceneFrame], str]:
    """``n`` real faces 50-250 px wide in real 640x480 scenes: the Caltech photos when ../shared
    has them, else scikit-image's astronaut, one real face, at as many sizes and places."""
    if CALTECH_DIR.is_dir():
        return caltech_frames(n, seed=seed), "Caltech photos of ../shared"
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(seed)
    widths = np.linspace(50, 250, n).astype(int)[rng.permutation(n)]
    return [place_photo(photo, ASTRONAUT_FACE, (), int(w), rng) for w in widths], "scikit-image's astronaut"


def make_scene_video(path: Path, seconds: float, seed: int = 0) -> tuple[Path, str]:
    """A 640x480 MJPG video at 15 frames/s: real faces (50-250 px) on real backgrounds, each held
    1 s, a second of a real scene with nobody after every third. Returns it and where its faces are from."""
    n = max(int(np.ceil(seconds * 3 / 4)), 1)
    faces, source = scene_faces(n, seed)
    frames = held(faces, empty_frames(max(n // 3, 1), seed + 1), SCENE_FPS)[: max(int(seconds * SCENE_FPS), 1)]
    write_frames(path, frames, SCENE_FPS)
    return path, f"{source} placed in real scenes, faces 50-250 px, 1 s each, a no-face second after every third"


@dataclass
class PipelineRun:
    detector: str
    threads: int
    frames: int
    faces: int
    fps: float
    ms: dict[str, float]  # mean per stage, STAGES keys
    p95_total_ms: float
    p95_detect_ms: float
    dominant: str


def dominant_stage(ms: dict[str, float]) -> str:
    """The stage that costs most per frame (what to work on to go faster)."""
    return max((s for s in STAGES if s != "total"), key=lambda s: ms[s])


def run_pipeline(video: Path, model: Path, threads: int, cfg: Config | None = None,
                 max_frames: int | None = None) -> PipelineRun:
    """Push the frames of ``video`` through the pipeline with ``threads`` for OpenCV and LiteRT."""
    cfg = cfg or Config()
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        pipeline = Pipeline(tracker_from_config(cfg.detect), Decider(cfg.decide))
        classifier = Classifier(model, num_threads=threads)
        source = VideoFileSource(video)
        try:
            return _timed_loop(pipeline, classifier, source, cfg.detect.method, threads, max_frames)
        finally:
            source.close()
    finally:
        cv2.setNumThreads(previous)


def _timed_loop(pipeline: Pipeline, classifier: Classifier, source: VideoFileSource, detector: str,
                threads: int, max_frames: int | None) -> PipelineRun:
    frames = source.frames()
    for _ in range(WARMUP_FRAMES):  # first decode/detect/invoke allocate; the wearer pays that once
        frame = next(frames, None)
        if frame is None:
            raise ValueError(f"video {source.name} has fewer than {WARMUP_FRAMES + 1} frames")
        pipeline.step(frame, classifier)
    stats = StageStats()
    totals, detects = [], []
    while max_frames is None or stats.frames < max_frames:
        start = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            break
        result = pipeline.step(frame, classifier, (time.perf_counter() - start) * 1e3)
        stats.add(result)
        totals.append(result.ms["total"])
        detects.append(result.ms["detect"])
    if not totals:
        raise ValueError(f"video {source.name} has no frames after the warm-up")
    summary = stats.summary()
    ms = {s: summary[s] for s in STAGES}
    return PipelineRun(detector, threads, stats.frames, stats.faces, summary["fps"], ms,
                       float(np.percentile(totals, 95)), float(np.percentile(detects, 95)), dominant_stage(ms))


@dataclass(frozen=True)
class VideoInfo:
    seconds: float
    fps: float
    width: int
    height: int


def video_info(path: Path) -> VideoInfo:
    """Length, frame rate and frame size of a video file, from its header."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"video {path} cannot be opened")
        fps = cap.get(cv2.CAP_PROP_FPS) or SCENE_FPS
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if frames <= 0:
        raise ValueError(f"video {path} reports no frames")
    return VideoInfo(frames / fps, fps, *size)
