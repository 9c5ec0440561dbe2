"""The signed manifest and the key files: what verifies, what does not, and why."""
from __future__ import annotations

import base64
import json
import os
import stat

import pytest

pytest.importorskip("cryptography")

from device.manifest import (  # noqa: E402
    FORMAT,
    Manifest,
    ManifestError,
    ModelEntry,
    S3Location,
    key_id,
    load_public_key,
    model_keys,
    open_manifest,
    parse_time,
)
from tools.cloud.signing import expiry_after, generate_keypair, load_private_key, sign_manifest  # noqa: E402

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
CHANNEL = "s3://facecue-models/fleet"
NOW = parse_time("2026-06-01T00:00:00Z")


def entry(version: str = "1.0.0", seq: int = 1, **changes) -> ModelEntry:
    model_key, metadata_key = model_keys(version)
    fields = dict(version=version, seq=seq, model_key=model_key, metadata_key=metadata_key, size=1000,
                  sha256="a" * 64, metadata_size=100, metadata_sha256="b" * 64, labels=LABELS,
                  input={"shape": [1, 48, 48, 1], "dtype": "int8", "scale": 1 / 255, "zero_point": -128},
                  min_facecue="0.1.0", created="2026-01-01T00:00:00Z")
    fields.update(changes)
    return ModelEntry(**fields)


def manifest(*entries: ModelEntry, channel: str = CHANNEL, expires: str = "2026-07-01T00:00:00Z") -> Manifest:
    return Manifest(entries or (entry(),), "2026-06-01T00:00:00Z", channel, expires)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder / "a.pem", folder / "a.pub")
    generate_keypair(folder / "b.pem", folder / "b.pub")
    return {name: (load_private_key(folder / f"{name}.pem"), load_public_key(folder / f"{name}.pub"))
            for name in ("a", "b")}


def resign(doc: dict, private_key) -> bytes:
    """Sign an arbitrary body the way a (buggy) publisher would."""
    from device.manifest import signed_bytes

    doc["signature"] = base64.b64encode(private_key.sign(signed_bytes(doc["body"]))).decode()
    return json.dumps(doc).encode()


def test_a_signed_manifest_round_trips(keys):
    private, public = keys["a"]
    signed = manifest(entry("1.0.0", 1), entry("1.1.0", 2))
    opened = open_manifest(sign_manifest(signed, private), public, CHANNEL)
    assert opened == signed
    assert opened.newest().version == "1.1.0" and opened.find("1.0.0").seq == 1
    body = json.loads(sign_manifest(signed, private))["body"]
    assert (body["channel"], body["expires"]) == (CHANNEL, "2026-07-01T00:00:00Z")


def test_a_manifest_copied_to_another_channel_is_refused(keys):
    """Its signature verifies; what it says about where it belongs does not match."""
    raw = sign_manifest(manifest(channel="s3://facecue-models/beta"), keys["a"][0])
    with pytest.raises(ManifestError, match="^manifest was signed for s3://facecue-models/beta, not "
                                            "s3://facecue-models/fleet: it was copied from another channel$"):
        open_manifest(raw, keys["a"][1], CHANNEL)


def test_a_manifest_is_fresh_until_it_expires():
    signed = manifest(expires="2026-06-01T00:00:10Z")
    signed.ensure_fresh(NOW + 9)
    with pytest.raises(ManifestError, match=r"^manifest expired at 2026-06-01T00:00:10Z \(this device's clock says "
                                            r"2026-06-01T00:00:10Z\): the publisher must refresh it"):
        signed.ensure_fresh(NOW + 10)


def test_expiry_is_a_bounded_number_of_days():
    assert expiry_after(30, NOW) == "2026-07-01T00:00:00Z"
    assert expiry_after(0.5, NOW) == "2026-06-01T12:00:00Z"
    for days in (0, -1, 366, float("nan"), float("inf")):
        with pytest.raises(ManifestError, match="--expires-in must be more than 0 and at most 365 days"):
            expiry_after(days, NOW)


def test_a_manifest_in_the_old_format_is_refused_with_what_to_do(keys):
    """facecue-manifest/1 bound no channel and never expired: nothing of it is trusted."""
    private, public = keys["a"]
    body = {"updated": "t", "models": [entry().to_json()]}
    old = {"format": "facecue-manifest/1", "key_id": key_id(public), "body": body,
           "signature": base64.b64encode(private.sign(b"facecue-manifest/1\n" + json.dumps(
               body, sort_keys=True, separators=(",", ":")).encode())).decode()}
    with pytest.raises(ManifestError, match="^manifest format is 'facecue-manifest/1', which names no channel and "
                                            "never expires: republish"):
        open_manifest(json.dumps(old).encode(), public, CHANNEL)


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    kid = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "k.pub").st_mode) == 0o644
    assert key_id(load_public_key(tmp_path / "k.pub")) == kid
    assert sorted(os.listdir(tmp_path)) == ["k.pem", "k.pub"]
    with pytest.raises(ManifestError, match="exists; pass --force"):
        generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    assert generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", overwrite=True) != kid


