"""Who is there: how many people, how near the nearest, and whether they face the wearer.

Everything comes from what the face detector already gives. The distance is
the pinhole camera's: a face ``face_width`` metres wide that is ``w`` pixels
wide in a frame ``W`` pixels wide, seen through a lens of horizontal field of
view ``fov``, is ``face_width * (W / 2) / tan(fov / 2) / w`` metres away. It is
said in the words a wearer uses ("close", "an arm's length", "a few metres",
"far away"), not in metres the face width and the lens only roughly give.

Whether a person faces the wearer comes from the landmarks: turning the head
by ``yaw`` moves the nose tip sideways from the eyes' midpoint by about
``NOSE_DEPTH * tan(yaw)`` eye-distances. A face without landmarks (the Haar
cascade) is neither facing nor turned away: it is not said.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from audio.compose import PAUSE
from core.frames import FaceBox, FaceChange, FaceCue
from device.config import PeopleConfig
from device.detect import largest

# How far the nose tip stands in front of the eyes, in eye-distances: about 3 cm
# against 6.3 cm between the pupils of an adult (anthropometric averages, not fitted).
NOSE_DEPTH = 0.45
# Upper ends (metres) of the words said for the nearest person's distance.
DISTANCE_WORDS: tuple[tuple[float, str], ...] = ((0.5, "close"), (1.2, "arm_length"), (5.0, "few_metres"),
                                                 (math.inf, "far"))
MAX_SAID = 9  # the count is said as one digit: "nine" for nine or more


@dataclass(frozen=True)
class PersonCue:
    """What the wearer hears after asking who is there."""

    count: int
    distance_m: float | None  # of the nearest (largest) face; None with nobody
    facing: bool | None  # the nearest faces the wearer; None: nobody, or no landmarks to tell


def distance_m(face_px: float, frame_px: int, cfg: PeopleConfig) -> float:
    """Metres to a face ``face_px`` wide in a frame ``frame_px`` wide (see the module docstring)."""
    if face_px <= 0 or frame_px <= 0:
        raise ValueError(f"face and frame widths must be positive, got {face_px} and {frame_px}")
    focal_px = (frame_px / 2) / math.tan(math.radians(cfg.fov) / 2)
    return cfg.face_width * focal_px / face_px


def yaw_deg(box: FaceBox) -> float | None:
    """The head's turn left or right in degrees (0: frontal) from its landmarks; None without them."""
    if box.landmarks is None:
        return None
    (rx, ry), (lx, ly), (nx, _), *_ = box.landmarks
    eyes = math.hypot(lx - rx, ly - ry)
    if eyes <= 0:
        return None
    offset = (nx - (rx + lx) / 2) / eyes
    return math.degrees(math.atan2(offset, NOSE_DEPTH))


def is_facing(box: FaceBox, cfg: PeopleConfig) -> bool | None:
    yaw = yaw_deg(box)
    return None if yaw is None else abs(yaw) <= cfg.facing_within


def person_cue(boxes: Sequence[FaceBox], frame_px: int, cfg: PeopleConfig) -> PersonCue:
    """The cue for every face found in one frame ``frame_px`` wide."""
    nearest = largest(list(boxes))
    if nearest is None:
        return PersonCue(0, None, None)
    return PersonCue(len(boxes), distance_m(nearest.w, frame_px, cfg), is_facing(nearest, cfg))


def distance_word(metres: float) -> str:
    return next(word for upper, word in DISTANCE_WORDS if metres < upper)


def cue_keys(cue: PersonCue) -> list[str]:
    """The clip keys of the cue: "one person, an arm's length, facing you", or "nobody"."""
    if cue.count == 0 or cue.distance_m is None:
        return ["nobody"]
    keys = [str(min(cue.count, MAX_SAID)), "person" if cue.count == 1 else "people", PAUSE,
            distance_word(cue.distance_m)]
    if cue.facing is not None:
        keys += [PAUSE, "facing" if cue.facing else "turned_away"]
    return keys


def cue_text(cue: PersonCue) -> str:
    """The cue for the log, in English."""
    if cue.count == 0 or cue.distance_m is None:
        return "nobody"
    facing = {True: ", facing", False: ", turned away", None: ""}[cue.facing]
    return f"{cue.count} {'person' if cue.count == 1 else 'people'}, {cue.distance_m:.1f} m{facing}"


class FacingWatch:
    """Says "facing" (a soft earcon) when the followed face turns to the wearer.

    The face must have been seen turned away and then face the wearer for
    ``HOLD`` seconds, so a head that wobbles around the limit is not heard
    again and again; a face that arrives already facing is not news (the
    ``face`` earcon is for arrivals).
    """

    HOLD = 0.3

    def __init__(self, cfg: PeopleConfig) -> None:
        self.cfg = cfg
        self.was_away = False
        self.facing_since: float | None = None

    def update(self, box: FaceBox | None, t: float) -> list[FaceCue]:
        facing = None if box is None else is_facing(box, self.cfg)
        if facing is None:
            self.was_away, self.facing_since = False, None
            return []
        if not facing:
            self.was_away, self.facing_since = True, None
            return []
        if self.facing_since is None:
            self.facing_since = t
        if self.was_away and t - self.facing_since >= self.HOLD:
            self.was_away = False
            return [FaceCue(FaceChange.FACING, t)]
        return []
