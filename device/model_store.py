"""The device's model store: verified models on disk, and which one serves.

Layout under ``model_dir`` (default ``/var/lib/facecue/models``)::

    versions/<version>/model.tflite   the model
    versions/<version>/model.json     its metadata (labels, input spec, sha256, ...)
    versions/<version>/source.json    where it came from (the signed manifest entry)
    versions/.partial-*               a download in progress; never loaded
    current  -> versions/<version>    what the daemon serves
    previous -> versions/<version>    what ``facecue sync --rollback`` restores
    .swap                             the two links a swap in progress sets
    .lock                             held by whoever changes the store

A model only gets a ``versions/`` name after it was downloaded completely,
checked and fsynced, and its installed bytes are checked again against the
signed manifest entry; ``current`` and ``previous`` are replaced with a new
symlink and ``os.replace``, and every step ends with an fsync of the
directory. So a power cut at any instant leaves ``current`` either on the old
or on the new complete model, never on half a file, and the daemon can poll
:func:`model_generation` (one ``readlink``) every few seconds for free. The
two links are set from a journal (``.swap``) that the next change of the
store finishes, so a cut between them cannot lose the rollback target.

Nothing here follows a link out of the store: ``versions/``, its entries and
their files must be the store's own (:func:`check_layout`), or the store is
refused in one line; a prune can never reach a folder elsewhere.
"""
from __future__ import annotations

import contextlib
import errno
import faulthandler
import fcntl
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core.files import fsync_dir, write_atomic
from core.labels import EXPRESSIONS
from device.classify import (
    MAX_METADATA_BYTES,
    PROBABILITY_SUM_TOLERANCE,
    ModelError,
    ModelInfo,
    read_model_info,
    sha256_file,
)
from device.reading import loads_json, read_regular

MODEL_FILE = "model.tflite"
METADATA_FILE = "model.json"
SOURCE_FILE = "source.json"
VERSIONS = "versions"
PARTIAL_PREFIX = ".partial-"
CURRENT, PREVIOUS = "current", "previous"
LOCK_FILE = ".lock"
SWAP_FILE = ".swap"

VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
SERVABLE_INPUT_DTYPES = ("int8", "uint8", "float32")  # what Classifier._to_input can feed
FACE_SIDE = 48
SMOKE_CHECK_TIMEOUT = 300.0  # a Pi Zero 2 needs a few seconds; only a hung interpreter takes this long
SMOKE_CHECK_OK = "ok"


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message is one line for the log."""


def check_version_name(version: str) -> str:
    """A version string is a directory name on the device and part of an S3 key:
    letters, digits and ``._+-`` only, so it can never escape ``versions/``."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise StoreError(f"invalid model version {version!r}: use letters, digits and ._+- (at most 64)")
    return version


def model_generation(model_dir: Path) -> str | None:
    """What ``current`` points at, or None: one readlink, cheap enough to poll
    every few seconds; it changes exactly when a sync or rollback swapped."""
    try:
        return os.readlink(Path(model_dir) / CURRENT)
    except OSError:
        return None


def _linked_version(model_dir: Path, name: str) -> str | None:
    """The version ``name`` (current/previous) points at, if that directory exists."""
    try:
        target = os.readlink(Path(model_dir) / name)
    except OSError:
        return None
    version = Path(target).name
    if not VERSION_PATTERN.fullmatch(version):  # a link made by hand: not ours to serve
        return None
    return version if (Path(model_dir) / VERSIONS / version).is_dir() else None


def current_version(model_dir: Path) -> str | None:
    return _linked_version(model_dir, CURRENT)


def previous_version(model_dir: Path) -> str | None:
    return _linked_version(model_dir, PREVIOUS)


def check_layout(model_dir: Path) -> None:
    """The store is laid out as this module leaves it, or StoreError says what is not.

    ``current`` and ``previous`` are links made here, or absent: a real folder or
    file there (a model copied in by hand) would make every install fail after its
    download, and :func:`prune` would not know which version it holds. Every other
    part (``versions/``, its entries and their files, the lock) is no link: with
    ``versions/`` a link to a user's folder, an install would write there and a
    prune delete the user's folders. A store that cannot be read says so.
    """
    model_dir = Path(model_dir)
    try:
        for name in (CURRENT, PREVIOUS):
            path = model_dir / name
            if path.exists() and not path.is_symlink():
                raise StoreError(f"{path} is not a link to a stored model: move it away, sync installs models there")
        versions = model_dir / VERSIONS
        parts = [versions, model_dir / LOCK_FILE, model_dir / SWAP_FILE]
        if versions.is_dir() and not versions.is_symlink():
            entries = list(versions.iterdir())
            parts += entries + [f for entry in entries if entry.is_dir() and not entry.is_symlink()
                                for f in entry.iterdir()]
        link = next((part for part in parts if part.is_symlink()), None)
    except OSError as exc:
        raise StoreError(f"cannot read the model store {model_dir}: {exc.strerror}") from None
    if link is not None:
        raise StoreError(f"{link} is a symbolic link; the model store follows none: move it away")


