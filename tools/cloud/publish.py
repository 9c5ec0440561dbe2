"""facecue-model: make the signing key pair, publish a model to S3, refresh the manifest.

    facecue-model keygen --private ~/facecue-signing.pem --public facecue-signing.pub
    facecue-model publish models/facecue_vgg_elu_int8.tflite --to s3://BUCKET/PREFIX \\
        --key ~/facecue-signing.pem [--endpoint-url http://127.0.0.1:9000] [--expires-in 30]
    facecue-model refresh --to s3://BUCKET/PREFIX --key ~/facecue-signing.pem [--expires-in 30]

Publishing checks the model exactly as a device will (sha256, labels, input
spec, loads and answers the smoke faces in a child process), uploads the
model and its JSON under a new ``models/<version>/`` that may never be
overwritten, and only then replaces the signed manifest, conditionally on it
not having changed since it was read. The manifest is signed for that
``s3://BUCKET/PREFIX`` and expires after ``--expires-in`` days, and its
``serial`` is one more than the manifest it replaces (devices refuse a lower
one: a replay); ``refresh`` re-signs it with a new expiry, the next serial
and the same models, and must run (from cron or
CI) more often than that, or devices stop updating. Only model files and
their metadata are uploaded: never images, faces or audio.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from device import __version__
from device.argparser import Parser, bounded
from device.classify import metadata_path
from device.manifest import (
    MANIFEST_KEY,
    MAX_EXPIRES_DAYS,
    Manifest,
    ManifestError,
    ModelEntry,
    S3Location,
    S3Options,
    facecue_version_tuple,
    make_s3_client,
    model_keys,
    open_manifest,
    s3_error_message,
    utc_now,
)
from device.model_store import check_version_name, verify_model_isolated
from tools.cloud.signing import DEFAULT_EXPIRES_DAYS, expiry_after, generate_keypair, load_private_key, sign_manifest


def _status(exc) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def read_published(client, location: S3Location, public_key) -> tuple[Manifest, str | None]:
    """The manifest now in the bucket and its ETag; an empty one (ETag None) if there is none.

    It must verify with the publisher's own key and name this channel: a
    manifest someone else wrote, or one copied from another prefix, is never
    extended and re-signed. An expired one is: that is what refresh is for.
    """
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST_KEY))
    except ClientError as exc:
        if _status(exc) == 404:
            return Manifest((), "", location.url(), ""), None
        raise
    raw = response["Body"].read()
    try:
        return open_manifest(raw, public_key, location.url()), response["ETag"]
    except ManifestError as exc:
        raise ManifestError(f"the manifest at {location.url(MANIFEST_KEY)} cannot be extended: {exc}") from None


def put_manifest(client, location: S3Location, manifest: Manifest, private_key, etag: str | None) -> None:
    """Replace the manifest with ``manifest`` signed, only if it is still the one read
    (ETag ``etag``, or none at all): two publishers never lose each other's entry."""
    from botocore.exceptions import ClientError

    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        client.put_object(Bucket=location.bucket, Key=location.key(MANIFEST_KEY),
                          Body=sign_manifest(manifest, private_key), ContentType="application/json",
                          CacheControl="no-cache", **condition)
    except ClientError as exc:
        if _status(exc) in (409, 412):
            raise ManifestError("the manifest changed while publishing (another publisher?); "
                                "run the command again") from None
        raise


def upload_immutable(client, location: S3Location, key: str, data: bytes, content_type: str) -> None:
    """Write ``key`` once. An object already there with the same sha256 (a
    publish that died before the manifest) is accepted; different content is not."""
    from botocore.exceptions import ClientError

    digest = hashlib.sha256(data).hexdigest()
    full = location.key(key)
    try:
        client.put_object(Bucket=location.bucket, Key=full, Body=data, ContentType=content_type,
                          Metadata={"sha256": digest}, IfNoneMatch="*")
        return
    except ClientError as exc:
        if _status(exc) not in (409, 412):
            raise
    existing = client.head_object(Bucket=location.bucket, Key=full).get("Metadata", {}).get("sha256")
    if existing != digest:
        raise ManifestError(f"{location.url(key)} already exists with other content; versions are immutable, "
                            "export the model with a new --version")


