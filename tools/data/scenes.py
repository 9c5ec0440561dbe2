"""Realistic 640x480 scenes with ground truth: real faces in real clutter, and real no-face frames.

Every other figure in the project is measured on 48x48 crops or on crops pasted
onto flat grey frames, which flatters the detector: nothing in a flat frame
looks like a face. These frames look like what the wearer meets instead:

* ``caltech_frames``: real photos of people (Caltech "Faces 1999", in
  ``../shared``), scaled so the main face is 50-250 px wide and placed in a frame
  whose rest is a real photo, with the exact face box (``tools/data/caltech_faces.json``,
  checked by eye) and the small poster faces a detector may rightly find.
* ``empty_frames``: real scenes with no face at all, for false-face rates.
* ``fer_scene_set`` / ``scene_video``: FER2013 faces (which carry the expression
  labels) feathered into real backgrounds, as an npz for ``facecue-model eval --detect``
  and as an MJPG video with a schedule for scoring the daemon's announcements.

Backgrounds are scikit-image's bundled sample photos (the ``dev`` extra), chosen
by eye to contain no face, so they work without ``../shared``. Everything is
deterministic for a given seed.

CLI::

    facecue-model scenes fer --data ../shared/data/fer2013/valid.npz --n 600 --out /tmp/valid_scenes.npz
    facecue-model scenes video --data ../shared/data/fer2013/valid.npz --n 40 --out /tmp/valid_scenes.avi
    facecue-model scenes caltech --n 168 --empty 100 --out /tmp/caltech_scenes.npz
    facecue-model scenes sheet --out /tmp/scenes.png
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.argparser import Parser, bounded
from tools.data.dataset import data_dir, load_faces
from tools.data.face_video import write_mjpg

Box = tuple[int, int, int, int]

SIZE = (640, 480)
SHARED = Path(__file__).resolve().parents[3] / "shared"
CALTECH_DIR = SHARED / "data" / "caltech_faces"
CALTECH_BOXES = Path(__file__).with_name("caltech_faces.json")

# scikit-image sample photos that ship inside its wheel (no download) and that show
# no face, human or otherwise, checked by eye and with YuNet at score 0.3. Left out:
# astronaut and camera (people), chelsea (a cat's face), coins (heads on coins),
# retina/cell/microaneurysms/logo/horse (not scenes a wearer meets). YuNet gives
# hard negatives of 0.7-0.8 on the motorcycle's headlight and on hubble's galaxies.
BACKGROUND_NAMES: tuple[str, ...] = (
    "coffee", "rocket", "motorcycle", "brick", "grass", "gravel", "text", "page",
    "moon", "clock", "hubble_deep_field", "immunohistochemistry",
)


@dataclass(frozen=True, eq=False)
class SceneFrame:
    """One frame and its truth: the main face box (None when there is no face) and
    other real faces (posters, snapshots) that a detector may find without it
    being a false face."""

    image: np.ndarray  # BGR uint8 (480, 640, 3)
    face: Box | None
    ignore: tuple[Box, ...] = ()


# --- backgrounds -----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _background_photos() -> tuple[np.ndarray, ...]:
    """The bundled photos, BGR uint8 at their own size (loaded once: decoding hubble takes a while)."""
    try:
        from skimage import data
    except ModuleNotFoundError:
        raise ModuleNotFoundError("backgrounds need scikit-image: pip install 'scikit-image>=0.22' "
                                  "(the project's dev extra)") from None
    photos = []
    for name in BACKGROUND_NAMES:
        img = np.asarray(data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)())
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        else:
            img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
        img = np.ascontiguousarray(img, dtype=np.uint8)
        img.setflags(write=False)
        photos.append(img)
    return tuple(photos)


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (w, h): area averaging to shrink (no aliasing), cubic to enlarge."""
    shrink = size[0] * size[1] < img.shape[0] * img.shape[1]
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _crop_to(photo: np.ndarray, size: tuple[int, int], zoom: float = 1.0, at: tuple[float, float] = (0.5, 0.5),
             flip: bool = False) -> np.ndarray:
    """A crop of ``photo`` with the aspect of ``size`` (``zoom`` of the largest such crop, its
    corner at fraction ``at`` of the room left), mirrored if ``flip``, resized to ``size``."""
    ph, pw = photo.shape[:2]
    cw = min(pw, ph * size[0] / size[1]) * zoom
    ch = cw * size[1] / size[0]
    cw, ch = max(int(round(cw)), 1), max(int(round(ch)), 1)
    x0 = int(round((pw - cw) * at[0]))
    y0 = int(round((ph - ch) * at[1]))
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    if flip:
        crop = crop[:, ::-1]
    return _resize(np.ascontiguousarray(crop), size)