def version_dir(model_dir: Path, version: str) -> Path:
    return Path(model_dir) / VERSIONS / check_version_name(version)


def stored_models(model_dir: Path) -> list[Path]:
    """The store's current and previous model files, in that order (those there are):
    what the daemon tries before the shipped model. StoreError when the store cannot
    be read or is not laid out as sync leaves it, so the daemon can say why it serves
    the shipped model instead of doing so without a word."""
    model_dir = Path(model_dir)
    try:
        os.stat(model_dir)
    except FileNotFoundError:
        return []  # nothing synced to this device yet
    except OSError as exc:
        raise StoreError(f"cannot read the model store {model_dir}: {exc.strerror}") from None
    check_layout(model_dir)
    versions = [current_version(model_dir), previous_version(model_dir)]
    return [version_dir(model_dir, v) / MODEL_FILE for v in dict.fromkeys(versions) if v is not None]


def check_recorded(model_path: Path, model_sha256: str | None = None) -> None:
    """A stored model's files are the bytes of the signed manifest entry it was
    installed from (its ``source.json``), or ModelError. A model whose files were
    swapped after sync checked them, both changed to agree with each other, is
    caught here. A model without such a record (one installed by hand) passes.

    ``model_sha256`` is the hash a :class:`~device.classify.Classifier` took of
    the bytes it is about to map, so that a load reads the model file once
    (None: hash the file)."""
    model_path = Path(model_path)
    source = _read_source(model_path.parent)
    metadata = model_path.parent / METADATA_FILE
    for key, path in (("sha256", model_path), ("metadata_sha256", metadata)):
        if key not in source:
            continue
        try:
            actual = model_sha256 if path == model_path and model_sha256 else sha256_file(path)
        except OSError as exc:
            raise ModelError(f"model {path} unreadable: {exc.strerror}") from None
        if actual != source[key]:
            raise ModelError(f"{path} sha256 {actual[:12]}... is not what the signed manifest listed: "
                             "it changed after it was checked")


def active_model(model_dir: Path, fallback: Path) -> Path:
    """The ``.tflite`` the daemon should load: the current synced model when it
    is complete and matches its sha256, else ``fallback`` (the shipped model).

    The path returned is inside ``versions/<version>/``, not through the
    ``current`` link, so a swap during loading cannot pair one version's
    metadata with another version's weights.
    """
    version = current_version(model_dir)
    if version is None:
        return Path(fallback)
    model = version_dir(model_dir, version) / MODEL_FILE
    try:
        read_model_info(model, verify_checksum=True)
    except ModelError:
        return Path(fallback)
    return model


def version_source(model_dir: Path, version: str) -> dict[str, Any]:
    """The manifest entry a stored version was installed from ({} when unknown)."""
    return _read_source(version_dir(model_dir, version))


def _read_source(folder: Path) -> dict[str, Any]:
    """``folder``'s ``source.json``, or {} when it has none or it is damaged."""
    try:
        data = loads_json(read_regular(folder / SOURCE_FILE, MAX_METADATA_BYTES))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- what the running code can serve -------------------------------------------------


def servable_problem(labels: Any, input_spec: Any) -> str | None:
    """Why this code cannot serve a model with these labels and input spec, or None.

    The announcer has a clip for each expression in ``EXPRESSIONS`` in that
    order, and the preprocessing makes 48x48 grey faces: a model that
    disagrees would speak the wrong words or crash the loop.
    """
    if list(labels or []) != list(EXPRESSIONS):
        return f"labels {list(labels or [])} differ from the {len(EXPRESSIONS)} this device speaks {list(EXPRESSIONS)}"
    if not isinstance(input_spec, dict):
        return "no input spec"
    shape, dtype = input_spec.get("shape"), input_spec.get("dtype")
    if not (isinstance(shape, list) and len(shape) == 4 and list(shape[1:]) == [FACE_SIDE, FACE_SIDE, 1]):
        return f"input shape {shape} is not [N, {FACE_SIDE}, {FACE_SIDE}, 1]"
    if dtype not in SERVABLE_INPUT_DTYPES:
        return f"input dtype {dtype!r} is not one of {', '.join(SERVABLE_INPUT_DTYPES)}"
    if dtype != "float32" and not (isinstance(input_spec.get("scale"), (int, float)) and input_spec["scale"] > 0):
        return f"quantised input without a positive scale ({input_spec.get('scale')!r})"
    return None


