"""Training smoke test: two tiny epochs, a stop and a resume, the report, the int8 export,
and the exported model served by the device's own interpreter.

Runs on generated faces (no shared data needed) with ``vgg_elu-tiny``, so it
is fast enough for CI; it needs TensorFlow and skips cleanly without it.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from device.classify import Classifier, sha256_file  # noqa: E402
from models.architectures import VGG_ELU_SIZES, build  # noqa: E402
from tools.data.augment import to_input  # noqa: E402
from tools.data.dataset import load_faces  # noqa: E402
from tools.eval.evaluate import evaluate_model, predict_probabilities  # noqa: E402
from tools.train.export import ExportOptions, export_run  # noqa: E402
from tools.train.fit import run_training  # noqa: E402
from tools.train.report import write_training_report  # noqa: E402
from tools.train.runs import TrainConfig, prepare_run  # noqa: E402

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def write_patterned_faces(path: Path, n: int, seed: int) -> Path:
    """Noisy 48x48 faces whose class is a bright band at a class-specific height,
    in the shared npz format: something a tiny net can start to learn in two epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    images = rng.normal(90, 25, (n, 48, 48))
    for i, label in enumerate(labels):
        images[i, 4 + 6 * label: 9 + 6 * label, 6:42] += 110
    np.savez(path, images=images.clip(0, 255).astype(np.uint8), labels=labels.astype(np.uint8),
             classes=np.array(CLASSES), names=np.array([f"gen_{i}.png" for i in range(n)]))
    return path


