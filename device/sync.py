"""facecue sync: fetch, verify and install a newer model from S3, or roll back.

    facecue sync                   # what the timer runs
    facecue sync --force           # now, ignoring backoff, the cached ETag, rollbacks and rejections
    facecue sync --rollback        # back to the previous model

Settings come from the ``[sync]`` table of ``/etc/facecue/config.toml``
(``source = "s3://BUCKET/PREFIX"`` and the other keys of
:class:`device.config.SyncConfig`, checked by the same validator as the rest of
the config), each overridable by a flag; models go into its ``[model] store``.
Without a source the run does nothing (exit 0, one line): the timer is
installed on every device and syncs where a source is set. An unchanged manifest costs
one conditional GET. A new model is downloaded into
the store's own file system, checked against the signed manifest (size,
sha256), checked for labels and input spec, loaded and run on synthetic
smoke faces in a child process (a model that crashes the interpreter is a
refused model), and only then swapped in; on any failure the current model
keeps serving, one line says why, and the next run backs off exponentially
(with jitter, so a fleet that lost its network does not return in step).
The manifest read and every download of a run share one deadline, so a
server that trickles bytes cannot hold the sync (and the store lock).
A manifest signed for another channel or past its expiry is refused, and
no model older than the newest this device installed from its channel is
installed again (a local ``--rollback`` aside); nor is a manifest older (by its
signed ``serial``) than one this device already had from its channel, so a
replayed manifest cannot hold it on an old model, nor one with the same serial
and another body. Expiry is judged on the device's trusted time: its clock, but
never earlier than the newest signing time it has seen (nor than this code), so
a clock reset to 1970 cannot revive an expired manifest. Nothing is ever uploaded.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.files import write_atomic
from device import __version__
from device.argparser import Parser, one_line, run
from device.classify import ModelError
from device.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    SyncConfig,
    load,
    with_overrides,
)
from device.manifest import (
    EARLIEST_CLOCK,
    MANIFEST_KEY,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    ModelEntry,
    S3Location,
    S3Options,
    facecue_version_tuple,
    load_public_key,
    make_s3_client,
    open_manifest,
    parse_time,
    s3_error_message,
    utc_now,
)
from device.model_store import (
    METADATA_FILE,
    MODEL_FILE,
    StoreError,
    current_version,
    install_version,
    model_generation,
    prune,
    rollback,
    servable_problem,
    staging_dir,
    store_lock,
    verify_model_isolated,
    version_source,
)
from device.reading import Refused, loads_json, read_regular

STATE_FILE = "state.json"
MAX_STATE_BYTES = 1 << 20  # twenty remembered rejections and a few channels: a few KB
FREE_SPACE_RESERVE = 16 << 20  # never fill the card: logs and the daemon still need room
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DAEMON_UNIT = "facecue.service"


class SyncError(RuntimeError):
    """A sync that did not happen; one line for the journal."""


class ModelRejected(SyncError):
    """A downloaded model that failed its checks: the same bytes will fail again, so
    the sync remembers them (:func:`content_key`) instead of downloading them every run."""

    def __init__(self, entry: ModelEntry, problem: str) -> None:
        super().__init__(f"refusing model {entry.version}: {problem}")
        self.content, self.problem = content_key(entry), problem


# What a sync can fail on at run time (exit 1): remembered for the backoff, then said in one line.
FAILURES = (SyncError, ManifestError, ModelError, StoreError, OSError)


class DeadlinePassed(BaseException):
    """Raised into a network read by :class:`Deadline`; the reader turns it into a
    SyncError naming what it was reading. A BaseException, like KeyboardInterrupt,
    so that botocore's ``except Exception`` cannot wrap it into an HTTP error."""


