"""The whole per-frame path at 640x480: decode, detect, preprocess, classify, decide.

Frames come from a video file (the user's, or one composed from validation
faces with :mod:`tools.face_video`) and go through the device's own
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
from tools.face_video import Segment, write_video

SCENE_FPS = 15.0
WARMUP_FRAMES = 5


def scene_segments(crops: np.ndarray, seconds: float) -> list[Segment]:
    """One face per second, cycling through ``crops``, with a second of nobody after every third."""
    segments, t, i = [], 0.0, 0
    while t < seconds:
        if i % 4 == 3:
            segments.append(Segment(None, 1.0))
        else:
            segments.append(Segment(crops[i % len(crops)], 1.0))
        t += 1.0
        i += 1
    return segments


def make_scene_video(path: Path, crops: np.ndarray, seconds: float) -> Path:
    """A 640x480 MJPG video of ``seconds`` at 15 frames/s with faces from ``crops``."""
    write_video(path, scene_segments(crops, seconds), fps=SCENE_FPS)
    return path


@dataclass
class PipelineRun:
    threads: int
    frames: int
    faces: int
    fps: float
    ms: dict[str, float]  # mean per stage, STAGES keys
    p95_total_ms: float
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
        pipeline = Pipeline(tracker_from_config(cfg.detect), Classifier(model, num_threads=threads),
                            Decider(cfg.decide))
        source = VideoFileSource(video)
        try:
            return _timed_loop(pipeline, source, threads, max_frames)
        finally:
            source.close()
    finally:
        cv2.setNumThreads(previous)


def _timed_loop(pipeline: Pipeline, source: VideoFileSource, threads: int, max_frames: int | None) -> PipelineRun:
    frames = source.frames()
    for _ in range(WARMUP_FRAMES):  # first decode/detect/invoke allocate; the wearer pays that once
        frame = next(frames, None)
        if frame is None:
            raise ValueError(f"video {source.name} has fewer than {WARMUP_FRAMES + 1} frames")
        pipeline.step(frame)
    stats = StageStats()
    totals = []
    while max_frames is None or stats.frames < max_frames:
        start = time.perf_counter()
        frame = next(frames, None)
        if frame is None:
            break
        result = pipeline.step(frame, (time.perf_counter() - start) * 1e3)
        stats.add(result)
        totals.append(result.ms["total"])
    if not totals:
        raise ValueError(f"video {source.name} has no frames after the warm-up")
    summary = stats.summary()
    ms = {s: summary[s] for s in STAGES}
    return PipelineRun(threads, stats.frames, stats.faces, summary["fps"], ms,
                       float(np.percentile(totals, 95)), dominant_stage(ms))


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
