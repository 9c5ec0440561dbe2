"""``facecue-model eval``: exact last line, numbers that match a direct computation, clean errors.

Uses the shipped model (skipped when it is absent) on a small generated
fixture, so no shared data is needed; TensorFlow is never imported.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.classify import Classifier
from device.preprocess import preprocess_face
from tools.cli import main as facecue_model
from tools.eval.evaluate import main
from tools.eval.metrics import PairedComparison, confidence_table, paired_comparison, score

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^accuracy (\d\.\d{4}) macro_f1 (\d\.\d{4}) n (\d+)$")
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def fixture_faces(n: int = 84, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """64x64 blotchy faces of varied contrast (so the device's resize and equalisation
    both act) and round-robin labels."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, 16, 16))
    images = np.stack([np.kron(b, np.ones((4, 4))) for b in base]) * rng.uniform(20, 60, (n, 1, 1)) + 120
    return images.clip(0, 255).astype(np.uint8), (np.arange(n) % len(CLASSES)).astype(np.uint8)


@pytest.fixture(scope="module")
def fixture_npz(tmp_path_factory) -> Path:
    images, labels = fixture_faces()
    path = tmp_path_factory.mktemp("eval") / "faces.npz"
    np.savez(path, images=images, labels=labels, classes=np.array(CLASSES))
    return path


def macro_f1_by_hand(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    f1s = []
    for c in range(k):
        tp = np.sum((pred == c) & (truth == c))
        fp, fn = np.sum((pred == c) & (truth != c)), np.sum((pred != c) & (truth == c))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s))


def last_line(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out.rstrip("\n").splitlines()[-1]


def test_last_line_is_exact_and_matches_a_direct_computation(fixture_npz, model_path, capsys):
    line = last_line(["--data", str(fixture_npz), "--model", str(model_path)], capsys)
    m = LINE.match(line)
    assert m, line
    images, labels = fixture_faces()
    classifier = Classifier(model_path)
    pred = classifier.probabilities(np.stack([preprocess_face(img) for img in images])).argmax(axis=1)
    assert m.group(1) == f"{np.mean(pred == labels):.4f}"
    assert m.group(2) == f"{macro_f1_by_hand(labels, pred, len(CLASSES)):.4f}"
    assert m.group(3) == str(len(labels))


def test_classes_are_matched_by_name_not_position(fixture_npz, model_path, tmp_path, capsys):
    """An npz listing its classes in another order scores the same."""
    images, labels = fixture_faces()
    order = np.array([6, 0, 5, 1, 4, 2, 3])  # new position of each class
    shuffled = tmp_path / "shuffled.npz"
    np.savez(shuffled, images=images, labels=order[labels].astype(np.uint8),
             classes=np.array(CLASSES)[np.argsort(order)])
    assert last_line(["--data", str(shuffled), "--model", str(model_path)], capsys) == \
        last_line(["--data", str(fixture_npz), "--model", str(model_path)], capsys)


def test_against_prints_the_paired_comparison_of_the_two_models_answers(fixture_npz, model_path, capsys):
    """``--against`` compares the shipped int8 file with its float32 twin face by face; the
    counts are those of the two interpreters' own answers, and the last line stays --model's."""
    float_path = model_path.with_name("facecue_vgg_elu_float32.tflite")
    if not float_path.is_file():
        pytest.skip(f"{float_path.name} is absent")
    images, labels = fixture_faces()
    faces = np.stack([preprocess_face(img) for img in images])
    pred = {p: Classifier(p).probabilities(faces).argmax(axis=1) for p in (model_path, float_path)}

    assert main(["--data", str(fixture_npz), "--model", str(model_path), "--against", str(float_path)]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert lines[-3] == f"against {float_path}: {score(labels, pred[float_path], CLASSES).summary_line()}"
    assert lines[-2] == paired_comparison(pred[model_path] == labels, pred[float_path] == labels).line()
    assert lines[-1] == score(labels, pred[model_path], CLASSES).summary_line()


def test_paired_comparison_counts_only_the_faces_the_models_disagree_on():
    new = np.array([1, 1, 1, 0, 0, 1, 0], bool)
    old = np.array([1, 0, 0, 0, 1, 1, 0], bool)
    assert paired_comparison(new, old) == PairedComparison(only_new=2, only_old=1)
    with pytest.raises(ValueError, match="not the same faces"):
        paired_comparison(new, old[:-1])


@pytest.mark.parametrize("only_new, only_old, z, p", [
    (10, 2, 8 / np.sqrt(12), 2 * (1 + 12 + 66) / 2**12),  # exact binomial tail, by hand
    (2, 10, -8 / np.sqrt(12), 2 * (1 + 12 + 66) / 2**12),
    (5, 5, 0.0, 1.0),
    (0, 0, 0.0, 1.0),                                      # identical answers: no evidence either way
    (400, 300, 100 / np.sqrt(700), None),
])
def test_paired_comparison_z_and_exact_p(only_new, only_old, z, p):
    c = PairedComparison(only_new, only_old)
    assert c.z == pytest.approx(z)
    if p is not None:
        assert c.p_value == pytest.approx(p)
    else:  # large counts: the exact p is near the continuity-corrected normal approximation
        from math import erfc
        corrected = (abs(only_new - only_old) - 1) / np.sqrt(only_new + only_old)
        assert c.p_value == pytest.approx(erfc(corrected / np.sqrt(2)), rel=0.05)
        assert c.p_value < 0.001


def test_confidence_table_counts_the_faces_at_or_above_each_threshold():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.2, 0.8], [0.5, 0.5]])
    truth = np.array([0, 1, 1, 0, 0])  # right, wrong, right, wrong, right (a tie goes to class 0)
    rows = confidence_table(truth, probs, (0.0, 0.55, 0.8, 0.95)).splitlines()
    assert rows[1].split() == [">=", "0.00", "100.0%", "0.6000"]
    assert rows[2].split() == [">=", "0.55", "80.0%", "0.5000"]  # 0.9 0.6 0.55 0.8
    assert rows[3].split() == [">=", "0.80", "40.0%", "0.5000"]
    assert rows[4].split() == [">=", "0.95", "0.0%", "-"]


