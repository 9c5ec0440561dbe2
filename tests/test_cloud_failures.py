"""Every way a sync can fail leaves the serving model in place and says why in one line.

The device starts on 1.0.0 with 1.1.0 published; each test breaks one thing
on the way to 1.1.0, then checks the exit status, the single error line and
that 1.0.0 is still the current, complete, checksum-valid model.
"""
from __future__ import annotations

import hashlib
import json
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("cryptography")

from s3_server import KILL_SWITCH, LABELS, ROOT, Proxy, SilentServer, client_env, free_port, killed_run  # noqa: E402

from device import model_store as ms  # noqa: E402
from device.classify import read_model_info  # noqa: E402

SHIPPED = Path("/nonexistent/shipped.tflite")


@pytest.fixture
def serving(fleet, releases):
    """A device serving 1.0.0, with 1.1.0 published but not fetched."""
    assert fleet.publish(releases["1.0.0"]).code == 0
    assert fleet.sync().code == 0
    assert fleet.publish(releases["1.1.0"]).code == 0
    return fleet


def assert_serving(fleet, version: str = "1.0.0", tidy: bool = True) -> None:
    """``version`` is current, complete and matches its sha256; ``tidy``: no leftovers."""
    assert ms.current_version(fleet.store) == version
    assert read_model_info(ms.active_model(fleet.store, SHIPPED), verify_checksum=True).version == version
    leftovers = [p.name for p in (fleet.store / "versions").iterdir() if p.name.startswith(".")]
    assert not (tidy and leftovers), leftovers


