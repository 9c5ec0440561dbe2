"""Publish -> sync -> swap -> rollback against a real S3 protocol server (moto),
and the sync's policies: conditional GET, no silent downgrade, minimum facecue
version, rollbacks that stick, one sync at a time, backoff."""
from __future__ import annotations

import hashlib
import json
import time

import pytest

pytest.importorskip("boto3")
pytest.importorskip("cryptography")

from s3_server import LABELS, Proxy, free_port, model_version, run_main  # noqa: E402

from device import model_store as ms  # noqa: E402
from device.classify import read_model_info  # noqa: E402


def current(fleet) -> str | None:
    return ms.current_version(fleet.store)


def test_publish_sync_swap_rollback_end_to_end(fleet, releases):
    assert fleet.publish(releases["1.0.0"]).code == 0
    first = fleet.sync()
    assert (first.code, first.out.strip()) == (0, "facecue sync: installed model 1.0.0 (was the shipped model)")
    assert first.err == ""

    published = fleet.publish(releases["1.1.0"])
    assert published.code == 0 and "published model 1.1.0 (#2" in published.out
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.1.0 (was 1.0.0)"
    assert (current(fleet), ms.previous_version(fleet.store)) == ("1.1.0", "1.0.0")
    active = ms.active_model(fleet.store, releases["1.0.0"])
    assert read_model_info(active).version == "1.1.0"
    assert ms.version_source(fleet.store, "1.1.0")["seq"] == 2

    back = fleet.sync("--rollback")
    assert (back.code, back.out.strip()) == (0, "facecue sync: rolled back from model 1.1.0 to 1.0.0")
    stays = fleet.sync()
    assert stays.code == 0 and "1.1.0 was rolled back on this device" in stays.out
    assert current(fleet) == "1.0.0"

    fleet.publish(releases["1.2.0"])
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.2.0 (was 1.0.0)"
    assert (current(fleet), ms.previous_version(fleet.store)) == ("1.2.0", "1.0.0")


def test_the_bucket_holds_models_and_the_manifest_only(fleet, releases):
    """Nothing but model files, their metadata and the manifest is ever uploaded."""
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    fleet.publish(releases["1.1.0"])
    fleet.sync()
    listed = fleet.bucket.client.list_objects_v2(Bucket=fleet.bucket.name)["Contents"]
    keys = sorted(obj["Key"] for obj in listed)
    prefix = fleet.bucket.prefix
    assert keys == [f"{prefix}/manifest.json",
                    f"{prefix}/models/1.0.0/model.json", f"{prefix}/models/1.0.0/model.tflite",
                    f"{prefix}/models/1.1.0/model.json", f"{prefix}/models/1.1.0/model.tflite"]
    body = fleet.manifest()["body"]
    assert [m["version"] for m in body["models"]] == ["1.0.0", "1.1.0"]
    entry = body["models"][1]
    assert entry["labels"] == LABELS and entry["input"]["shape"] == [1, 48, 48, 1]
    assert entry["size"] == releases["1.1.0"].stat().st_size and entry["min_facecue"] == "0.1.0"


def test_an_unchanged_manifest_costs_one_request(fleet, releases):
    fleet.publish(releases["1.0.0"])
    proxy = Proxy(int(fleet.bucket.moto.url.rsplit(":", 1)[1]))
    try:
        assert fleet.sync("--endpoint-url", proxy.url).code == 0
        assert len(proxy.requests) == 3  # manifest, metadata, model
        proxy.requests.clear()
        again = fleet.sync("--endpoint-url", proxy.url)
        assert again.out.strip() == "facecue sync: up to date: manifest unchanged, model 1.0.0"
        assert len(proxy.requests) == 1 and b"manifest.json" in proxy.requests[0]
        assert fleet.state()["etag"]
    finally:
        proxy.close()