def test_keys_of_the_wrong_kind_are_named(tmp_path):
    (tmp_path / "x.pem").write_text("not a key")
    with pytest.raises(ManifestError, match="not a PEM key"):
        load_private_key(tmp_path / "x.pem")
    with pytest.raises(ManifestError, match="is missing"):
        load_public_key(tmp_path / "missing.pub")


def test_tampered_manifest_fails_verification(keys):
    private, public = keys["a"]
    doc = json.loads(sign_manifest(manifest(), private))
    doc["body"]["models"][0]["sha256"] = "c" * 64  # point at another file
    with pytest.raises(ManifestError, match="signature does not verify"):
        open_manifest(json.dumps(doc).encode(), public, CHANNEL)


def test_manifest_signed_with_another_key_is_refused_by_name(keys):
    raw = sign_manifest(manifest(), keys["b"][0])
    with pytest.raises(ManifestError, match="signed with key .* this device trusts"):
        open_manifest(raw, keys["a"][1], CHANNEL)


def test_a_forged_key_id_still_fails_the_signature(keys):
    doc = json.loads(sign_manifest(manifest(), keys["b"][0]))
    doc["key_id"] = key_id(keys["a"][1])
    with pytest.raises(ManifestError, match="signature does not verify"):
        open_manifest(json.dumps(doc).encode(), keys["a"][1], CHANNEL)


@pytest.mark.parametrize("raw,message", [
    (b"<Error>Gateway timeout</Error>", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "format is 'list'"),
    (json.dumps({"format": "other/1"}).encode(), "format is 'other/1'"),
    (json.dumps({"format": FORMAT, "body": {"models": []}}).encode(), "not signed"),
    (json.dumps({"format": FORMAT, "signature": "", "body": {}}).encode(), "not signed"),
    (json.dumps({"format": FORMAT, "signature": "!!", "key_id": None, "body": {}}).encode(), "signed with key"),
])
def test_malformed_manifests_are_refused(keys, raw, message):
    with pytest.raises(ManifestError, match=message):
        open_manifest(raw, keys["a"][1], CHANNEL)


@pytest.mark.parametrize("change,message", [
    (lambda m: m.pop("sha256"), "lacks a valid 'sha256'"),
    (lambda m: m.update(size="1000"), "lacks a valid 'size'"),
    (lambda m: m.update(size=10 ** 12), "implausible size"),
    (lambda m: m.update(sha256="xyz"), "invalid sha256"),
    (lambda m: m.update(version="../../etc"), "invalid version"),
    (lambda m: m.update(model_key="../other/model.tflite"), "unsafe key"),
    (lambda m: m.update(labels=[1, 2]), "non-text labels"),
    (lambda m: m.update(min_facecue="soon"), "not a facecue version"),
    (lambda m: m.pop("input"), "lacks a valid 'input'"),
])
def test_signed_manifests_with_bad_fields_are_refused(keys, change, message):
    """A correctly signed manifest from a buggy publisher still names the bad field."""
    private, public = keys["a"]
    doc = json.loads(sign_manifest(manifest(), private))
    change(doc["body"]["models"][0])
    with pytest.raises(ManifestError, match=message):
        open_manifest(resign(doc, private), public, CHANNEL)


@pytest.mark.parametrize("change,message", [
    (lambda b: b.pop("channel"), "manifest body lacks a valid 'channel'"),
    (lambda b: b.update(expires=None), "manifest body lacks a valid 'expires'"),
    (lambda b: b.update(expires="next month"), "manifest time 'next month' is not like"),
])
def test_signed_bodies_without_a_channel_or_expiry_are_refused(keys, change, message):
    private, public = keys["a"]
    doc = json.loads(sign_manifest(manifest(), private))
    change(doc["body"])
    with pytest.raises(ManifestError, match=message):
        open_manifest(resign(doc, private), public, CHANNEL)


def test_duplicate_versions_are_refused(keys):
    private, public = keys["a"]
    doc = json.loads(sign_manifest(manifest(entry("1.0.0", 1), entry("1.0.0", 2)), private))
    with pytest.raises(ManifestError, match="version twice"):
        open_manifest(resign(doc, private), public, CHANNEL)


def test_s3_locations():
    loc = S3Location.parse("s3://my-bucket/fleet/models/")
    assert (loc.bucket, loc.prefix) == ("my-bucket", "fleet/models")
    assert loc.key("manifest.json") == "fleet/models/manifest.json"
    assert S3Location.parse("s3://my-bucket").key("manifest.json") == "manifest.json"
    for bad in ("my-bucket/x", "https://my-bucket/x", "s3://", "s3://UPPER/x"):
        with pytest.raises(ManifestError, match="not an s3://"):
            S3Location.parse(bad)