class Deadline:
    """One time limit for every network read of a run.

    botocore's read timeout is per socket read, so a server sending a byte
    every few seconds never trips it. A real-time timer (SIGALRM) raises
    :class:`DeadlinePassed` inside whatever read is blocked. Main thread only.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def message(self, what: str) -> str:
        return f"{what} did not finish within the {self.seconds:g}s deadline"

    @contextlib.contextmanager
    def enforced(self) -> Iterator[None]:
        """Network reads inside run only until the deadline."""
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed()

        def expire(signum: int, frame: object) -> None:
            raise DeadlinePassed()

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, remaining)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def s3_options(settings: SyncConfig) -> S3Options:
    return S3Options(settings.endpoint_url, settings.region, settings.anonymous, settings.connect_timeout,
                     settings.read_timeout, settings.max_attempts)


REMEMBERED = 20  # rolled-back versions and rejected models kept in the state


@dataclass
class SyncState:
    """What one run leaves for the next, in ``state_dir/state.json``."""

    etag: str = ""
    generation: str = ""  # the store's current link when etag was saved
    expires: float = 0.0  # expiry of the manifest etag stands for; after it, fetch in full
    failures: int = 0
    next_try: float = 0.0  # wall-clock seconds
    rolled_back: list[str] = field(default_factory=list)
    last_error: str = ""
    # channel (s3://BUCKET/PREFIX) -> highest publish seq installed from it: the floor
    floors: dict[str, int] = field(default_factory=dict, metadata={"values": int})
    # channel -> highest manifest serial accepted from it: an older manifest is a replay
    serials: dict[str, int] = field(default_factory=dict, metadata={"values": int})
    # channel -> sha256 of that manifest's signed body: the same serial must be the same manifest
    bodies: dict[str, str] = field(default_factory=dict, metadata={"values": str})
    # the newest signing time of a manifest accepted here: the device's clock is never earlier
    clock_floor: float = 0.0
    # content_key of a model that failed its checks here -> why
    rejected: dict[str, str] = field(default_factory=dict, metadata={"values": str})

    @classmethod
    def load(cls, path: Path) -> "SyncState":
        """A missing or damaged state file only costs one full manifest fetch. Something
        else in its place (a folder, a device) is refused: the state could not be saved
        there, and a sync that moved ``current`` would lose its floors and serials."""
        try:
            raw = read_regular(Path(path), MAX_STATE_BYTES)
        except FileNotFoundError:
            return cls()
        except Refused as exc:
            raise SyncError(f"state file {exc}: move it away, sync keeps its state there") from None
        except OSError as exc:
            raise SyncError(f"cannot read the state file {path}: {exc.strerror}") from None
        try:
            return cls.from_json(loads_json(raw))
        except ValueError as exc:
            print(f"facecue sync: warning: ignoring damaged {path} ({exc})", file=sys.stderr)
            return cls()

    @classmethod
    def from_json(cls, data: object) -> "SyncState":
        """The known fields, each of its own type: a ``"next_try": "soon"`` must not
        reach the backoff arithmetic. ValueError names the first bad field."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        state = cls()
        for f in dataclasses.fields(cls):
            if f.name in data:
                problem = _state_field_problem(f.name, data[f.name], getattr(state, f.name), f.metadata.get("values"))
                if problem:
                    raise ValueError(problem)
                setattr(state, f.name, data[f.name])
        return state

    def save(self, path: Path) -> None:
        write_atomic(Path(path), json.dumps(dataclasses.asdict(self), indent=1).encode())


def _state_field_problem(name: str, value: object, default: object, values: type | None) -> str | None:
    """Why ``value`` cannot stand for a state field whose default is ``default`` (a dict's
    values of type ``values``), or None."""
    if isinstance(default, list):
        ok, kind = isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of versions"
    elif isinstance(default, dict):
        ok = isinstance(value, dict) and all(type(v) is values for v in value.values())
        kind = f"a map of {getattr(values, '__name__', values)}"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        kind = "a number"
    elif isinstance(default, int):
        ok, kind = type(value) is int and value >= 0, "a count"
    else:
        ok, kind = isinstance(value, str), "text"
    return None if ok else f"{name} is not {kind}"


def backoff_delay(failures: int, base: float, cap: float, rng=random.random) -> float:
    """Exponential in the failures so far, capped, with the upper half jittered. The
    exponent stops at 64 (far past any cap): 2 ** 1100 is no float."""
    return min(cap, base * 2.0 ** min(max(failures - 1, 0), 64)) * (0.5 + 0.5 * rng())


def backoff_remaining(state: SyncState, now: float, cap: float) -> float:
    """Seconds until the next try is allowed. A wait longer than the cap means the
    clock jumped back (a Pi without RTC that booted at 1970): ignore it."""
    remaining = state.next_try - now
    return remaining if 0 < remaining <= cap else 0.0


@dataclass(frozen=True)
class SyncOptions:
    force: bool = False
    allow_downgrade: bool = False
    progress: bool = False


