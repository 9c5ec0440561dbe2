"""facecue-model run RECIPE.toml: make a shipped model from the checkout, every stage declared.

    facecue-model run models/facecue_vgg_elu.recipe.toml [--data DIR] [--until STAGE]

A recipe lists stages in order; each writes into ``<folder>/<stage name>/``
and finishes by writing ``stage.json`` there (its declaration and outputs).
A rerun skips every finished stage whose declaration is unchanged, and a
training stage cut off mid-way resumes from its last epoch checkpoint, so
an interrupted run goes on where it stopped. A finished stage whose
declaration has since changed is refused with one line rather than silently
reused: delete its folder to run it again.

Stage kinds (``kind = ...``):

``align``      the training and validation faces re-framed by their landmarks
               (``tools.data.align_faces``; with ``in_scenes = true`` and ``seed``, cut
               from real scenes as the device cuts them): ``train.npz``, ``valid.npz``.
``train``      ``tools.train`` with the settings in ``[stage.config]``; ``init``
               names the stage whose weights it starts from, ``reframed`` the
               ``align`` stage (or a list of them: renders with other seeds) whose
               faces it mixes in; ``votes = true`` trains on the FER+ votes of the
               data files and picks the best epoch by their majority.
``average``    the mean of ``members`` (``"STAGE:best"``, ``"STAGE:24-32"`` for
               kept epochs, ``"STAGE"`` for what a stage hands on; a member named
               twice counts twice), batch norms re-estimated on ``bn_faces``
               training faces: ``averaged.weights.h5``.
``export``     ``tools.train.export`` of ``run`` with its ``members`` averaged, at the
               recipe's ``name`` and ``version``, into ``out`` (``logit_adjust``: its tau).
``calibrate``  validation faces composited into real scenes (``tools.data.scenes fer``,
               ``n`` and ``seed``), and each exported model's temperature fitted
               on them and written into its JSON (``tools.eval.calibrate``; with
               ``votes = true`` against the FER+ majority).

Data files are named relative to the data folder: ``--data``, else the
``FACECUE_DATA`` environment variable, else ``../shared/data/fer2013``; their
FER+ votes, of the same file names, in ``FACECUE_VOTES``, else ``../shared/data/ferplus``.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.files import write_atomic
from device.argparser import Parser
from tools.data.align_faces import main as align
from tools.data.dataset import DatasetError, data_dir, load_faces
from tools.data.ferplus import votes_path_for
from tools.data.scenes import main as scenes
from tools.eval.calibrate import main as calibrate
from tools.train.averaging import average_weights, reestimate_batch_norm
from tools.train.export import ExportOptions, export_run, representative_faces
from tools.train.fit import run_training
from tools.train.runs import TrainConfig, prepare_run

KINDS = ("align", "train", "average", "export", "calibrate")
STAGE_FILE = "stage.json"
MEMBER = re.compile(r"^(?P<stage>[\w.-]+)(?::(?:(?P<best>best)|(?P<first>\d+)-(?P<last>\d+)))?$")


class RecipeError(ValueError):
    """A recipe that cannot be run as written, in one line: the recipe is the run's
    config, so the person asked wrongly (exit 2); a missing data file is a DatasetError."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    path: Path
    checkout: Path  # the repository the recipe belongs to (it lives in its models/)
    name: str
    version: str
    folder: Path
    train: str
    valid: str
    stages: tuple[dict[str, Any], ...]

    def stage_dir(self, stage: str) -> Path:
        return self.folder / stage


def read_recipe(path: Path) -> Recipe:
    """Parse and check a recipe: every stage has a known kind and a unique name, and
    every stage it draws on comes before it."""
    text = path.read_bytes()  # a missing or unreadable recipe is an OSError: a run-time failure
    try:
        raw = tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: not a readable TOML recipe ({exc})") from None
    for key in ("name", "version", "folder", "data", "stage"):
        if key not in raw:
            raise RecipeError(f"{path}: lacks {key!r}")
    data = raw["data"]
    if not (isinstance(data, dict) and isinstance(data.get("train"), str) and isinstance(data.get("valid"), str)):
        raise RecipeError(f"{path}: [data] must name train and valid files")
    seen: list[str] = []
    for i, stage in enumerate(raw["stage"]):
        name = stage.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name) or name in seen:
            raise RecipeError(f"{path}: stage {i + 1} needs a unique name of letters, digits, '.', '_', '-'")
        if stage.get("kind") not in KINDS:
            raise RecipeError(f"{path}: stage {name}: kind must be one of {', '.join(KINDS)}")
        for ref in depends_on(stage):
            if ref not in seen:
                raise RecipeError(f"{path}: stage {name} draws on {ref!r}, which is not an earlier stage")
        if stage["kind"] == "train":
            known = {f.name for f in dataclasses.fields(TrainConfig)} - {"train", "valid", "init_weights", "reframed",
                                                                         "votes", "valid_votes"}
            unknown = set(stage.get("config", {})) - known
            if unknown:
                raise RecipeError(f"{path}: stage {name}: unknown training settings {sorted(unknown)}")
        seen.append(name)
    checkout = path.resolve().parent.parent
    return Recipe(path, checkout, str(raw["name"]), str(raw["version"]), checkout / raw["folder"], data["train"],
                  data["valid"], tuple(raw["stage"]))