def backgrounds(size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """The real no-face photos (BGR uint8), each centre-cropped to the aspect of ``size`` and
    resized to it. Needs only scikit-image, never ``../shared``."""
    return [_crop_to(p, size) for p in _background_photos()]


def _random_background(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A random view of a random background: a crop of 55-100 % of its largest crop, maybe mirrored."""
    photos = _background_photos()
    photo = photos[int(rng.integers(len(photos)))]
    zoom = float(rng.uniform(0.55, 1.0))
    at = (float(rng.random()), float(rng.random()))
    return _crop_to(photo, size, zoom, at, bool(rng.random() < 0.5))


def _light_lut(rng: np.random.Generator) -> np.ndarray:
    """A slightly different light, as real scenes vary: gamma 0.8-1.25, gain 0.85-1.1, as a 256-entry LUT."""
    gamma = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    gain = float(rng.uniform(0.85, 1.1))
    return np.clip(255.0 * (np.arange(256) / 255.0) ** gamma * gain, 0, 255).round().astype(np.uint8)


def _light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The frame under a random light from ``_light_lut``."""
    return cv2.LUT(img, _light_lut(rng))


def empty_frames(n: int, seed: int = 0, size: tuple[int, int] = SIZE) -> list[SceneFrame]:
    """``n`` real frames with no face: random crops, zooms and mirrors of the backgrounds under
    varied light. (No regions of the Caltech photos: their snapshots and posters hold faces
    too small to list, so no face-free region of them can be guaranteed.)"""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    return [SceneFrame(_light(_random_background(rng, size), rng), None) for _ in range(n)]


# --- blending --------------------------------------------------------------------------------------------------

def _feather(h: int, w: int, edge: float) -> np.ndarray:
    """An (h, w) float32 alpha that rises smoothly from ~0 at the border to 1 ``edge`` pixels in."""
    def ramp(n: int) -> np.ndarray:
        i = np.arange(n, dtype=np.float32)
        t = np.clip(np.minimum(i + 0.5, n - i - 0.5) / max(edge, 1e-3), 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)
    return ramp(h)[:, None] * ramp(w)[None, :]


def _blend(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend ``patch`` into ``frame`` in place with its corner at (x, y), clipped to the frame."""
    fh, fw = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, fw), min(y + ph, fh)
    if x1 <= x0 or y1 <= y0:
        return
    p = patch[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32)
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(region + (p - region) * a + 0.5, 0, 255).astype(np.uint8)


def paste_face(background: np.ndarray, face: np.ndarray, box: Box) -> np.ndarray:
    """A copy of ``background`` (BGR uint8) with ``face`` (a grey or BGR crop, e.g. 48x48 FER)
    resized to ``box`` (x, y, w, h) and blended in with a feathered edge, so no hard square
    border (which a detector or classifier could key on) marks the paste."""
    x, y, w, h = (int(v) for v in box)
    bh, bw = background.shape[:2]
    if w < 2 or h < 2 or x < 0 or y < 0 or x + w > bw or y + h > bh:
        raise ValueError(f"face box {box} does not lie inside the {bw}x{bh} frame")
    if face.ndim == 2:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    out = background.copy()
    # FER crops run from forehead to chin; fading the outer ~18 % keeps the face and loses the square.
    _blend(out, _resize(face, (w, h)), _feather(h, w, 0.18 * min(w, h)), x, y)
    return out


# --- Caltech photos --------------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def caltech_boxes(path: Path = CALTECH_BOXES) -> tuple[dict[str, Box], dict[str, tuple[Box, ...]]]:
    """(main face box per photo, secondary real faces per photo) from ``tools/data/caltech_faces.json``."""
    doc = json.loads(Path(path).read_text())
    faces = {name: tuple(int(v) for v in box) for name, box in doc["faces"].items()}
    secondary = {name: tuple(tuple(int(v) for v in b) for b in boxes) for name, boxes in doc["secondary"].items()}
    return faces, secondary  # type: ignore[return-value]


@lru_cache(maxsize=128)
def read_photo(path: Path) -> np.ndarray:
    """A colour photo (Caltech's, twface's), read once and kept read-only: the scene makers
    paste the same few photos into thousands of frames."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: missing or unreadable photo")
    img.setflags(write=False)
    return img


def _widths(n: int, face_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``n`` face widths stratified over ``face_px`` (one per equal slice, in random order),
    so even a small sample covers the whole range."""
    lo, hi = face_px
    if not 1 <= lo <= hi:
        raise ValueError(f"face_px must be (lo, hi) with 1 <= lo <= hi, got {face_px}")
    w = lo + (hi - lo) * (rng.permutation(n) + rng.random(n)) / max(n, 1)
    return np.clip(np.round(w), lo, hi).astype(int)


def _place(face_lo: float, face_len: float, photo_len: int, frame_len: int, rng: np.random.Generator) -> int:
    """Offset of a photo along one axis: wholly inside the frame when it is smaller, covering the
    frame when larger, and in either case keeping the face (face_lo..face_lo+face_len) inside."""
    lo = max(min(0, frame_len - photo_len), -face_lo)
    hi = min(max(0, frame_len - photo_len), frame_len - face_lo - face_len)
    lo, hi = int(np.ceil(lo)), int(np.floor(hi))
    return int(rng.integers(lo, max(hi, lo) + 1))


def caltech_frames(n: int, seed: int = 0, face_px: tuple[int, int] = (50, 250), photo_dir: Path = CALTECH_DIR,
                   size: tuple[int, int] = SIZE) -> list[SceneFrame]:
    """``n`` frames, each one Caltech photo scaled so its main face is w px wide (w stratified over
    ``face_px``) at a random place in a frame whose rest is a real background: small faces sit in
    clutter; a photo larger than the frame is cropped, keeping the whole face. Light varies a little.
    Photos are used in a random order, each once before any repeats."""
    photo_dir = Path(photo_dir)
    if not photo_dir.is_dir():
        raise FileNotFoundError(f"{photo_dir}: Caltech photos not found (expected ../shared/data/caltech_faces)")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    faces, secondary = caltech_boxes()
    names = sorted(faces)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(names)) for _ in range(-(-n // len(names)))] or [np.zeros(0, int)])
    out = []
    for i, width in zip(order[:n], _widths(n, face_px, rng), strict=True):
        name = names[int(i)]
        out.append(place_photo(read_photo(photo_dir / name), faces[name], secondary.get(name, ()), int(width),
                               rng, size))
    return out


def place_photo(photo: np.ndarray, face: Box, secondary: Sequence[Box], width: int, rng: np.random.Generator,
                size: tuple[int, int] = SIZE) -> SceneFrame:
    """``photo`` scaled so its ``face`` box is ``width`` px wide, at a random place in a frame whose
    rest is a real background, under varied light; ``secondary`` faces become the frame's ignore boxes."""
    fx, fy, fw, fh = face
    frame_w, frame_h = size
    s = width / fw
    pw, ph = int(round(photo.shape[1] * s)), int(round(photo.shape[0] * s))
    ox = _place(fx * s, width, pw, frame_w, rng)
    oy = _place(fy * s, fh * s, ph, frame_h, rng)
    frame = _random_background(rng, size)
    scaled = _resize(photo, (pw, ph))
    # A soft edge of a few pixels so the photo's rectangle is not a hard line through the frame.
    _blend(frame, scaled, _feather(ph, pw, max(2.0, 0.03 * min(pw, ph))), ox, oy)
    box = _clip_box((int(round(ox + fx * s)), int(round(oy + fy * s)), int(width), int(round(fh * s))), size)
    ignore = []
    for sx, sy, sw, sh in secondary:
        b = _clip_box((int(round(ox + sx * s)), int(round(oy + sy * s)),
                       max(int(round(sw * s)), 1), max(int(round(sh * s)), 1)), size)
        if b[2] * b[3] >= 0.25 * sw * sh * s * s and b[2] >= 1 and b[3] >= 1:
            ignore.append(b)
    return SceneFrame(_light(frame, rng), box, tuple(ignore))


def held(faces: Sequence[SceneFrame], empty: Sequence[SceneFrame], fps: float,
         seconds: float = 1.0, gap_every: int = 3) -> list[SceneFrame]:
    """A 'video' of scenes: each face scene held ``seconds``, and a no-face scene for as long
    after every ``gap_every`` faces (the wearer's view as people come and go)."""
    out: list[SceneFrame] = []
    n = max(int(round(seconds * fps)), 1)
    for i, f in enumerate(faces):
        out += [f] * n
        if i % gap_every == gap_every - 1:
            out += [empty[i % len(empty)]] * n
    return out


def write_frames(path: Path, frames: Sequence[SceneFrame], fps: float) -> Path:
    """``frames`` as an MJPG .avi (decodable by any OpenCV build)."""
    size = frames[0].image.shape[1], frames[0].image.shape[0]
    write_mjpg(path, (f.image for f in frames), fps, size)
    return path


def _clip_box(box: Box, size: tuple[int, int]) -> Box:
    x, y, w, h = box
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, size[0]), min(y + h, size[1])
    return (x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))


# --- FER faces in real scenes ----------------------------------------------------------------------------------

def fer_frame(face: np.ndarray, width: int, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, Box]:
    """A real scene of ``size`` under random light with ``face`` feathered in ``width`` px wide, and its box."""
    x = int(rng.integers(0, size[0] - width + 1))
    y = int(rng.integers(0, size[1] - width + 1))
    box = (x, y, width, width)
    return _light(paste_face(_random_background(rng, size), face, box), rng), box


def fer_scene_set(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], n: int, seed: int = 0,
                  face_px: tuple[int, int] = (60, 250), names: Sequence[str] | None = None,
                  size: tuple[int, int] = SIZE) -> dict[str, np.ndarray]:
    """``n`` FER faces (drawn without replacement while they last) feathered into real backgrounds
    at widths stratified over ``face_px``, under varied light. npz-ready arrays: ``images`` uint8
    (n, 480, 640, 3) BGR, ``labels``, ``classes``, ``boxes`` (n, 4) int32 x, y, w, h of the pasted
    square (the FER crop, so a detector's tighter face box sits inside it), ``source`` (index
    into ``images``) and ``names`` when given."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim not in (3, 4) or images.dtype != np.uint8 or len(images) != len(labels) or not len(images):
        raise ValueError(f"need uint8 faces (N, H, W[, 3]) with N labels, got {images.dtype} {images.shape} "
                         f"and {labels.shape} labels")
    if face_px[1] > min(size):
        raise ValueError(f"face_px {face_px} does not fit a {size[0]}x{size[1]} frame")
    rng = np.random.default_rng(seed)
    source = np.concatenate([rng.permutation(len(images)) for _ in range(-(-n // len(images)))] or [[]])[:n]
    source = source.astype(np.int64)
    frames = np.empty((n, size[1], size[0], 3), np.uint8)
    boxes = np.empty((n, 4), np.int32)
    for k, (i, width) in enumerate(zip(source, _widths(n, face_px, rng), strict=True)):
        frames[k], boxes[k] = fer_frame(images[i], int(width), rng, size)
    out = {"images": frames, "labels": labels[source], "classes": np.asarray([str(c) for c in classes]),
           "boxes": boxes, "source": source}
    if names is not None:
        out["names"] = np.asarray(names)[source]
    return out


def write_scene_npz(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Save scene arrays with ``np.savez_compressed``. Frames of one size are a plain uint8
    (N, H, W, 3) array, loadable with ``np.load(path)`` (no pickle). If ``images`` is an object
    array (frames of different sizes) it is pickled: load it with ``np.load(path, allow_pickle=True)``,
    and only from a source you trust."""
    path = Path(path)
    images = arrays.get("images")
    if images is None:
        raise ValueError("scene arrays need an 'images' entry")
    for key in ("labels", "boxes"):
        if key in arrays and len(arrays[key]) != len(images):
            raise ValueError(f"{len(arrays[key])} {key} for {len(images)} images")
    if isinstance(images, list):
        shapes = {im.shape for im in images}
        if len(shapes) == 1:
            images = np.stack(images)
        else:
            obj = np.empty(len(images), object)
            obj[:] = images
            images = obj
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{**arrays, "images": images})
    return path


