"""The publisher's side of the signed manifest: the key pair, the signature, the expiry.

Only ``facecue-model`` (keygen, publish, refresh, sagemaker publish) ever holds
the private key, so only it carries the code that makes or uses one; the hat
reads and verifies manifests with :mod:`device.manifest` and never imports this.
The format both sides agree on (what the signature covers, the key id, the
longest expiry a device accepts) stays there, in one place.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from core.files import write_atomic
from device.manifest import (
    FORMAT,
    MAX_EXPIRES_DAYS,
    Manifest,
    ManifestError,
    format_time,
    key_id,
    read_key,
    signed_bytes,
)

DEFAULT_EXPIRES_DAYS = 30.0
PRIVATE_KEY_HINT = "facecue-model keygen makes the pair"


def expiry_after(days: float, now: float) -> str:
    """The ``expires`` of a manifest signed at ``now`` and valid for ``days``; refused
    beyond what a device accepts, for callers that did not come through the parser."""
    if not 0 < days <= MAX_EXPIRES_DAYS:
        raise ManifestError(f"--expires-in must be more than 0 and at most {MAX_EXPIRES_DAYS:g} days, got {days:g}")
    return format_time(now + days * 86400)


def sign_manifest(manifest: Manifest, private_key) -> bytes:
    """The manifest document, signed, as the bytes to upload."""
    body = manifest.body()
    signature = private_key.sign(signed_bytes(body))
    doc = {"format": FORMAT, "key_id": key_id(private_key.public_key()),
           "signature": base64.b64encode(signature).decode(), "body": body}
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def generate_keypair(private_path: Path, public_path: Path, overwrite: bool = False) -> str:
    """Write a new Ed25519 key pair (private 0600, public 0644); returns its key id.

    Refuses to replace an existing private key unless ``overwrite``: losing it
    means every device must be given a new public key by hand.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise ManifestError(f"{path} exists; pass --force to replace it (devices then need the new public key)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(private_path, private_pem, mode=0o600)
    write_atomic(public_path, public_pem, mode=0o644)
    return key_id(key.public_key())


def load_private_key(path: Path):
    """The Ed25519 signing key in ``path``, or a ManifestError in one line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = read_key(path, "private", PRIVATE_KEY_HINT)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"private key {path} is not a PEM key ({str(exc).splitlines()[0]})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError(f"private key {path} is not an Ed25519 key")
    return key
