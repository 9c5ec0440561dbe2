"""The daemon's live model swap over the sync store (no frame waits for a load)."""
import json
import shutil
import time

from device import model_store
from device.classify import sha256_file
from device.config import ModelConfig
from device.model_slot import ModelSlot


def install(store, model_path, version):
    """Put the shipped model into the store as ``version`` (as `facecue sync` would)."""
    with model_store.store_lock(store), model_store.staging_dir(store) as staged:
        shutil.copy(model_path, staged / "model.tflite")
        meta = json.loads(model_path.with_suffix(".json").read_text())
        meta.update(version=version, sha256=sha256_file(staged / "model.tflite"))
        (staged / "model.json").write_text(json.dumps(meta))
        model_store.install_version(store, staged, version, {"test": True})


def wait_for_swap(slot, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        new = slot.poll()
        if new is not None:
            return new
        time.sleep(0.05)
    return None


def test_empty_store_serves_the_shipped_model(tmp_path, model_path):
    slot = ModelSlot(ModelConfig(store=str(tmp_path / "store")))
    assert slot.load().info.path == model_path


def test_a_newly_synced_model_is_swapped_in_and_rollback_too(tmp_path, model_path):
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    slot = ModelSlot(ModelConfig(store=str(store), check_every=0.5))
    slot.classifier = slot.load()
    assert slot.classifier.info.version == "1.0.0"
    assert slot.poll() is None  # nothing changed: no reload

    install(store, model_path, "1.1.0")
    new = wait_for_swap(slot)
    assert new is not None and new.info.version == "1.1.0" and slot.classifier is new

    model_store.rollback(store)
    slot.request_reload()  # SIGHUP: no waiting for check_every
    back = wait_for_swap(slot)
    assert back is not None and back.info.version == "1.0.0"


def test_a_broken_synced_model_falls_back_to_the_shipped_one(tmp_path, model_path):
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    current = model_store.active_model(store, model_path)
    current.write_bytes(b"garbage")  # corrupted on disk after the install
    slot = ModelSlot(ModelConfig(store=str(store)))
    assert slot.load().info.path == model_path
