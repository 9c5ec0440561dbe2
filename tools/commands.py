"""The model maker's subcommands: ``facecue-model NAME`` runs ``MODULE.main(ARGS)``.

``facecue-model`` (:mod:`tools.cli`) lists and runs them all, and they are its
only way in: no module here is run with ``python -m`` (only
``tools/train/__main__.py``, SageMaker's entry script inside its container).
This module imports nothing, so that listing costs no import of the commands
themselves (TensorFlow, OpenCV); each parses its own options.
"""
from __future__ import annotations

# name -> (module with main(argv), summary), in the order a model is made
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scenes": ("tools.data.scenes", "data: realistic scenes with ground truth, real faces in real clutter"),
    "align-faces": ("tools.data.align_faces", "data: re-frame a face-crop npz with the device's aligned crop"),
    "people-video": ("tools.data.people_video", "data: a video of encounters with real people, for measuring only"),
    "demo-clip": ("tools.data.demo_clip", "data: the demo clip in demo/, from public-domain and CC0 photos"),
    "voice-clips": ("tools.make_voice_clips", "data: generate the committed voice clips with espeak-ng"),
    "run": ("tools.train.recipe", "train: run RECIPE, every stage of it, into a shipped model"),
    "train": ("tools.train.cli", "train: one training run, its settings given as options"),
    "recover": ("tools.train.recover", "train: Keras weights rebuilt from a shipped float32 model"),
    "export": ("tools.train.export", "train: a trained run as the shipped int8 TFLite model with metadata"),
    "report": ("tools.train.report", "train: a run's report: curves, confusion matrix, JSON and Markdown"),
    "card": ("tools.train.model_card", "train: regenerate the model card's figures from the model JSON"),
    "sagemaker": ("tools.cloud.sagemaker", "train: train on Amazon SageMaker, then publish the result"),
    "eval": ("tools.eval.evaluate", "eval: accuracy of a model on an npz data set"),
    "calibrate": ("tools.eval.calibrate", "eval: fit a model's softmax temperature on validation"),
    "announce": ("tools.eval.announce", "eval: what the device would say on a labelled video, scored"),
    "framing": ("tools.eval.framing", "eval: how the device's crop frames a real head, against FER2013"),
    "hedge": ("tools.eval.hedge", "eval: choose [decide] hedge_min_confidence by a rule fixed in advance"),
    "people": ("tools.eval.people", "eval: how right the person cue is on real people"),
    "compare-runs": ("tools.eval.compare_runs", "eval: an emulated run's eval table and words against this host's"),
    "bench": ("tools.bench.run", "bench: speed/accuracy table beside the DeepLens study"),
    "bench-detect": ("tools.bench.detect", "bench: face detectors side by side on real scenes"),
    "blazeface": ("tools.bench.blazeface", "bench: MediaPipe's BlazeFace on LiteRT, beside YuNet and Haar"),
    "keygen": ("tools.cloud.publish", "publish: make the signing key pair"),
    "publish": ("tools.cloud.publish", "publish: upload a model and list it in the signed manifest"),
    "refresh": ("tools.cloud.publish", "publish: re-sign the manifest with a new expiry, same models"),
}

# Subcommands whose module parses the name itself (``facecue-model keygen`` is publish's ``keygen``).
NAMED = frozenset({"keygen", "publish", "refresh"})
