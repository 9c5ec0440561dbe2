"""The daemon's live model swap over the sync store (no frame waits for a load), and
which model serves when one fails at run time."""
import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from device import model_store
from device.classify import ModelError, load_interpreter_class, read_model_info, sha256_file
from device.config import ModelConfig
from device.inbox import Inbox, ModelReady
from device.model_slot import ModelSlot
from models import DEFAULT_MODEL

GREY_FACE = np.full((48, 48), 128, np.uint8)


def install(store, model_path, version):
    """Put the shipped model into the store as ``version`` (as `facecue sync` would, with
    the hashes of the manifest entry it came from in its source.json)."""
    with model_store.store_lock(store), model_store.staging_dir(store) as staged:
        shutil.copy(model_path, staged / "model.tflite")
        meta = json.loads(model_path.with_suffix(".json").read_text())
        meta.update(version=version, sha256=sha256_file(staged / "model.tflite"))
        (staged / "model.json").write_text(json.dumps(meta))
        source = {"sha256": meta["sha256"], "metadata_sha256": sha256_file(staged / "model.json")}
        model_store.install_version(store, staged, version, source)


def nan_weights_model(folder: Path) -> Path:
    """The shipped float32 model with its last layer's bias set to NaN, and a JSON that
    matches it: it loads, then gives no probabilities on any face, as a badly exported
    model would. The smoke check refuses it; tests of what happens when a model fails
    only on real faces let it through with ``METADATA_ONLY``."""
    source = DEFAULT_MODEL.with_name("facecue_vgg_elu_float32.tflite")
    if not source.is_file():
        pytest.skip(f"{source.name} is absent")
    data = source.read_bytes()
    interpreter = load_interpreter_class()(model_path=str(source))
    meta = json.loads(source.with_suffix(".json").read_text())
    biases = [d for d in interpreter.get_tensor_details()
              if tuple(d["shape"]) == (len(meta["labels"]),) and d["dtype"] == np.float32]
    bias = interpreter.get_tensor(biases[0]["index"]).astype("<f4").tobytes()
    assert data.count(bias) == 1
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "nan.tflite"
    model.write_bytes(data.replace(bias, np.full(len(meta["labels"]), np.nan, "<f4").tobytes()))
    meta.update(version="9.9.9-nan", sha256=sha256_file(model))
    model.with_suffix(".json").write_text(json.dumps(meta))
    return model


# A smoke check that reads the metadata only: stands for a model that answers the
# smoke faces and then fails on real ones.
METADATA_ONLY = read_model_info


def wait_for_swap(slot, seconds=20.0):
    """Look at the store as the loop does between frames, and serve the first model the
    loader posts (as the loop does when it takes the event); None if none comes."""
    inbox = Inbox()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        slot.check(inbox.post)
        for event in inbox.wait(0.05):
            if isinstance(event, ModelReady) and slot.accept(event):
                return event.classifier
    return None


def test_empty_store_serves_the_shipped_model(tmp_path, model_path):
    slot = ModelSlot(ModelConfig(store=str(tmp_path / "store")))
    assert slot.load().info.path == model_path


def test_a_newly_synced_model_is_swapped_in_and_rollback_too(tmp_path, model_path):
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    slot = ModelSlot(ModelConfig(store=str(store), check_every=0.5))
    assert slot.load() is slot.serving and slot.serving.info.version == "1.0.0"
    assert wait_for_swap(slot, seconds=1.0) is None  # nothing changed: no reload

    install(store, model_path, "1.1.0")
    new = wait_for_swap(slot)
    assert new is not None and new.info.version == "1.1.0" and slot.serving is new

    model_store.rollback(store)
    slot.check_now()  # SIGHUP: no waiting for check_every
    back = wait_for_swap(slot)
    assert back is not None and back.info.version == "1.0.0"


def test_a_broken_synced_model_falls_back_to_the_shipped_one(tmp_path, model_path):
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    current = model_store.active_model(store, model_path)
    current.write_bytes(b"garbage")  # corrupted on disk after the install
    slot = ModelSlot(ModelConfig(store=str(store)))
    assert slot.load().info.path == model_path