def smoke_faces() -> np.ndarray:
    """Seven synthetic 48x48 faces (smile, frown, open mouth, ...) drawn with OpenCV.

    They are not people: the project never ships FER2013 images. They only
    have to look enough like a preprocessed face to drive every layer of a
    model through the device's own preprocessing and interpreter.
    """
    import cv2

    from device.preprocess import preprocess_face

    rng = np.random.default_rng(7)
    faces = []
    mouths = ("smile", "frown", "open", "flat", "smile", "open", "flat")
    for i, mouth in enumerate(mouths):
        img = np.full((FACE_SIDE, FACE_SIDE), 50 + 10 * i, np.uint8)
        cv2.ellipse(img, (24, 25), (17, 22), 0, 0, 360, 175, -1)
        tilt = i - 3  # eyebrows from frowning to raised
        cv2.line(img, (11, 14 + tilt), (21, 14 - tilt), 60, 1)
        cv2.line(img, (27, 14 - tilt), (37, 14 + tilt), 60, 1)
        for x in (16, 32):
            cv2.circle(img, (x, 20), 3, 40, -1)
        if mouth == "smile":
            cv2.ellipse(img, (24, 33), (8, 5), 0, 0, 180, 50, 2)
        elif mouth == "frown":
            cv2.ellipse(img, (24, 38), (8, 5), 0, 180, 360, 50, 2)
        elif mouth == "open":
            cv2.ellipse(img, (24, 36), (5, 6), 0, 0, 360, 30, -1)
        else:
            cv2.line(img, (17, 36), (31, 36), 50, 2)
        noisy = np.clip(img.astype(np.int16) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        faces.append(preprocess_face(noisy))
    return np.stack(faces)


def verify_model(model_path: Path, checksum: bool = True) -> ModelInfo:
    """Everything short of wearing it: sha256 against the metadata, labels and
    input spec this code can serve, loads in the device interpreter, and on
    the smoke faces gives the right output shape and probabilities that are
    finite and sum to about 1. Raises ModelError with one line.

    ``checksum=False`` leaves the sha256 to the caller: the model slot hashes
    the bytes its own interpreter maps, once per load."""
    from device.classify import Classifier

    info = read_model_info(model_path, verify_checksum=False)
    problem = servable_problem(info.meta.get("labels"), info.meta.get("input"))
    if problem:
        raise ModelError(f"model {info.version} cannot be served: {problem}")
    classifier = Classifier(model_path, verify_checksum=checksum)
    declared = info.meta["input"]
    if classifier.input_dtype.name != declared["dtype"]:
        raise ModelError(f"model {info.version} input is {classifier.input_dtype.name}, "
                         f"its metadata says {declared['dtype']}")
    faces = smoke_faces()
    try:
        probs = np.asarray(classifier.probabilities(faces), dtype=np.float64)
    except Exception as exc:  # the runtime raises RuntimeError/ValueError on a bad graph
        raise ModelError(f"model {info.version} crashed on the smoke faces: {str(exc).splitlines()[0]}") from None
    if probs.shape != (len(faces), len(EXPRESSIONS)):
        raise ModelError(f"model {info.version} gave output shape {probs.shape}, "
                         f"expected {(len(faces), len(EXPRESSIONS))}")
    sums = probs.sum(axis=1)
    if not np.isfinite(probs).all() or probs.min() < -1e-6 or \
            np.abs(sums - 1).max() > PROBABILITY_SUM_TOLERANCE:
        raise ModelError(f"model {info.version} gives no probabilities on the smoke faces "
                         f"(row sums {np.round(sums, 3).tolist()})")
    return info


def _smoke_check_verdict(model_path: Path, checksum: bool) -> str | None:
    """Run in the child: :func:`verify_model`'s refusal as one line, or None. Any
    exception is a refusal, so the caller always has one line and never a traceback."""
    try:
        verify_model(model_path, checksum)
    except ModelError as exc:
        return str(exc).splitlines()[0]
    except Exception as exc:  # a broken model may make the runtime raise anything
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"model {model_path} failed its smoke check: {type(exc).__name__}: {first}".rstrip(": ")
    return None


def _forked_child(model_path: str, checksum: bool, verdict) -> None:
    """The forked child's stderr goes nowhere, as the fresh child's does: a dying
    runtime, or faulthandler (which PYTHONFAULTHANDLER and pytest turn on), must not
    add lines to the one the caller prints."""
    faulthandler.disable()  # pytest's writes to a copy of fd 2
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    verdict.send(_smoke_check_verdict(Path(model_path), checksum))


def smoke_check_main() -> None:
    """``python -c`` entry of a fresh child (argv: the model, ``checksum`` or not): the
    verdict (or ``ok``) on stdout."""
    print(_smoke_check_verdict(Path(sys.argv[1]), sys.argv[2] == "checksum") or SMOKE_CHECK_OK, flush=True)


def _crashed(version: str, exitcode: int) -> ModelError:
    """A child killed by a signal (a segfault in the interpreter) or that exited early."""
    if exitcode < 0:
        try:
            how = signal.Signals(-exitcode).name
        except ValueError:
            how = f"signal {-exitcode}"
    else:
        how = f"exit status {exitcode}"
    return ModelError(f"model {version} crashed the interpreter ({how}) in its smoke check")


def _timed_out(version: str, timeout: float) -> ModelError:
    return ModelError(f"model {version} did not finish its smoke check within {timeout:g}s")


def _check_in_fork(model_path: Path, checksum: bool, version: str, timeout: float) -> str | None:
    """The verdict of a forked child: milliseconds to start, everything already imported."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_forked_child, args=(str(model_path), checksum, send), daemon=True)
    child.start()
    send.close()  # the child holds the only writer now: its death reads as end of file
    try:
        if not receive.poll(timeout):
            raise _timed_out(version, timeout)
        return receive.recv()
    except EOFError:
        child.join()
        raise _crashed(version, child.exitcode or 0) from None
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()


def _check_in_new_interpreter(model_path: Path, checksum: bool, version: str, timeout: float) -> str | None:
    """The verdict of a fresh Python (imports cost about half a second on a PC, a few
    on a Pi); its stderr, where a dying runtime may write, is dropped for the one line."""
    code = "from device.model_store import smoke_check_main; smoke_check_main()"
    argv = [sys.executable, "-c", code, str(model_path), "checksum" if checksum else "trusted"]
    try:
        run = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                             check=False)
    except subprocess.TimeoutExpired:
        raise _timed_out(version, timeout) from None
    lines = run.stdout.splitlines()
    if run.returncode != 0 or not lines:
        raise _crashed(version, run.returncode)
    return None if lines[-1] == SMOKE_CHECK_OK else lines[-1]


def verify_model_isolated(model_path: Path, timeout: float = SMOKE_CHECK_TIMEOUT,
                          checksum: bool = True) -> ModelInfo:
    """:func:`verify_model` in a child process, so that a model which makes the
    interpreter crash (a signed flatbuffer can still segfault LiteRT) or hang is a
    refused model with one line instead of a dead caller. Raises ModelError.

    The child is forked when this process has no other thread (sync, publish). With
    threads (the daemon) a fork could copy a lock another thread holds, so the child
    is then a fresh interpreter.
    """
    info = read_model_info(model_path, verify_checksum=False)  # the child hashes it, with ``checksum``
    check = _check_in_fork if threading.active_count() == 1 else _check_in_new_interpreter
    verdict = check(Path(model_path), checksum, info.version, timeout)
    if verdict is not None:
        raise ModelError(verdict)
    return info


# --- changing the store (callers hold store_lock) --------------------------------------


@contextlib.contextmanager
def store_lock(model_dir: Path) -> Iterator[None]:
    """Exclusive right to change the store; a second sync fails at once instead of
    two runs swapping links under each other."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(model_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_layout(model_dir)  # names the link
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StoreError(f"another facecue sync is changing {model_dir}; try again later") from None
            raise
        if not (model_dir / VERSIONS).is_symlink():  # one is refused by check_layout, which prune runs
            (model_dir / VERSIONS).mkdir(exist_ok=True)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def staging_dir(model_dir: Path) -> Iterator[Path]:
    """A fresh ``versions/.partial-*`` folder on the store's own file system (so
    installing it is a rename); removed again unless installed."""
    stage = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=Path(model_dir) / VERSIONS))
    os.chmod(stage, 0o755)  # mkdtemp's 0700 would hide it from a daemon running as another user
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _replace_link(model_dir: Path, name: str, version: str) -> None:
    """Point ``name`` at ``versions/<version>`` in one atomic rename."""
    tmp = Path(model_dir) / f".{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(f"{VERSIONS}/{version}", tmp)
    os.replace(tmp, Path(model_dir) / name)
    fsync_dir(Path(model_dir))


