"""Signal processing shared by the clip maker and runtime speech.

Both paths go through the same resampling, trimming and loudness steps, so
a status sentence synthesised on the device sounds as loud as the committed
clips around it. Everything is float64 numpy with a fixed order of
operations, so the same input gives the same bytes.
"""
from __future__ import annotations

import numpy as np

from audio.sound import Sound, to_float, to_int16

FRAME_SECONDS = 0.02  # loudness is judged over 20 ms frames, the length of a syllable's steady part
ACTIVE_RANGE_DB = 30.0  # frames this far below the loudest one are pauses, not speech
TARGET_ACTIVE_DB = -20.0  # RMS of the active frames, dB full scale
PEAK_LIMIT = 0.95  # never scale a peak above this (no clipping)
EDGE_FADE = 0.005  # seconds of fade at trimmed edges, so cuts do not click


def resample(sound: Sound, rate: int) -> Sound:
    """Band-limited resampling (FFT, zero-padded against wrap-around)."""
    if sound.sample_rate == rate or len(sound) == 0:
        return Sound(sound.pcm, rate) if len(sound) == 0 else sound
    n_out = int(round(len(sound) * rate / sound.sample_rate))
    pad = len(sound)  # room so the circular FFT does not smear the end into the start
    x = np.concatenate([to_float(sound.pcm), np.zeros(pad)])
    spectrum = np.fft.rfft(x)
    n_total = int(round(len(x) * rate / sound.sample_rate))
    keep = min(len(spectrum), n_total // 2 + 1)
    y = np.fft.irfft(spectrum[:keep], n_total) * (n_total / len(x))
    return Sound(to_int16(y[:n_out]), rate)


def frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive ``frame``-sample frames (the last partial frame included)."""
    n = -(-len(samples) // frame) * frame
    padded = np.zeros(n)
    padded[: len(samples)] = samples
    return np.sqrt(np.mean(padded.reshape(-1, frame) ** 2, axis=1))


def _active(rms: np.ndarray) -> np.ndarray:
    return rms >= rms.max() * 10 ** (-ACTIVE_RANGE_DB / 20)


def trim_silence(sound: Sound, pad: float = 0.01) -> Sound:
    """Drop leading/trailing quiet frames, keep ``pad`` s, fade the new edges."""
    frame = max(int(sound.sample_rate * FRAME_SECONDS), 1)
    x = to_float(sound.pcm)
    rms = frame_rms(x, frame)
    if len(rms) == 0 or rms.max() == 0:
        return Sound(np.zeros(0, np.int16), sound.sample_rate)
    idx = np.flatnonzero(_active(rms))
    margin = int(pad * sound.sample_rate)
    start = max(idx[0] * frame - margin, 0)
    end = min((idx[-1] + 1) * frame + margin, len(x))
    return Sound(to_int16(fade_edges(x[start:end], int(EDGE_FADE * sound.sample_rate))),
                 sound.sample_rate)


def fade_edges(x: np.ndarray, n: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out over ``n`` samples each."""
    n = min(n, len(x) // 2)
    if n == 0:
        return x
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, endpoint=False))
    y = x.copy()
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def active_level_db(sound: Sound) -> float:
    """Loudness as the RMS of the frames that carry sound (pauses excluded), dBFS."""
    frame = max(int(sound.sample_rate * FRAME_SECONDS), 1)
    rms = frame_rms(to_float(sound.pcm), frame)
    if len(rms) == 0 or rms.max() == 0:
        return -np.inf
    active = rms[_active(rms)]
    return float(20 * np.log10(np.sqrt(np.mean(active**2))))


def normalize_loudness(sound: Sound, target_db: float = TARGET_ACTIVE_DB) -> Sound:
    """Scale so the active level is ``target_db`` (less if a peak would clip)."""
    level = active_level_db(sound)
    if not np.isfinite(level):
        return sound
    x = to_float(sound.pcm)
    gain = 10 ** ((target_db - level) / 20)
    peak = np.abs(x).max()
    gain = min(gain, PEAK_LIMIT / peak)
    return Sound(to_int16(x * gain), sound.sample_rate)