def assert_one_line_error(capsys, pattern: str) -> None:
    """facecue-train refused with one line under facecue's error prefix, matching ``pattern``."""
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("facecue: error: "), err
    assert re.search(pattern, err), err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch run stopped after epoch 1 and resumed: (run folder, first trainer, resumed trainer)."""
    tmp = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(write_patterned_faces(tmp / "train.npz", 224, 1)),
                      valid=str(write_patterned_faces(tmp / "valid.npz", 70, 2)), epochs=2, batch=32,
                      lr=0.02, warmup_epochs=0.0, seed=3, keep_from=2)
    run = tmp / "run"
    prepare_run(run, cfg, resume=False)
    first = run_training(cfg, run, stop_after=1, log=lambda _: None)
    resumed = run_training(prepare_run(run, None, resume=True), run, resume=True, log=lambda _: None)
    return run, first, resumed


def test_stop_leaves_a_checkpoint_at_epoch_one(trained):
    run, first, _ = trained
    assert first.state["epoch"] == 1
    assert [row["epoch"] for row in first.state["history"]] == [1]
    assert (run / "best.weights.h5").is_file()


def test_resume_continues_from_the_checkpoint(trained):
    run, first, resumed = trained
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2
    assert [row["epoch"] for row in resumed.state["history"]] == [1, 2]
    assert resumed.state["history"][0] == first.state["history"][0]
    # The optimizer's step counter came back from the checkpoint: a fresh optimizer
    # would have counted only the second epoch's steps.
    assert int(resumed.opt.iterations.numpy()) == 2 * resumed.steps
    assert np.isfinite([row["loss"] for row in resumed.state["history"]]).all()
    assert list(run.joinpath("checkpoint").glob("epoch001.*")) == []


def test_weights_are_kept_from_the_chosen_epoch(trained):
    """keep_from=2 keeps epoch 2's weights (for averaging at export) and not epoch 1's."""
    run, _, _ = trained
    assert [p.name for p in run.joinpath("epochs").iterdir()] == ["epoch002.weights.h5"]
    kept = run / "epochs" / "epoch002.weights.h5"
    assert kept.read_bytes() == (run / "checkpoint" / "epoch002.weights.h5").read_bytes()


def test_report_files_agree_with_the_run(trained):
    run, _, resumed = trained
    report = write_training_report(resumed, run)
    for name in ("curves.png", "confusion.png", "report.md"):
        assert (run / name).stat().st_size > 0
    on_disk = json.loads((run / "report.json").read_text())
    assert on_disk["epochs_run"] == 2 and on_disk["best_epoch"] == resumed.state["best_epoch"]
    # The best weights are loaded, so the report's accuracy is the best epoch's.
    assert report["valid"]["accuracy"] == pytest.approx(resumed.state["best_acc"], abs=1e-6)
    assert np.array(report["valid"]["confusion"]).sum() == 70
    recipe = next(line for line in (run / "report.md").read_text().splitlines() if line.startswith("- recipe:"))
    assert recipe.endswith("dropout 0.4, random erasing 0.35, seed 3")  # no CutMix named when it was off


def test_warm_start_begins_from_the_parent_weights_and_records_its_lineage(trained, tmp_path):
    from tools.train.fit import Trainer
    from tools.train.runs import history_seconds, lineage, load_run

    run, _, resumed = trained
    parent_copy = tmp_path / "parent"  # a parent folder that will be wiped
    shutil.copytree(run, parent_copy)
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(run.parent / "train.npz"), valid=str(run.parent / "valid.npz"),
                      epochs=1, batch=32, lr=0.002, warmup_epochs=0.0, dropout=0.2, erase_prob=0.1, seed=4,
                      init_weights=str(parent_copy / "best.weights.h5"))
    child = Trainer(prepare_run(tmp_path / "child", cfg, resume=False), tmp_path / "child",
                    load_faces(cfg.train), load_faces(cfg.valid))
    parent = load_run(run, valid="")
    assert all(np.array_equal(a, b) for a, b in zip(child.model.get_weights(), parent.model.get_weights(), strict=True))
    assert child.model.get_layer("fc_drop").rate == 0.2 and child.augment_params.erase_prob == 0.1
    [entry] = lineage(cfg)
    assert (entry["weights"], entry["epochs_run"], entry["best_epoch"]) == \
        (cfg.init_weights, 2, resumed.state["best_epoch"])
    assert entry["seconds"] == history_seconds(resumed.state) > 0 and entry["recipe"]["seed"] == 3
    # A second generation carries the first along, oldest first, even once the first's
    # folder is gone: the child recorded its history when it started.
    assert json.loads((tmp_path / "child" / "warm_start.json").read_text()) == lineage(cfg)
    child.fit(log=lambda _: None)
    shutil.rmtree(parent_copy)
    grandchild = TrainConfig(arch="vgg_elu-tiny", init_weights=str(tmp_path / "child" / "best.weights.h5"))
    assert [e["recipe"]["seed"] for e in lineage(grandchild)] == [3, 4]


def test_cutmix_batches_carry_soft_targets_weighted_by_their_classes(trained, tmp_path):
    from tools.train.fit import Trainer

    run, _, _ = trained
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(run.parent / "train.npz"), epochs=1, batch=32,
                      class_weight="balanced", cutmix=1.0, seed=5)
    trainer = Trainer(cfg, tmp_path / "mix", load_faces(cfg.train), None)
    x, targets, w = next(trainer.epoch_batches(1))
    assert x.shape == (32, 48, 48, 1) and np.allclose(targets.sum(axis=1), 1.0)
    assert (targets.max(axis=1) < 1.0).sum() > 10  # most faces carry two labels
    assert np.allclose(w, targets @ trainer.weights) and w.dtype == np.float32
    loss, _ = trainer.train_step(x, targets, w)
    assert np.isfinite(float(loss))


def write_votes_for(path: Path, labels: np.ndarray, unreadable: np.ndarray) -> Path:
    """FER+ votes for faces of ``labels``: 7 raters agree with the label and 3 say neutral,
    except on the ``unreadable`` rows, which the raters mostly call unknown."""
    names = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
    column = [names.index({"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(c, c)) for c in CLASSES]
    votes = np.zeros((len(labels), len(names)), np.float32)
    votes[np.arange(len(labels)), [column[k] for k in labels]] += 7
    votes[:, names.index("neutral")] += 3
    votes[unreadable] = 0
    votes[unreadable, names.index("unknown")] = 10
    np.savez(path, votes=votes, vote_names=np.array(names))
    return path


def test_votes_give_soft_targets_and_pick_the_best_epoch_by_their_majority(trained, tmp_path):
    from tools.train.fit import Trainer

    run, _, _ = trained
    train, valid = load_faces(run.parent / "train.npz"), load_faces(run.parent / "valid.npz")
    unreadable = np.arange(len(train)) % 10 == 0
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(run.parent / "train.npz"), valid=str(run.parent / "valid.npz"),
                      votes=str(write_votes_for(tmp_path / "tv.npz", train.labels, unreadable)),
                      valid_votes=str(write_votes_for(tmp_path / "vv.npz", valid.labels, np.arange(len(valid)) < 7)),
                      original_share=0.5, epochs=1, batch=32, seed=5)
    trainer = Trainer(prepare_run(tmp_path / "votes", cfg, resume=False), tmp_path / "votes", train, valid)
    assert len(trainer.train_x) == len(trainer.train_targets) == (~unreadable).sum()
    angry = train.labels[~unreadable] == 0
    assert np.allclose(trainer.train_targets[angry], [0.85, 0, 0, 0, 0.15, 0, 0])  # half label, half 7:3 votes
    # Neutral gets 3 votes of every face: its weight is the smallest.
    assert trainer.weights.argmin() == CLASSES.index("neutral")
    assert np.allclose((trainer.train_targets @ trainer.weights).mean(), 1.0)
    assert np.array_equal(trainer.valid_y, valid.labels[7:]) and len(trainer.valid_x) == len(valid) - 7
    row = trainer.fit(log=lambda _: None)["history"][-1]
    assert 0.0 <= row["val_acc"] <= 1.0 and row["val_acc_fer2013"] == row["val_acc"]


def test_original_share_without_votes_is_a_one_line_error(tmp_path, capsys):
    from tools.cli import main as facecue_model

    assert facecue_model(["train", "--run", str(tmp_path / "run"),
                          "--train", str(write_patterned_faces(tmp_path / "t.npz", 14, 1)),
                 "--original-share", "0.3"]) == 2
    assert_one_line_error(capsys, "--original-share .* needs --votes")
    assert not (tmp_path / "run").exists()


def test_reframed_faces_are_mixed_in_by_their_share(trained, tmp_path):
    from tools.train.fit import Trainer
    from tools.train.runs import describe_recipe, recipe

    run, _, _ = trained
    data_file = run.parent / "train.npz"
    data = load_faces(data_file)
    reframed = tmp_path / "reframed.npz"
    np.savez(reframed, images=255 - data.images, labels=data.labels.astype(np.uint8), classes=np.array(CLASSES))
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(data_file), epochs=1, batch=32, reframed=str(reframed),
                      reframed_share=0.5, seed=5)
    assert cfg.reframed == (str(reframed),)  # one file, as older configs and recipes name it
    trainer = Trainer(cfg, tmp_path / "mix", data, None)
    own, other = trainer.train_x, load_faces(reframed).preprocessed()
    picked = np.random.default_rng(0).random(64) < 0.5
    assert 10 < picked.sum() < 54
    idx = np.arange(64)
    assert np.array_equal(trainer.framed(idx, np.random.default_rng(0)),
                          np.where(picked[:, None, None], other[idx], own[idx]))
    x, targets, _ = trainer.batch(idx, np.random.default_rng(0))
    assert x.shape == (64, 48, 48, 1)
    assert np.isfinite(float(trainer.train_step(x, targets, targets @ trainer.weights)[0]))
    assert f"0.5 of the faces re-framed as the device frames them (`{tmp_path.name}/reframed.npz`)" in \
        describe_recipe(recipe(cfg))


def test_several_renders_each_give_some_reframed_faces(trained, tmp_path):
    from tools.train.fit import Trainer
    from tools.train.runs import describe_recipe, recipe

    run, _, _ = trained
    data_file = run.parent / "train.npz"
    data = load_faces(data_file)
    renders = []
    for name, images in (("first.npz", 255 - data.images), ("second.npz", data.images // 2)):
        renders.append(tmp_path / name)
        np.savez(renders[-1], images=images, labels=data.labels.astype(np.uint8), classes=np.array(CLASSES))
    cfg = TrainConfig(arch="vgg_elu-tiny", train=str(data_file), epochs=1, batch=32,
                      reframed=[str(r) for r in renders], reframed_share=1.0, seed=5)
    trainer = Trainer(cfg, tmp_path / "mix", data, None)
    first, second = (load_faces(r).preprocessed() for r in renders)
    idx = np.arange(64)
    framed = trainer.framed(idx, np.random.default_rng(0))
    from_first = np.all(framed == first[idx], axis=(1, 2))
    from_second = np.all(framed == second[idx], axis=(1, 2))
    assert np.all(from_first ^ from_second)  # each face from exactly one render
    assert 10 < from_first.sum() < 54
    assert f"(`{tmp_path.name}/first.npz, {tmp_path.name}/second.npz`)" in describe_recipe(recipe(cfg))


def test_reframed_faces_of_other_faces_are_refused(trained, tmp_path, capsys):
    from tools.cli import main as facecue_model

    run, _, _ = trained
    assert facecue_model(["train", "--run", str(tmp_path / "run"), "--train", str(run.parent / "train.npz"),
                 "--reframed", str(run.parent / "valid.npz"), "--reframed-share", "0.5"]) == 1
    assert_one_line_error(capsys, "--reframed .*valid.npz: not the training faces re-framed")
    assert facecue_model(["train", "--run", str(tmp_path / "run"), "--train", str(run.parent / "train.npz"),
                 "--reframed-share", "0.5"]) == 2
    assert_one_line_error(capsys, "--reframed and --reframed-share go together")
    assert not (tmp_path / "run").exists()


def test_missing_warm_start_weights_is_a_one_line_error(tmp_path, capsys):
    from tools.cli import main as facecue_model

    assert facecue_model(["train", "--run", str(tmp_path / "run"),
                          "--train", str(write_patterned_faces(tmp_path / "t.npz", 14, 1)),
                    "--init-weights", str(tmp_path / "nope.h5")]) == 1
    assert_one_line_error(capsys, "--init-weights .*nope.h5: no such file")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,value", [("--cutmix", "1.5"), ("--erase-prob", "-0.1")])
def test_share_outside_zero_to_one_is_a_one_line_error(tmp_path, capsys, flag, value):
    from tools.cli import main as facecue_model

    assert facecue_model(["train", "--run", str(tmp_path / "run"),
                          "--train", str(write_patterned_faces(tmp_path / "t.npz", 14, 1)),
                    flag, value]) == 2
    assert_one_line_error(capsys, f"{flag} {value}: a share of faces, between 0 and 1")
    assert not (tmp_path / "run").exists()


def test_a_run_recorded_with_removed_settings_loads_without_them(tmp_path):
    # Run folders and model JSONs made before an experiment's flag left tools.train still
    # carry its key; a resume, an average or an export of such a run must still read it.
    cfg = TrainConfig(train="t.npz", epochs=3, cutmix=0.5)
    prepare_run(tmp_path, cfg, resume=False)
    recorded = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**recorded, "camera": 0.0, "quant_aware": False,
                                                      "teacher": ""}))
    assert prepare_run(tmp_path, None, resume=True) == cfg


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    run, _, _ = trained
    out = tmp_path_factory.mktemp("models")
    return export_run(run, out, ExportOptions(name="smoke", version="9.9.9-test", calib=64), log=lambda _: None)


def test_export_writes_int8_and_float_with_consistent_metadata(trained, exported):
    _, _, resumed = trained
    assert exported["int8"].name == "smoke_int8.tflite" and exported["float32"].name == "smoke_float32.tflite"
    meta = json.loads(exported["int8_json"].read_text())
    assert meta["sha256"] == sha256_file(exported["int8"])
    assert meta["size"] == exported["int8"].stat().st_size
    assert meta["labels"] == list(CLASSES)
    assert meta["version"] == "9.9.9-test" and meta["arch"] == "vgg_elu-tiny"
    assert meta["params"] == resumed.model.count_params()
    assert meta["training"]["epochs_run"] == 2
    assert meta["input"]["dtype"] == "int8" and meta["input"]["shape"] == [1, 48, 48, 1]
    assert meta["output"]["dtype"] == "int8" and meta["output"]["shape"] == [1, 7]
    assert json.loads(exported["float32_json"].read_text())["input"]["dtype"] == "float32"
    assert sorted(p.name for p in exported["int8"].parent.iterdir()) == sorted(p.name for p in exported.values())


def test_device_interpreter_serves_the_export(trained, exported):
    run, _, _ = trained
    classifier = Classifier(exported["int8"])
    detail = classifier.interpreter.get_input_details()[0]
    meta = classifier.info.meta
    assert (meta["input"]["scale"], meta["input"]["zero_point"]) == pytest.approx(detail["quantization"])
    assert classifier.labels == CLASSES
    valid = load_faces(run.parent / "valid.npz")
    assert evaluate_model(exported["int8"], valid).accuracy == pytest.approx(meta["accuracy"]["valid_int8"])
    faces = valid.preprocessed()
    int8 = predict_probabilities(classifier, faces)
    float32 = predict_probabilities(Classifier(exported["float32"]), faces)
    assert int8.shape == float32.shape == (70, 7)
    assert np.allclose(int8.sum(axis=1), 1.0, atol=0.05)
    assert np.abs(int8 - float32).max() < 0.1


def test_flip_average_export_scores_each_face_and_its_mirror_in_one_file(trained, exported, tmp_path):
    from models.architectures import count_macs
    from tools.data.augment import to_input

    run, _, resumed = trained
    paths = export_run(run, tmp_path, ExportOptions(name="flip", version="9.9.9-test", calib=64, flip_average=True),
                       log=lambda _: None)
    meta = json.loads(paths["int8_json"].read_text())
    assert meta["flip_average"] is True and meta["macs"] == 2 * count_macs(resumed.model)
    assert json.loads(exported["int8_json"].read_text())["flip_average"] is False
    # The weights are stored once: the file is hardly bigger than the plain export.
    assert paths["int8"].stat().st_size < 1.1 * exported["int8"].stat().st_size
    faces = load_faces(run.parent / "valid.npz").preprocessed()[:12]
    x = to_input(faces)
    expected = (resumed.model.predict(x, verbose=0) + resumed.model.predict(x[:, :, ::-1], verbose=0)) / 2
    assert np.allclose(predict_probabilities(Classifier(paths["float32"]), faces), expected, atol=1e-4)
    assert np.abs(predict_probabilities(Classifier(paths["int8"]), faces) - expected).max() < 0.1


@pytest.mark.parametrize("size", sorted(VGG_ELU_SIZES))
def test_every_candidate_size_fits_the_device_file_budget(size):
    """int8 stores about one byte per weight; the wearer's budget is a file of at most 3 MB,
    so a candidate over ~2.9 M parameters could never ship, however well it trained."""
    assert build(f"vgg_elu-{size}").count_params() < 2_900_000


def test_averaged_export_records_its_weights_and_serves_the_averaged_network(trained, tmp_path):
    from tools.data.augment import to_input
    from tools.train.averaging import average_weights, reestimate_batch_norm
    from tools.train.export import representative_faces
    from tools.train.runs import load_run

    run, first, _ = trained
    epoch1 = tmp_path / "epoch1.weights.h5"
    first.model.save_weights(epoch1)  # the stopped trainer still holds its epoch-1 weights
    paths = export_run(run, tmp_path / "out", ExportOptions(name="avg", version="9.9.9-test", calib=64,
                                                            average=(epoch1,), bn_faces=100), log=lambda _: None)
    meta = json.loads(paths["int8_json"].read_text())
    assert meta["training"]["averaged_with"] == {"weights": [str(epoch1)], "bn_faces": 100}
    # The float32 file is the averaged network with re-measured batch norms, not the run's best.
    valid = load_faces(run.parent / "valid.npz")
    faces = valid.preprocessed()
    x = to_input(faces)
    averaged = load_run(run, valid="").model
    best = averaged.predict(x, verbose=0)
    average_weights(averaged, [epoch1])
    reestimate_batch_norm(averaged, representative_faces(load_faces(run.parent / "train.npz"), 100, first.cfg.seed + 1))
    got = predict_probabilities(Classifier(paths["float32"]), faces)
    assert np.allclose(got, averaged.predict(x, verbose=0), atol=1e-4)
    assert not np.allclose(got, best, atol=1e-2)
    assert meta["accuracy"]["valid_int8"] == pytest.approx(evaluate_model(paths["int8"], valid).accuracy)


def test_logit_adjusted_export_divides_by_the_training_prior_to_the_power_tau(trained, tmp_path):
    """The float32 file's probabilities are the run's, divided by prior**tau and renormalised;
    the prior is the training labels' share of each class."""
    from tools.data.augment import to_input
    from tools.train.runs import load_run

    run, _, _ = trained
    paths = export_run(run, tmp_path / "out", ExportOptions(name="adj", version="9.9.9-test", calib=64,
                                                            logit_adjust=0.5), log=lambda _: None)
    meta = json.loads(paths["int8_json"].read_text())
    train = load_faces(run.parent / "train.npz")
    prior = np.bincount(train.labels, minlength=7) / len(train)
    assert meta["training"]["logit_adjustment"]["tau"] == 0.5
    assert list(meta["training"]["logit_adjustment"]["prior"].values()) == pytest.approx(prior, abs=1e-4)
    valid = load_faces(run.parent / "valid.npz")
    plain = load_run(run, valid="").model.predict(to_input(valid.preprocessed()), verbose=0)
    expected = plain / prior ** 0.5
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(predict_probabilities(Classifier(paths["float32"]), valid.preprocessed()), expected, atol=1e-4)


