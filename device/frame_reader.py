"""Reads a frame source on its own thread.

Keeping capture off the main thread means a camera stuck in a blocking read
can never delay SIGTERM or the watchdog. A live camera keeps only the newest
frame (stale ones are dropped and counted); a file keeps every frame, so a
recording always gives the same announcements. A file's reader runs ahead of the
loop by at most :data:`FILE_QUEUE_FRAMES` frames and :data:`FILE_QUEUE_BYTES` of
pixels, whichever is fewer (always one frame): eight 4096x4096 frames would be
400 MB, so such a file waits with one frame queued. ``realtime`` paces a file at
its own timestamps, like a camera; the pacing sleep is not counted as
capture time. :meth:`FrameReader.blocked_for` tells the loop how long the
source has been stuck in one read, so a hung camera or a named pipe no one
writes to is noticed instead of looking like a quiet room.

A read stuck in a driver cannot be interrupted: the reader closed by the loop
is left to return (it then closes its source) and a new one reads the reopened
source. :func:`stuck_readers` counts those still stuck, so the loop can stop
reopening at :data:`MAX_STUCK_READERS` instead of leaking a thread per stall.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from core.frames import Frame
from device.capture import CaptureError, FrameSource

log = logging.getLogger("facecue")

END = object()

# How far a file's reader may run ahead of the loop: 8 frames of 640x480 (7 MB) or
# 1080p (50 MB), 2 of 4K UHD (25 MB each), 1 of 4096x4096 (50 MB).
FILE_QUEUE_FRAMES = 8
FILE_QUEUE_BYTES = 64 * 2**20
MAX_STUCK_READERS = 3  # threads left in a read that never returned; more are not started

_stuck: set[threading.Thread] = set()  # readers closed while inside a read
_stuck_lock = threading.Lock()


def stuck_readers() -> int:
    """How many closed readers are still inside a read of their source."""
    with _stuck_lock:
        _stuck.difference_update([t for t in _stuck if not t.is_alive()])
        return len(_stuck)


def _nbytes(item: object) -> int:
    """The pixel bytes a queued item holds (a (frame, capture ms) pair), else 0."""
    return item[0].image.nbytes if isinstance(item, tuple) else 0


class FrameReader:
    def __init__(self, source: FrameSource, realtime: bool = False) -> None:
        self.source = source
        self.realtime = realtime and not source.live
        self.queue: queue.Queue = queue.Queue(maxsize=1 if source.live else FILE_QUEUE_FRAMES)
        self.dropped = 0
        self._queued_bytes = 0  # pixels of a file's frames in the queue
        self._room = threading.Condition()  # signalled when the loop takes a file's frame
        self._read_started: float | None = None  # monotonic start of the read in progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> None:
        if self.source.live:
            try:
                self.queue.put_nowait(item)
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
                self.queue.put_nowait(item)
            return
        size = _nbytes(item)
        with self._room:
            while self._queued_bytes and self._queued_bytes + size > FILE_QUEUE_BYTES:
                if self._stop.is_set():
                    return
                self._room.wait(0.2)
            self._queued_bytes += size
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _pace(self, t: float, clock_start: float | None) -> float:
        """Sleep until frame time ``t`` on the wall clock; returns the clock's origin."""
        now = time.monotonic()
        if clock_start is None:
            return now - t
        delay = clock_start + t - now
        if delay > 0:
            self._stop.wait(delay)
        return clock_start

    def _run(self) -> None:
        """Read until stopped or the source ends; the source is closed here, by the one
        thread that reads it, even when a stuck read returns long after the loop left."""
        try:
            self._read_all()
        finally:
            try:
                self.source.close()
            except Exception as exc:  # a driver failing to close: nothing left to lose
                log.debug("closing %s: %s", self.source.name, exc)

    def _read_all(self) -> None:
        frames = self.source.frames()
        clock_start = None
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                self._read_started = time.monotonic()
                frame = next(frames, None)
                self._read_started = None
                if frame is None:
                    self._put(END)
                    return
                capture_ms = (time.perf_counter() - start) * 1e3
                if self.realtime:
                    clock_start = self._pace(frame.t, clock_start)
                self._put((frame, capture_ms))
        except CaptureError as exc:
            self._put(exc)
        except Exception as exc:  # a driver's surprise must reach the loop as a camera fault
            self._put(CaptureError(f"camera {self.source.name} failed: {exc}"))

    def blocked_for(self) -> float:
        """Seconds the source has been inside its current read (0 between reads).

        Pacing and a full queue are not counted: only the source itself can stall.
        """
        started = self._read_started
        return time.monotonic() - started if started is not None else 0.0

    def get(self, timeout: float) -> tuple[Frame, float] | CaptureError | object | None:
        """A (frame, capture ms) pair, a CaptureError, END, or None on timeout."""
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if not self.source.live:
            with self._room:
                self._queued_bytes -= _nbytes(item)
                self._room.notify()
        return item

    def close(self) -> None:
        """Stop reading; a thread stuck in a read is left to return and counted."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        if self._thread.is_alive():
            with _stuck_lock:
                _stuck.add(self._thread)
