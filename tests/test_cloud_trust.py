"""What a signed manifest can no longer make a device do: install a model of another
channel, hold the device on an expired manifest (even behind 304s) or on an older
manifest replayed within its expiry, or take it below the newest model it installed
from its channel. Real S3 (moto), the real CLIs."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("cryptography")

from s3_server import Bucket, Fleet, Proxy, run_main  # noqa: E402

from device import model_store as ms  # noqa: E402
from device.manifest import parse_time  # noqa: E402


def refused(result, *fragments: str) -> str:
    """The single ``facecue: error:`` line of a failed run, checked for ``fragments``."""
    lines = result.err.splitlines()
    assert result.code == 1 and len(lines) == 1 and lines[0].startswith("facecue: error: "), result
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def beta_of(fleet: Fleet) -> Fleet:
    """The same bucket and key, publishing to the ``beta`` prefix."""
    return Fleet(Bucket(fleet.bucket.moto, fleet.bucket.name, "beta", fleet.bucket.client), fleet.root)


def copy_channel(fleet: Fleet, source: str) -> None:
    """Copy every object of prefix ``source`` over the fleet's prefix, as an operator's
    ``aws s3 sync s3://B/beta s3://B/fleet`` would."""
    client, name = fleet.bucket.client, fleet.bucket.name
    for obj in client.list_objects_v2(Bucket=name, Prefix=f"{source}/")["Contents"]:
        relative = obj["Key"][len(source) + 1:]
        client.copy_object(Bucket=name, Key=fleet.bucket.key(relative), CopySource={"Bucket": name, "Key": obj["Key"]})


def resign_expired(fleet: Fleet, seconds_ago: float = 60) -> str:
    """Re-sign the published manifest with an expiry in the past: the manifest a store
    serves unchanged long after its publisher stopped refreshing it."""
    doc = fleet.manifest()
    doc["body"]["expires"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))
    fleet.put_manifest(doc)
    return doc["body"]["expires"]


def refresh(fleet: Fleet, *extra: str):
    """``facecue-model refresh`` of the fleet's channel: same models, the next serial."""
    from tools.cli import main  # facecue-model: publish, refresh

    return run_main(main, ["refresh", "--to", fleet.bucket.url, "--key", str(fleet.private_key),
                           "--endpoint-url", fleet.bucket.moto.url, *extra])


def state_file(fleet: Fleet) -> Path:
    return fleet.root / "device" / "state" / "state.json"


def test_a_beta_manifest_copied_into_the_stable_channel_is_refused(fleet, releases):
    assert fleet.publish(releases["1.0.0"]).code == 0 and fleet.sync().code == 0
    beta = beta_of(fleet)
    assert beta.publish(releases["1.1.0"]).code == 0
    copy_channel(fleet, "beta")
    result = fleet.sync()
    assert refused(result) == (f"facecue: error: {fleet.bucket.url}/manifest.json: manifest was signed for "
                               f"s3://{fleet.bucket.name}/beta, not {fleet.bucket.url}: it was copied from "
                               "another channel")
    assert ms.current_version(fleet.store) == "1.0.0" and fleet.state()["failures"] == 1
    extended = fleet.publish(releases["1.2.0"])  # nor will the publisher extend the copy
    assert extended.code == 1 and "cannot be extended" in extended.err and "copied from another" in extended.err


def test_an_expired_manifest_is_refused_until_the_publisher_refreshes_it(fleet, releases):
    assert fleet.publish(releases["1.0.0"]).code == 0 and fleet.sync().code == 0
    assert fleet.publish(releases["1.1.0"]).code == 0
    expired = resign_expired(fleet)
    result = fleet.sync()
    assert refused(result, f"manifest.json: manifest expired at {expired} (this device's clock says ",
                   "the publisher must refresh it (facecue-model refresh)")
    assert ms.current_version(fleet.store) == "1.0.0"
    state = fleet.state()
    assert state["failures"] == 1 and state["next_try"] > time.time() and "expired" in state["last_error"]

    refreshed = refresh(fleet, "--expires-in", "7")
    assert refreshed.code == 0, refreshed.err
    body = fleet.manifest()["body"]
    assert [m["version"] for m in body["models"]] == ["1.0.0", "1.1.0"]
    assert refreshed.out.strip() == (f"refreshed the manifest at {fleet.bucket.url} (2 models): "
                                     f"manifest #3, valid until {body['expires']}")
    assert body["serial"] == 3  # two publishes, one refresh
    assert 6.9 * 86400 < parse_time(body["expires"]) - time.time() <= 7 * 86400
    assert fleet.sync("--force").out.strip() == "facecue sync: installed model 1.1.0 (was 1.0.0)"


