"""When to speak: smoothing, stability, confidence and cooldown.

The wearer hears a word only when something worth saying happened: the
smoothed expression has held for ``stable_for`` seconds, is confident
enough, differs from the last thing said, and ``cooldown`` seconds have
passed since then. "No face" is silent by default (an optional soft earcon
marks a face arriving or leaving). All times are frame times, so a recorded
video yields the same announcements however fast it is processed.

With ``hedge`` on, an expression that holds just as long but only reaches
``hedge_min_confidence`` (below ``min_confidence``) is said as a hedge,
"maybe sad": most faces never reach a sure word, and a likely word beats
silence if the wearer can tell it from a sure one. A sure word follows its
hedge when the same expression firms up (after the cooldown); a hedge never
follows a sure word of the same expression.
"""
from __future__ import annotations

import math

import numpy as np

from core.frames import Announcement, Expression, FaceChange, FaceCue, Prediction
from device.config import DecideConfig


class Decider:
    """Turns a stream of per-frame predictions into rare, meaningful announcements."""

    def __init__(self, cfg: DecideConfig) -> None:
        self.cfg = cfg
        self.smoothed: np.ndarray | None = None
        self.labels: tuple[str, ...] = ()
        self.last_t: float | None = None
        self.last_face_t: float | None = None
        self.face_present = False
        self.candidate: str | None = None
        self.candidate_since = 0.0
        self.spoken: str | None = None  # last expression said about the current face
        self.spoken_hedged = False  # ... and whether it was said as a hedge
        self.spoken_t = -math.inf

    def update(self, prediction: Prediction | None, t: float) -> list[Announcement]:
        """Feed one frame's result (None: no face) at frame time ``t``."""
        out: list[Announcement] = []
        dt = 0.0 if self.last_t is None else max(t - self.last_t, 0.0)
        self.last_t = t
        if prediction is None:
            if self.face_present and self.last_face_t is not None and t - self.last_face_t >= self.cfg.face_lost_after:
                self._forget_face()
                if self.cfg.face_earcons:
                    out.append(FaceCue(FaceChange.LEFT, t))
            return out
        if not self.face_present:
            self.face_present = True
            if self.cfg.face_earcons:
                out.append(FaceCue(FaceChange.ARRIVED, t))
        self.last_face_t = t
        self._smooth(prediction, dt)
        best = int(np.argmax(self.smoothed))
        label, confidence = self.labels[best], float(self.smoothed[best])
        if label != self.candidate:
            self.candidate, self.candidate_since = label, t
        sure = confidence >= self.cfg.min_confidence
        hedged = not sure and self.cfg.hedge and confidence >= self.cfg.hedge_min_confidence
        new = label != self.spoken or (sure and self.spoken_hedged)
        if ((sure or hedged) and new
                and t - self.candidate_since >= self.cfg.stable_for
                and label not in self.cfg.quiet_labels
                and t - self.spoken_t >= self.cfg.cooldown):
            self.spoken, self.spoken_hedged, self.spoken_t = label, hedged, t
            out.append(Expression(label, confidence, t, hedged))
        return out

    def _smooth(self, prediction: Prediction, dt: float) -> None:
        """Exponential moving average with a time constant, so frame rate does not change it."""
        probs = np.asarray(prediction.probs, np.float64)
        if self.smoothed is None or prediction.labels != self.labels:
            self.smoothed, self.labels = probs.copy(), prediction.labels
            return
        alpha = 1.0 if self.cfg.smoothing <= 0 else 1.0 - math.exp(-dt / self.cfg.smoothing)
        self.smoothed += alpha * (probs - self.smoothed)

    def _forget_face(self) -> None:
        """A face that left: the next one starts afresh and is announced anew."""
        self.face_present = False
        self.smoothed = None
        self.candidate = None
        self.spoken = None
        self.spoken_hedged = False

    def current(self) -> Expression | None:
        """What the repeat button says: the last expression (hedged if it was), or None
        (no face, or nothing said about it yet)."""
        if self.face_present and self.spoken is not None:
            return Expression(self.spoken, 1.0, self.last_t or 0.0, self.spoken_hedged)
        return None