def test_eval_prints_accuracy_at_the_device_s_confidence_threshold(fixture_npz, model_path, capsys):
    from device.config import DecideConfig

    assert main(["--data", str(fixture_npz), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out
    threshold = DecideConfig().min_confidence
    assert f"min_confidence is {threshold}" in out
    assert any(line.startswith(f">= {threshold:.2f} ") for line in out.splitlines())


def test_macro_f1_weights_every_class_equally():
    truth = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    s = score(truth, pred, ("common", "rare"))
    assert s.accuracy == pytest.approx(0.9)
    assert list(s.recall) == pytest.approx([1.0, 0.5])
    assert s.macro_f1 == pytest.approx(macro_f1_by_hand(truth, pred, 2)) == pytest.approx((16 / 17 + 2 / 3) / 2)
    assert s.confusion.tolist() == [[8, 0], [1, 1]]


@pytest.mark.parametrize("content, message", [(b"not a zip", "not a readable npz"), (None, "no such data file")])
def test_bad_data_file_is_one_line_and_exit_1(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    if content is not None:
        path.write_bytes(content)
    assert facecue_model(["eval", "--data", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("facecue: error: ") and message in out.err and out.err.count("\n") == 1


def test_unknown_class_and_missing_model_exit_1(fixture_npz, tmp_path, model_path, capsys):
    images, labels = fixture_faces(14)
    odd = tmp_path / "odd.npz"
    np.savez(odd, images=images, labels=labels % 2, classes=np.array(["happy", "bored"]))
    assert facecue_model(["eval", "--data", str(odd), "--model", str(model_path)]) == 1
    assert "bored" in capsys.readouterr().err
    assert facecue_model(["eval", "--data", str(fixture_npz), "--model", str(tmp_path / "none.tflite")]) == 1
    assert "none.tflite" in capsys.readouterr().err
    old = tmp_path / "old.tflite"
    against_missing = ["eval", "--data", str(fixture_npz), "--model", str(model_path), "--against", str(old)]
    assert facecue_model(against_missing) == 1
    out = capsys.readouterr()
    assert out.out == "" and "old.tflite" in out.err and out.err.count("\n") == 1


def test_eval_runs_without_tensorflow(fixture_npz, model_path):
    code = ("import sys; from tools.eval.evaluate import main; rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "--data", str(fixture_npz), "--model", str(model_path)],
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert LINE.match(done.stdout.splitlines()[-1])


def test_shipped_metadata_states_what_eval_measures_on_the_shared_validation_split(valid_faces, model_path):
    """The accuracy in the committed JSON is the one the wearer's own path gives (skipped without
    ../shared): a re-export that forgot the JSON, or a JSON copied from another file, fails here."""
    from device.classify import read_model_info
    from tools.eval.evaluate import evaluate_model

    accuracy = read_model_info(model_path).meta["accuracy"]
    scores = evaluate_model(model_path, valid_faces)
    assert scores.n == accuracy["n_valid"] == 3589
    assert scores.accuracy == pytest.approx(accuracy["valid_int8"], abs=1e-9)
    assert scores.macro_f1 == pytest.approx(accuracy["macro_f1_int8"], abs=1e-9)


def test_detect_scores_photos_through_the_detector_and_counts_a_miss_wrong(astronaut, coffee, model_path, tmp_path,
                                                                           capsys):
    """Photos: her face at three sizes on a real scene, and one scene with nobody (a miss)."""
    from tests.photos import place

    photos = [place(astronaut, coffee, s, (150, 60)) for s in (0.8, 1.0, 1.2)] + [coffee]
    path = tmp_path / "photos.npz"
    np.savez(path, images=np.stack(photos), labels=np.array([3, 3, 3, 3], np.uint8), classes=np.array(CLASSES))
    assert main(["--detect", "--data", str(path), "--model", str(model_path)]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert lines[-2] == "found 3 of 4"
    m = LINE.match(lines[-1])
    assert m and m.group(3) == "4"
    classifier = Classifier(model_path)
    from device.config import DetectConfig
    from device.tracker import tracker_from_config

    tracker = tracker_from_config(DetectConfig())
    right = sum(classifier.classify(classifier.preprocess(p, tracker.settle(p))).best[0] == "happy"
                for p in photos[:3])
    assert float(m.group(1)) == pytest.approx(right / 4, abs=1e-4)  # the photo with no face counts wrong
    on_found = next(line for line in lines if line.startswith("on the faces found:"))
    assert on_found.endswith("n 3") and f"accuracy {right / 3:.4f}" in on_found


def test_detect_reads_photos_of_different_sizes(astronaut, coffee, model_path, tmp_path, capsys):
    photos = np.empty(2, dtype=object)
    photos[0], photos[1] = astronaut, cv2.cvtColor(coffee, cv2.COLOR_BGR2GRAY)
    path = tmp_path / "mixed.npz"
    np.savez(path, images=photos, labels=np.array([3, 4], np.uint8), classes=np.array(CLASSES))
    assert main(["--detect", "--method", "haar", "--data", str(path), "--model", str(model_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-2] == "found 1 of 2"


def test_photos_without_detect_are_refused_in_one_line(coffee, model_path, tmp_path, capsys):
    path = tmp_path / "photos.npz"
    np.savez(path, images=np.stack([coffee[:, :, 0]] * 2), labels=np.array([3, 4], np.uint8),
             classes=np.array(CLASSES))
    assert facecue_model(["eval", "--data", str(path), "--model", str(model_path)]) == 1
    err = capsys.readouterr().err
    assert err == f"facecue: error: {path}: images are 640x480 photos, not face crops; add --detect to find the " \
                  "faces in them\n"


def test_width_table_rows_by_hand():
    from tools.eval.evaluate import width_table

    widths = np.array([65, 90, 120, 170, 220, 230])
    truth = np.array([0, 1, 2, 3, 4, 5])
    device = np.array([0, -1, 2, 1, 4, -1])  # -1: no face found
    boxed = np.array([0, 1, 1, 3, 4, 5])
    rows = [line.split() for line in width_table(truth, device, boxed, widths).splitlines()[1:]]
    assert rows == [["60-79", "1", "1", "1.0000", "1.0000"],
                    ["80-99", "1", "0", "-", "-"],
                    ["100-149", "1", "1", "1.0000", "0.0000"],
                    ["150-199", "1", "1", "0.0000", "1.0000"],
                    [">=", "200", "2", "1", "1.0000", "1.0000"],  # only found faces count in both columns
                    ["all", "6", "4", "0.7500", "0.7500"]]


def test_detect_on_a_scene_set_compares_the_device_crop_with_the_paste_box(astronaut, coffee, model_path,
                                                                           tmp_path, capsys):
    """A file with ``boxes`` gets the table by width; the paste-box column is the model on each
    found face cut from its recorded box as a training face is cut."""
    from tests.photos import place

    photos = [place(astronaut, coffee, s, (150, 60)) for s in (0.8, 1.0, 1.2)] + [coffee]
    boxes = np.array([[300, 100, 80, 90], [320, 110, 100, 110], [340, 130, 120, 120], [10, 10, 100, 100]])
    path = tmp_path / "scenes.npz"
    np.savez(path, images=np.stack(photos), labels=np.array([3, 3, 3, 3], np.uint8), classes=np.array(CLASSES),
             boxes=boxes)
    assert main(["--detect", "--data", str(path), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index(next(line for line in out if line.startswith("by face width"))) + 1:]
    all_row = next(line.split() for line in table if line.split()[0] == "all")
    classifier = Classifier(model_path)
    boxed_right = sum(classifier.classify(classifier.preprocess(p[y:y + h, x:x + w])).best[0] == "happy"
                      for p, (x, y, w, h) in zip(photos[:3], boxes[:3], strict=True))
    assert all_row[:3] == ["all", "4", "3"]
    assert all_row[4] == f"{boxed_right / 3:.4f}"


@pytest.mark.parametrize("boxes, message", [
    (np.zeros((1, 4), np.int64), r"boxes must be integer \(N, 4\)"),
    (np.zeros((2, 4), np.float32), r"boxes must be integer \(N, 4\)"),
    (np.array([[0, 0, 10, 10], [600, 0, 50, 10]]), r"box 1 \(600, 0, 50, 10\) does not lie inside its 640x480"),
])
def test_bad_face_boxes_are_refused_in_one_line(coffee, tmp_path, boxes, message):
    from tools.data.dataset import DatasetError, load_photos

    path = tmp_path / "photos.npz"
    np.savez(path, images=np.stack([coffee] * 2), labels=np.array([3, 4], np.uint8), classes=np.array(CLASSES),
             boxes=boxes)
    with pytest.raises(DatasetError, match=message):
        load_photos(path)
    np.savez(path, images=np.stack([coffee] * 2), labels=np.array([3, 4], np.uint8), classes=np.array(CLASSES))
    assert load_photos(path).boxes is None


def write_photo_folder(folder: Path, photos: list[tuple[str, np.ndarray, str, str]]) -> Path:
    """A folder of JPEG photos and its labels.csv (file, label, performer)."""
    (folder / "photos").mkdir(parents=True)
    lines = ["file,label,performer"]
    for name, image, label, person in photos:
        cv2.imwrite(str(folder / "photos" / name), image)
        lines.append(f"photos/{name},{label},{person}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_a_folder_of_labelled_photos_scores_as_its_npz_would(astronaut, coffee, model_path, tmp_path, capsys):
    from tests.photos import place

    photos = [place(astronaut, coffee, s, (150, 60)) for s in (0.8, 1.0, 1.2)] + [coffee]
    folder = write_photo_folder(tmp_path / "set", [(f"p{i}.jpg", p, "happy", "ann" if i < 2 else "bob")
                                                   for i, p in enumerate(photos)])
    decoded = [cv2.imread(str(folder / "photos" / f"p{i}.jpg")) for i in range(4)]  # JPEG, as the folder holds them
    npz = tmp_path / "same.npz"
    np.savez(npz, images=np.stack(decoded), labels=np.full(4, 3, np.uint8), classes=np.array(CLASSES))
    assert main(["--detect", "--data", str(npz), "--model", str(model_path)]) == 0
    from_npz = capsys.readouterr().out.splitlines()
    assert main(["--detect", "--data", str(folder), "--model", str(model_path)]) == 0
    from_folder = capsys.readouterr().out.splitlines()
    assert from_folder[-2:] == from_npz[-2:] and from_folder[-2] == "found 3 of 4"
    spread = next(line for line in from_folder if line.startswith("by performer"))
    assert spread.startswith("by performer (2): lowest ") and "(bob)" in spread  # bob's photo 3 has nobody in it


def test_a_folder_with_rater_columns_scores_where_raters_saw_the_posed_expression(astronaut, coffee, model_path,
                                                                                    tmp_path, capsys):
    """Three photos posed happy: raters saw happy on two, sad on one; a neutral photo the
    raters could not call neutral is left out of the raters' table."""
    from tests.photos import place

    photo = place(astronaut, coffee, 1.0, (150, 60))
    folder = write_photo_folder(tmp_path / "set", [(f"p{i}.jpg", photo, label, "ann")
                                                   for i, label in enumerate(["happy"] * 3 + ["neutral"])])
    (folder / "labels.csv").write_text("file,label,obs_happy,obs_sad\n"
                                       "photos/p0.jpg,happy,0.9,0.1\nphotos/p1.jpg,happy,0.6,0.4\n"
                                       "photos/p2.jpg,happy,0.2,0.8\nphotos/p3.jpg,neutral,0.5,0.5\n")
    assert main(["--detect", "--data", str(folder), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index("by the photos' raters (labels.csv obs_*), where they could choose the posed "
                          "expression") + 2:]
    happy = next(line for line in out if line.startswith("happy     recall"))
    said_happy = int(re.search(r"\((\d+)/3\)", happy)[1])  # the same photo three times: 0 or 3
    assert table[0].split()[:3] == ["happy", "2/3", "66.7%"]
    assert table[0].split()[3] == ("2/2" if said_happy == 3 else "0/2")
    assert not table[1].startswith("neutral")


@pytest.mark.parametrize("table,message", [
    (None, "no labels.csv"),
    ("file,label,obs_happy\nphotos/p0.jpg,happy,lots\n", "line 2: obs_happy 'lots' is not a share of raters"),
    ("name,expression\nphotos/p0.jpg,happy\n", "needs a header with file and label"),
    ("file,label\nphotos/nope.jpg,happy\n", "line 2: no such photo photos/nope.jpg"),
    ("file,label\n../outside.jpg,happy\n", "line 2: ../outside.jpg lies outside"),
    ("file,label\nphotos/empty.jpg,happy\n", "line 2: photos/empty.jpg is empty"),
    ("file,label\nphotos/text.jpg,happy\n", "line 2: photos/text.jpg is not an image"),
    ("file,label\nphotos/p0.jpg,\n", "line 2: no file or no label"),
])
def test_a_bad_photo_folder_is_one_line_and_exit_1(coffee, model_path, tmp_path, capsys, table, message):
    folder = write_photo_folder(tmp_path / "set", [("p0.jpg", coffee, "happy", "ann")])
    (folder / "photos" / "empty.jpg").write_bytes(b"")
    (folder / "photos" / "text.jpg").write_text("not a picture")
    (tmp_path / "outside.jpg").write_bytes((folder / "photos" / "p0.jpg").read_bytes())
    (folder / "labels.csv").unlink()
    if table is not None:
        (folder / "labels.csv").write_text(table)
    assert facecue_model(["eval", "--detect", "--data", str(folder), "--model", str(model_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("facecue: error: ") and message in err, err


def test_a_folder_without_detect_is_refused_in_one_line(coffee, model_path, tmp_path, capsys):
    folder = write_photo_folder(tmp_path / "set", [("p0.jpg", coffee, "happy", "ann")])
    assert facecue_model(["eval", "--data", str(folder), "--model", str(model_path)]) == 2  # asked wrongly
    assert capsys.readouterr().err == f"facecue: error: {folder} is a folder of photos: add --detect to find " \
                                      "the faces in them\n"


def test_votes_score_against_the_fer_plus_majority(fixture_npz, model_path, tmp_path, capsys):
    """Relabel the fixture by votes: rows the raters could not read drop out, the rest take
    the majority; the last line equals scoring an npz holding those labels."""
    names = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
    with np.load(fixture_npz) as data:
        images, labels = data["images"], data["labels"]
    votes = np.zeros((len(labels), 10), np.float32)
    votes[:, names.index("happiness")] = 6
    votes[:, names.index("sadness")] = 4
    votes[::3] = 0
    votes[::3, names.index("unknown")] = 10
    votes_file = tmp_path / "votes.npz"
    np.savez(votes_file, votes=votes, vote_names=np.array(names))
    kept = np.ones(len(labels), bool)
    kept[::3] = False
    relabelled = tmp_path / "relabelled.npz"
    np.savez(relabelled, images=images[kept], labels=np.full(kept.sum(), 3, np.uint8), classes=np.array(CLASSES))
    line = last_line(["--data", str(fixture_npz), "--votes", str(votes_file), "--model", str(model_path)], capsys)
    assert line == last_line(["--data", str(relabelled), "--model", str(model_path)], capsys)
    assert line.endswith(f"n {kept.sum()}")


def test_eval_without_data_uses_facecue_data_or_says_what_it_needs(tmp_path):
    """`facecue-model eval` with no --data reads $FACECUE_DATA/valid.npz as the docs say; with none
    there it names the variable, the folder and the files it needs, in one line after the usage."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "FACECUE_DATA": str(tmp_path)}
    run = [sys.executable, "-m", "tools.cli", "eval"]  # facecue-model eval
    missing = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        f"facecue: error: no valid.npz in $FACECUE_DATA ({tmp_path}): give --data, or set FACECUE_DATA to a folder "
        "with FER2013's faces as train.npz and valid.npz (see docs/development.md, \"The data\")")

    images, labels = fixture_faces(14)
    np.savez(tmp_path / "valid.npz", images=images, labels=labels, classes=np.array(CLASSES))
    found = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert found.returncode == 0, found.stderr
    assert f" on {tmp_path / 'valid.npz'}" in found.stdout.splitlines()[0]