def scene_video(path: Path, faces: Sequence[np.ndarray] | np.ndarray, labels: Sequence[int] | np.ndarray,
                seconds_per_face: float = 3.0, gap: float = 1.0, fps: float = 15.0, seed: int = 0,
                face_px: tuple[int, int] = (90, 220), size: tuple[int, int] = SIZE) -> list[tuple[float, float, int]]:
    """An MJPG .avi at ``fps``: a ``gap`` of a no-face scene, then each face held ``seconds_per_face``
    on its own real background (still, jittering a pixel like a held camera), then a gap, and so on,
    ending with a gap. Returns the (start_s, end_s, label) schedule so announcements can be scored."""
    if len(faces) != len(labels):
        raise ValueError(f"{len(faces)} faces for {len(labels)} labels")
    if face_px[1] + 2 > min(size):
        raise ValueError(f"face_px {face_px} does not fit a {size[0]}x{size[1]} frame")
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_face, n_gap = max(int(round(seconds_per_face * fps)), 1), int(round(gap * fps))
    schedule: list[tuple[float, float, int]] = []

    def frames():
        t = 0
        widths = _widths(len(faces), face_px, rng)
        for face, label, width in zip(faces, labels, widths, strict=True):
            if n_gap:
                empty = _light(_random_background(rng, size), rng)
                yield from [empty] * n_gap
                t += n_gap
            background = _random_background(rng, size)
            lut = _light_lut(rng)  # one light per held face: the scene is still
            x = int(rng.integers(1, size[0] - width))
            y = int(rng.integers(1, size[1] - width))
            for _ in range(n_face):
                dx, dy = (int(v) for v in rng.integers(-1, 2, 2))
                yield cv2.LUT(paste_face(background, face, (x + dx, y + dy, int(width), int(width))), lut)
            schedule.append((t / fps, (t + n_face) / fps, int(label)))
            t += n_face
        if n_gap:
            yield from [_light(_random_background(rng, size), rng)] * n_gap

    write_mjpg(path, frames(), fps, size)
    return schedule


