"""Which model the daemon serves, and swapping in a newly synced one live.

The configured ``[model] path`` wins; otherwise the model that ``facecue
sync`` installed in the store (``current``), then the store's ``previous``,
then the shipped one. A stored model must match the signed manifest entry it
was installed from, and any model but the shipped one first answers the smoke
faces in a child process, so one with bad metadata, one that rotted on the
card and one that crashes the interpreter are all skipped, each with one
``model error`` line naming the model that serves instead. A store that
cannot be read (permissions, links in it) is said once, in the same way. A new model is loaded on a
background thread and swapped in between two frames, so an update never
drops a frame; a model that fails to load leaves the old one serving.

A model that loads but then fails on a real face is dropped for the rest of
the run (:meth:`ModelSlot.drop`): the store's ``previous`` serves instead,
else the shipped one (for a configured path: the shipped one), and that file
is not loaded again, not even when the store is polled or on SIGHUP.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from device import model_store
from device.classify import Classifier, ModelError
from device.config import ModelConfig
from models import DEFAULT_MODEL

log = logging.getLogger("facecue")


class ModelSlot:
    """Holds the serving :class:`Classifier` and replaces it when the store changes.

    ``smoke_check`` vets every model but the shipped one before it loads. Tests of a
    model that fails only on real faces pass a check that lets their broken file
    through, since a file that fails the smoke faces never reaches a real face.
    """

    def __init__(self, cfg: ModelConfig,
                 smoke_check: Callable[[Path], object] = model_store.verify_model_isolated) -> None:
        self.cfg = cfg
        self.smoke_check = smoke_check
        self.store = Path(cfg.store)
        self.classifier: Classifier | None = None
        self.generation: str | None = None
        self._next_check = 0.0
        self._reload_requested = threading.Event()
        self._loader: threading.Thread | None = None
        self._loaded: Classifier | None = None
        self._lock = threading.Lock()
        self._dropped: frozenset[Path] = frozenset()  # files that failed at run time
        self._store_problem: str | None = None  # said once, until it changes

    def _chain(self) -> list[Path]:
        """Every model file this slot would serve, best first, dropped ones included.

        A configured path stands alone (a typo there must be said, not served
        around) until it fails at run time; then the shipped model follows it.
        """
        if self.cfg.path:
            configured = Path(self.cfg.path)
            return [configured, DEFAULT_MODEL] if self._is_dropped(configured) else [configured]
        try:
            stored = model_store.stored_models(self.store)
            problem = None
        except model_store.StoreError as exc:
            stored, problem = [], str(exc)
        if problem and problem != self._store_problem:
            log.error("model error: %s; serving %s instead", problem, DEFAULT_MODEL)
        self._store_problem = problem
        return [*stored, DEFAULT_MODEL]

    def _is_dropped(self, path: Path) -> bool:
        return path.absolute() in self._dropped

    def candidates(self) -> list[Path]:
        """Model files to try, best first, less those dropped at run time."""
        return [path for path in self._chain() if not self._is_dropped(path)]

    def load(self) -> Classifier:
        """Load the best candidate now; raises ModelError naming every failure.

        A failed candidate is logged here only when a later one serves: when
        none does, the caller reports the raised error, so it is said once.
        """
        errors, dropped = [], []
        generation = None if self.cfg.path else model_store.model_generation(self.store)
        for path in self._chain():
            if self._is_dropped(path):
                dropped.append(f"{path} failed at run time")
                continue
            try:
                if path != DEFAULT_MODEL:
                    model_store.check_recorded(path)
                    self.smoke_check(path)
                classifier = Classifier(path, num_threads=self.cfg.threads)
            except ModelError as exc:
                errors.append(str(exc))
                continue
            for error in errors:
                log.error("model error: %s; serving %s instead", error, path)
            self.generation = generation
            return classifier
        raise ModelError("; ".join(dropped + errors))

    def drop(self, failed: Classifier) -> None:
        """``failed`` broke on a real face: never load its file again in this run.

        The next :meth:`load` serves the next candidate; the caller does that
        at once, so the device is not mute longer than one load.
        """
        self._dropped = self._dropped | {failed.info.path.absolute()}  # one assignment: the loader thread reads it
        if self.classifier is failed:
            self.classifier = None

    def request_reload(self) -> None:
        """SIGHUP: check the store at the next frame."""
        self._reload_requested.set()

    def poll(self) -> Classifier | None:
        """Between frames: a newly loaded classifier to swap in, or None.

        Cheap when nothing changed: one readlink every ``check_every`` seconds.
        """
        with self._lock:
            ready, self._loaded = self._loaded, None
        if ready is not None and not self._is_dropped(ready.info.path):  # not one dropped while it loaded
            self.classifier = ready
            log.info("model loaded version %s from %s", ready.info.version, ready.info.path)
            return ready
        if self.cfg.path or (self._loader and self._loader.is_alive()):
            return None
        now = time.monotonic()
        if not self._reload_requested.is_set() and now < self._next_check:
            return None
        self._next_check = now + self.cfg.check_every
        forced = self._reload_requested.is_set()
        self._reload_requested.clear()
        if not forced and model_store.model_generation(self.store) == self.generation:
            return None
        self._loader = threading.Thread(target=self._load_in_background, name="model-loader", daemon=True)
        self._loader.start()
        return None

    def _load_in_background(self) -> None:
        generation = model_store.model_generation(self.store)
        try:
            classifier = self.load()
        except ModelError as exc:
            log.error("model error: %s; the model in service stays", exc)
            self.generation = generation  # do not retry a broken file every few seconds
            return
        if self.classifier is not None and classifier.info.path == self.classifier.info.path \
                and classifier.info.meta.get("sha256") == self.classifier.info.meta.get("sha256"):
            return
        with self._lock:
            self._loaded = classifier
