"""facecue-model: make the signing key pair, publish a model to S3.

    facecue-model keygen --private ~/facecue-signing.pem --public facecue-signing.pub
    facecue-model publish models/facecue_vgg_elu_int8.tflite --to s3://BUCKET/PREFIX \\
        --key ~/facecue-signing.pem [--endpoint-url http://127.0.0.1:9000]

Publishing checks the model exactly as a device will (sha256, labels, input
spec, loads and answers the smoke faces), uploads the model and its JSON
under a new ``models/<version>/`` that may never be overwritten, and only
then replaces the signed manifest, conditionally on it not having changed
since it was read. Only model files and their metadata are uploaded: never
images, faces or audio.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from device import __version__
from device.classify import ModelError, metadata_path
from device.model_store import StoreError, check_version_name, verify_model
from tools.manifest import (
    MANIFEST_KEY,
    Manifest,
    ManifestError,
    ModelEntry,
    S3Location,
    S3Options,
    facecue_version_tuple,
    generate_keypair,
    load_private_key,
    make_s3_client,
    model_keys,
    open_manifest,
    run_cli,
    sign_manifest,
    utc_now,
)


def _status(exc) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def read_published(client, location: S3Location, public_key) -> tuple[Manifest, str | None]:
    """The manifest now in the bucket and its ETag; an empty one (ETag None) if there is none.

    It must verify with the publisher's own key: a manifest someone else
    wrote is never extended and re-signed.
    """
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST_KEY))
    except ClientError as exc:
        if _status(exc) == 404:
            return Manifest((), ""), None
        raise
    raw = response["Body"].read()
    try:
        return open_manifest(raw, public_key), response["ETag"]
    except ManifestError as exc:
        raise ManifestError(f"the manifest at {location.url(MANIFEST_KEY)} cannot be extended: {exc}") from None


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
                  min_facecue: str = __version__) -> ModelEntry:
    """Check, upload and list ``model_path`` (with its ``.json``) in the signed manifest."""
    from botocore.exceptions import ClientError

    model_path = Path(model_path)
    info = verify_model(model_path)
    version = check_version_name(info.version)
    facecue_version_tuple(min_facecue)
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
    updated = Manifest(manifest.models + (entry,), utc_now())
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        client.put_object(Bucket=location.bucket, Key=location.key(MANIFEST_KEY),
                          Body=sign_manifest(updated, private_key), ContentType="application/json",
                          CacheControl="no-cache", **condition)
    except ClientError as exc:
        if _status(exc) in (409, 412):
            raise ManifestError("the manifest changed while publishing (another publisher?); "
                                "run publish again") from None
        raise
    return entry


def cmd_keygen(args: argparse.Namespace) -> int:
    kid = generate_keypair(args.private, args.public, overwrite=args.force)
    print(f"key {kid}: private {args.private} (keep it off devices), public {args.public} "
          "(install on each device as the sync public_key)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    location = S3Location.parse(args.to)
    key = load_private_key(args.key)
    client = make_s3_client(S3Options(endpoint_url=args.endpoint_url or "", region=args.region or ""))
    entry = publish_model(client, location, args.model, key, args.min_facecue)
    print(f"published model {entry.version} (#{entry.seq}, {entry.size} bytes, sha256 {entry.sha256[:12]}) "
          f"to {location.url()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facecue-model", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--private", type=Path, required=True, help="private key file to write (0600)")
    keygen.add_argument("--public", type=Path, required=True, help="public key file to write (for devices)")
    keygen.add_argument("--force", action="store_true", help="replace existing key files")
    keygen.set_defaults(func=cmd_keygen, to="")  # keygen touches no store
    publish = sub.add_parser("publish", help="upload a model and list it in the signed manifest")
    publish.add_argument("model", type=Path, help="a .tflite with its .json beside it")
    publish.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX")
    publish.add_argument("--key", type=Path, required=True, help="the private signing key")
    publish.add_argument("--endpoint-url", help="an S3-compatible store instead of AWS")
    publish.add_argument("--region")
    publish.add_argument("--min-facecue", default=__version__,
                         help=f"oldest facecue that may install it (default {__version__})")
    publish.set_defaults(func=cmd_publish)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("facecue-model", lambda: args.func(args), args.to,
                   (ManifestError, ModelError, StoreError))


if __name__ == "__main__":
    sys.exit(main())