# --- contact sheets ----------------------------------------------------------------------------------------------

def contact_sheet(frames: Sequence[SceneFrame], columns: int = 4, tile: int = 320,
                  captions: Sequence[str] | None = None) -> np.ndarray:
    """Frames tiled ``tile`` px wide with their truth drawn: the face box green, ignored faces
    yellow, for checking by eye that the scenes look real and the boxes sit on the faces."""
    if not frames:
        raise ValueError("no frames to draw")
    h0, w0 = frames[0].image.shape[:2]
    th = int(round(tile * h0 / w0))
    sx, sy = tile / w0, th / h0
    tiles = []
    for k, f in enumerate(frames):
        img = _resize(f.image, (tile, th))
        boxes = ([(f.face, (0, 255, 0))] if f.face else []) + [(b, (0, 255, 255)) for b in f.ignore]
        for (x, y, w, h), colour in boxes:
            cv2.rectangle(img, (int(x * sx), int(y * sy)), (int((x + w) * sx), int((y + h) * sy)), colour, 1)
        text = captions[k] if captions else (f"face w={f.face[2]}" if f.face else "no face")
        cv2.putText(img, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
        cv2.putText(img, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        tiles.append(img)
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    return np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])


# --- CLI -----------------------------------------------------------------------------------------------------------