def publish_model(client, location: S3Location, model_path: Path, private_key,
                  min_facecue: str = __version__, expires_in: float = DEFAULT_EXPIRES_DAYS) -> ModelEntry:
    """Check, upload and list ``model_path`` (with its ``.json``) in the manifest,
    signed for ``location`` and valid for ``expires_in`` days."""
    model_path = Path(model_path)
    expires = expiry_after(expires_in, time.time())
    facecue_version_tuple(min_facecue)
    info = verify_model_isolated(model_path)
    version = check_version_name(info.version)
    manifest, etag = read_published(client, location, private_key.public_key())
    if manifest.find(version):
        raise ManifestError(f"model {version} is already published at {location.url()}; versions are "
                            "immutable, export the model with a new --version")
    model_bytes, meta_bytes = model_path.read_bytes(), metadata_path(model_path).read_bytes()
    model_key, metadata_key = model_keys(version)
    upload_immutable(client, location, model_key, model_bytes, "application/octet-stream")
    upload_immutable(client, location, metadata_key, meta_bytes, "application/json")
    entry = ModelEntry(
        version=version, seq=max((m.seq for m in manifest.models), default=0) + 1,
        model_key=model_key, metadata_key=metadata_key,
        size=len(model_bytes), sha256=hashlib.sha256(model_bytes).hexdigest(),
        metadata_size=len(meta_bytes), metadata_sha256=hashlib.sha256(meta_bytes).hexdigest(),
        labels=info.labels, input=info.meta["input"], min_facecue=min_facecue,
        created=str(info.meta.get("created") or utc_now()))
    put_manifest(client, location, Manifest(manifest.models + (entry,), utc_now(), location.url(), expires,
                                            manifest.serial + 1), private_key, etag)
    return entry


def refresh_manifest(client, location: S3Location, private_key, expires_in: float = DEFAULT_EXPIRES_DAYS) -> Manifest:
    """Re-sign the published manifest, same models, with a new expiry and the next
    serial: what keeps devices updating when no model was published for a while."""
    expires = expiry_after(expires_in, time.time())
    manifest, etag = read_published(client, location, private_key.public_key())
    if etag is None:
        raise ManifestError(f"nothing to refresh: no manifest at {location.url(MANIFEST_KEY)} (publish a model first)")
    refreshed = Manifest(manifest.models, utc_now(), location.url(), expires, manifest.serial + 1)
    put_manifest(client, location, refreshed, private_key, etag)
    return refreshed


def cmd_keygen(args: argparse.Namespace) -> int:
    kid = generate_keypair(args.private, args.public, overwrite=args.force)
    print(f"key {kid}: private {args.private} (keep it off devices), public {args.public} "
          "(install on each device as the sync public_key)")
    return 0


def _client(args: argparse.Namespace):
    return make_s3_client(S3Options(endpoint_url=args.endpoint_url or "", region=args.region or ""))


def cmd_publish(args: argparse.Namespace) -> int:
    location = S3Location.parse(args.to)
    key = load_private_key(args.key)
    entry = publish_model(_client(args), location, args.model, key, args.min_facecue, args.expires_in)
    print(f"published model {entry.version} (#{entry.seq}, {entry.size} bytes, sha256 {entry.sha256[:12]}) "
          f"to {location.url()}, manifest valid for {args.expires_in:g} days")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    location = S3Location.parse(args.to)
    manifest = refresh_manifest(_client(args), location, load_private_key(args.key), args.expires_in)
    print(f"refreshed the manifest at {location.url()} ({len(manifest.models)} models): "
          f"manifest #{manifest.serial}, valid until {manifest.expires}")
    return 0


def _store_options(parser: argparse.ArgumentParser) -> None:
    """Where to publish, with which key and for how long: shared by publish and refresh."""
    parser.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX",
                        help="the channel; the manifest is signed for exactly this address")
    parser.add_argument("--key", type=Path, required=True, help="the private signing key")
    parser.add_argument("--endpoint-url", help="an S3-compatible store instead of AWS")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument("--expires-in", type=bounded(float, above=0, at_most=MAX_EXPIRES_DAYS),
                        default=DEFAULT_EXPIRES_DAYS, metavar="DAYS",
                        help=f"devices refuse the manifest after this many days (default {DEFAULT_EXPIRES_DAYS:g}); "
                             "run refresh before then")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="facecue-model", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--private", type=Path, required=True, help="private key file to write (0600)")
    keygen.add_argument("--public", type=Path, required=True, help="public key file to write (for devices)")
    keygen.add_argument("--force", action="store_true", help="replace existing key files")
    keygen.set_defaults(func=cmd_keygen, to="")  # keygen touches no store
    publish = sub.add_parser("publish", help="upload a model and list it in the signed manifest")
    publish.add_argument("model", type=Path, help="a .tflite with its .json beside it")
    _store_options(publish)
    publish.add_argument("--min-facecue", default=__version__,
                         help=f"oldest facecue that may install it (default {__version__})")
    publish.set_defaults(func=cmd_publish)
    refresh = sub.add_parser("refresh", help="re-sign the manifest with a new expiry, same models")
    _store_options(refresh)
    refresh.set_defaults(func=cmd_refresh)
    return p


class S3Error(RuntimeError):
    """An S3 or SageMaker request that failed (exit 1), named for what it was about."""


@contextlib.contextmanager
def s3_named(what: str) -> Iterator[None]:
    """S3's failures inside as one :class:`S3Error` naming ``what`` (an s3:// address or
    request), which facecue-model's one line of botocore's exception could not say;
    every other failure goes on to its runner as raised. Caught before anything else
    sees them: some botocore timeouts are OSErrors too."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise S3Error(s3_error_message(exc, what)) from exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with s3_named(args.to):
        return args.func(args)