def _swap_links(model_dir: Path, current: str, previous: str | None) -> None:
    """Point ``current`` and ``previous`` at these versions. No rename sets two links,
    so the pair goes into ``.swap`` first: a cut between the two renames is finished
    by the next :func:`prune`, instead of leaving ``previous`` on ``current``'s model
    and the rollback target to be pruned."""
    journal = Path(model_dir) / SWAP_FILE
    write_atomic(journal, json.dumps({CURRENT: current, PREVIOUS: previous}).encode())
    _finish_swap(model_dir)


def _finish_swap(model_dir: Path) -> None:
    """Set the links ``.swap`` names, if both versions are there, and drop it."""
    journal = Path(model_dir) / SWAP_FILE
    try:
        wanted = loads_json(read_regular(journal, 4096))
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        wanted = None  # torn by a cut before it was complete: nothing was swapped yet
    names = [wanted.get(CURRENT), wanted.get(PREVIOUS)] if isinstance(wanted, dict) else []
    ok = [isinstance(v, str) and VERSION_PATTERN.fullmatch(v) and version_dir(model_dir, v).is_dir()
          for v in names if v is not None]
    if names and names[0] is not None and all(ok):
        if names[1] is not None:
            _replace_link(model_dir, PREVIOUS, names[1])
        _replace_link(model_dir, CURRENT, names[0])
    os.unlink(journal)
    fsync_dir(Path(model_dir))


