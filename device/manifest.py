"""The contract between ``facecue-model publish`` and ``facecue sync``: where
things live in the bucket, what the signed manifest says, and how both sides
talk to S3.

Bucket layout under ``s3://BUCKET/PREFIX/``::

    manifest.json                    the only object that ever changes
    models/<version>/model.tflite    immutable once written
    models/<version>/model.json      its metadata, immutable too

``manifest.json`` is ``{"format", "key_id", "signature", "body"}``; the
Ed25519 signature covers ``format`` and the canonical JSON of ``body``
(sorted keys, no spaces), which lists every model with its size, sha256,
labels, input spec, minimum facecue version and a publish sequence number.
The device holds only the public key, so whoever can write to the bucket
still cannot make a device install a model the key holder did not sign; this
module is the device's side (read and verify), and the signing side, with the
private key, lives with the publisher in ``tools/cloud/signing.py``.

The body also names its ``channel`` (the ``s3://BUCKET/PREFIX`` it was
published to) and when it ``expires``, as TUF's signed metadata does: a
manifest copied to another prefix, or replayed after its expiry, is refused
although its signature verifies. And it carries a ``serial`` that every
publish and refresh raises by one, as TUF's metadata versions: a device
remembers the highest it accepted from a channel and refuses a lower one, so
an older manifest replayed within its expiry cannot hold it on an old model.
A ``facecue-manifest/2`` body without ``serial`` (signed before it existed)
counts as #0: accepted until the device has seen a counted one, refused after,
so the format did not change and nothing needs republishing.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from device.classify import MAX_MODEL_BYTES
from device.config import S3_ADDRESS
from device.model_store import VERSION_PATTERN
from device.reading import Refused, loads_json, read_regular

FORMAT = "facecue-manifest/2"  # /1 named no channel and never expired
OLD_FORMATS = ("facecue-manifest/1",)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_EXPIRES_DAYS = 365.0  # the longest an old manifest can be replayed to a device
# This code was written after this instant: a device clock before it (a Pi without a
# real-time clock that booted at 1970) is wrong, and expiry is judged from here at least.
EARLIEST_CLOCK = "2026-12-01T00:00:00Z"
MANIFEST_KEY = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20
MAX_KEY_BYTES = 64 << 10  # a PEM Ed25519 key is about 120 bytes
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
FACECUE_VERSION_PATTERN = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class ManifestError(ValueError):
    """A manifest or key that cannot be trusted or used; one line for the log."""


def model_keys(version: str) -> tuple[str, str]:
    """(model key, metadata key) of a version, relative to the prefix."""
    return f"models/{version}/model.tflite", f"models/{version}/model.json"


def facecue_version_tuple(text: str) -> tuple[int, int, int]:
    """"0.1.0" -> (0, 1, 0); only the leading numbers count ("0.2.0rc1" -> (0, 2, 0))."""
    match = FACECUE_VERSION_PATTERN.match(str(text))
    if not match:
        raise ManifestError(f"{text!r} is not a facecue version like 0.1.0")
    return tuple(int(g or 0) for g in match.groups())  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelEntry:
    """One published model as the manifest lists it."""

    version: str
    seq: int  # publish order; decides "newer", so no device clock is ever trusted
    model_key: str
    metadata_key: str
    size: int
    sha256: str
    metadata_size: int
    metadata_sha256: str
    labels: tuple[str, ...]
    input: dict[str, Any]
    min_facecue: str
    created: str

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d


@dataclass(frozen=True)
class Manifest:
    """The signed body: the models of one channel, valid until ``expires``."""

    models: tuple[ModelEntry, ...]
    updated: str
    channel: str  # s3://BUCKET/PREFIX it was published to; a copy elsewhere is refused
    expires: str  # UTC, TIME_FORMAT; afterwards devices refuse it until it is refreshed
    serial: int = 0  # raised by every publish and refresh; 0: signed before serials existed
    digest: str = field(default="", compare=False)  # sha256 of the signed bytes, set by open_manifest

    def newest(self) -> ModelEntry | None:
        return max(self.models, key=lambda m: m.seq, default=None)

    def find(self, version: str) -> ModelEntry | None:
        return next((m for m in self.models if m.version == version), None)

    def body(self) -> dict[str, Any]:
        return {"updated": self.updated, "channel": self.channel, "expires": self.expires,
                "serial": self.serial, "models": [m.to_json() for m in self.models]}

    @property
    def expires_at(self) -> float:
        """``expires`` in seconds since the epoch."""
        return parse_time(self.expires)

    @property
    def signed_at(self) -> float:
        """``updated`` (when it was signed) in seconds since the epoch."""
        return parse_time(self.updated)

    def ensure_fresh(self, now: float) -> None:
        """Refuse a manifest past its expiry: a store that keeps serving (or answering
        304 for) an old manifest must not hold devices on it for ever. Nor may it be
        valid for longer than a publisher can sign it for (an expiry in 9999 would make
        a replay good for ever). ``now`` is the device's trusted time (see sync)."""
        if self.expires_at - self.signed_at > MAX_EXPIRES_DAYS * 86400:
            raise ManifestError(f"manifest signed at {self.updated} expires at {self.expires}, more than "
                                f"{MAX_EXPIRES_DAYS:g} days later: no publisher signs for that long")
        if now >= self.expires_at:
            raise ManifestError(f"manifest expired at {self.expires} (this device's clock says "
                                f"{format_time(now)}): the publisher must refresh it (facecue-model refresh)")


