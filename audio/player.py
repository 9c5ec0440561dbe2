"""The interface every player offers, and the rules they all apply.

The PyAudio player and the ``--audio-out`` timeline share :class:`Gain`, so
volume, mute and ``force`` act on the file exactly as on the earphone.
"""
from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

import numpy as np

from audio.dsp import resample
from audio.sound import Sound, check_volume, with_volume


class AudioUnavailable(RuntimeError):
    """No usable audio output (device missing or busy, file not writable)."""


@runtime_checkable
class Player(Protocol):
    """Plays sounds; a new sound cuts off one still playing."""

    def play(self, sound: Sound, t: float, force: bool = False) -> None:
        """Start ``sound`` now (frame time ``t``); ``force``: even when muted."""

    def set_volume(self, volume: float) -> None:
        """0..1, linear amplitude; applies to sounds started afterwards."""

    def set_muted(self, muted: bool) -> None:
        """Muted players drop every sound not played with ``force``."""

    @property
    def muted(self) -> bool: ...

    def wait(self, timeout: float) -> bool:
        """Block until what was played has been heard, at most ``timeout`` s;
        False on timeout. For one-shot use (``facecue say``), which must not
        exit mid-word."""

    def close(self, end_t: float | None = None) -> None:
        """Release the output; returns promptly. ``end_t``: the frame time the
        session ended, so a recording runs to it (live output is already there)."""


class Gain:
    """Volume and mute state, thread-safe (buttons and the loop both touch it)."""

    def __init__(self, volume: float = 1.0, muted: bool = False) -> None:
        self._volume, self._muted = check_volume(volume), bool(muted)
        self._lock = threading.Lock()

    @property
    def muted(self) -> bool:
        return self._muted

    def set_volume(self, volume: float) -> None:
        volume = check_volume(volume)
        with self._lock:
            self._volume = volume

    def set_muted(self, muted: bool) -> None:
        with self._lock:
            self._muted = bool(muted)

    def audible(self, sound: Sound, sample_rate: int, force: bool) -> np.ndarray | None:
        """The samples to output for ``sound`` at ``sample_rate``, or None when
        muted and not forced (the sound then has no effect at all, not even
        cutting off the one playing)."""
        with self._lock:
            volume, muted = self._volume, self._muted
        if muted and not force:
            return None
        return with_volume(resample(sound, sample_rate).pcm, volume)


class GainControls:
    """The volume/mute half of :class:`Player`, shared by every player over its ``_gain``."""

    _gain: Gain

    @property
    def muted(self) -> bool:
        return self._gain.muted

    def set_muted(self, muted: bool) -> None:
        self._gain.set_muted(muted)

    def set_volume(self, volume: float) -> None:
        self._gain.set_volume(volume)
