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
    run = subprocess.run([sys.executable, "-m", "device.sync", *serving.sync_argv()], env=env,
                         preexec_fn=_limit_file_size, capture_output=True, text=True, timeout=120)
    result = type("Run", (), {"code": run.returncode, "err": run.stderr, "out": run.stdout})
    assert_refused(result, serving, "disk full writing", "of s3://")


def test_not_enough_space_is_refused_before_downloading(serving, monkeypatch):
    import shutil

    usage = shutil.disk_usage(serving.store)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1_000_000))
    assert_refused(serving.sync(), serving, "not enough space in", "1.0 MB free")


SYNC = KILL_SWITCH + "from device.sync import main\nsys.exit(main(sys.argv[1:]))\n"


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
    assert_refused(serving.sync(), serving,
                   "manifest.json: manifest is not JSON (nested 100000 levels deep, more than 32)")
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
        run = subprocess.run([sys.executable, "-m", "device.sync",
                              *serving.sync_argv("--endpoint-url", proxy.url)],
                             env=env, capture_output=True, text=True, timeout=90)
    finally:
        proxy.close()
    elapsed = time.monotonic() - start
    result = type("Run", (), {"code": run.returncode, "err": run.stderr, "out": run.stdout})
    assert_refused(result, serving, f"{marker.decode()} did not finish within the 3s deadline")
    assert elapsed < 20 and serving.state()["failures"] == 1


# --- what a careless or hostile hand can put in the way ----------------------------------


@pytest.mark.parametrize("link", ["versions", "an entry of versions"])
def test_a_store_with_a_link_in_it_is_refused_and_nothing_outside_it_is_touched(serving, tmp_path, link):
    """With versions/ a link to a user's folder, an install would write into it and the
    prune delete the user's folders; now the store is refused, in one line."""
    user = tmp_path / "user"
    (user / "photos").mkdir(parents=True)
    (user / "photos" / "2026.jpg").write_bytes(b"mine")
    versions = serving.store / "versions"
    if link == "versions":
        for entry in versions.iterdir():  # the user's folder holds the store's models too, so current still reads
            entry.rename(user / entry.name)
        versions.rmdir()
        versions.symlink_to(user)
        named = versions
    else:
        named = versions / "photos"
        named.symlink_to(user / "photos")
    before = sorted(str(p.relative_to(user)) for p in user.rglob("*"))
    assert_refused(serving.sync(), serving, f"{named} is a symbolic link; the model store follows none: move it away")
    assert sorted(str(p.relative_to(user)) for p in user.rglob("*")) == before
    assert (user / "photos" / "2026.jpg").read_bytes() == b"mine"
    assert serving.sync("--rollback").err.splitlines() == [
        f"facecue: error: {named} is a symbolic link; the model store follows none: move it away"]


# Prepended to a sync: just before the verified 1.1.0 is renamed into versions/, its two
# files are replaced by another model whose metadata agrees with it (the shipped one,
# renamed 1.1.0): a swap after the child process checked the staged bytes.
SWAP_AFTER_CHECK = r'''
import json, shutil, sys
from pathlib import Path
other = Path(sys.argv.pop(1))
def _profile(frame, event, arg):
    if event == "c_call" and getattr(arg, "__name__", "") == "rename" \
            and frame.f_code.co_filename.endswith("model_store.py"):
        stage = Path(frame.f_locals["staged"])
        shutil.copyfile(other, stage / "model.tflite")
        shutil.copyfile(other.with_suffix(".json"), stage / "model.json")
        sys.setprofile(None)
sys.setprofile(_profile)
from device.sync import main
sys.exit(main(sys.argv[1:]))
'''


def test_a_model_swapped_after_its_check_is_not_installed(serving, tmp_path, model_path):
    from s3_server import model_version

    other = model_version(model_path, tmp_path / "other", "1.1.0")  # self-consistent, other bytes
    run = subprocess.run([sys.executable, "-c", SWAP_AFTER_CHECK, str(other), *serving.sync_argv()],
                         env={**client_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    line = run.stderr.splitlines()
    assert len(line) == 1 and re.fullmatch(
        rf"facecue: error: not installing model 1\.1\.0: {re.escape(str(serving.store))}/versions/1\.1\.0/"
        r"model\.tflite sha256 [0-9a-f]{12}\.\.\. is not what the signed manifest listed: it changed after it "
        r"was checked", line[0]), run.stderr
    assert_serving(serving)  # 1.0.0 serves; the swapped files are gone
    assert not (serving.store / "versions" / "1.1.0").exists()
    after = serving.sync("--force")  # the real 1.1.0 installs on the next run
    assert after.code == 0 and ms.current_version(serving.store) == "1.1.0", after


def _put_raw_metadata(fleet, raw: bytes) -> None:
    """Make 1.1.0's metadata ``raw`` and re-sign the manifest to match (the key holder's bug)."""
    doc = fleet.manifest()
    item = entry(doc)
    fleet.bucket.put(item["metadata_key"], raw)
    item.update(metadata_sha256=hashlib.sha256(raw).hexdigest(), metadata_size=len(raw))
    fleet.put_manifest(doc)


def test_signed_metadata_nested_200k_deep_is_refused_once_and_remembered(serving):
    _put_raw_metadata(serving, b"[" * 200_000 + b"]" * 200_000)
    assert_refused(serving.sync(), serving, "refusing model 1.1.0: model metadata",
                   "is not valid JSON (nested 200000 levels deep, more than 32)")
    state = serving.state()
    assert state["failures"] == 1 and state["next_try"] > time.time() and len(state["rejected"]) == 1
    state["next_try"] = 0.0  # the backoff has passed
    (serving.root / "device" / "state" / "state.json").write_text(json.dumps(state))
    assert_refused(serving.sync(), serving, "refusing model 1.1.0 again without downloading it: model metadata")


def test_a_manifest_entry_input_nested_700_deep_is_refused(serving):
    doc = serving.manifest()
    deep: object = 1
    for _ in range(700):
        deep = [deep]
    entry(doc)["input"] = {"shape": deep}
    serving.put_manifest(doc)
    assert_refused(serving.sync(), serving, "manifest.json: manifest is not JSON (nested 705 levels deep, "
                                            "more than 32)")
    assert serving.state()["failures"] == 1


def test_publishing_a_model_with_metadata_nested_too_deep_is_one_line(fleet, fixture_model, tmp_path):
    from s3_server import model_version

    deep = model_version(fixture_model, tmp_path / "deep", "2.0.0")
    deep.with_suffix(".json").write_text("[" * 200_000 + "]" * 200_000)
    result = fleet.publish(deep)
    assert result.code == 1 and result.err.splitlines() == [
        f"facecue: error: model metadata {deep.with_suffix('.json')} is not valid JSON "
        "(nested 200000 levels deep, more than 32)"], result


def test_a_state_file_that_is_a_folder_is_refused_before_anything_changes(serving):
    state = serving.root / "device" / "state" / "state.json"
    state.unlink()
    state.mkdir()
    assert_refused(serving.sync(), serving, f"state file {state} is not a regular file: move it away")
    assert ms.previous_version(serving.store) is None  # nothing was moved


def test_a_state_counting_1100_failures_still_fails_in_one_line(serving):
    state = serving.root / "device" / "state" / "state.json"
    state.write_text(json.dumps({"failures": 1100}))
    down = f"http://127.0.0.1:{free_port()}"
    assert_refused(serving.sync("--endpoint-url", down), serving, "cannot reach the store")
    after = serving.state()
    assert after["failures"] == 1101 and 43200 <= after["next_try"] - time.time() <= 86400
