"""The on-device model store: atomic swap, rollback, pruning, fallback, and a
power cut at every step of an install leaving one complete, verified model."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from s3_server import KILL_SWITCH, LABELS, killed_run, model_version

from device import model_store as ms
from device.classify import ModelError, read_model_info, sha256_file

SHIPPED = Path("/nonexistent/shipped.tflite")  # stands in for the shipped fallback


def install(store: Path, model: Path, version: str, seq: int) -> Path:
    with ms.store_lock(store), ms.staging_dir(store) as stage:
        shutil.copyfile(model, stage / ms.MODEL_FILE)
        shutil.copyfile(model.with_suffix(".json"), stage / ms.METADATA_FILE)
        return ms.install_version(store, stage, version, {"version": version, "seq": seq})


def stored(store: Path) -> set[str]:
    return {p.name for p in (store / ms.VERSIONS).iterdir()}


def test_install_swaps_current_and_keeps_one_previous(tmp_path, releases):
    store = tmp_path / "store"
    generations = []
    for seq, (version, model) in enumerate(releases.items(), 1):
        path = install(store, model, version, seq)
        assert path == store / "versions" / version / "model.tflite"
        generations.append(ms.model_generation(store))
    assert generations == ["versions/1.0.0", "versions/1.1.0", "versions/1.2.0"]
    assert (ms.current_version(store), ms.previous_version(store)) == ("1.2.0", "1.1.0")
    assert stored(store) == {"1.1.0", "1.2.0"}  # 1.0.0 pruned
    assert ms.active_model(store, SHIPPED) == store / "versions" / "1.2.0" / "model.tflite"
    assert ms.version_source(store, "1.2.0")["seq"] == 3
    assert read_model_info(ms.active_model(store, SHIPPED)).version == "1.2.0"


def test_rollback_swaps_current_and_previous(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    with pytest.raises(ms.StoreError, match="no previous model"):
        ms.rollback(store)
    install(store, releases["1.1.0"], "1.1.0", 2)
    assert ms.rollback(store) == ("1.1.0", "1.0.0")
    assert (ms.current_version(store), ms.previous_version(store)) == ("1.0.0", "1.1.0")
    assert ms.rollback(store) == ("1.0.0", "1.1.0")
    assert ms.current_version(store) == "1.1.0"


def test_reinstalling_the_previous_version_replaces_its_folder(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    install(store, releases["1.1.0"], "1.1.0", 2)
    ms.rollback(store)  # current 1.0.0, previous 1.1.0
    install(store, releases["1.1.0"], "1.1.0", 2)
    assert (ms.current_version(store), ms.previous_version(store)) == ("1.1.0", "1.0.0")
    assert stored(store) == {"1.0.0", "1.1.0"}


def test_rollback_refuses_a_previous_model_that_rotted(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    install(store, releases["1.1.0"], "1.1.0", 2)
    with open(store / "versions" / "1.0.0" / "model.tflite", "r+b") as f:
        f.write(b"\0\0\0\0")
    with pytest.raises(ModelError, match="sha256"):
        ms.rollback(store)
    assert ms.current_version(store) == "1.1.0"


def test_active_model_falls_back_to_the_shipped_one(tmp_path, releases):
    store = tmp_path / "store"
    assert ms.active_model(store, SHIPPED) == SHIPPED  # nothing synced yet
    install(store, releases["1.0.0"], "1.0.0", 1)
    model = store / "versions" / "1.0.0" / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1])  # a truncated file on the card
    assert ms.active_model(store, SHIPPED) == SHIPPED
    os.unlink(store / "current")
    assert ms.active_model(store, SHIPPED) == SHIPPED
    assert ms.model_generation(store) is None


def test_a_link_made_by_hand_is_not_served(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    os.unlink(store / "current")
    os.symlink("../../../etc", store / "current")
    assert ms.current_version(store) is None and ms.active_model(store, SHIPPED) == SHIPPED


def test_install_refuses_the_current_version_and_foreign_folders(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    with pytest.raises(ms.StoreError, match="already the current"):
        install(store, releases["1.0.0"], "1.0.0", 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ms.StoreError, match="not a staging folder"):
        ms.install_version(store, elsewhere, "1.1.0", {})
    with ms.staging_dir(store) as stage, pytest.raises(ms.StoreError, match="lacks model.tflite"):
        ms.install_version(store, stage, "1.1.0", {})
    assert ms.current_version(store) == "1.0.0"


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65, "1.0 beta"])
def test_version_names_cannot_leave_the_store(name):
    with pytest.raises(ms.StoreError, match="invalid model version"):
        ms.check_version_name(name)


def test_store_lock_is_exclusive(tmp_path):
    store = tmp_path / "store"
    with ms.store_lock(store):
        with pytest.raises(ms.StoreError, match="another facecue sync"):
            with ms.store_lock(store):
                pass
    with ms.store_lock(store):  # released again
        pass


def test_prune_clears_what_an_interrupted_run_left(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    install(store, releases["1.1.0"], "1.1.0", 2)
    (store / "versions" / ".partial-abc").mkdir()
    (store / "versions" / "0.9.0").mkdir()
    os.symlink("versions/1.0.0", store / ".current.tmp")
    assert sorted(ms.prune(store)) == [".partial-abc", "0.9.0"]
    assert stored(store) == {"1.0.0", "1.1.0"} and not os.path.lexists(store / ".current.tmp")


def test_smoke_faces_are_synthetic_faces_of_the_model_size():
    faces = ms.smoke_faces()
    assert faces.shape == (7, 48, 48) and faces.dtype == np.uint8
    assert len({f.tobytes() for f in faces}) == 7
    assert (faces[:, 20:30, 20:28].mean() > faces[:, :, :3].mean())  # a bright face on a darker ground


def test_verify_model_accepts_the_fixture_model(fixture_model):
    info = ms.verify_model(fixture_model)
    assert info.labels == tuple(LABELS) and info.meta["input"]["dtype"] == "int8"


def _variant(src: Path, folder: Path, data: bytes | None = None, **meta) -> Path:
    model = model_version(src, folder, "9.9.9", **meta)
    if data is not None:
        model.write_bytes(data)
        info = json.loads(model.with_suffix(".json").read_text())
        info.update(sha256=sha256_file(model), size=len(data))
        model.with_suffix(".json").write_text(json.dumps(info))
    return model


def test_verify_model_refuses_what_this_code_cannot_serve(fixture_model, tmp_path):
    not_tflite = _variant(fixture_model, tmp_path / "a", data=b"<html>proxy login page</html>" * 100)
    with pytest.raises(ModelError, match="failed to load"):
        ms.verify_model(not_tflite)
    swapped = _variant(fixture_model, tmp_path / "b", labels=LABELS[::-1])
    with pytest.raises(ModelError, match="labels .* differ"):
        ms.verify_model(swapped)
    meta = json.loads(fixture_model.with_suffix(".json").read_text())
    float_claim = _variant(fixture_model, tmp_path / "c", input={**meta["input"], "dtype": "float32"})
    with pytest.raises(ModelError, match="input is int8, its metadata says float32"):
        ms.verify_model(float_claim)


@pytest.mark.parametrize("labels,spec,problem", [
    (LABELS, {"shape": [1, 48, 48, 1], "dtype": "int8", "scale": 0.004}, None),
    (LABELS, {"shape": [1, 48, 48, 1], "dtype": "float32"}, None),
    (LABELS[:6], {"shape": [1, 48, 48, 1], "dtype": "int8", "scale": 0.004}, "labels"),
    (LABELS, {"shape": [1, 64, 64, 1], "dtype": "int8", "scale": 0.004}, "input shape"),
    (LABELS, {"shape": [1, 48, 48, 3], "dtype": "int8", "scale": 0.004}, "input shape"),
    (LABELS, {"shape": [1, 48, 48, 1], "dtype": "int16", "scale": 0.004}, "input dtype"),
    (LABELS, {"shape": [1, 48, 48, 1], "dtype": "int8", "scale": 0}, "positive scale"),
])
def test_servable_problem(labels, spec, problem):
    found = ms.servable_problem(labels, spec)
    assert found is None if problem is None else problem in found


INSTALL = KILL_SWITCH + r'''
import shutil
from pathlib import Path
from device import model_store as ms
store, model, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with ms.store_lock(store), ms.staging_dir(store) as stage:
    shutil.copyfile(model, stage / ms.MODEL_FILE)
    shutil.copyfile(model.with_suffix(".json"), stage / ms.METADATA_FILE)
    ms.install_version(store, stage, version, {"version": version, "seq": 2})
print(seen)
'''


def assert_one_complete_model(store: Path, allowed: set[str]) -> str:
    active = ms.active_model(store, SHIPPED)
    assert active != SHIPPED, "the store lost its model"
    info = read_model_info(active, verify_checksum=True)
    assert info.version in allowed
    return info.version


def test_power_cut_at_every_step_of_an_install(tmp_path, releases):
    store = tmp_path / "store"
    install(store, releases["1.0.0"], "1.0.0", 1)
    pristine = tmp_path / "pristine"
    shutil.copytree(store, pristine, symlinks=True)
    outcomes = []
    for kill_at in range(1, 100):
        shutil.rmtree(store)
        shutil.copytree(pristine, store, symlinks=True)
        run = killed_run(["-c", INSTALL, str(store), str(releases["1.1.0"]), "1.1.0"], str(kill_at))
        if run.returncode == 0:
            break
        assert run.returncode == -9, run.stderr
        outcomes.append(assert_one_complete_model(store, {"1.0.0", "1.1.0"}))
        ms.prune(store)  # what the next sync does first
        assert not [p for p in stored(store) if p.startswith(".")]
        # a cut between the two link swaps is finished: the rollback target is never lost
        assert (ms.current_version(store), ms.previous_version(store)) in {("1.0.0", None), ("1.1.0", "1.0.0")}
        install(store, releases["1.2.0"], "1.2.0", 3)  # and the store still works
        assert assert_one_complete_model(store, {"1.2.0"}) == "1.2.0"
    assert int(run.stdout) == len(outcomes) >= 8  # every step was a kill point once
    assert outcomes[0] == "1.0.0" and outcomes[-1] == "1.1.0"