def assert_refused(result, fleet, *fragments: str) -> None:
    lines = result.err.splitlines()
    assert result.code == 1, result
    assert len(lines) == 1 and lines[0].startswith("facecue: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert_serving(fleet)


def entry(doc: dict, version: str = "1.1.0") -> dict:
    return next(m for m in doc["body"]["models"] if m["version"] == version)


def test_download_cut_off_mid_file(serving):
    proxy = Proxy(int(serving.bucket.moto.url.rsplit(":", 1)[1]), cut_marker=b"1.1.0/model.tflite",
                  cut_after=40_000)
    try:
        result = serving.sync("--endpoint-url", proxy.url)
    finally:
        proxy.close()
    assert_refused(result, serving, "1.1.0/model.tflite was cut off")


def test_object_shorter_than_the_manifest_says(serving):
    serving.bucket.put("models/1.1.0/model.tflite", serving.bucket.get("models/1.1.0/model.tflite")[:50_000])
    assert_refused(serving.sync(), serving, "model.tflite is 50000 bytes, the manifest says")


def test_wrong_sha256(serving):
    data = bytearray(serving.bucket.get("models/1.1.0/model.tflite"))
    data[-100:] = bytes(100)  # same length, other bytes
    serving.bucket.put("models/1.1.0/model.tflite", bytes(data))
    assert_refused(serving.sync(), serving, "does not match the signed manifest")


def test_manifest_changed_after_signing(serving):
    doc = serving.manifest()
    entry(doc)["min_facecue"] = "0.0.1"
    serving.put_manifest(doc, sign=False)
    assert_refused(serving.sync(), serving, "manifest signature does not verify")


def test_manifest_without_signature(serving):
    doc = serving.manifest()
    del doc["signature"]
    serving.put_manifest(doc, sign=False)
    assert_refused(serving.sync(), serving, "manifest is not signed")


def test_manifest_that_is_not_json(serving):
    serving.bucket.put("manifest.json", b"<html><body>Captive portal: please log in</body></html>")
    assert_refused(serving.sync(), serving, "manifest.json: manifest is not JSON")


def test_signed_manifest_missing_a_field(serving):
    doc = serving.manifest()
    del entry(doc)["sha256"]
    serving.put_manifest(doc)
    assert_refused(serving.sync(), serving, "manifest model 1.1.0 lacks a valid 'sha256'")


def _replace_release(fleet, model: bytes | None = None, **meta_changes) -> None:
    """Swap the 1.1.0 objects for other content and re-sign the manifest to match:
    what a publisher holding the key but with a broken pipeline would produce."""
    doc = fleet.manifest()
    item = entry(doc)
    meta = json.loads(fleet.bucket.get(item["metadata_key"]))
    if model is not None:
        fleet.bucket.put(item["model_key"], model)
        meta.update(sha256=hashlib.sha256(model).hexdigest(), size=len(model))
        item.update(sha256=meta["sha256"], size=len(model))
    meta.update(meta_changes)
    raw = json.dumps(meta).encode()
    fleet.bucket.put(item["metadata_key"], raw)
    item.update(metadata_sha256=hashlib.sha256(raw).hexdigest(), metadata_size=len(raw))
    fleet.put_manifest(doc)


def test_model_that_is_not_tflite(serving):
    _replace_release(serving, model=b"GIF89a" + bytes(30_000))
    assert_refused(serving.sync(), serving, "refusing model 1.1.0", "failed to load")


def test_labels_that_do_not_match_in_the_manifest(serving):
    doc = serving.manifest()
    entry(doc)["labels"] = LABELS[::-1]
    serving.put_manifest(doc)
    assert_refused(serving.sync(), serving, "refusing model 1.1.0: labels", "differ from the 7")


def test_labels_that_do_not_match_in_the_model_metadata(serving):
    _replace_release(serving, labels=LABELS[:6] + ["contempt"])
    assert_refused(serving.sync(), serving, "refusing model 1.1.0", "labels")


def test_input_spec_this_code_cannot_feed(serving):
    doc = serving.manifest()
    entry(doc)["input"]["shape"] = [1, 64, 64, 1]
    serving.put_manifest(doc)
    assert_refused(serving.sync(), serving, "input shape [1, 64, 64, 1] is not [N, 48, 48, 1]")


def test_endpoint_down(serving):
    result = serving.sync("--endpoint-url", f"http://127.0.0.1:{free_port()}")
    assert_refused(result, serving, "cannot reach the store for s3://")


def test_endpoint_that_never_answers_times_out_in_bounded_time(serving):
    silent = SilentServer()
    try:
        start = time.monotonic()
        result = serving.sync("--endpoint-url", silent.url, "--timeout", "1")
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert_refused(result, serving, "timed out talking to the store")
    assert elapsed < 8  # 2 attempts x 1 s read timeout, plus one jittered retry pause


def _policy(doc_id: str, fleet) -> str:
    """A policy from tools/cloud/README.md, for this test's bucket and prefix."""
    text = (ROOT / "tools" / "cloud" / "README.md").read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        policy = json.loads(block)
        if policy.get("Id") == doc_id:
            return block.replace("BUCKET", fleet.bucket.name).replace("PREFIX", fleet.bucket.prefix)
    raise AssertionError(f"no {doc_id} policy in tools/cloud/README.md")


def _iam_user(moto, monkeypatch, policy: str | None) -> None:
    """A moto IAM user with ``policy``, whose keys the sync now uses."""
    import boto3

    iam = boto3.client("iam", endpoint_url=moto.url, region_name="us-east-1")
    name = f"device-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="facecue", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])


def test_access_denied(serving, moto, monkeypatch):
    _iam_user(moto, monkeypatch, policy=None)
    moto.require_auth(True)
    try:
        result = serving.sync("--force")
    finally:
        moto.require_auth(False)
    assert_refused(result, serving, "access denied to s3://", "manifest.json")


def test_the_documented_device_policy_is_enough(serving, moto, monkeypatch):
    """Guards the test above: the same setup with tools/cloud/README.md's device policy installs."""
    _iam_user(moto, monkeypatch, policy=_policy("facecue-device", serving))
    moto.require_auth(True)
    try:
        result = serving.sync("--force")
    finally:
        moto.require_auth(False)
    assert result.out.strip() == "facecue sync: installed model 1.1.0 (was 1.0.0)", result.err


def test_the_documented_publisher_policy_is_enough(fleet, releases, moto, monkeypatch):
    _iam_user(moto, monkeypatch, policy=_policy("facecue-publisher", fleet))
    moto.require_auth(True)
    try:
        first, second = fleet.publish(releases["1.0.0"]), fleet.publish(releases["1.1.0"])
    finally:
        moto.require_auth(False)
    assert (first.code, second.code) == (0, 0), first.err + second.err


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # writes past 100 kB fail with EFBIG


def test_disk_full_during_download(serving, fixture_model):
    assert fixture_model.stat().st_size > 200_000
    env = {**client_env(), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-m", "tools.cloud.sync", *serving.sync_argv()], env=env,
                         preexec_fn=_limit_file_size, capture_output=True, text=True, timeout=120)
    result = type("Run", (), {"code": run.returncode, "err": run.stderr, "out": run.stdout})
    assert_refused(result, serving, "disk full writing", "of s3://")


def test_not_enough_space_is_refused_before_downloading(serving, monkeypatch):
    import shutil

    usage = shutil.disk_usage(serving.store)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1_000_000))
    assert_refused(serving.sync(), serving, "not enough space in", "1.0 MB free")


SYNC = KILL_SWITCH + "from tools.cloud.sync import main\nsys.exit(main(sys.argv[1:]))\n"


