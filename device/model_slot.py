"""Which model the daemon serves, and swapping in a newly synced one live.

The configured ``[model] path`` wins; otherwise the model that ``facecue
sync`` installed in the store (``current``), then the store's ``previous``,
then the shipped one. A stored model must match the signed manifest entry it
was installed from, and any model but the shipped one first answers the smoke
faces in a child process, so one with bad metadata, one that rotted on the
card and one that crashes the interpreter are all skipped, each with one
``model error`` line naming the model that serves instead. A store that
cannot be read (permissions, links in it) is said once, in the same way.

The slot is the one owner of the serving model: the loop reads
:attr:`ModelSlot.serving` for each frame and never sets it. A new model is
loaded on a background thread, which posts :class:`~device.inbox.ModelReady`
to the loop's inbox; the loop hands it back to :meth:`ModelSlot.accept`
between two frames, so an update never drops a frame, and a model that
fails to load leaves the old one serving. Each load reads the model file
once: the sha256 the classifier takes of the bytes it maps is held against
the metadata and the signed manifest before the smoke faces run.

A model that loads but then fails on a real face is dropped for the rest of
the run (:meth:`ModelSlot.drop`): the store's ``previous`` serves instead,
else the shipped one (for a configured path: the shipped one), and that file
is not loaded again, not even when the store is polled or on SIGHUP.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from device import model_store
from device.classify import Classifier, ModelError
from device.config import ModelConfig
from device.inbox import Event, ModelReady
from models import DEFAULT_MODEL

log = logging.getLogger("facecue")


class ModelSlot:
    """Holds the serving :class:`Classifier` and replaces it when the store changes.

    ``smoke_check`` vets every model but the shipped one before it loads. Tests of a
    model that fails only on real faces pass a check that lets their broken file
    through, since a file that fails the smoke faces never reaches a real face.
    """

    # The smoke faces run in a child without hashing: the slot hashes the bytes its own
    # interpreter maps, once per load.
    SMOKE_CHECK = functools.partial(model_store.verify_model_isolated, checksum=False)

    def __init__(self, cfg: ModelConfig, smoke_check: Callable[[Path], object] = SMOKE_CHECK) -> None:
        self.cfg = cfg
        self.smoke_check = smoke_check
        self.store = Path(cfg.store)
        self.generation: str | None = None
        self._serving: Classifier | None = None
        self._next_check = 0.0
        self._check_now = False
        self._loader: threading.Thread | None = None
        self._dropped: frozenset[Path] = frozenset()  # files that failed at run time
        self._store_problem: str | None = None  # said once, until it changes

    @property
    def serving(self) -> Classifier | None:
        """The model frames go to; None before the first load and after a :meth:`drop`."""
        return self._serving

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
        """Load the best candidate now and serve it; raises ModelError naming every failure.

        A failed candidate is logged here only when a later one serves: when
        none does, the caller reports the raised error, so it is said once.
        """
        classifier = self._load_best()
        self._serving = classifier
        return classifier

    def _load_best(self) -> Classifier:
        errors, dropped = [], []
        generation = None if self.cfg.path else model_store.model_generation(self.store)
        for path in self._chain():
            if self._is_dropped(path):
                dropped.append(f"{path} failed at run time")
                continue
            vet = None if path == DEFAULT_MODEL else functools.partial(self._vet, path)
            try:
                classifier = Classifier(path, num_threads=self.cfg.threads, vet=vet)
            except ModelError as exc:
                errors.append(str(exc))
                continue
            for error in errors:
                log.error("model error: %s; serving %s instead", error, path)
            self.generation = generation
            return classifier
        raise ModelError("; ".join(dropped + errors))

    def _vet(self, path: Path, sha256: str) -> None:
        """A model but the shipped one, hashed once by its classifier: the bytes the
        signed manifest listed, and an answer to the smoke faces in a child."""
        model_store.check_recorded(path, sha256)
        self.smoke_check(path)

    def drop(self, failed: Classifier) -> None:
        """``failed`` broke on a real face: never load its file again in this run.

        The next :meth:`load` serves the next candidate; the caller does that
        at once, so the device is not mute longer than one load.
        """
        self._dropped = self._dropped | {failed.info.path.absolute()}  # one assignment: the loader thread reads it
        if self._serving is failed:
            self._serving = None

    def check_now(self) -> None:
        """SIGHUP: look at the store at the next :meth:`check`, not after ``check_every``."""
        self._check_now = True

    def check(self, post: Callable[[Event], None]) -> None:
        """Between frames: when the store has changed, load its best model on a
        background thread, which posts :class:`ModelReady` through ``post``.

        Cheap when nothing changed: one readlink every ``check_every`` seconds.
        """
        if self.cfg.path or (self._loader and self._loader.is_alive()):
            return
        now = time.monotonic()
        if not self._check_now and now < self._next_check:
            return
        self._next_check = now + self.cfg.check_every
        forced, self._check_now = self._check_now, False
        if not forced and model_store.model_generation(self.store) == self.generation:
            return
        self._loader = threading.Thread(target=self._load_in_background, args=(post,), name="model-loader",
                                        daemon=True)
        self._loader.start()

    def accept(self, ready: ModelReady) -> bool:
        """On the loop's thread: serve the model the loader posted, unless its file was
        dropped while it loaded. True when it now serves."""
        if self._is_dropped(ready.classifier.info.path):
            return False
        self._serving = ready.classifier
        log.info("model loaded version %s from %s", ready.classifier.info.version, ready.classifier.info.path)
        return True

    def _load_in_background(self, post: Callable[[Event], None]) -> None:
        generation = model_store.model_generation(self.store)
        try:
            classifier = self._load_best()
        except ModelError as exc:
            log.error("model error: %s; the model in service stays", exc)
            self.generation = generation  # do not retry a broken file every few seconds
            return
        serving = self._serving
        if serving is not None and (classifier.info.path, classifier.info.meta["sha256"]) == \
                (serving.info.path, serving.info.meta["sha256"]):
            return
        post(ModelReady(classifier))