def depends_on(stage: dict[str, Any]) -> list[str]:
    """Names of the stages ``stage`` reads from."""
    refs = [name for key in ("init", "reframed", "run") for name in stage_names(stage.get(key))]
    for member in stage.get("members", []):
        match = MEMBER.match(str(member))
        if not match:
            raise RecipeError(f"stage {stage.get('name')}: member {member!r} must read STAGE, STAGE:best "
                              "or STAGE:FIRST-LAST")
        refs.append(match["stage"])
    return refs


def stage_names(ref: str | list[str] | None) -> list[str]:
    """The stage names a reference holds: none, one, or a list of them."""
    if not ref:
        return []
    return [ref] if isinstance(ref, str) else [str(name) for name in ref]


def member_files(recipe: Recipe, members: list[str]) -> list[Path]:
    """The weights files ``members`` name: a train stage's best or kept epochs, or what a stage hands on."""
    files = []
    for member in members:
        match = MEMBER.match(member)
        run = recipe.stage_dir(match["stage"])
        if match["best"]:
            files.append(run / "best.weights.h5")
        elif not match["first"]:
            files.append(stage_weights(recipe, match["stage"]))
        else:
            files += [run / "epochs" / f"epoch{e:03d}.weights.h5" for e in range(int(match["first"]),
                                                                                 int(match["last"]) + 1)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise RecipeError(f"weights {missing[0]} not found (does the train stage keep those epochs?)")
    return files


def stage_weights(recipe: Recipe, name: str) -> Path:
    """What a stage hands on as a warm start: an average's file, a train stage's best."""
    averaged = recipe.stage_dir(name) / "averaged.weights.h5"
    return averaged if averaged.is_file() else recipe.stage_dir(name) / "best.weights.h5"


class Runner:
    """Runs a recipe's stages in order, skipping those already done."""

    def __init__(self, recipe: Recipe, data: Path, log: Callable[[str], None] = print) -> None:
        self.recipe, self.data, self.log = recipe, data, log

    def data_file(self, name: str) -> Path:
        path = self.data / name
        if not path.is_file():
            raise DatasetError(f"data file {path} not found (pass --data DIR or set FACECUE_DATA)")
        return path

    def votes_file(self, name: str) -> Path:
        path = votes_path_for(name)
        if not path.is_file():
            raise DatasetError(f"FER+ votes {path} not found (set FACECUE_VOTES to the folder holding them)")
        return path

    def run(self, until: str | None = None) -> None:
        names = [s["name"] for s in self.recipe.stages]
        if until is not None and until not in names:
            raise RecipeError(f"--until {until}: no such stage (stages: {', '.join(names)})")
        for stage in self.recipe.stages:
            self.run_stage(stage)
            if stage["name"] == until:
                break

    def run_stage(self, stage: dict[str, Any]) -> None:
        folder = self.recipe.stage_dir(stage["name"])
        done = folder / STAGE_FILE
        if done.is_file():
            recorded = json.loads(done.read_text())
            if recorded["declaration"] != stage:
                raise RecipeError(f"stage {stage['name']} ran with another declaration than the recipe's now; "
                                  f"delete {folder} to run it again")
            self.log(f"stage {stage['name']}: done, skipped")
            return
        self.log(f"stage {stage['name']} ({stage['kind']}): starting")
        start = time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)
        outputs = getattr(self, f"stage_{stage['kind']}")(stage, folder)
        seconds = round(time.monotonic() - start, 1)
        write_atomic(done, json.dumps({"declaration": stage, "outputs": outputs, "seconds": seconds},
                                      indent=1).encode())
        self.log(f"stage {stage['name']}: done in {seconds} s")

    def stage_align(self, stage: dict[str, Any], folder: Path) -> dict[str, Any]:
        scenes = ["--in-scenes", "--seed", str(stage.get("seed", 0))] if stage.get("in_scenes") else []
        for split, name in (("train", self.recipe.train), ("valid", self.recipe.valid)):
            align(["--data", str(self.data_file(name)), "--out", str(folder / f"{split}.npz"), *scenes])
        return {"train": "train.npz", "valid": "valid.npz"}

    def stage_train(self, stage: dict[str, Any], folder: Path) -> dict[str, Any]:
        cfg = TrainConfig(**stage.get("config", {}), train=str(self.data_file(self.recipe.train)),
                          valid=str(self.data_file(self.recipe.valid)))
        if stage.get("init"):
            cfg = dataclasses.replace(cfg, init_weights=str(stage_weights(self.recipe, stage["init"])))
        if stage.get("votes"):
            cfg = dataclasses.replace(cfg, votes=str(self.votes_file(self.recipe.train)),
                                      valid_votes=str(self.votes_file(self.recipe.valid)))
        if stage.get("reframed"):
            cfg = dataclasses.replace(cfg, reframed=tuple(str(self.recipe.stage_dir(name) / "train.npz")
                                                          for name in stage_names(stage["reframed"])))
        cfg.check()
        resume = (folder / "checkpoint" / "state.json").is_file()
        if resume and TrainConfig.from_json(folder / "config.json") != cfg:
            raise RecipeError(f"stage {stage['name']}: {folder} holds a run of other settings; "
                              "delete it to start again")
        prepare_run(folder, cfg, resume)
        trainer = run_training(cfg, folder, resume, log=self.log)
        return {"weights": "best.weights.h5", "best_epoch": trainer.state["best_epoch"],
                "best_acc": trainer.state["best_acc"]}

    def stage_average(self, stage: dict[str, Any], folder: Path) -> dict[str, Any]:
        from models.architectures import build  # keras: imported only when a stage trains
        files = member_files(self.recipe, stage["members"])
        first_run = self.recipe.stage_dir(MEMBER.match(stage["members"][0])["stage"])
        cfg = TrainConfig.from_json(first_run / "config.json")
        model = build(cfg.arch)
        model.load_weights(files[0])
        average_weights(model, files[1:])
        bn_faces = int(stage.get("bn_faces", 8000))
        reestimate_batch_norm(model, representative_faces(load_faces(cfg.train), bn_faces, cfg.seed + 1))
        # A run-like folder, so a later stage's lineage can read what this came from.
        write_atomic(folder / "config.json", (first_run / "config.json").read_bytes())
        model.save_weights(folder / "averaged.weights.h5")
        return {"weights": "averaged.weights.h5", "members": [str(f) for f in files], "bn_faces": bn_faces}

    def stage_export(self, stage: dict[str, Any], folder: Path) -> dict[str, Any]:
        run = self.recipe.stage_dir(stage["run"])
        files = member_files(self.recipe, stage.get("members", [f"{stage['run']}:best"]))
        out = self.recipe.checkout / stage.get("out", "models")
        options = ExportOptions(self.recipe.name, self.recipe.version, str(self.data_file(self.recipe.valid)),
                                weights=str(files[0]), average=tuple(files[1:]),
                                bn_faces=int(stage.get("bn_faces", 8000)),
                                flip_average=bool(stage.get("flip_average", False)),
                                logit_adjust=float(stage.get("logit_adjust", 0.0)))
        installed = export_run(run, out, options, log=self.log)
        return {kind: str(path) for kind, path in installed.items()}

    def stage_calibrate(self, stage: dict[str, Any], folder: Path) -> dict[str, Any]:
        export = json.loads((self.recipe.stage_dir(stage["run"]) / STAGE_FILE).read_text())["outputs"]
        valid = str(self.data_file(self.recipe.valid))
        scene_file = folder / "valid_scenes.npz"
        if not scene_file.is_file():
            scenes(["fer", "--data", valid, "--out", str(scene_file), "--n", str(stage.get("n", 1000)),
                    "--seed", str(stage.get("seed", 0))])
        kinds = ("int8", "float32")
        votes = ["--votes", str(self.votes_file(self.recipe.valid))] if stage.get("votes") else []
        calibrate(["--model", *(export[kind] for kind in kinds), "--scenes", str(scene_file), "--crops", valid,
                   *votes, "--write"])
        return {"temperature": {kind: json.loads(Path(export[f"{kind}_json"]).read_text())["calibration"]["temperature"]
                                for kind in kinds}}


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="facecue-model run", description=__doc__.splitlines()[0])
    p.add_argument("recipe", type=Path, help="the recipe, e.g. models/facecue_vgg_elu.recipe.toml")
    p.add_argument("--data", type=Path, help="folder of the recipe's data files (default: $FACECUE_DATA, "
                                             "else ../shared/data/fer2013)")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    args = p.parse_args(argv)
    Runner(read_recipe(args.recipe), args.data or data_dir()).run(args.until)
    return 0
