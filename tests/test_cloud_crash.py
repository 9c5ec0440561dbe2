"""A signed model that segfaults the interpreter: the smoke check runs in a child
process, so the crash is a refused model with one line, counted as a failure, and
its bytes are not downloaded again by every later run."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

pytest.importorskip("boto3")
pytest.importorskip("cryptography")

from s3_server import ROOT, Proxy, client_env, crashing_model  # noqa: E402

from device import model_store as ms  # noqa: E402
from device.classify import ModelError  # noqa: E402

CRASHED = "model 6.6.6 crashed the interpreter (SIGSEGV) in its smoke check"


@pytest.fixture
def crasher(fixture_model, tmp_path):
    return crashing_model(fixture_model, tmp_path / "crash", "6.6.6")


def test_the_crashing_model_really_kills_an_interpreter_that_runs_it(crasher):
    """Guards the tests below: without a child process this is the caller's death."""
    run = subprocess.run([sys.executable, "-c", "import sys; from device.model_store import verify_model; "
                          "verify_model(sys.argv[1])", str(crasher)], cwd=ROOT, capture_output=True, timeout=120)
    assert run.returncode == -11, run.stderr


# Each model's verdict from verify_model_isolated, in a process of its own whose
# threads are known: one (sync, publish: the child is forked) or two (the daemon:
# the child is a fresh interpreter).
VERDICTS = r'''
import sys, threading
from device.classify import ModelError
from device.model_store import verify_model_isolated
stop = threading.Event()
if sys.argv[1] == "threads":
    threading.Thread(target=stop.wait).start()
for path in sys.argv[2:]:
    try:
        print(verify_model_isolated(path).version, "ok", threading.active_count())
    except ModelError as exc:
        print(exc, threading.active_count())
stop.set()
'''


@pytest.mark.parametrize("threads", ["single", "threads"])
def test_a_crash_in_the_child_is_one_refusal_and_the_caller_lives_on(crasher, fixture_model, threads):
    run = subprocess.run([sys.executable, "-c", VERDICTS, threads, str(crasher), str(fixture_model)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    count = 1 if threads == "single" else 2
    assert (run.returncode, run.stdout.splitlines(), run.stderr) == \
        (0, [f"{CRASHED} {count}", f"1.0.0 ok {count}"], ""), run.stderr


def test_an_ordinary_refusal_crosses_from_the_child_unchanged(fixture_model, tmp_path):
    meta = json.loads(fixture_model.with_suffix(".json").read_text())
    float_claim = tmp_path / "f.tflite"
    float_claim.write_bytes(fixture_model.read_bytes())
    float_claim.with_suffix(".json").write_text(json.dumps({**meta, "input": {**meta["input"], "dtype": "float32"}}))
    with pytest.raises(ModelError) as isolated:
        ms.verify_model_isolated(float_claim)
    with pytest.raises(ModelError) as in_process:
        ms.verify_model(float_claim)
    assert str(isolated.value) == str(in_process.value) == \
        "model 1.0.0 input is int8, its metadata says float32"


HUNG = r'''
import sys, threading, time
from device import model_store as ms
stop = threading.Event()
if sys.argv[1] == "threads":
    threading.Thread(target=stop.wait).start()
ms.verify_model = lambda path, checksum: time.sleep(60)  # a hung interpreter, for a forked child
start = time.monotonic()
try:
    ms.verify_model_isolated(sys.argv[2], timeout=float(sys.argv[3]))
except ms.ModelError as exc:
    print(exc, time.monotonic() - start < 10)
stop.set()
'''


@pytest.mark.parametrize("threads,timeout", [("single", "1"), ("threads", "0.05")])
def test_a_hung_smoke_check_is_ended_at_its_timeout(fixture_model, threads, timeout):
    """A forked child that hangs, or a fresh interpreter that cannot even start within
    the time, is killed and the model refused with one line."""
    run = subprocess.run([sys.executable, "-c", HUNG, threads, str(fixture_model), timeout],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout, run.stderr) == \
        (0, f"model 1.0.0 did not finish its smoke check within {timeout}s True\n", ""), run.stderr


def test_publish_refuses_a_model_that_crashes_the_interpreter(fleet, crasher):
    result = fleet.publish(crasher)
    assert (result.code, result.out, result.err) == (1, "", f"facecue: error: {CRASHED}\n")


def _sign_crasher_in(fleet, crasher) -> None:
    """Publish 6.6.6 the way a key holder whose pipeline skipped the check would:
    its objects uploaded and listed in the signed manifest."""
    from device.manifest import Manifest, model_keys, open_manifest
    from tools.cloud.signing import load_private_key, sign_manifest

    private = load_private_key(fleet.private_key)
    current = open_manifest(fleet.bucket.get("manifest.json"), private.public_key(), fleet.bucket.url)
    newest = current.newest()
    model, meta = crasher.read_bytes(), crasher.with_suffix(".json").read_bytes()
    model_key, metadata_key = model_keys("6.6.6")
    fleet.bucket.put(model_key, model)
    fleet.bucket.put(metadata_key, meta)
    entry = type(newest)(**{**newest.to_json(), "labels": newest.labels, "version": "6.6.6", "seq": newest.seq + 1,
                            "model_key": model_key, "metadata_key": metadata_key, "size": len(model),
                            "sha256": hashlib.sha256(model).hexdigest(), "metadata_size": len(meta),
                            "metadata_sha256": hashlib.sha256(meta).hexdigest()})
    signed = Manifest(current.models + (entry,), current.updated, current.channel, current.expires,
                      current.serial + 1)
    fleet.bucket.put("manifest.json", sign_manifest(signed, private))


def test_sync_refuses_it_once_and_does_not_download_it_again(fleet, releases, crasher):
    assert fleet.publish(releases["1.0.0"]).code == 0 and fleet.sync().code == 0
    _sign_crasher_in(fleet, crasher)
    env = {**client_env(), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-m", "device.sync", *fleet.sync_argv()], env=env,
                         capture_output=True, text=True, timeout=300)
    assert (run.returncode, run.stdout) == (1, ""), run.stderr
    assert run.stderr.splitlines() == [f"facecue: error: refusing model 6.6.6: {CRASHED}"]
    state = fleet.state()
    assert state["failures"] == 1 and state["next_try"] > 0 and list(state["rejected"].values()) == [CRASHED]
    assert ms.current_version(fleet.store) == "1.0.0"
    assert not [p for p in (fleet.store / "versions").iterdir() if p.name.startswith(".")]

    state["next_try"] = 0.0  # the backoff has passed
    (fleet.root / "device" / "state" / "state.json").write_text(json.dumps(state))
    proxy = Proxy(int(fleet.bucket.moto.url.rsplit(":", 1)[1]))
    try:
        again = fleet.sync("--endpoint-url", proxy.url)
        assert [line.split()[1].rsplit(b"/", 1)[-1] for line in proxy.requests] == [b"manifest.json"]
        forced = fleet.sync("--force", "--endpoint-url", proxy.url)  # the operator insists: it is checked again
        assert any(b"6.6.6/model.tflite" in line for line in proxy.requests)
    finally:
        proxy.close()
    assert again.err.splitlines() == [f"facecue: error: refusing model 6.6.6 again without downloading it: "
                                      f"{CRASHED} (--force tries it again)"]
    assert forced.err.splitlines() == [f"facecue: error: refusing model 6.6.6: {CRASHED}"]
    assert fleet.state()["failures"] == 3 and ms.current_version(fleet.store) == "1.0.0"