def test_export_of_a_votes_run_scores_the_fer_plus_majority(trained, tmp_path):
    from tools.train.runs import TrainConfig as Config

    run, _, _ = trained
    valid = load_faces(run.parent / "valid.npz")
    votes = write_votes_for(tmp_path / "vv.npz", valid.labels, np.arange(len(valid)) < 10)
    voted = tmp_path / "voted"
    shutil.copytree(run, voted)
    cfg = json.loads((voted / "config.json").read_text())
    (voted / "config.json").write_text(json.dumps({**cfg, "valid_votes": str(votes)}))
    assert Config.from_json(voted / "config.json").valid_votes == str(votes)
    paths = export_run(voted, tmp_path / "out", ExportOptions(name="fp", version="9.9.9-test", calib=64),
                       log=lambda _: None)
    accuracy = json.loads(paths["int8_json"].read_text())["accuracy"]
    relabelled = tmp_path / "relabelled.npz"
    np.savez(relabelled, images=valid.images[10:], labels=valid.labels[10:].astype(np.uint8), classes=np.array(CLASSES))
    assert accuracy["ferplus_n"] == len(valid) - 10
    by_hand = evaluate_model(paths["int8"], load_faces(relabelled)).accuracy
    assert accuracy["ferplus_majority_int8"] == pytest.approx(by_hand)