def test_a_model_that_crashes_the_interpreter_is_skipped_not_served(tmp_path, model_path, caplog):
    from tests.s3_server import crashing_model

    crasher = crashing_model(model_path, tmp_path / "fixtures", "6.6.6")
    slot = ModelSlot(ModelConfig(path=str(crasher)))
    with pytest.raises(ModelError, match="crashed the interpreter"):
        slot.load()  # this process lives on to say so
    store = tmp_path / "store"
    install(store, crasher, "6.6.6")
    slot = ModelSlot(ModelConfig(store=str(store)))
    assert slot.load().info.path == model_path
    assert "crashed the interpreter" in caplog.text


def test_a_model_that_fails_the_smoke_faces_never_serves(tmp_path, model_path):
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    install(store, nan_weights_model(tmp_path), "1.1.0")
    assert ModelSlot(ModelConfig(store=str(store))).load().info.version == "1.0.0"


def test_a_model_that_fails_at_run_time_gives_way_to_the_previous_one_for_good(tmp_path, model_path):
    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    install(store, nan_weights_model(tmp_path), "1.1.0")
    slot = ModelSlot(ModelConfig(store=str(store), check_every=0.5), smoke_check=METADATA_ONLY)
    failing = slot.load()
    assert failing.info.version == "1.1.0"
    with pytest.raises(ModelError, match=r"^model 1.1.0 gave no probabilities \(row sum 0\)$"):
        failing.classify(GREY_FACE)

    slot.drop(failing)
    assert slot.serving is None
    slot.load()
    assert slot.serving.info.version == "1.0.0"  # previous, not the shipped one
    assert slot.candidates() == [model_store.version_dir(store, "1.0.0") / "model.tflite", DEFAULT_MODEL]
    slot.check_now()  # SIGHUP: the store still says 1.1.0, which is not loaded again
    assert wait_for_swap(slot, seconds=2.0) is None and slot.serving.info.version == "1.0.0"

    install(store, model_path, "1.2.0")  # a fixed model arrives: served as usual
    assert wait_for_swap(slot).info.version == "1.2.0"


def test_a_configured_model_that_fails_at_run_time_gives_way_to_the_shipped_one(tmp_path):
    slot = ModelSlot(ModelConfig(path=str(nan_weights_model(tmp_path)), store=str(tmp_path / "store")),
                     smoke_check=METADATA_ONLY)
    failing = slot.load()
    slot.drop(failing)
    shipped = slot.load()
    assert shipped.info.path == DEFAULT_MODEL
    slot.drop(shipped)
    with pytest.raises(ModelError) as err:
        slot.load()
    assert str(err.value) == f"{failing.info.path} failed at run time; {DEFAULT_MODEL} failed at run time"


def test_a_load_hashes_the_model_file_once(tmp_path, model_path, monkeypatch):
    """The smoke check hashes nothing; the classifier hashes the bytes it maps, and that one
    sha256 is held against both the metadata and the signed manifest's record."""
    from device import classify

    store = tmp_path / "store"
    install(store, model_path, "1.0.0")
    hashed = []
    real = classify.sha256_of
    monkeypatch.setattr(classify, "sha256_of", lambda f: hashed.append(Path(f.name).name) or real(f))
    in_process = functools.partial(model_store.verify_model, checksum=False)  # what the child runs
    assert ModelSlot(ModelConfig(store=str(store)), smoke_check=in_process).load().info.version == "1.0.0"
    assert hashed == ["model.tflite", "model.json"]  # the model once, then its metadata for the manifest

    tampered = model_store.version_dir(store, "1.0.0") / "model.tflite"
    data = bytearray(tampered.read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    meta = json.loads(tampered.with_suffix(".json").read_text())
    tampered.with_suffix(".json").write_text(json.dumps({**meta, "sha256": sha256_file(tampered)}))
    with pytest.raises(ModelError, match="is not what the signed manifest listed"):
        ModelSlot(ModelConfig(path=str(tampered)), smoke_check=in_process).load()