@pytest.mark.parametrize("kill_at,survivor", [
    ("write:3", "1.0.0"),    # mid-download of the model
    ("rename:1", "1.0.0"),   # downloaded and verified, before it becomes versions/1.1.0
    ("replace:4", "1.0.0"),  # the two links journalled in .swap, neither set yet
    ("replace:5", "1.0.0"),  # previous re-pointed, just before current is swapped
    ("replace:6", "1.1.0"),  # swapped, before the sync state is saved
])
def test_power_cut_during_sync(serving, kill_at, survivor):
    """(replace:1 saves the state before the run changes anything, 2 writes source.json.)"""
    run = killed_run(["-c", SYNC, *serving.sync_argv()], kill_at, env=client_env())
    assert run.returncode == -9, run.stderr
    assert_serving(serving, survivor, tidy=False)  # a half download may lie in versions/.partial-*
    after = serving.sync()
    assert after.code == 0, after.err
    assert_serving(serving, "1.1.0")  # and the next run finishes the job and cleans up
    assert ms.previous_version(serving.store) == "1.0.0"  # the rollback target survived the cut


def _moto_port(fleet) -> int:
    return int(fleet.bucket.moto.url.rsplit(":", 1)[1])


def test_manifest_nested_too_deeply_is_refused_and_backs_off(serving):
    serving.bucket.put("manifest.json", b"[" * 100_000)
    assert_refused(serving.sync(), serving, "manifest.json: manifest is not JSON (nested 100000 levels deep, more than 32)")
    assert serving.state()["failures"] == 1


def test_manifest_reply_without_an_etag_is_used_but_not_cached(serving):
    """The manifest's signature, not its ETag, makes it trustworthy: it is installed from,
    with one warning, and the next run fetches it in full instead of asking for a 304."""
    proxy = Proxy(_moto_port(serving), cut_marker=b"manifest.json", drop_header=b"ETag")
    try:
        first = serving.sync("--endpoint-url", proxy.url)
        again = serving.sync("--endpoint-url", proxy.url)
    finally:
        proxy.close()
    assert (first.code, first.out.strip()) == (0, "facecue sync: installed model 1.1.0 (was 1.0.0)"), first
    assert first.err.splitlines() == [f"facecue sync: warning: {serving.bucket.url}/manifest.json came "
                                      "without an ETag: it is fetched in full on every run"]
    assert serving.state()["etag"] == "" and serving.state()["failures"] == 0
    assert (again.code, again.out.strip()) == (0, "facecue sync: up to date: model 1.1.0"), again
    assert_serving(serving, "1.1.0")


@pytest.mark.parametrize("broken", [{"chunked": True}, {"drop_header": b"Content-Length"}],
                         ids=["chunked", "no-content-length"])
def test_model_sent_without_a_content_length_is_checked_against_the_manifest(serving, broken):
    proxy = Proxy(_moto_port(serving), cut_marker=b"1.1.0/model.tflite", **broken)
    try:
        result = serving.sync("--endpoint-url", proxy.url)
    finally:
        proxy.close()
    assert (result.code, result.out.strip(), result.err) == \
        (0, "facecue sync: installed model 1.1.0 (was 1.0.0)", ""), result
    assert_serving(serving, "1.1.0")


def test_model_sent_chunked_cannot_be_longer_than_the_manifest_says(serving):
    serving.bucket.put("models/1.1.0/model.tflite", serving.bucket.get("models/1.1.0/model.tflite") + bytes(70_000))
    proxy = Proxy(_moto_port(serving), cut_marker=b"1.1.0/model.tflite", chunked=True)
    try:
        result = serving.sync("--endpoint-url", proxy.url)
    finally:
        proxy.close()
    assert_refused(result, serving, "model.tflite is longer than the", "bytes the manifest says")
    assert serving.state()["failures"] == 1


@pytest.mark.parametrize("marker", [b"manifest.json", b"1.1.0/model.tflite"])
def test_a_trickling_server_cannot_hold_the_sync_past_its_deadline(serving, marker):
    """One byte every 2 s never trips the read timeout; one deadline per run ends it."""
    serving.set_sync(download_deadline=3.0)
    proxy = Proxy(_moto_port(serving), cut_marker=marker, trickle=2.0)
    env = {**client_env(), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    try:
        run = subprocess.run([sys.executable, "-m", "tools.cloud.sync",
                              *serving.sync_argv("--endpoint-url", proxy.url)],
                             env=env, capture_output=True, text=True, timeout=90)
    finally:
        proxy.close()
    elapsed = time.monotonic() - start
    result = type("Run", (), {"code": run.returncode, "err": run.stderr, "out": run.stdout})
    assert_refused(result, serving, f"{marker.decode()} did not finish within the 3s deadline")
    assert elapsed < 20 and serving.state()["failures"] == 1