def test_averaged_export_without_bn_faces_keeps_the_files_averaged_statistics(trained, tmp_path):
    """``--bn-faces 0`` (the epochs of a quant-aware run, whose frozen batch norms the
    int8 rounding was trained around): the file serves the plain average, statistics
    included, not one re-measured on training faces."""
    import keras

    from tools.train.averaging import average_weights
    from tools.train.runs import load_run

    def moving_means(model) -> list[np.ndarray]:
        return [la.get_weights()[2] for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]

    run, first, _ = trained
    epoch1 = tmp_path / "epoch1.weights.h5"
    first.model.save_weights(epoch1)
    paths = export_run(run, tmp_path / "out", ExportOptions(name="avg0", version="9.9.9-test", calib=64,
                                                            average=(epoch1,), bn_faces=0), log=lambda _: None)
    assert json.loads(paths["float32_json"].read_text())["training"]["averaged_with"]["bn_faces"] == 0
    expected = load_run(run, valid="").model
    halves = [(a + b) / 2 for a, b in zip(moving_means(expected), moving_means(first.model), strict=True)]
    average_weights(expected, [epoch1])
    assert all(np.allclose(got, want, atol=1e-6) for got, want in zip(moving_means(expected), halves, strict=True))
    faces = load_faces(run.parent / "valid.npz").preprocessed()
    got = predict_probabilities(Classifier(paths["float32"]), faces)
    assert np.allclose(got, expected.predict(to_input(faces), verbose=0), atol=1e-4)