def test_an_unchanged_manifest_is_fetched_in_full_once_it_expired(fleet, releases):
    """The ETag stands for a manifest only until that manifest expires: after that the
    device asks for the whole manifest, so a store that would answer 304 for ever
    cannot hold it on a manifest the publisher no longer vouches for."""
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    assert fleet.sync().out.strip() == "facecue sync: up to date: manifest unchanged, model 1.0.0"
    state = json.loads(state_file(fleet).read_text())
    assert abs(state["expires"] - (time.time() + 30 * 86400)) < 600
    state["expires"] = time.time() - 1  # the device's clock passed the expiry it recorded
    state_file(fleet).write_text(json.dumps(state))
    assert fleet.sync().out.strip() == "facecue sync: up to date: model 1.0.0"  # a full GET, not a 304


def test_a_store_answering_304_for_ever_freezes_a_device_only_until_the_expiry(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    fleet.publish(releases["1.1.0"])
    proxy = Proxy(int(fleet.bucket.moto.url.rsplit(":", 1)[1]), cut_marker=b"manifest.json", not_modified=True)
    try:
        frozen = fleet.sync("--endpoint-url", proxy.url)
        assert frozen.out.strip() == "facecue sync: up to date: manifest unchanged, model 1.0.0"
        state = json.loads(state_file(fleet).read_text())
        state_file(fleet).write_text(json.dumps({**state, "expires": time.time() - 1}))
        thawed = fleet.sync("--endpoint-url", proxy.url)
    finally:
        proxy.close()
    assert refused(thawed) == (f"facecue: error: {fleet.bucket.url}/manifest.json: the store answered 304 Not "
                               "Modified to a request that asked for the whole manifest")
    assert fleet.state()["failures"] == 1 and ms.current_version(fleet.store) == "1.0.0"
    assert fleet.sync("--force").out.strip() == "facecue sync: installed model 1.1.0 (was 1.0.0)"


@pytest.mark.parametrize("data,problem", [
    ({"floors": {"s3://b/fleet": "high"}}, "floors is not a map of int"),
    ({"floors": {"s3://b/fleet": True}}, "floors is not a map of int"),
    ({"rejected": ["abc"]}, "rejected is not a map of str"),
    ({"expires": "later"}, "expires is not a number"),
])
def test_damaged_trust_state_is_named(data, problem):
    from device.sync import SyncState

    with pytest.raises(ValueError, match=f"^{problem}$"):
        SyncState.from_json(data)
    assert SyncState.from_json({"floors": {"s3://b/fleet": 3}}).floors == {"s3://b/fleet": 3}


def test_publish_and_refresh_refuse_a_bad_expiry_before_touching_the_store(fleet, releases):
    from botocore.exceptions import ClientError

    from tools.cli import main  # facecue-model: publish, refresh

    result = fleet.publish(releases["1.0.0"], "--expires-in", "400")
    assert (result.code, result.err.splitlines()[-1]) == (2, "facecue: error: argument --expires-in: must be "
                                                             "more than 0 and at most 365, got 400")
    with pytest.raises(ClientError, match="NoSuchKey"):
        fleet.bucket.get("manifest.json")
    nothing = run_main(main, ["refresh", "--to", fleet.bucket.url, "--key", str(fleet.private_key),
                              "--endpoint-url", fleet.bucket.moto.url])
    assert (nothing.code, nothing.err) == (1, f"facecue: error: nothing to refresh: no manifest at "
                                              f"{fleet.bucket.url}/manifest.json (publish a model first)\n")


def test_a_manifest_in_the_old_format_is_refused_with_what_to_do(fleet, releases):
    fleet.publish(releases["1.0.0"])
    doc = fleet.manifest()
    doc["format"] = "facecue-manifest/1"
    fleet.bucket.put("manifest.json", json.dumps(doc).encode())
    refused(fleet.sync(), "manifest format is 'facecue-manifest/1', which names no channel and never expires: "
                          "republish with this facecue's facecue-model")
    again = fleet.publish(releases["1.1.0"])
    assert again.code == 1 and "cannot be extended: manifest format is 'facecue-manifest/1'" in again.err


def test_the_floor_outlives_the_models_that_set_it(fleet, releases):
    """A manifest that lists only older models (here a publisher with the key but a bug,
    re-signing an old manifest with a new serial) cannot take the device below the
    newest model it installed from this channel, even after the store lost that model;
    --allow-downgrade is the operator's explicit way down."""
    fleet.publish(releases["1.0.0"])
    old_manifest = json.loads(fleet.bucket.get("manifest.json"))
    fleet.publish(releases["1.1.0"])
    fleet.sync()
    assert fleet.state()["floors"] == {fleet.bucket.url: 2}
    for link in ("current", "previous"):
        (fleet.store / link).unlink(missing_ok=True)  # the store was cleaned by hand
    old_manifest["body"]["serial"] = 3
    fleet.put_manifest(old_manifest)
    kept = fleet.sync()
    assert (kept.code, kept.out.strip()) == (0, (
        "facecue sync: warning: keeping the shipped model: the manifest's newest model 1.0.0 (#1) is "
        f"older than #2 this device installed from {fleet.bucket.url} (--allow-downgrade installs it)")), kept
    assert ms.current_version(fleet.store) is None
    down = fleet.sync("--allow-downgrade")
    assert down.out.strip() == "facecue sync: installed model 1.0.0 (was the shipped model)"
    assert fleet.state()["floors"] == {fleet.bucket.url: 1}  # the operator moved it down


def test_a_rollback_is_local_and_keeps_the_floor(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    fleet.publish(releases["1.1.0"])
    fleet.sync()
    assert fleet.sync("--rollback").out.strip() == "facecue sync: rolled back from model 1.1.0 to 1.0.0"
    assert fleet.state()["floors"] == {fleet.bucket.url: 2}
    fleet.publish(releases["1.2.0"])
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.2.0 (was 1.0.0)"
    assert fleet.state()["floors"] == {fleet.bucket.url: 3}


def test_each_channel_has_its_own_floor(fleet, releases):
    """Moving a device from beta (further along in its own numbering) to the stable
    channel installs stable's newest: publish numbers of two channels do not compare."""
    beta = beta_of(fleet)
    for version in ("1.0.0", "1.1.0"):
        assert beta.publish(releases[version]).code == 0
    assert fleet.sync("--source", beta.bucket.url).out.strip() == \
        "facecue sync: installed model 1.1.0 (was the shipped model)"
    fleet.publish(releases["1.2.0"])  # seq 1 of the stable channel
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.2.0 (was 1.1.0)"
    assert fleet.state()["floors"] == {beta.bucket.url: 2, fleet.bucket.url: 1}


def test_an_older_manifest_replayed_within_its_expiry_is_refused(fleet, releases):
    """The store (or a man in the middle) serves the first, validly signed and unexpired
    manifest again: the device refuses it by its serial, as a failed run with backoff,
    and keeps its model; the next publish (a higher serial) goes through."""
    assert fleet.publish(releases["1.0.0"]).code == 0
    first = fleet.bucket.get("manifest.json")
    assert fleet.publish(releases["1.1.0"]).code == 0
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.1.0 (was the shipped model)"
    assert fleet.state()["serials"] == {fleet.bucket.url: 2}
    fleet.bucket.put("manifest.json", first)
    assert refused(fleet.sync()) == (f"facecue: error: manifest #1 is older than #2, which this device already had "
                                     f"from {fleet.bucket.url}: a replayed or rolled-back manifest "
                                     "(--allow-downgrade accepts it)")
    assert ms.current_version(fleet.store) == "1.1.0"
    assert ms.active_model(fleet.store, releases["1.0.0"]).parent.name == "1.1.0"  # still served
    state = fleet.state()
    assert state["failures"] == 1 and state["next_try"] > time.time() and "replayed" in state["last_error"]
    assert state["serials"] == {fleet.bucket.url: 2}
    assert refused(fleet.sync("--force"), "manifest #1 is older than #2")  # --force skips backoff, not this

    published = fleet.publish(releases["1.2.0"])  # extends what the store now holds: #1, so this is #2
    assert published.code == 0, published.err
    assert fleet.manifest()["body"]["serial"] == 2
    # Another #2 than the device had: the same serial must be the same manifest.
    refused(fleet.sync("--force"), "manifest #2 differs from the #2 this device already had")
    assert ms.current_version(fleet.store) == "1.1.0"
    assert refresh(fleet).code == 0  # the operator's remedy: a new serial
    assert fleet.sync("--force").out.strip() == "facecue sync: installed model 1.2.0 (was 1.1.0)"
    assert fleet.state()["failures"] == 0


def test_a_replay_is_refused_even_after_the_state_is_lost(fleet, releases):
    """The serial is also in the installed model's source.json, as the version floor is:
    a lost or damaged state.json does not reopen the device to a replayed manifest."""
    assert fleet.publish(releases["1.0.0"]).code == 0
    first = fleet.bucket.get("manifest.json")
    assert fleet.publish(releases["1.1.0"]).code == 0
    assert fleet.sync().code == 0
    assert ms.version_source(fleet.store, "1.1.0")["manifest_serial"] == 2
    (fleet.root / "device" / "state" / "state.json").unlink()
    fleet.bucket.put("manifest.json", first)
    refused(fleet.sync(), "manifest #1 is older than #2")
    assert ms.current_version(fleet.store) == "1.1.0"


def test_a_manifest_signed_before_serials_counts_as_0(fleet, releases):
    """A facecue-manifest/2 body without a serial (published by an older facecue-model)
    is accepted while the device has seen no counted one, and refused after."""
    fleet.publish(releases["1.0.0"])
    uncounted = fleet.manifest()
    del uncounted["body"]["serial"]
    fleet.put_manifest(uncounted)
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.0.0 (was the shipped model)"
    assert fleet.state()["serials"] == {fleet.bucket.url: 0}
    fleet.publish(releases["1.1.0"])  # extends the uncounted manifest: #1
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.1.0 (was 1.0.0)"
    fleet.put_manifest(uncounted)
    refused(fleet.sync(), "manifest #0 is older than #1")
    bad = fleet.manifest()
    bad["body"]["serial"] = "9"
    fleet.put_manifest(bad)
    refused(fleet.sync("--force"), "manifest.json: manifest has an invalid serial '9'")


def test_allow_downgrade_accepts_a_restarted_numbering(fleet, releases):
    """A channel deleted and published again starts at #1: the operator's --allow-downgrade
    takes it, and the device then remembers the new numbering."""
    fleet.publish(releases["1.0.0"])
    fleet.publish(releases["1.1.0"])
    fleet.sync()
    fleet.bucket.client.delete_object(Bucket=fleet.bucket.name, Key=fleet.bucket.key("manifest.json"))
    fleet.publish(releases["1.2.0"])  # a fresh manifest: #1
    refused(fleet.sync(), "manifest #1 is older than #2")
    assert fleet.sync("--force", "--allow-downgrade").out.strip() == "facecue sync: installed model 1.2.0 (was 1.1.0)"
    assert fleet.state()["serials"] == {fleet.bucket.url: 1}


def downgrade_with_the_same_serial(fleet: Fleet) -> None:
    """Re-sign the published manifest (#2, 1.0.0 and 1.1.0) to list only 1.0.0, with a
    seq above the device's floor, keeping serial #2: a publisher's bug or a forgery."""
    doc = fleet.manifest()
    old = next(m for m in doc["body"]["models"] if m["version"] == "1.0.0")
    doc["body"]["models"] = [{**old, "seq": 9}]
    fleet.put_manifest(doc)


@pytest.mark.parametrize("state_lost", [False, True])
def test_the_same_serial_with_another_body_is_refused(fleet, releases, state_lost):
    assert fleet.publish(releases["1.0.0"]).code == 0 and fleet.publish(releases["1.1.0"]).code == 0
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.1.0 (was the shipped model)"
    downgrade_with_the_same_serial(fleet)
    if state_lost:  # then the installed model's source.json knows which #2 it came from
        state_file(fleet).unlink()
    assert refused(fleet.sync()) == (f"facecue: error: manifest #2 differs from the #2 this device already had "
                                     f"from {fleet.bucket.url}: a changed manifest must have a new serial "
                                     "(--allow-downgrade accepts it)")
    assert ms.current_version(fleet.store) == "1.1.0" and ms.previous_version(fleet.store) is None


def resign_times(fleet: Fleet, updated: float, expires: float) -> None:
    doc = fleet.manifest()
    doc["body"]["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(updated))
    doc["body"]["expires"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    doc["body"]["serial"] += 1
    fleet.put_manifest(doc)


def test_a_manifest_valid_until_9999_is_refused(fleet, releases):
    assert fleet.publish(releases["1.0.0"]).code == 0
    resign_times(fleet, time.time(), parse_time("9999-12-31T00:00:00Z"))
    refused(fleet.sync(), "expires at 9999-12-31T00:00:00Z, more than 365 days later: no publisher signs for "
                          "that long")
    assert ms.current_version(fleet.store) is None


def test_a_clock_at_1970_does_not_revive_an_expired_manifest(fleet, releases, monkeypatch):
    """The device's time is its clock, but never before this code was written, nor
    before the newest signing time it has seen."""
    assert fleet.publish(releases["1.0.0"]).code == 0
    resign_times(fleet, parse_time("2019-12-01T00:00:00Z"), parse_time("2020-01-01T00:00:00Z"))
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: 0.0)  # a Pi without a real-time clock, before NTP
        refused(fleet.sync(), "manifest expired at 2020-01-01T00:00:00Z (this device's clock says "
                              "2026-12-01T00:00:00Z)")

    assert fleet.publish(releases["1.1.0"]).code == 0  # signed now: the device has seen now
    assert fleet.sync("--force").out.strip() == "facecue sync: installed model 1.1.0 (was the shipped model)"
    seen = fleet.state()["clock_floor"]
    assert abs(seen - time.time()) < 120
    resign_times(fleet, seen - 7200, seen - 3600)  # expired an hour before what it saw
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: 0.0)
        refused(fleet.sync("--force"), "manifest expired at",
                f"this device's clock says {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(seen))}")
    assert ms.current_version(fleet.store) == "1.1.0"
