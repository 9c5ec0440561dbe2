"""A day of encounters with real people: ``twface`` heads in real scenes, for measuring only.

Each person (a ``twface`` performer) stands at one place in one real scene,
at one size and under one light, and shows their posed expressions one after
another, ``seconds`` each (one photo per expression, drawn at random among
theirs), jittering a pixel like a held camera; ``gap`` seconds of the empty
scene come between people. The schedule, one entry per expression shown,
goes beside the video as JSON in the layout ``tools.eval.announce`` reads.
Everything follows from the seed. The video is for measuring what the wearer
hears on real faces: never choose a setting on it (``../shared/README.md``).

CLI::

    facecue-model people-video --seed 7 --people 8 --out /tmp/people/people.avi
    facecue-model announce --video /tmp/people/people.avi
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from core.labels import EXPRESSIONS
from device.argparser import Parser, bounded
from tools.data.face_video import write_mjpg
from tools.data.scenes import SIZE, _light_lut, _random_background, read_photo
from tools.data.twface import TWFACE_DIR, Photo, paste_head, read_table

Entry = dict[str, object]


def plan(photos: Sequence[Photo], people: int | None, rng: np.random.Generator) -> list[list[Photo]]:
    """Per person, in a random order of performers: one photo per expression they posed, in random order."""
    performers = sorted({p.performer for p in photos})
    order = [performers[int(i)] for i in rng.permutation(len(performers))][:people]
    out = []
    for performer in order:
        mine = [p for p in photos if p.performer == performer]
        labels = sorted({p.label for p in mine}, key=EXPRESSIONS.index)
        shown = []
        for label in (labels[int(i)] for i in rng.permutation(len(labels))):
            options = [p for p in mine if p.label == label]
            shown.append(options[int(rng.integers(len(options)))])
        out.append(shown)
    return out


def people_video(path: Path, folder: Path = TWFACE_DIR, *, seed: int = 0, people: int | None = None,
                 seconds: float = 3.0, gap: float = 2.0, fps: float = 15.0,
                 photo_px: tuple[int, int] = (120, 340), size: tuple[int, int] = SIZE) -> list[Entry]:
    """Write the MJPG video to ``path``; returns its schedule (start_s, end_s, class, person, file)."""
    if not 1 <= photo_px[0] <= photo_px[1] <= size[0] - 2:
        raise ValueError(f"photo_px {photo_px} does not fit a {size[0]} px wide frame")
    if people is not None and people < 1:
        raise ValueError(f"people must be >= 1, got {people}")
    rng = np.random.default_rng(seed)
    persons = plan(read_table(folder), people, rng)
    n_face, n_gap = max(int(round(seconds * fps)), 1), int(round(gap * fps))
    schedule: list[Entry] = []

    def frames() -> Iterator[np.ndarray]:
        t = 0
        for shown in persons:
            yield from [cv2.LUT(_random_background(rng, size), _light_lut(rng))] * n_gap
            t += n_gap
            background, lut = _random_background(rng, size), _light_lut(rng)
            width = int(rng.integers(photo_px[0], photo_px[1] + 1))
            first = read_photo(folder / shown[0].file)
            height = int(round(first.shape[0] * width / first.shape[1]))
            x = int(rng.integers(1, size[0] - width))
            y = int(rng.integers(1, max(size[1] - height, 2)))  # a tall head may run off the bottom: shoulders
            for photo in shown:
                image = read_photo(folder / photo.file)
                for _ in range(n_face):
                    dx, dy = (int(v) for v in rng.integers(-1, 2, 2))
                    frame = background.copy()
                    paste_head(frame, image, x + dx, y + dy, width)
                    yield cv2.LUT(frame, lut)
                schedule.append({"start_s": round(t / fps, 4), "end_s": round((t + n_face) / fps, 4),
                                 "class": photo.label, "person": photo.performer, "file": photo.file,
                                 "photo_px": width})
                t += n_face
        yield from [cv2.LUT(_random_background(rng, size), _light_lut(rng))] * n_gap

    path.parent.mkdir(parents=True, exist_ok=True)
    write_mjpg(path, frames(), fps, size)
    return schedule


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog="facecue-model people-video", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the .avi to write (its schedule goes beside it, .json)")
    p.add_argument("--twface", type=Path, default=TWFACE_DIR, help=f"the photos (default {TWFACE_DIR})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--people", type=bounded(int, at_least=1), help="how many performers (default all 19)")
    p.add_argument("--seconds", type=bounded(float, above=0), default=3.0, help="seconds each expression is shown")
    p.add_argument("--gap", type=bounded(float, at_least=0), default=2.0, help="seconds of nobody between people")
    p.add_argument("--fps", type=bounded(float, above=0), default=15.0)
    p.add_argument("--photo-px", type=bounded(int, at_least=1), nargs=2, default=(120, 340), metavar=("MIN", "MAX"),
                   help="width of the pasted photo (the face is about half of it)")
    args = p.parse_args(argv)
    schedule = people_video(args.out, args.twface, seed=args.seed, people=args.people, seconds=args.seconds,
                            gap=args.gap, fps=args.fps, photo_px=tuple(args.photo_px))
    meta = {"video": args.out.name, "fps": args.fps, "size": list(SIZE), "classes": list(EXPRESSIONS),
            "source": "twface (measuring only)", "seed": args.seed, "schedule": schedule}
    side = args.out.with_suffix(".json")
    side.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{args.out}: {len({e['person'] for e in schedule})} people, {len(schedule)} expressions; "
          f"schedule in {side}")
    return 0