class Progress:
    """A one-line bar on stderr when it is a terminal; silent in the journal."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self.enabled, self.label, self.total, self._shown = enabled, label, total, -1

    def update(self, done: int) -> None:
        percent = 100 * done // max(self.total, 1)
        if self.enabled and percent != self._shown:
            self._shown = percent
            bar = "#" * (percent // 4)
            end = "\n" if done >= self.total else ""
            print(f"\r{self.label} [{bar:<25}] {percent:3d}% {done / 1e6:.1f}/{self.total / 1e6:.1f} MB",
                  end=end, file=sys.stderr, flush=True)


def trusted_now(state: SyncState) -> float:
    """The device's time for judging expiry: its clock, but never earlier than the
    newest signing time it has seen nor than this code (a clock reset to 1970 must
    not make an expired manifest fresh again)."""
    return max(time.time(), state.clock_floor, parse_time(EARLIEST_CLOCK))


def fetch_manifest(client, location: S3Location, public_key, etag: str | None,
                   deadline: Deadline, now: float) -> tuple[Manifest, str] | None:
    """The verified manifest and its ETag, or None if it is unchanged since ``etag``."""
    from botocore.exceptions import BotoCoreError, ClientError

    url = location.url(MANIFEST_KEY)
    try:
        extra = {"IfNoneMatch": etag} if etag else {}
        with deadline.enforced():
            response = client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST_KEY), **extra)
            raw = response["Body"].read(MAX_MANIFEST_BYTES + 1)
    except DeadlinePassed:
        raise SyncError(deadline.message(f"reading {url}")) from None
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 304:
            if etag:
                return None
            raise SyncError(f"{url}: the store answered 304 Not Modified to a request that asked for "
                            "the whole manifest") from None
        raise SyncError(s3_error_message(exc, url)) from None
    except BotoCoreError as exc:
        raise SyncError(s3_error_message(exc, url)) from None
    try:
        manifest = open_manifest(raw, public_key, location.url())
        manifest.ensure_fresh(now)
    except ManifestError as exc:
        raise SyncError(f"{url}: {exc}") from None
    return manifest, reply_etag(response, url)


def reply_etag(response: dict, url: str) -> str:
    """The manifest reply's ETag, or "" (with a warning) from a server or proxy that
    sends none: the signature vouches for the manifest, only the 304 is lost."""
    etag = response.get("ETag") or ""
    if not etag:
        print(f"facecue sync: warning: {url} came without an ETag: it is fetched in full on every run",
              file=sys.stderr)
    return etag


def download(client, location: S3Location, key: str, dest: Path, size: int, sha256: str,
             deadline: Deadline, progress: Progress) -> None:
    """Stream one object to ``dest`` (fsynced), reading no more than ``size`` bytes,
    and check its length and sha256 against the signed manifest."""
    from botocore.exceptions import BotoCoreError, ClientError

    url = location.url(key)
    digest, done = hashlib.sha256(), 0
    try:
        with deadline.enforced():
            response = client.get_object(Bucket=location.bucket, Key=location.key(key))
            length = response.get("ContentLength")  # absent when sent chunked: the loop below still caps it
            if length is not None and length != size:
                raise SyncError(f"{url} is {length} bytes, the manifest says {size}")
            with open(dest, "xb") as f:
                for chunk in response["Body"].iter_chunks(1 << 16):
                    done += len(chunk)
                    if done > size:
                        raise SyncError(f"{url} is longer than the {size} bytes the manifest says")
                    digest.update(chunk)
                    f.write(chunk)
                    progress.update(done)
                f.flush()
                os.fsync(f.fileno())
    except DeadlinePassed:
        raise SyncError(f"{deadline.message(f'download of {url}')} ({done} of {size} bytes)") from None
    except (ClientError, BotoCoreError) as exc:  # before OSError: some botocore timeouts are both
        message = s3_error_message(exc, url)
        raise SyncError(f"{message} ({done} of {size} bytes)" if done else message) from None
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise SyncError(f"disk full writing {dest.parent} ({done} of {size} bytes of {url})") from None
        raise SyncError(f"cannot write {dest}: {exc.strerror}") from None
    if done != size:
        raise SyncError(f"download of {url} is truncated: {done} of {size} bytes")
    if digest.hexdigest() != sha256:
        raise SyncError(f"{url} sha256 {digest.hexdigest()[:12]}... does not match the signed manifest")


def signal_daemon() -> None:
    """Ask the daemon to reload now. Best effort only: without permission (the
    sync unit runs unprivileged) its file watch sees the swap within seconds."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return
    try:
        subprocess.run(["systemctl", "kill", "--signal=HUP", "--kill-whom=main", DAEMON_UNIT],
                       capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def content_key(entry: ModelEntry) -> str:
    """Names the bytes of a release (model and metadata), whatever version it claims."""
    return f"{entry.sha256}+{entry.metadata_sha256}"


def recorded(store: Path, channel: str, key: str) -> object:
    """``key`` of the current model's ``source.json`` if it came from ``channel``, else
    None: what the device knows of that channel when its state is lost."""
    installed = current_version(store)
    source = version_source(store, installed) if installed else {}
    return source.get(key) if source.get("source") == channel else None


def recorded_number(store: Path, channel: str, key: str) -> int:
    """:func:`recorded` for a count: 0 when unknown."""
    value = recorded(store, channel, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def version_floor(state: SyncState, store: Path, channel: str) -> int:
    """The lowest publish seq this device may install from ``channel``: the highest it
    installed from there, by its state or, should the state be lost, by the
    current model's own record (a model installed before the state kept floors)."""
    return max(state.floors.get(channel, 0), recorded_number(store, channel, "seq"))


def choose(manifest: Manifest, store: Path, state: SyncState, options: SyncOptions) -> tuple[ModelEntry | None, str]:
    """The entry to install, or None and why the current model stays."""
    target, installed = manifest.newest(), current_version(store)
    if target is None:
        return None, f"the manifest lists no models; keeping {installed or 'the shipped model'}"
    if target.version == installed:
        return None, f"up to date: model {installed}"
    if target.version in state.rolled_back and not options.force:
        return None, (f"keeping model {installed}: {target.version} was rolled back on this device "
                      "(--force installs it)")
    floor = version_floor(state, store, manifest.channel)
    if target.seq < floor and not options.allow_downgrade:
        keeping = f"model {installed}" if installed else "the shipped model"
        return None, (f"warning: keeping {keeping}: the manifest's newest model "
                      f"{target.version} (#{target.seq}) is older than #{floor} this device installed from "
                      f"{manifest.channel} (--allow-downgrade installs it)")
    rejected = state.rejected.get(content_key(target))
    if rejected and not options.force:
        raise SyncError(f"refusing model {target.version} again without downloading it: {rejected} "
                        "(--force tries it again)")
    if facecue_version_tuple(target.min_facecue) > facecue_version_tuple(__version__):
        raise SyncError(f"model {target.version} needs facecue >= {target.min_facecue}, this is "
                        f"{__version__}: update facecue first")
    problem = servable_problem(target.labels, target.input)
    if problem:
        raise SyncError(f"refusing model {target.version}: {problem}")
    return target, ""


def install_entry(client, location: S3Location, entry: ModelEntry, manifest: Manifest, store: Path,
                  deadline: Deadline, options: SyncOptions) -> None:
    """Download, verify and swap in one entry of ``manifest``; nothing changes unless all
    passed. The model's ``source.json`` records the entry and which manifest listed it,
    for when the state is lost; the store checks the installed bytes against it."""
    need = entry.size + entry.metadata_size + FREE_SPACE_RESERVE
    free = shutil.disk_usage(store).free
    if free < need:
        raise SyncError(f"not enough space in {store} for model {entry.version}: "
                        f"{free / 1e6:.1f} MB free, {need / 1e6:.1f} MB needed")
    with staging_dir(store) as stage:
        download(client, location, entry.metadata_key, stage / METADATA_FILE, entry.metadata_size,
                 entry.metadata_sha256, deadline, Progress(False, "", 0))
        download(client, location, entry.model_key, stage / MODEL_FILE, entry.size, entry.sha256, deadline,
                 Progress(options.progress, f"model {entry.version}", entry.size))
        try:
            info = verify_model_isolated(stage / MODEL_FILE)
        except ModelError as exc:
            raise ModelRejected(entry, str(exc)) from None
        if (info.version, info.labels, info.meta.get("input")) != (entry.version, entry.labels, entry.input):
            raise ModelRejected(entry, "its metadata disagrees with the signed manifest")
        source = {**entry.to_json(), "source": location.url(), "manifest_serial": manifest.serial,
                  "manifest_sha256": manifest.digest, "installed": utc_now()}
        install_version(store, stage, entry.version, source)


def check_serial(manifest: Manifest, state: SyncState, store: Path, options: SyncOptions) -> None:
    """Refuse a manifest older than one this device already accepted from its channel,
    as TUF does with its metadata versions: within its expiry, an old signed manifest
    (replayed by the store or a man in the middle) would otherwise hold the device on
    its current model. The same serial again must be the same manifest (its signed
    body's sha256): a publisher who changes a manifest raises its serial, so the same
    number with other models is a forgery or a bug, and would downgrade the device
    past its floor. Remembers the newest; --allow-downgrade (a channel recreated, its
    numbering restarted) resets it. With no record in the state (it was lost), the
    current model's own record counts."""
    channel = manifest.channel
    if channel in state.serials:
        had, body = state.serials[channel], state.bodies.get(channel)
    else:
        had = recorded_number(store, channel, "manifest_serial")
        body = recorded(store, channel, "manifest_sha256") if had else None
    if not options.allow_downgrade:
        if manifest.serial < had:
            raise SyncError(f"manifest #{manifest.serial} is older than #{had}, which this device already had "
                            f"from {channel}: a replayed or rolled-back manifest (--allow-downgrade accepts it)")
        if manifest.serial == had and body and body != manifest.digest:
            raise SyncError(f"manifest #{manifest.serial} differs from the #{had} this device already had from "
                            f"{channel}: a changed manifest must have a new serial (--allow-downgrade accepts it)")
    if options.allow_downgrade or manifest.serial >= had:
        state.serials[channel], state.bodies[channel] = manifest.serial, manifest.digest
    state.clock_floor = max(state.clock_floor, manifest.signed_at)


def sync_once(settings: SyncConfig, store: Path, state: SyncState, options: SyncOptions) -> str:
    """One sync; returns the line to print, raises SyncError. Updates ``state``'s ETag
    and, once a manifest verified, its serial (kept even if the install then fails)."""
    if not settings.source:
        raise SyncError("no source: set source = \"s3://BUCKET/PREFIX\" under [sync] in the config or pass --source")
    location = S3Location.parse(settings.source)
    public_key = load_public_key(Path(settings.public_key))
    try:
        client = make_s3_client(s3_options(settings))
    except ValueError as exc:  # botocore rejects a malformed endpoint_url here
        raise SyncError(f"cannot use endpoint_url {settings.endpoint_url!r}: {exc}") from None
    generation = model_generation(store) or ""
    # The ETag stands for "this manifest was already acted on": not when the store
    # changed since, nor when a flag would now decide differently, nor once that
    # manifest expired (a store answering 304 for ever must not freeze the device).
    reuse = state.generation == generation and not (options.force or options.allow_downgrade) \
        and trusted_now(state) < state.expires
    etag = state.etag if reuse else None
    deadline = Deadline(settings.download_deadline)
    fetched = fetch_manifest(client, location, public_key, etag, deadline, trusted_now(state))
    if fetched is None:
        installed = current_version(store)
        return f"up to date: manifest unchanged, {f'model {installed}' if installed else 'the shipped model'}"
    manifest, new_etag = fetched
    check_serial(manifest, state, store, options)
    entry, reason = choose(manifest, store, state, options)
    if entry is None:
        message = reason
    else:
        before = current_version(store) or "the shipped model"
        install(client, location, entry, manifest, store, state, deadline, options)
        signal_daemon()
        message = f"installed model {entry.version} (was {before})"
    state.etag, state.generation, state.expires = new_etag, model_generation(store) or "", manifest.expires_at
    return message


def install(client, location: S3Location, entry: ModelEntry, manifest: Manifest, store: Path,
            state: SyncState, deadline: Deadline, options: SyncOptions) -> None:
    """:func:`install_entry`, and what the state learns from it: a rejected model is
    remembered; an installed one raises the channel's floor to its seq (or, with
    --allow-downgrade, lowers it there: the operator said so) and is no longer
    rolled back."""
    try:
        install_entry(client, location, entry, manifest, store, deadline, options)
    except ModelRejected as exc:
        state.rejected[exc.content] = exc.problem
        state.rejected = dict(list(state.rejected.items())[-REMEMBERED:])
        raise
    state.rejected.pop(content_key(entry), None)
    state.floors[location.url()] = entry.seq
    state.rolled_back = [v for v in state.rolled_back if v != entry.version]


def run_sync(settings: SyncConfig, store: Path, options: SyncOptions) -> int:
    state_file = Path(settings.state_dir) / STATE_FILE
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(store):
        state = SyncState.load(state_file)
        now = time.time()
        wait = backoff_remaining(state, now, settings.backoff_max)
        if wait and not options.force:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.next_try))
            print(f"facecue sync: skipped: {state.failures} failed runs in a row, next try after {when} "
                  f"(last: {state.last_error}; --force tries now)")
            return 0
        state.save(state_file)  # proves it can be saved before anything in the store changes
        try:
            prune(store)  # refuses a store with links in it before deleting anything
            message = sync_once(settings, store, state, options)
        except FAILURES as exc:  # remembered for the backoff, then said by main's runner (exit 1)
            state.failures += 1
            state.next_try = now + backoff_delay(state.failures, settings.backoff_base, settings.backoff_max)
            state.last_error = one_line(exc)
            state.save(state_file)
            raise
        state.failures, state.next_try, state.last_error = 0, 0.0, ""
        state.save(state_file)
    print(f"facecue sync: {message}")
    return 0


