"""Earcons: short tone patterns, one per expression and event, made in numpy.

Like a beep code, each pattern differs in rhythm (number and length of
beeps) and in pitch contour, so a wearer can learn them and hear them
through street noise faster than a word. Major, rising patterns for
pleasant things, falling or low ones for unpleasant. They are generated at
start-up, so there are no files to ship, and at the same loudness as the
spoken clips. The face appeared/left earcons are soft glides meant to sit
under everything else.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio.dsp import TARGET_ACTIVE_DB, fade_edges, normalize_loudness
from audio.sound import SAMPLE_RATE, Sound, to_int16

SOFT_DB = -14.0  # face appeared/left, relative to the other earcons
FADE = 0.008  # seconds of raised-cosine edge on every beep: no clicks


@dataclass(frozen=True)
class Beep:
    """One tone: ``freq`` Hz gliding to ``freq_end`` (if set) over ``seconds``,
    followed by ``gap`` seconds of silence."""

    freq: float
    seconds: float
    freq_end: float | None = None
    gap: float = 0.05


def _short(f: float, gap: float = 0.05) -> Beep:
    return Beep(f, 0.09, gap=gap)


def _long(f: float, gap: float = 0.08) -> Beep:
    return Beep(f, 0.32, gap=gap)


C5, E5, G5, C6 = 523.25, 659.26, 783.99, 1046.5
A4, F4, D4, A3 = 440.0, 349.23, 293.66, 220.0

PATTERNS: dict[str, tuple[Beep, ...]] = {
    # expressions
    "happy": (_short(C5), _short(E5), _short(G5)),  # quick major arpeggio up
    "sad": (_long(A4), Beep(F4, 0.45)),  # two slow notes down
    "angry": (_short(A3, 0.04),) * 4,  # four fast low beeps
    "fear": tuple(Beep(f, 0.05, gap=0.0) for f in (880.0, 830.6) * 3),  # a trill
    "disgust": (Beep(600.0, 0.45, 300.0),),  # one long glide down
    "surprise": (Beep(500.0, 0.18, 1200.0, gap=0.03), _short(1200.0)),  # swoop up, high blip
    "neutral": (Beep(E5, 0.2),),  # one plain beep
    # events
    "noface": (Beep(G5, 0.12, gap=0.02), Beep(D4, 0.25)),  # high then low, a "gone" fall
    "muted": (_short(880.0), _short(587.33)),  # two down
    "unmuted": (_short(587.33), _short(880.0)),  # two up
    "camera_error": (_long(D4), _short(D4), _short(D4)),  # long, short, short
    "model_updated": (Beep(C5, 0.07, gap=0.03), Beep(E5, 0.07, gap=0.03),
                      Beep(G5, 0.07, gap=0.03), Beep(C6, 0.14)),  # fanfare
    "error": (_long(A3, 0.12),) * 3,  # three long low
}

SOFT_PATTERNS: dict[str, tuple[Beep, ...]] = {
    "face": (Beep(400.0, 0.12, 600.0),),  # soft glide up: someone arrived
    "noface": (Beep(600.0, 0.12, 400.0),),  # soft glide down: they left
    "facing": (Beep(500.0, 0.07, gap=0.04), Beep(750.0, 0.09)),  # two soft notes up: they turned to you
}


def render(pattern: tuple[Beep, ...], sample_rate: int = SAMPLE_RATE,
           level_db: float = TARGET_ACTIVE_DB) -> Sound:
    """The beeps of ``pattern`` as one sound at active level ``level_db``."""
    parts = []
    for beep in pattern:
        n = int(round(beep.seconds * sample_rate))
        end = beep.freq if beep.freq_end is None else beep.freq_end
        freq = np.linspace(beep.freq, end, n, endpoint=False)  # Hz at each sample
        phase = 2 * np.pi * np.cumsum(freq) / sample_rate
        parts.append(fade_edges(np.sin(phase), int(FADE * sample_rate)))
        parts.append(np.zeros(int(round(beep.gap * sample_rate))))
    # no trailing gap: the next sound may follow at once
    tone = Sound(to_int16(0.5 * np.concatenate(parts[:-1])), sample_rate)
    return normalize_loudness(tone, level_db)


def earcon(label: str, sample_rate: int = SAMPLE_RATE) -> Sound:
    """The earcon for an expression or event label."""
    if label not in PATTERNS:
        raise ValueError(f"no earcon for {label!r}; available: {', '.join(PATTERNS)}")
    return render(PATTERNS[label], sample_rate)


def face_earcon(label: str, sample_rate: int = SAMPLE_RATE) -> Sound:
    """The soft earcon for a face appearing (``"face"``), leaving (``"noface"``) or turning
    to face the wearer (``"facing"``)."""
    if label not in SOFT_PATTERNS:
        raise ValueError(f"no face earcon for {label!r}; available: {', '.join(SOFT_PATTERNS)}")
    return render(SOFT_PATTERNS[label], sample_rate, TARGET_ACTIVE_DB + SOFT_DB)