def install_version(model_dir: Path, staged: Path, version: str, source: dict[str, Any]) -> Path:
    """Make the verified model in ``staged`` (from :func:`staging_dir`) the current
    one; the old current becomes ``previous``. Returns the installed model path.

    Order: ``source.json`` and the folder are fsynced, the folder renamed to
    ``versions/<version>``, ``previous`` moved to the old current, then
    ``current`` swapped. A crash between any two steps leaves ``current`` on a
    complete model; :func:`prune` clears what the crash left behind.
    """
    model_dir, staged = Path(model_dir), Path(staged)
    check_version_name(version)
    if staged.parent != model_dir / VERSIONS or not staged.name.startswith(PARTIAL_PREFIX):
        raise StoreError(f"{staged} is not a staging folder of {model_dir}")
    for name in (MODEL_FILE, METADATA_FILE):
        if not (staged / name).is_file():
            raise StoreError(f"staged model lacks {name}")
    old = current_version(model_dir)
    if old == version:
        raise StoreError(f"model {version} is already the current one")
    write_atomic(staged / SOURCE_FILE, json.dumps(source, indent=1, sort_keys=True).encode())
    fsync_dir(staged)
    target = version_dir(model_dir, version)
    if target.exists():  # an older copy (e.g. previous after a rollback): replace it whole
        os.replace(target, Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=model_dir / VERSIONS)) / "old")
    os.rename(staged, target)
    fsync_dir(model_dir / VERSIONS)
    try:
        check_recorded(target / MODEL_FILE)  # the bytes installed, not the ones checked before
    except ModelError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise StoreError(f"not installing model {version}: {exc}") from None
    _swap_links(model_dir, version, old)
    prune(model_dir)
    return target / MODEL_FILE


def rollback(model_dir: Path) -> tuple[str, str]:
    """Swap ``current`` and ``previous``; returns (from_version, to_version).

    The previous model is checked against its sha256 first: a rollback never
    installs a file that rotted on the card.
    """
    model_dir = Path(model_dir)
    check_layout(model_dir)
    cur, prev = current_version(model_dir), previous_version(model_dir)
    if prev is None:
        raise StoreError(f"no previous model in {model_dir} to roll back to"
                         + (f" (current is {cur})" if cur else ""))
    if prev == cur:
        raise StoreError(f"nothing to roll back to: the previous model is the current one ({cur})")
    read_model_info(version_dir(model_dir, prev) / MODEL_FILE, verify_checksum=True)
    _swap_links(model_dir, prev, cur)
    return cur or "", prev


def prune(model_dir: Path) -> list[str]:
    """Finish a link swap a cut interrupted, then delete every stored version but
    current and previous, and whatever an interrupted run left (``.partial-*``
    folders, temporary links). Returns the names removed. Refuses (StoreError) a
    store with links where it holds folders: it never deletes through one."""
    model_dir = Path(model_dir)
    check_layout(model_dir)
    _finish_swap(model_dir)
    keep = {current_version(model_dir), previous_version(model_dir)}
    removed = []
    for entry in sorted((model_dir / VERSIONS).iterdir()):
        if entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    for name in (CURRENT, PREVIOUS):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(model_dir / f".{name}.tmp")
    if removed:
        fsync_dir(model_dir / VERSIONS)
    return removed