def format_time(seconds: float) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(seconds))


def parse_time(text: str) -> float:
    """TIME_FORMAT -> seconds since the epoch; ManifestError for anything else."""
    try:
        return float(calendar.timegm(time.strptime(text, TIME_FORMAT)))
    except (TypeError, ValueError):
        raise ManifestError(f"manifest time {text!r} is not like 2026-01-31T12:00:00Z") from None


def _field(entry: dict, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = entry.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(f"manifest {where} lacks a valid {name!r}")
    return value


def _relative_key(key: str, where: str) -> str:
    if key.startswith("/") or ".." in key.split("/") or not key:
        raise ManifestError(f"manifest {where} has an unsafe key {key!r}")
    return key


def parse_entry(entry: Any, where: str) -> ModelEntry:
    """Check one ``models[]`` item field by field, naming the first bad one."""
    if not isinstance(entry, dict):
        raise ManifestError(f"manifest {where} is not an object")
    version = _field(entry, "version", str, where)
    if not VERSION_PATTERN.fullmatch(version):
        raise ManifestError(f"manifest {where} has an invalid version {version!r}")
    where = f"model {version}"
    sizes = {name: _field(entry, name, int, where) for name in ("seq", "size", "metadata_size")}
    if not (0 < sizes["size"] <= MAX_MODEL_BYTES and 0 < sizes["metadata_size"] <= MAX_MANIFEST_BYTES):
        raise ManifestError(f"manifest {where} has an implausible size")
    hashes = {name: _field(entry, name, str, where) for name in ("sha256", "metadata_sha256")}
    for name, value in hashes.items():
        if not SHA256_PATTERN.fullmatch(value):
            raise ManifestError(f"manifest {where} has an invalid {name}")
    labels = _field(entry, "labels", list, where)
    if not all(isinstance(label, str) for label in labels):
        raise ManifestError(f"manifest {where} has non-text labels")
    min_facecue = _field(entry, "min_facecue", str, where)
    facecue_version_tuple(min_facecue)
    return ModelEntry(
        version=version, seq=sizes["seq"],
        model_key=_relative_key(_field(entry, "model_key", str, where), where),
        metadata_key=_relative_key(_field(entry, "metadata_key", str, where), where),
        size=sizes["size"], sha256=hashes["sha256"],
        metadata_size=sizes["metadata_size"], metadata_sha256=hashes["metadata_sha256"],
        labels=tuple(labels), input=_field(entry, "input", dict, where),
        min_facecue=min_facecue, created=_field(entry, "created", str, where))


def parse_body(body: Any) -> Manifest:
    if not isinstance(body, dict) or not isinstance(body.get("models"), list):
        raise ManifestError("manifest body lacks a 'models' list")
    models = tuple(parse_entry(m, f"models[{i}]") for i, m in enumerate(body["models"]))
    for attr in ("version", "seq"):
        values = [getattr(m, attr) for m in models]
        if len(set(values)) != len(values):
            raise ManifestError(f"manifest lists a model {attr} twice")
    channel, expires = _field(body, "channel", str, "body"), _field(body, "expires", str, "body")
    parse_time(expires)
    serial = body.get("serial", 0)  # absent: signed before serials existed
    if type(serial) is not int or serial < 0:
        raise ManifestError(f"manifest has an invalid serial {serial!r}")
    return Manifest(models, str(body.get("updated", "")), channel, expires, serial)


# --- signatures -------------------------------------------------------------------------


def signed_bytes(body: dict[str, Any]) -> bytes:
    """Exactly what the signature covers: the format tag, then canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return FORMAT.encode() + b"\n" + canonical.encode()


def key_id(public_key) -> str:
    """Short fingerprint of a public key, so a key mix-up reads as one, not as tampering."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def open_manifest(raw: bytes, public_key, channel: str) -> Manifest:
    """Parse and verify a downloaded manifest read from ``channel`` (an
    :meth:`S3Location.url`); ManifestError says what is wrong. Its expiry is the
    caller's to check: a publisher refreshes an expired manifest, a device refuses it."""
    from cryptography.exceptions import InvalidSignature

    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(raw)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        doc = loads_json(raw)  # "[[[[..." fits in the size limit and would overflow the parser
    except ValueError as exc:  # Refused (too deep) and UnicodeDecodeError too
        raise ManifestError(f"manifest is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        if found in OLD_FORMATS:
            raise ManifestError(f"manifest format is {found!r}, which names no channel and never expires: "
                                "republish with this facecue's facecue-model (see tools/cloud/README.md, upgrading)")
        raise ManifestError(f"manifest format is {found!r}, expected {FORMAT!r}")
    if not doc.get("signature"):
        raise ManifestError("manifest is not signed")
    if "body" not in doc:
        raise ManifestError("manifest has no body")
    trusted = key_id(public_key)
    if doc.get("key_id") != trusted:
        raise ManifestError(f"manifest is signed with key {doc.get('key_id')!r}, this device trusts {trusted}")
    try:
        signature = base64.b64decode(str(doc["signature"]), validate=True)
        public_key.verify(signature, signed_bytes(doc["body"]))
    except (InvalidSignature, binascii.Error, TypeError, ValueError, RecursionError):
        raise ManifestError("manifest signature does not verify: it was changed after signing") from None
    manifest = replace(parse_body(doc["body"]), digest=hashlib.sha256(signed_bytes(doc["body"])).hexdigest())
    if manifest.channel != channel:
        raise ManifestError(f"manifest was signed for {manifest.channel}, not {channel}: "
                            "it was copied from another channel")
    return manifest


# --- keys -------------------------------------------------------------------------------


# What to do about a missing public key: the device is given the publisher's by hand,
# so "not found" alone leaves a helper guessing which file and from where.
PUBLIC_KEY_HINT = "copy the publisher's public key there, or name it in [sync] public_key"


def read_key(path: Path, kind: str, hint: str) -> bytes:
    """The bytes of a ``kind`` ("public" or "private") key file, or a ManifestError in
    one line saying, for a missing one, ``hint``: where to get it. Shared with the
    publisher's private key (tools/cloud/signing.py), so both read keys alike."""
    try:
        return read_regular(Path(path), MAX_KEY_BYTES)
    except Refused as exc:
        raise ManifestError(f"{kind} key {exc}") from None
    except FileNotFoundError:
        raise ManifestError(f"{kind} key {path} is missing ({hint})") from None
    except OSError as exc:
        raise ManifestError(f"{kind} key {path} unreadable: {exc.strerror}") from None


def load_public_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = read_key(path, "public", PUBLIC_KEY_HINT)  # its ManifestError is a ValueError too
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"public key {path} is not a PEM key ({str(exc).splitlines()[0]})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError(f"public key {path} is not an Ed25519 key")
    return key


# --- S3 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: where one fleet's models live."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "S3Location":
        match = S3_ADDRESS.fullmatch(url or "")
        if not match:
            raise ManifestError(f"{url!r} is not an s3://BUCKET/PREFIX address")
        return cls(match.group(1), (match.group(2) or "").strip("/"))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def url(self, relative: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(relative)}" if relative else f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class S3Options:
    """How to reach the store; the timeouts bound every request so an endpoint
    that accepts and never answers costs at most attempts x (connect + read)."""

    endpoint_url: str = ""
    region: str = ""
    anonymous: bool = False  # a public-read bucket: the signature, not the credentials, protects devices
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_attempts: int = 3


def make_s3_client(options: S3Options):
    """A boto3 S3 client with the standard credential chain and bounded retries."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(connect_timeout=options.connect_timeout, read_timeout=options.read_timeout,
                    retries={"max_attempts": options.max_attempts, "mode": "standard"},
                    signature_version=UNSIGNED if options.anonymous else None,
                    s3={"addressing_style": "path"} if options.endpoint_url else None)
    session = boto3.session.Session()
    region = options.region or session.region_name or "us-east-1"
    return session.client("s3", endpoint_url=options.endpoint_url or None, region_name=region, config=config)


def s3_error_message(exc: Exception, what: str) -> str:
    """One line saying what went wrong with ``what`` (an s3:// address) and what to check."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        IncompleteReadError,
        NoCredentialsError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("AccessDenied", "AccessDeniedException", "403", "AllAccessDisabled"):
            return f"access denied to {what}: check the credentials and that the policy allows s3:GetObject there"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
            return f"credentials rejected for {what} ({code})"
        if code == "RequestTimeTooSkewed":
            return f"the clock is off by more than 15 minutes, so S3 refuses requests ({what}); check time sync"
        if code in ("NoSuchKey", "404"):
            return f"{what} does not exist"
        if code == "NoSuchBucket":
            return f"bucket of {what} does not exist"
        return f"{code or status} on {what}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    if isinstance(exc, NoCredentialsError):
        return (f"no AWS credentials for {what}: set them (see tools/cloud/README.md) "
                "or use anonymous access for a public bucket")
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
        return f"timed out talking to the store for {what} (offline or endpoint not answering)"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the store for {what} (offline?): {exc}"
    if isinstance(exc, (IncompleteReadError, ResponseStreamingError)):
        return f"download of {what} was cut off"
    return f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def utc_now() -> str:
    return format_time(time.time())
