"""The SageMaker launcher: the request it builds reaches facecue-train's own flags,
moto's SageMaker accepts it, and a finished job's output is published through
the same signed manifest a device syncs from."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

pytest.importorskip("boto3")

from s3_server import fixture_faces_npz, fixture_run, run_main  # noqa: E402

from device import model_store as ms  # noqa: E402
from device.argparser import UsageError  # noqa: E402
from device.manifest import S3Location  # noqa: E402
from tools.cloud.sagemaker import (  # noqa: E402
    MODEL_DIR,
    JobSpec,
    build_request,
    image_uri,
    launch,
    package_source,
    train_arguments,
)
from tools.train.cli import parse_args  # noqa: E402
from tools.train.runs import TrainConfig, TrainError  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/facecue-sagemaker"


def spec(bucket_name: str = "facecue-ml", **changes) -> JobSpec:
    fields = dict(job_name="facecue-small-40", role_arn=ROLE, region="eu-west-1",
                  train=f"s3://{bucket_name}/data/train.npz", valid=f"s3://{bucket_name}/data/valid.npz",
                  output=f"s3://{bucket_name}/sagemaker/output", source=f"s3://{bucket_name}/code/sourcedir.tar.gz",
                  config=TrainConfig(arch="vgg_elu-small", epochs=40, lr=0.02, weight_decay=1e-4,
                                     class_weight="balanced", seed=7))
    fields.update(changes)
    return JobSpec(**fields)


def container_argv(hyperparameters: dict[str, str]) -> list[str]:
    """What the SageMaker training toolkit hands the entry point: each user
    hyperparameter JSON-decoded and passed as ``--name value``."""
    argv = []
    for name, value in hyperparameters.items():
        if not name.startswith("sagemaker_"):
            argv += [f"--{name}", str(json.loads(value))]
    return argv


def test_hyperparameters_are_train_py_flags():
    request = build_request(spec())
    args = parse_args(container_argv(request["HyperParameters"]))  # facecue-train's own parser
    assert (args.arch, args.epochs, args.lr, args.weight_decay, args.class_weight, args.seed) == \
        ("vgg_elu-small", 40, 0.02, 1e-4, "balanced", 7)
    assert str(args.run) == MODEL_DIR == "/opt/ml/model"
    assert (args.train, args.valid) == ("/opt/ml/input/data/train/train.npz", "/opt/ml/input/data/valid/valid.npz")
    assert json.loads(request["HyperParameters"]["sagemaker_program"]) == "tools/train/__main__.py"
    assert request["Environment"] == {"PYTHONPATH": "/opt/ml/code"}


def test_every_training_setting_is_forwarded():
    flags = train_arguments(TrainConfig(), "s3://b/t.npz", "s3://b/v.npz")
    assert set(flags) == {"arch", "epochs", "batch", "lr", "momentum", "weight-decay", "warmup-epochs",
                          "label-smoothing", "class-weight", "dropout", "erase-prob", "cutmix", "limit",
                          "seed", "threads", "keep-from", "train", "valid", "run", "original-share"}
    warm = train_arguments(TrainConfig(), "s3://b/t.npz", "s3://b/v.npz", "s3://b/code/warm/ab12/w.weights.h5")
    assert set(warm) - set(flags) == {"init-weights"}


def test_a_render_of_reframed_faces_arrives_as_its_own_channel():
    render = "s3://facecue-ml/data/scened2/train.npz"
    request = build_request(spec(config=TrainConfig(arch="vgg_elu-base", reframed=(render,), reframed_share=0.6)))
    [channel] = [c for c in request["InputDataConfig"] if c["ChannelName"] == "reframed"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == render
    args = parse_args(container_argv(request["HyperParameters"]))
    assert (args.reframed, args.reframed_share) == (["/opt/ml/input/data/reframed/train.npz"], 0.6)
    assert "reframed" not in build_request(spec())["HyperParameters"]


def test_fer_plus_votes_arrive_as_their_own_channels():
    votes, valid_votes = "s3://facecue-ml/data/ferplus/train.npz", "s3://facecue-ml/data/ferplus/valid.npz"
    request = build_request(spec(config=TrainConfig(arch="vgg_elu-base", votes=votes, valid_votes=valid_votes,
                                                    original_share=0.25)))
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert (channels["votes"], channels["validvotes"]) == (votes, valid_votes)
    args = parse_args(container_argv(request["HyperParameters"]))
    assert (args.votes, args.valid_votes, args.original_share) == (
        "/opt/ml/input/data/votes/train.npz", "/opt/ml/input/data/validvotes/valid.npz", 0.25)
    assert "votes" not in build_request(spec())["HyperParameters"]


@pytest.mark.parametrize("reframed,share,message", [
    (("s3://b/a/train.npz", "s3://b/b/train.npz"), 0.6, "--reframed: one render per SageMaker job, not 2"),
    (("s3://b/a/train.npz",), 0.0, "--reframed and --reframed-share go together"),
    ((), 0.6, "--reframed and --reframed-share go together")])
def test_reframed_faces_a_job_cannot_take_are_refused(reframed, share, message):
    with pytest.raises((TrainError, UsageError), match=message):
        spec(config=TrainConfig(reframed=reframed, reframed_share=share))


def test_a_share_without_its_render_is_one_line_and_uploads_nothing(bucket):
    from tools.cli import main

    result = run_main(main, ["sagemaker", "launch", "--job-name", "facecue-reframed", "--role-arn", ROLE,
                             "--train", f"{bucket.url}/t.npz", "--valid", f"{bucket.url}/v.npz",
                             "--output", f"{bucket.url}/out", "--code", f"{bucket.url}/code",
                             "--reframed-share", "0.6", "--region", "eu-west-1", "--endpoint-url", bucket.moto.url])
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith("facecue: error: --reframed and --reframed-share go together")
    assert bucket.client.list_objects_v2(Bucket=bucket.name).get("KeyCount", 0) == 0


@pytest.mark.parametrize("region,instance,uri", [
    ("eu-west-1", "ml.c5.4xlarge",
     "763104351884.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-training:2.16-cpu-py310"),
    ("af-south-1", "ml.g5.xlarge",
     "626614931356.dkr.ecr.af-south-1.amazonaws.com/tensorflow-training:2.16-gpu-py310"),
    ("cn-north-1", "ml.m5.large",
     "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/tensorflow-training:2.16-cpu-py310"),
])
def test_framework_image_per_region(region, instance, uri):
    assert image_uri(region, instance) == uri


def test_bad_job_names_are_refused():
    with pytest.raises(UsageError, match="job name"):
        build_request(spec(job_name="facecue_v1"))


def test_source_bundle_holds_python_only_and_is_reproducible():
    bundle = package_source()
    assert bundle == package_source()
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        names = tar.getnames()
    assert "tools/train/__main__.py" in names and "device/preprocess.py" in names and "requirements.txt" in names
    assert all(n.endswith(".py") for n in names if n != "requirements.txt")
    assert all(n.split("/")[0] in ("device", "models", "tools", "audio") for n in names if "/" in n)


def test_launch_against_moto(bucket):
    import boto3

    sagemaker = boto3.client("sagemaker", endpoint_url=bucket.moto.url, region_name="eu-west-1")
    sent = spec(bucket.name, job_name="facecue-launch-test")
    arn, sent = launch(sagemaker, bucket.client, sent, S3Location.parse(f"s3://{bucket.name}/sagemaker/code"))
    assert arn.endswith(":training-job/facecue-launch-test")
    job = sagemaker.describe_training_job(TrainingJobName="facecue-launch-test")
    request = build_request(sent)
    for key in ("RoleArn", "HyperParameters", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                "StoppingCondition"):
        assert job[key] == request[key], key
    assert job["AlgorithmSpecification"]["TrainingImage"] == request["AlgorithmSpecification"]["TrainingImage"]
    source = S3Location.parse(json.loads(job["HyperParameters"]["sagemaker_submit_directory"]))
    uploaded = bucket.client.get_object(Bucket=source.bucket, Key=source.prefix)["Body"].read()
    assert uploaded == package_source()


def test_a_warm_start_travels_with_its_history(bucket, tmp_path):
    """A local weights file goes up alone with its lineage.json; the container's
    facecue-train finds both where the ``init`` channel puts them."""
    import boto3

    history = [{"weights": "runs/final/best.weights.h5", "epochs_run": 32, "seconds": 5639.6}]
    (tmp_path / "lineage.json").write_text(json.dumps(history))
    weights = tmp_path / "recovered.weights.h5"
    weights.write_bytes(b"not really weights, only bytes to carry")
    sagemaker = boto3.client("sagemaker", endpoint_url=bucket.moto.url, region_name="eu-west-1")
    _, sent = launch(sagemaker, bucket.client, spec(bucket.name, job_name="facecue-warm"),
                     S3Location.parse(f"s3://{bucket.name}/sagemaker/code"), init_weights=weights)
    job = sagemaker.describe_training_job(TrainingJobName="facecue-warm")
    [init] = [c for c in job["InputDataConfig"] if c["ChannelName"] == "init"]
    prefix = S3Location.parse(init["DataSource"]["S3DataSource"]["S3Uri"])
    listed = bucket.client.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.prefix + "/")["Contents"]
    uploaded = {o["Key"].rsplit("/", 1)[-1]: bucket.client.get_object(Bucket=prefix.bucket, Key=o["Key"])["Body"].read()
                for o in listed}
    assert uploaded == {"recovered.weights.h5": weights.read_bytes(), "lineage.json": uploaded["lineage.json"]}
    assert json.loads(uploaded["lineage.json"]) == history
    args = parse_args(container_argv(job["HyperParameters"]))
    assert args.init_weights == "/opt/ml/input/data/init/recovered.weights.h5"
    assert sent.init_weights.endswith("/recovered.weights.h5")


def test_a_missing_warm_start_is_one_line(bucket, tmp_path):
    from tools.cli import main

    result = run_main(main, ["sagemaker", "launch", "--job-name", "facecue-warm-2", "--role-arn", ROLE,
                             "--train", f"{bucket.url}/t.npz", "--valid", f"{bucket.url}/v.npz",
                             "--output", f"{bucket.url}/out", "--code", f"{bucket.url}/code",
                             "--init-weights", str(tmp_path / "gone.weights.h5"), "--region", "eu-west-1",
                             "--endpoint-url", bucket.moto.url])
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith("facecue: error: --init-weights ") and "No such file" in result.err


def test_a_finished_job_is_published_and_synced(fleet, tmp_path):
    """moto marks jobs Completed at once; the test puts the run folder facecue-train
    would leave in /opt/ml/model where SageMaker would, then publishes and syncs it."""
    pytest.importorskip("tensorflow")
    import boto3

    from tools.cli import main

    bucket = fleet.bucket
    sagemaker = boto3.client("sagemaker", endpoint_url=bucket.moto.url, region_name="eu-west-1")
    _, sent = launch(sagemaker, bucket.client, spec(bucket.name, job_name="facecue-job-1"),
                     S3Location.parse(f"s3://{bucket.name}/sagemaker/code"))
    faces = fixture_faces_npz(tmp_path / "faces.npz")
    run = fixture_run(tmp_path / "job-run", faces)
    history = [{"weights": "/opt/ml/input/data/init/recovered.weights.h5", "epochs_run": 40}]
    (run / "warm_start.json").write_text(json.dumps(history))  # as a warm-started run writes it
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(run, arcname=".")
    artifact = S3Location.parse(sagemaker.describe_training_job(TrainingJobName="facecue-job-1")
                                ["ModelArtifacts"]["S3ModelArtifacts"])
    bucket.client.put_object(Bucket=artifact.bucket, Key=artifact.prefix, Body=archive.getvalue())

    published = run_main(main, ["sagemaker", "publish", "facecue-job-1", "--to", bucket.url,
                                "--key", str(fleet.private_key),
                                "--train", str(faces), "--valid", str(faces), "--region", "eu-west-1",
                                "--endpoint-url", bucket.moto.url])
    assert published.code == 0, published.err
    assert "published model facecue-job-1 (#1)" in published.out
    synced = fleet.sync()
    assert synced.out.strip() == "facecue sync: installed model facecue-job-1 (was the shipped model)"
    assert ms.current_version(fleet.store) == "facecue-job-1"
    meta = json.loads((fleet.store / "versions" / "facecue-job-1" / "model.json").read_text())
    assert meta["arch"] == "vgg_elu-tiny" and meta["quantization"] == "int8"
    assert meta["training"]["warm_start"] == history


def test_publishing_a_job_without_output_says_so(fleet, tmp_path):
    import boto3

    from tools.cli import main

    sagemaker = boto3.client("sagemaker", endpoint_url=fleet.bucket.moto.url, region_name="eu-west-1")
    launch(sagemaker, fleet.bucket.client, spec(fleet.bucket.name, job_name="facecue-job-2"),
           S3Location.parse(f"s3://{fleet.bucket.name}/sagemaker/code"))
    result = run_main(main, ["sagemaker", "publish", "facecue-job-2", "--to", fleet.bucket.url,
                             "--key", str(fleet.private_key),
                             "--train", "t.npz", "--valid", "v.npz", "--region", "eu-west-1",
                             "--endpoint-url", fleet.bucket.moto.url])
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith("facecue: error: output of training job facecue-job-2: s3://")
    assert result.err.rstrip().endswith("/facecue-job-2/output/model.tar.gz does not exist")
