"""The demo clip that ships in ``demo/``: a fresh clone hears the device with no data and no camera.

Made only from photos free to redistribute that ship inside scikit-image's wheel
(``demo/README.md`` names each and its licence): 1 s of an empty room, 3 s of
a smiling person in it, 1 s of the empty room again, so the device has a face
to find, an expression that holds long enough to be said, and a face that goes.
It is an MPEG-4 video: a static scene costs almost nothing between key frames,
where an MJPG of the same 5 s would be ten times the size.

CLI::

    facecue-model demo-clip --out demo/astronaut.mp4
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.argparser import Parser

SIZE = (640, 480)
FPS = 5.0  # enough for the device's 0.8 s hold and 0.4 s smoothing; each frame costs bytes
FACE_SCALE = 0.9  # the astronaut photo's face, about 90 px wide, becomes about 80 px
FACE_AT = (120, 20)  # where the photo's top left corner goes in the frame
# (what is in the frame, seconds): nobody, the astronaut, nobody
SCHEDULE = (("room", 1.0), ("astronaut", 3.0), ("room", 1.0))


def photos() -> dict[str, np.ndarray]:
    """The two BGR frames: the empty room (coffee) and the astronaut in it."""
    try:
        from skimage import data
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the demo clip needs scikit-image: pip install 'scikit-image>=0.22' "
                                  "(the project's dev extra)") from None
    room = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), SIZE, interpolation=cv2.INTER_AREA)
    person = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    person = cv2.resize(person, None, fx=FACE_SCALE, fy=FACE_SCALE, interpolation=cv2.INTER_AREA)
    x, y = FACE_AT
    h, w = min(person.shape[0], SIZE[1] - y), min(person.shape[1], SIZE[0] - x)
    scene = room.copy()
    scene[y:y + h, x:x + w] = person[:h, :w]
    return {"room": room, "astronaut": scene}


def write_clip(path: Path) -> int:
    """Encode :data:`SCHEDULE` into ``path`` (MPEG-4 part 2); returns the frames written."""
    frames = photos()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    n = 0
    try:
        for name, seconds in SCHEDULE:
            for _ in range(round(seconds * FPS)):
                writer.write(frames[name])
                n += 1
    finally:
        writer.release()
    return n


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model demo-clip", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the .mp4 to write (demo/astronaut.mp4 ships)")
    args = p.parse_args(argv)
    n = write_clip(args.out)
    print(f"{args.out}: {n} frames, {n / FPS:.0f} s, {args.out.stat().st_size // 1024} KB")
    return 0
