"""``facecue-train run``: a miniature recipe of every stage kind runs end to end, skips what is
done on a rerun, resumes a cut training stage, and refuses a changed declaration.

Generated faces train a ``vgg_elu-tiny`` net; the validation faces are crops of a real
face (scikit-image's astronaut), so the calibrate stage's detector finds them in scenes.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from device.classify import Classifier, read_model_info  # noqa: E402
from tests.photos import astronaut  # noqa: E402
from tests.test_training import CLASSES, write_patterned_faces, write_votes_for  # noqa: E402
from tools.data.dataset import load_faces  # noqa: E402
from tools.train.fit import run_training  # noqa: E402
from tools.train.recipe import RecipeError, Runner, read_recipe  # noqa: E402
from tools.train.runs import TrainConfig, prepare_run  # noqa: E402

TINY = 'arch = "vgg_elu-tiny", batch = 32, warmup_epochs = 0.0, lr = 0.02'
RECIPE = f"""
name = "mini"
version = "0.0.1"
folder = "runs/recipe"

[data]
train = "train.npz"
valid = "valid.npz"

[[stage]]
name = "first"
kind = "train"
config = {{ {TINY}, epochs = 2, seed = 1, keep_from = 1 }}

[[stage]]
name = "soup"
kind = "average"
members = ["first:best", "first:1-2"]
bn_faces = 64

[[stage]]
name = "aligned"
kind = "align"
in_scenes = true
seed = 4

[[stage]]
name = "second"
kind = "train"
init = "soup"
reframed = "aligned"
votes = true
config = {{ {TINY}, epochs = 2, seed = 2, keep_from = 1, reframed_share = 0.5 }}

[[stage]]
name = "export"
kind = "export"
run = "second"
members = ["soup", "second:1-2"]
bn_faces = 64
logit_adjust = 0.5
out = "models"

[[stage]]
name = "calibrate"
kind = "calibrate"
run = "export"
n = 12
seed = 0
votes = true
"""


def write_real_face_crops(path: Path, n: int) -> Path:
    """``n`` 48x48 grey crops of one real face, slightly shifted, with labels of every class."""
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY)
    crops = [cv2.resize(grey[20 + d:160 + d, 110 + d:250 + d], (48, 48), interpolation=cv2.INTER_AREA)
             for d in np.arange(n) % 8]
    np.savez(path, images=np.stack(crops), labels=(np.arange(n) % len(CLASSES)).astype(np.uint8),
             classes=np.array(CLASSES))
    return path


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A checkout with the mini recipe, its data and the data's FER+ votes (FACECUE_VOTES)."""
    root = tmp_path_factory.mktemp("checkout")
    for folder in ("models", "data", "votes"):
        (root / folder).mkdir()
    write_patterned_faces(root / "data" / "train.npz", 160, 1)
    write_real_face_crops(root / "data" / "valid.npz", 28)
    for split in ("train", "valid"):
        labels = load_faces(root / "data" / f"{split}.npz").labels
        write_votes_for(root / "votes" / f"{split}.npz", labels, np.arange(len(labels)) % 9 == 0)
    (root / "models" / "mini.recipe.toml").write_text(RECIPE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACECUE_VOTES", str(root / "votes"))
        yield root


def test_a_recipe_runs_every_stage_and_a_rerun_skips_them(checkout):
    recipe = read_recipe(checkout / "models" / "mini.recipe.toml")
    # A training stage cut off after its first epoch, as a session's end would leave it.
    first = recipe.stage_dir("first")
    cfg = TrainConfig(arch="vgg_elu-tiny", batch=32, warmup_epochs=0.0, lr=0.02, epochs=2, seed=1, keep_from=1,
                      train=str(checkout / "data" / "train.npz"), valid=str(checkout / "data" / "valid.npz"))
    prepare_run(first, cfg, resume=False)
    run_training(cfg, first, stop_after=1, log=lambda _: None)

    lines: list[str] = []
    Runner(recipe, checkout / "data", log=lines.append).run()
    assert any(line.startswith(f"resumed {first} at epoch 1") for line in lines)
    for stage in recipe.stages:
        assert (recipe.stage_dir(stage["name"]) / "stage.json").is_file()
    int8 = checkout / "models" / "mini_int8.tflite"
    info = read_model_info(int8)
    assert info.version == "0.0.1" and info.preprocessing["crop"] == "aligned"
    assert info.meta["training"]["weights"] == str(recipe.stage_dir("soup") / "averaged.weights.h5")
    assert info.meta["training"]["averaged_with"]["weights"] == [
        str(recipe.stage_dir("second") / "epochs" / f"epoch00{e}.weights.h5") for e in (1, 2)]
    second = TrainConfig.from_json(recipe.stage_dir("second") / "config.json")
    assert (second.votes, second.valid_votes) == (str(checkout / "votes" / "train.npz"),
                                                  str(checkout / "votes" / "valid.npz"))
    assert info.meta["training"]["logit_adjustment"]["tau"] == 0.5 and "ferplus_majority_int8" in info.meta["accuracy"]
    assert info.meta["calibration"]["fitted_on"].endswith("FER+ majority)")
    temperature = json.loads((recipe.stage_dir("calibrate") / "stage.json").read_text())["outputs"]["temperature"]
    assert info.temperature == temperature["int8"] and 0.2 <= info.temperature <= 4.0
    probs = Classifier(int8).probabilities(np.zeros((2, 48, 48), np.uint8))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    rerun: list[str] = []
    Runner(recipe, checkout / "data", log=rerun.append).run()
    assert rerun == [f"stage {s['name']}: done, skipped" for s in recipe.stages]


def test_a_changed_stage_is_refused_not_reused(checkout, tmp_path):
    if not (checkout / "runs" / "recipe" / "first" / "stage.json").is_file():
        pytest.skip("needs the finished recipe of the test before")
    changed = checkout / "models" / "changed.recipe.toml"
    changed.write_text(RECIPE.replace("epochs = 2, seed = 1", "epochs = 3, seed = 1"))
    with pytest.raises(RecipeError, match="stage first ran with another declaration"):
        Runner(read_recipe(changed), checkout / "data", log=lambda _: None).run()


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.replace('kind = "average"', 'kind = "blend"'), "kind must be one of"),
    (lambda r: r.replace('init = "soup"', 'init = "later"'), "draws on 'later', which is not an earlier stage"),
    (lambda r: r.replace('reframed = "aligned"', 'reframed = ["aligned", "export"]'),
     "draws on 'export', which is not an earlier stage"),
    (lambda r: r.replace('"first:1-2"', '"first:1..2"'), "must read STAGE, STAGE:best or STAGE:FIRST-LAST"),
    (lambda r: r.replace("seed = 2,", "sede = 2,"), "unknown training settings \\['sede'\\]"),
    (lambda r: r.replace('name = "soup"', 'name = "first"'), "needs a unique name"),
    (lambda r: r.replace("[data]", "[dta]"), "lacks 'data'"),
    (lambda r: r + "\n[[[", "not a readable TOML recipe"),
])
def test_a_bad_recipe_is_one_line_before_anything_runs(tmp_path, edit, message):
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "bad.toml"
    path.write_text(edit(RECIPE))
    with pytest.raises(RecipeError, match=message):
        read_recipe(path)


def test_facecue_train_run_reports_a_missing_recipe_in_one_line(tmp_path, capsys):
    from tools.cli import main  # facecue-train and facecue-model

    assert main(["run", str(tmp_path / "none.toml")]) == 1  # an input file missing: a run-time failure
    assert capsys.readouterr().err.strip() == f"facecue: error: {tmp_path / 'none.toml'}: No such file or directory"
