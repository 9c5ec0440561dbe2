"""``--audio-out``: a player that writes what the wearer would hear to a WAV.

Sounds are placed at their frame times with silence in between, and a
later sound cuts off the tail of an earlier one, exactly as the earphone
would; so a recorded video gives a file whose every sample can be checked.
Samples are streamed to a temporary file beside the target (memory stays
flat over hours) and renamed onto it at :meth:`close`.
"""
from __future__ import annotations

import logging
import threading
import wave
from pathlib import Path

import numpy as np

from audio.player import AudioUnavailable, Gain, GainControls
from audio.sound import SAMPLE_RATE, Sound
from core.files import move_into_place, temp_beside

log = logging.getLogger(__name__)


class TimelineWriter(GainControls):
    """A :class:`~audio.player.Player` whose output is a WAV file on frame time."""

    def __init__(self, path: Path, sample_rate: int = SAMPLE_RATE, volume: float = 1.0,
                 muted: bool = False) -> None:
        self.path, self.sample_rate = Path(path), sample_rate
        self._gain = Gain(volume, muted)
        self._lock = threading.Lock()
        try:
            self._tmp = temp_beside(self.path)
        except OSError as exc:
            raise AudioUnavailable(f"cannot write audio to {self.path}: {exc.strerror}") from None
        self._wav = wave.open(str(self._tmp), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self._written = 0  # samples already in the file: final
        self._pending: tuple[int, np.ndarray] | None = None  # start, samples: may still be cut
        self._closed = False

    def _write(self, samples: np.ndarray) -> None:
        self._wav.writeframes(samples.astype("<i2").tobytes())
        self._written += len(samples)

    def _settle(self, until: int) -> None:
        """Make everything before sample ``until`` final: the pending sound up
        to there (its tail is cut), then silence."""
        if self._pending is not None:
            start, samples = self._pending
            self._write(samples[: min(max(until - start, 0), len(samples))])
            self._pending = None
        if until > self._written:
            self._write(np.zeros(until - self._written, np.int16))

    def play(self, sound: Sound, t: float, force: bool = False) -> None:
        """Place ``sound`` at ``t`` s. A ``t`` earlier than the sound before it
        starts where that one started (replacing it): time never runs back."""
        samples = self._gain.audible(sound, self.sample_rate, force)
        if samples is None:
            return
        with self._lock:
            if self._closed:
                log.debug("sound after close dropped")
                return
            start = max(int(round(t * self.sample_rate)), self._written)
            if self._pending is not None:
                start = max(start, self._pending[0])
            self._settle(start)
            self._pending = (self._written, samples)

    def _last_end(self) -> int:
        return self._pending[0] + len(self._pending[1]) if self._pending else self._written

    @property
    def end(self) -> float:
        """Seconds of audio so far, up to the end of the last sound."""
        with self._lock:
            return self._last_end() / self.sample_rate

    def wait(self, timeout: float) -> bool:
        """True at once: a file is not heard in real time, every sound is already placed."""
        return True

    def close(self, end_t: float | None = None) -> None:
        """Finish the file: the last sound in full, then silence up to ``end_t``
        seconds if given; then move it onto the target, durably. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._settle(max(self._last_end(), int(round((end_t or 0.0) * self.sample_rate))))
                self._wav.close()
            except BaseException:
                self._tmp.unlink(missing_ok=True)
                raise
            move_into_place(self._tmp, self.path)
