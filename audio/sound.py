"""The one sound type passed between voice packs and players.

Everything is mono int16 at :data:`SAMPLE_RATE`, so clips, earcons and
runtime speech can be joined, cut and written without format juggling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000  # speech is intelligible at 16 kHz and clips stay small
FULL_SCALE = 32767.0


@dataclass(frozen=True, eq=False)
class Sound:
    """Mono int16 PCM samples at ``sample_rate`` Hz."""

    pcm: np.ndarray
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.pcm.dtype != np.int16 or self.pcm.ndim != 1:
            raise ValueError(f"Sound needs 1-D int16 PCM, got {self.pcm.ndim}-D {self.pcm.dtype}")
        if self.sample_rate <= 0:
            raise ValueError(f"Sound sample rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    def __len__(self) -> int:
        return len(self.pcm)


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> Sound:
    return Sound(np.zeros(max(int(round(seconds * sample_rate)), 0), np.int16), sample_rate)


def join(sounds: list[Sound], gap: float = 0.0, sample_rate: int = SAMPLE_RATE) -> Sound:
    """Sounds one after another with ``gap`` seconds of silence between them."""
    for s in sounds:
        if s.sample_rate != sample_rate:
            raise ValueError(f"cannot join a {s.sample_rate} Hz sound into {sample_rate} Hz")
    pause = silence(gap, sample_rate).pcm
    parts: list[np.ndarray] = []
    for i, s in enumerate(sounds):
        if i:
            parts.append(pause)
        parts.append(s.pcm)
    return Sound(np.concatenate(parts) if parts else np.zeros(0, np.int16), sample_rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, rounded and clipped (never wrapped)."""
    return np.clip(np.round(samples * FULL_SCALE), -32768, 32767).astype(np.int16)


def to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float64) / FULL_SCALE


def check_volume(volume: float) -> float:
    if not 0.0 <= volume <= 1.0:
        raise ValueError(f"volume must be between 0 and 1, got {volume}")
    return float(volume)


def with_volume(pcm: np.ndarray, volume: float) -> np.ndarray:
    """PCM scaled by ``volume`` (0..1, linear amplitude); 1.0 is the identity."""
    if check_volume(volume) == 1.0:
        return pcm
    return np.round(pcm.astype(np.float32) * np.float32(volume)).astype(np.int16)