def test_a_lost_model_is_fetched_again_despite_the_etag(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    (fleet.store / "current").unlink()  # someone cleaned the store by hand
    assert fleet.sync().out.strip() == "facecue sync: installed model 1.0.0 (was the shipped model)"


def test_publish_refuses_to_overwrite_a_version(fleet, releases):
    fleet.publish(releases["1.0.0"])
    again = fleet.publish(releases["1.0.0"])
    assert again.code == 1 and "1.0.0 is already published" in again.err
    fleet.bucket.put("models/1.1.0/model.tflite", b"left by someone else")
    clash = fleet.publish(releases["1.1.0"])
    assert clash.code == 1 and "already exists with other content" in clash.err
    assert [m["version"] for m in fleet.manifest()["body"]["models"]] == ["1.0.0"]


def test_publish_resumes_after_dying_before_the_manifest(fleet, releases):
    """Objects uploaded by a publish that died are reused when their content matches."""
    fleet.publish(releases["1.0.0"])
    for name, src in (("model.tflite", releases["1.1.0"]), ("model.json", releases["1.1.0"].with_suffix(".json"))):
        data = src.read_bytes()
        fleet.bucket.client.put_object(Bucket=fleet.bucket.name, Key=fleet.bucket.key(f"models/1.1.0/{name}"),
                                       Body=data, Metadata={"sha256": hashlib.sha256(data).hexdigest()})
    assert fleet.publish(releases["1.1.0"]).code == 0


def test_publish_refuses_a_manifest_it_cannot_verify(fleet, releases, tmp_path):
    from tools.cli import main  # facecue-model: publish, refresh
    from tools.cloud.signing import generate_keypair

    fleet.publish(releases["1.0.0"])
    generate_keypair(tmp_path / "other.pem", tmp_path / "other.pub")
    other = run_main(main, ["publish", str(releases["1.1.0"]), "--to", fleet.bucket.url, "--key",
                            str(tmp_path / "other.pem"), "--endpoint-url", fleet.bucket.moto.url])
    assert other.code == 1 and "cannot be extended" in other.err and "signed with key" in other.err


def test_publish_refuses_a_model_devices_would_refuse(fleet, fixture_model, tmp_path):
    from botocore.exceptions import ClientError

    wrong = model_version(fixture_model, tmp_path / "w", "2.0.0", labels=LABELS[::-1])
    result = fleet.publish(wrong)
    assert result.code == 1 and "labels" in result.err
    with pytest.raises(ClientError, match="NoSuchKey"):
        fleet.bucket.get("manifest.json")


def test_an_older_manifest_does_not_downgrade_without_the_flag(fleet, releases):
    fleet.publish(releases["1.0.0"])
    old_manifest = fleet.bucket.get("manifest.json")
    fleet.publish(releases["1.1.0"])
    fleet.sync()
    fleet.bucket.put("manifest.json", old_manifest)  # a stale mirror replays the old, validly signed manifest
    kept = fleet.sync()
    assert kept.code == 1 and "manifest #1 is older than #2" in kept.err
    assert current(fleet) == "1.1.0"
    down = fleet.sync("--force", "--allow-downgrade")
    assert down.out.strip() == "facecue sync: installed model 1.0.0 (was 1.1.0)"


def test_a_model_for_a_newer_facecue_is_refused(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    fleet.publish(releases["1.1.0"], "--min-facecue", "9.0.0")
    result = fleet.sync()
    assert result.code == 1
    assert result.err.strip() == ("facecue: error: model 1.1.0 needs facecue >= 9.0.0, "
                                  "this is 0.1.0: update facecue first")
    assert current(fleet) == "1.0.0"


def test_only_one_sync_at_a_time(fleet, releases):
    fleet.publish(releases["1.0.0"])
    with ms.store_lock(fleet.store):
        busy = fleet.sync()
    assert busy.code == 1 and "another facecue sync is changing" in busy.err
    assert current(fleet) is None


def test_failures_back_off_until_forced(fleet, releases):
    fleet.publish(releases["1.0.0"])
    down = f"http://127.0.0.1:{free_port()}"
    failed = fleet.sync("--endpoint-url", down)
    assert failed.code == 1 and "cannot reach the store" in failed.err
    state = fleet.state()
    assert state["failures"] == 1 and 900 <= state["next_try"] - time.time() <= 1800
    skipped = fleet.sync()
    assert skipped.code == 0 and "skipped: 1 failed runs in a row" in skipped.out
    assert current(fleet) is None
    assert fleet.sync("--force", "--endpoint-url", down).code == 1
    assert fleet.state()["failures"] == 2
    assert fleet.sync("--force").code == 0 and current(fleet) == "1.0.0"
    assert fleet.state()["failures"] == 0


def test_backoff_grows_exponentially_with_jitter_and_survives_clock_jumps():
    from device.sync import SyncState, backoff_delay, backoff_remaining

    assert [backoff_delay(n, 1800, 86400, rng=lambda: 1.0) for n in (1, 2, 3, 6, 7, 20)] == \
        [1800, 3600, 7200, 57600, 86400, 86400]
    assert backoff_delay(3, 1800, 86400, rng=lambda: 0.0) == 3600  # jitter: half to full
    now = 1_000_000.0
    assert backoff_remaining(SyncState(next_try=now + 60), now, 86400) == 60
    assert backoff_remaining(SyncState(next_try=now - 5), now, 86400) == 0
    # next_try far beyond the cap: the clock went back (a Pi that booted at 1970)
    assert backoff_remaining(SyncState(next_try=now + 10 * 86400), now, 86400) == 0


def test_settings_errors_are_one_line(fleet, tmp_path):
    fleet.set_sync(bucket="x")
    result = fleet.sync()
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"facecue: error: {fleet.config}: unknown key [sync] bucket; known: source, ")
    fleet.config.write_text('[sync]\nsource = "s3://b/x"\nread_timeout = "soon"\n')
    assert fleet.sync().err == (f"facecue: error: {fleet.config}: [sync] read_timeout must be a finite float, "
                                "got 'soon'\n")
    fleet.config.write_text("")
    missing = fleet.sync("--config", str(tmp_path / "nope.toml"))
    assert missing.err == f"facecue: error: config file {tmp_path / 'nope.toml'} not found\n"


def test_state_file_damage_costs_only_a_refetch(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    (fleet.root / "device" / "state" / "state.json").write_text("{not json")
    again = fleet.sync()
    assert again.code == 0 and "up to date: model 1.0.0" in again.out and "ignoring damaged" in again.err
    assert json.loads((fleet.root / "device" / "state" / "state.json").read_text())["etag"]


def test_rolling_back_twice_returns_to_the_newer_model_for_good(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    fleet.publish(releases["1.1.0"])
    fleet.sync()
    assert fleet.sync("--rollback").code == 0 and fleet.sync("--rollback").code == 0
    assert current(fleet) == "1.1.0" and fleet.state()["rolled_back"] == ["1.0.0"]
    assert fleet.sync().out.strip() == "facecue sync: up to date: manifest unchanged, model 1.1.0"


def test_rollback_without_a_previous_model_says_so(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    result = fleet.sync("--rollback")
    assert result.code == 1 and result.err.strip().endswith("to roll back to (current is 1.0.0)")


def test_progress_bar_only_on_a_terminal(capsys):
    from device.sync import Progress

    Progress(False, "model 1.1.0", 2_000_000).update(1_000_000)
    assert capsys.readouterr().err == ""
    bar = Progress(True, "model 1.1.0", 2_000_000)
    bar.update(1_000_000)
    bar.update(2_000_000)
    err = capsys.readouterr().err
    assert "model 1.1.0 [############" in err and " 50% 1.0/2.0 MB" in err and err.endswith("100% 2.0/2.0 MB\n")


def test_state_file_with_wrong_types_costs_only_a_refetch(fleet, releases):
    fleet.publish(releases["1.0.0"])
    fleet.sync()
    (fleet.root / "device" / "state" / "state.json").write_text('{"next_try": "soon"}')
    again = fleet.sync()
    assert again.code == 0 and again.out.strip() == "facecue sync: up to date: model 1.0.0", again
    assert again.err.splitlines() == [f"facecue sync: warning: ignoring damaged "
                                      f"{fleet.root / 'device' / 'state' / 'state.json'} (next_try is not a number)"]
    assert fleet.state()["next_try"] == 0.0 and fleet.state()["etag"]


def test_a_directory_named_current_is_one_clear_error_before_any_download(fleet, releases):
    fleet.publish(releases["1.0.0"])
    (fleet.store / "current").mkdir(parents=True)
    proxy = Proxy(int(fleet.bucket.moto.url.rsplit(":", 1)[1]))
    try:
        result = fleet.sync("--endpoint-url", proxy.url)
    finally:
        proxy.close()
    assert result.code == 1 and proxy.requests == [], result
    assert result.err.splitlines() == [f"facecue: error: {fleet.store / 'current'} is not a link to a "
                                       "stored model: move it away, sync installs models there"]
    assert fleet.state()["failures"] == 1 and (fleet.store / "current").is_dir()
    assert fleet.sync("--rollback").err.splitlines() == result.err.splitlines()


def test_rollback_when_previous_is_current_says_there_is_nothing_to_roll_back_to(fleet, releases):
    import os

    fleet.publish(releases["1.0.0"])
    fleet.sync()
    os.symlink("versions/1.0.0", fleet.store / "previous")  # by hand, or left by an older facecue
    result = fleet.sync("--rollback")
    assert (result.code, result.out) == (1, ""), result
    assert result.err.splitlines() == ["facecue: error: nothing to roll back to: the previous model "
                                       "is the current one (1.0.0)"]
    assert current(fleet) == "1.0.0"