def test_export_with_missing_average_weights_is_a_one_line_error_and_writes_nothing(trained, tmp_path, capsys):
    from tools.cli import main as facecue_model

    run, _, _ = trained
    missing = tmp_path / "nope.weights.h5"
    assert facecue_model(["export", "--run", str(run), "--out", str(tmp_path / "out"), "--calib", "16",
                 "--average", str(missing)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"facecue: error: weights file {missing} not found"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("flag,value,least", [("--epochs", "0", 1), ("--batch", "0", 1), ("--limit", "-1", 0)])
def test_a_count_below_its_least_is_a_one_line_error(tmp_path, capsys, flag, value, least):
    """Refused before a run folder is made, not found as a traceback once training ends."""
    from tools.cli import main as facecue_model

    assert facecue_model(["train", "--run", str(tmp_path / "run"),
                          "--train", str(write_patterned_faces(tmp_path / "t.npz", 14, 1)),
                    flag, value]) == 2
    assert_one_line_error(capsys, f"{flag} {value}: at least {least}")
    assert not (tmp_path / "run").exists()


def test_negative_keep_from_is_a_one_line_error(tmp_path, capsys):
    from tools.cli import main as facecue_model

    assert facecue_model(["train", "--run", str(tmp_path / "run"),
                          "--train", str(write_patterned_faces(tmp_path / "t.npz", 14, 1)),
                    "--keep-from", "-3"]) == 2
    assert_one_line_error(capsys, "--keep-from -3: an epoch number, or 0 to keep none")
    assert not (tmp_path / "run").exists()