def _load_fer(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray | None]:
    faces = load_faces(path)
    with np.load(path, allow_pickle=False) as data:
        names = data["names"] if "names" in data.files else None
    return faces.images, faces.labels, faces.classes, names


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="facecue-model scenes", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    fer = sub.add_parser("fer", help="FER faces in real scenes -> npz (images uint8 (N,480,640,3), labels, boxes)")
    vid = sub.add_parser("video", help="FER faces in real scenes -> MJPG .avi plus its schedule .json")
    cal = sub.add_parser("caltech", help="Caltech photos and no-face frames -> npz for detector benchmarks")
    sheet = sub.add_parser("sheet", help="contact sheet PNG of sample frames with their truth boxes")
    for q in (fer, vid, sheet):
        q.add_argument("--data", type=Path, default=data_dir() / "valid.npz",
                       help="FER npz (default valid.npz in $FACECUE_DATA, else ../shared/data/fer2013)")
    for q in (fer, vid, cal, sheet):
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--out", type=Path, required=True)
    count = bounded(int, at_least=1)  # frames, faces and pixels alike
    fer.add_argument("--n", type=count, default=600)
    fer.add_argument("--face-px", type=count, nargs=2, default=(60, 250), metavar=("MIN", "MAX"))
    vid.add_argument("--n", type=count, default=40)
    vid.add_argument("--seconds", type=bounded(float, above=0), default=3.0, help="seconds each face is held")
    vid.add_argument("--gap", type=bounded(float, at_least=0), default=1.0,
                     help="seconds of a no-face scene between faces")
    vid.add_argument("--fps", type=bounded(float, above=0), default=15.0)
    vid.add_argument("--face-px", type=count, nargs=2, default=(90, 220), metavar=("MIN", "MAX"))
    cal.add_argument("--n", type=count, default=168, help="frames with a Caltech face")
    cal.add_argument("--empty", type=bounded(int, at_least=0), default=100, help="frames with no face")
    cal.add_argument("--face-px", type=count, nargs=2, default=(50, 250), metavar=("MIN", "MAX"))
    sheet.add_argument("--n", type=count, default=8, help="frames of each kind")
    sheet.add_argument("--tile", type=count, default=320, help="tile width in px")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.cmd == "fer":
        images, labels, classes, names = _load_fer(args.data)
        arrays = fer_scene_set(images, labels, classes, args.n, args.seed, tuple(args.face_px), names)
        write_scene_npz(args.out, arrays)
        print(f"{args.out}: {args.n} frames, faces {args.face_px[0]}-{args.face_px[1]} px")
    elif args.cmd == "video":
        images, labels, classes, _ = _load_fer(args.data)
        rng = np.random.default_rng(args.seed)
        pick = rng.choice(len(images), size=args.n, replace=args.n > len(images))
        schedule = scene_video(args.out, images[pick], labels[pick], args.seconds, args.gap, args.fps, args.seed,
                               tuple(args.face_px))
        meta = {"video": args.out.name, "fps": args.fps, "size": list(SIZE), "classes": list(classes),
                "source": str(args.data), "seed": args.seed,
                "schedule": [{"start_s": round(a, 4), "end_s": round(b, 4), "label": lab, "class": classes[lab],
                              "index": int(i)} for (a, b, lab), i in zip(schedule, pick, strict=True)]}
        side = args.out.with_suffix(".json")
        side.write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{args.out}: {len(schedule)} faces; schedule in {side}")
    elif args.cmd == "caltech":
        frames = caltech_frames(args.n, args.seed, tuple(args.face_px)) + empty_frames(args.empty, args.seed)
        ignore = [(k, *b) for k, f in enumerate(frames) for b in f.ignore]
        write_scene_npz(args.out, {
            "images": np.stack([f.image for f in frames]),
            "boxes": np.array([f.face or (-1, -1, -1, -1) for f in frames], np.int32),
            "has_face": np.array([f.face is not None for f in frames]),
            "ignore": np.array(ignore, np.int32).reshape(-1, 5)})
        print(f"{args.out}: {args.n} frames with a face, {args.empty} without; "
              "boxes (N,4) x,y,w,h (-1 = no face), ignore (M,5) frame,x,y,w,h")
    else:
        frames: list[SceneFrame] = []
        if CALTECH_DIR.is_dir():
            frames += caltech_frames(args.n, args.seed)
        else:
            print(f"{CALTECH_DIR} absent: no Caltech frames on the sheet", file=sys.stderr)
        if Path(args.data).is_file():
            images, labels, classes, _ = _load_fer(args.data)
            arr = fer_scene_set(images, labels, classes, args.n, args.seed)
            frames += [SceneFrame(im, tuple(int(v) for v in b)) for im, b in zip(arr["images"], arr["boxes"],
                                                                                strict=True)]
        else:
            print(f"{args.data} absent: no FER frames on the sheet", file=sys.stderr)
        frames += empty_frames(max(args.n // 2, 1), args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.out), contact_sheet(frames, tile=args.tile)):
            raise OSError(f"{args.out}: cannot write image")
        print(f"{args.out}: {len(frames)} frames")
    return 0
