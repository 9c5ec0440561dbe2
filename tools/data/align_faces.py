"""Re-frame a face-crop npz with the device's aligned crop, for training on what the device sees.

    facecue-model align-faces --data ../shared/data/fer2013/train.npz --out runs/aligned/train.npz
    facecue-model align-faces --in-scenes --data .../train.npz --out runs/scened/train.npz

FER2013's crops are framed by their source (web photos, a detector of 2013),
so eyes and mouth sit a little differently in each; the device frames every
live face by its landmarks onto one template. Scoring the shipped model on
validation crops re-framed this way costs it about 4 points, so a model
meant for the aligned crop should learn from faces framed the same way. Each
crop is enlarged 4x and padded with its own edge so that YuNet can find its
landmarks, then cut with :func:`device.preprocess.preprocess_face` exactly as
on the device. A crop where no face is found keeps its own framing.
The output has the input's arrays plus ``aligned`` (bool per face).

``--in-scenes`` goes one step nearer the device: each crop is pasted 50-250 px
wide into a real scene under varied light (``tools.data.scenes``, as the device-path
validation is made), found there by the device's own tracker, and cut from the
frame, so the face carries the scene's resampling, light and the background at
the crop's edges. Where the detector misses it, the crop is re-framed as above.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.frames import FaceBox
from device.argparser import Parser
from device.config import DetectConfig
from device.detect import YuNetDetector, largest
from device.preprocess import preprocess_face
from device.tracker import tracker_from_config
from tools.data.dataset import load_faces
from tools.data.scenes import SIZE, fer_frame

UPSCALE = 4
PAD = 64  # px of the enlarged crop's own edge around it: YuNet needs some room around a face
SCORE = 0.5  # the crop is known to hold a face; a lower bar finds the landmarks of more of them


def crop_landmarks(face: np.ndarray, detector: YuNetDetector) -> tuple[tuple[float, float], ...] | None:
    """The five landmarks of the face in a grey crop, in the crop's pixels, or None."""
    side = face.shape[0] * UPSCALE
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
    found = largest(detector.detect_all(big, 1.0, side // 3))
    if found is None:
        return None
    return tuple(((x - PAD) / UPSCALE, (y - PAD) / UPSCALE) for x, y in found.landmarks)


def align_crops(images: np.ndarray, detector: YuNetDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S) uint8 grey crops -> the same faces as the device's aligned crop, and which were aligned."""
    detector = detector or YuNetDetector(SCORE)
    out = images.copy()
    aligned = np.zeros(len(images), bool)
    size = images.shape[1]
    for i, face in enumerate(images):
        points = crop_landmarks(face, detector)
        if points is None:
            continue
        # The crop's raw pixels, cut as the device cuts a frame; equalisation stays for training.
        out[i] = preprocess_face(face, FaceBox(0, 0, size, size, points), size=size, crop="aligned",
                                 equalize=False)
        aligned[i] = True
    return out, aligned


def scene_crops(images: np.ndarray, seed: int, face_px: tuple[int, int] = (50, 250)) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S) uint8 grey crops -> each as the device cuts it from a real scene it was
    pasted into (see the module docstring), and which were found there; the rest aligned
    in their own crop."""
    tracker = tracker_from_config(DetectConfig())
    detector = YuNetDetector(SCORE)
    rng = np.random.default_rng(seed)
    size = images.shape[1]
    out, found = images.copy(), np.zeros(len(images), bool)
    for i, face in enumerate(images):
        frame, _ = fer_frame(face, int(rng.integers(face_px[0], face_px[1] + 1)), rng, SIZE)
        box = tracker.settle(frame)
        if box is not None:
            out[i] = preprocess_face(frame, box, size=size, crop="aligned", equalize=False)
            found[i] = True
        else:
            out[i] = align_crops(face[None], detector)[0][0]
    return out, found


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model align-faces", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="npz of face crops (images, labels, classes)")
    p.add_argument("--out", type=Path, required=True, help="npz to write (not inside the repository's data)")
    p.add_argument("--in-scenes", action="store_true",
                   help="cut each face from a real scene it is pasted into, as the device would")
    p.add_argument("--seed", type=int, default=0, help="with --in-scenes: the scenes' random seed")
    args = p.parse_args(argv)
    faces = load_faces(args.data)
    images, aligned = scene_crops(faces.images, args.seed) if args.in_scenes else align_crops(faces.images)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with np.load(args.data, allow_pickle=False) as data:
        extra = {k: data[k] for k in data.files if k not in ("images", "labels", "classes")}
    tmp = args.out.with_name(args.out.name + ".part.npz")
    np.savez(tmp, images=images, labels=faces.labels.astype(np.uint8), classes=np.array(faces.classes),
             aligned=aligned, **extra)
    tmp.replace(args.out)
    how = "found in scenes and cut as the device cuts them" if args.in_scenes else "aligned by their landmarks"
    print(f"{args.out}: {aligned.sum()} of {len(aligned)} faces {how}, the rest "
          + ("aligned in their own crop" if args.in_scenes else "as they were"))
    return 0