def run_rollback(settings: SyncConfig, store: Path) -> int:
    state_file = Path(settings.state_dir) / STATE_FILE
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(store):
        state = SyncState.load(state_file)
        state.save(state_file)  # as in run_sync: the rollback is remembered, or it does not happen
        prune(store)  # a swap a cut left half done is finished first
        was, now = rollback(store)
        kept = [v for v in state.rolled_back if v not in (was, now)]
        state.rolled_back = (kept + [was] if was else kept)[-REMEMBERED:]
        state.save(state_file)
    signal_daemon()
    print(f"facecue sync: rolled back from model {was or 'none'} to {now}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="facecue sync", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, metavar="FILE",
                   help=f"the config whose [sync] and [model] store to use (default {DEFAULT_CONFIG_PATH})")
    p.add_argument("--rollback", action="store_true", help="go back to the previous model")
    p.add_argument("--force", action="store_true",
                   help="ignore backoff, the cached ETag, earlier rollbacks and models rejected here")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="install the manifest's newest model even if older than one installed from this source, "
                        "and accept a manifest older than one seen from it")
    p.add_argument("--source", metavar="s3://BUCKET/PREFIX",
                   help="where models are published (overrides [sync] source)")
    p.add_argument("--endpoint-url", help="S3 endpoint, for a non-AWS or local S3 server")
    p.add_argument("--region", help="AWS region of the bucket")
    p.add_argument("--anonymous", action="store_true", default=None, help="unsigned requests (public bucket)")
    p.add_argument("--public-key", help="the Ed25519 public key manifests must be signed with")
    p.add_argument("--model-dir", help="model store to install into (default: the config's [model] store)")
    p.add_argument("--state-dir", help="where sync keeps its state (ETag, backoff, floors, rollbacks)")
    p.add_argument("--timeout", type=float, help="connect and read timeout, seconds")
    return p


def resolve_settings(args: argparse.Namespace) -> tuple[SyncConfig, Path]:
    """The config's [sync] settings and [model] store, with the flags over them."""
    config = with_overrides(load(args.config), {
        "sync": {"source": args.source, "endpoint_url": args.endpoint_url, "region": args.region,
                 "anonymous": args.anonymous, "public_key": args.public_key, "state_dir": args.state_dir,
                 "connect_timeout": args.timeout, "read_timeout": args.timeout},
        "model": {"store": args.model_dir}})
    return config.sync, Path(config.model.store)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _sync(args), lambda: (ConfigError,), lambda: FAILURES)


def _sync(args: argparse.Namespace) -> int:
    """``facecue sync`` once its options are parsed: a rollback, nothing (not set up) or a sync."""
    settings, store = resolve_settings(args)
    if args.rollback:
        return run_rollback(settings, store)
    if not settings.source:
        print(f"facecue sync: not set up: no source in [sync] of {args.config} (see tools/cloud/README.md); "
              "nothing to do")
        return 0
    return run_sync(settings, store, SyncOptions(args.force, args.allow_downgrade, sys.stderr.isatty()))


if __name__ == "__main__":
    sys.exit(main())
