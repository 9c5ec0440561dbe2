"""Train on Amazon SageMaker with the same ``facecue-train``, then publish the result.

    facecue-model sagemaker launch --job-name NAME --role-arn ARN \\
        --train s3://B/data/train.npz --valid s3://B/data/valid.npz \\
        --output s3://B/sagemaker/output --code s3://B/sagemaker/code [--arch vgg_elu-small --epochs 40 ...]
        [--init-weights runs/recovered/recovered.weights.h5]
    facecue-model sagemaker publish NAME --to s3://B/PREFIX --key signing.pem \\
        --train train.npz --valid valid.npz

``launch`` runs the training script in script mode on the AWS TensorFlow
framework container: the source goes up as ``sourcedir.tar.gz`` (Python files
only), the training flags become hyperparameters (which the container passes
back as ``--flag value``), the two ``.npz`` files are the ``train`` and
``valid`` channels, and the run folder is written to ``/opt/ml/model`` so it
comes back as the job's ``model.tar.gz``. A warm start's weights file goes up
beside the source with its history (``lineage.json``) and arrives as the
``init`` channel, so the cloud run continues a local one and its model's
metadata still states every cycle behind it. A render of re-framed training
faces (``--reframed s3://...`` with ``--reframed-share``) is the ``reframed``
channel. ``publish`` exports that run
folder with ``tools.train.export`` and publishes the int8 model through the same
signed manifest as a local one.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.files import write_atomic
from device.argparser import Parser, UsageError
from device.manifest import (
    S3Location,
    S3Options,
    make_s3_client,
    s3_error_message,
)
from device.model_store import check_version_name
from tools.cloud.publish import publish_model, s3_named
from tools.cloud.signing import load_private_key
from tools.train.export import ExportOptions, export_run
from tools.train.runs import LINEAGE_FILE, TrainConfig, lineage

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = "tools/train/__main__.py"
CODE_DIR, MODEL_DIR, CHANNELS_DIR = "/opt/ml/code", "/opt/ml/model", "/opt/ml/input/data"
SOURCE_PACKAGES = ("device", "models", "tools", "audio")  # Python files only: no clips, models or data
# What the TensorFlow container lacks for facecue-train (it has TensorFlow and NumPy).
REQUIREMENTS = "opencv-python-headless>=4.8,<5\nmatplotlib>=3.7\n"
DLC_ACCOUNT = "763104351884"
# Regions whose AWS Deep Learning Containers live in another account
# (from the SageMaker Python SDK's image_uri_config/tensorflow.json).
DLC_ACCOUNTS = {
    "af-south-1": "626614931356", "ap-east-1": "871362719292", "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452", "ap-southeast-3": "907027046896", "ap-southeast-4": "457447274322",
    "cn-north-1": "727897471807", "cn-northwest-1": "727897471807", "eu-central-2": "380420809688",
    "eu-south-1": "692866216735", "eu-south-2": "503227376785", "me-central-1": "914824155844",
    "me-south-1": "217643126080", "us-gov-east-1": "446045086412", "us-gov-west-1": "442386744353",
}
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


class JobError(RuntimeError):
    """A training job that cannot be launched or published, found while trying (exit 1);
    settings no job could take are a TrainError or UsageError (exit 2)."""


def image_uri(region: str, instance_type: str, tf_version: str = "2.16", py_version: str = "py310") -> str:
    """The TensorFlow training container for ``region`` (CPU or GPU by instance family)."""
    account = DLC_ACCOUNTS.get(region, DLC_ACCOUNT)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    family = instance_type.split(".")[1] if instance_type.count(".") >= 2 else ""
    processor = "gpu" if family.startswith(("p", "g")) else "cpu"
    return f"{account}.dkr.ecr.{region}.{domain}/tensorflow-training:{tf_version}-{processor}-{py_version}"


def package_source(root: Path = ROOT) -> bytes:
    """``sourcedir.tar.gz``: every ``*.py`` of the packages plus ``requirements.txt``,
    byte-identical for identical sources (fixed mtimes and owners), so its S3 key
    can be its hash."""
    files = sorted(p for pkg in SOURCE_PACKAGES for p in (root / pkg).rglob("*.py")
                   if "__pycache__" not in p.parts)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        members = [(str(p.relative_to(root)), p.read_bytes()) for p in files]
        members.append(("requirements.txt", REQUIREMENTS.encode()))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def channel_path(channel: str, s3_url: str) -> str:
    """Where SageMaker puts the object ``s3_url`` of ``channel`` inside the container."""
    return f"{CHANNELS_DIR}/{channel}/{s3_url.rstrip('/').rsplit('/', 1)[-1]}"


def channel_prefix(s3_url: str) -> str:
    """The S3 prefix of the channel that brings ``s3_url`` with its folder's other files."""
    return s3_url.rstrip("/").rsplit("/", 1)[0] + "/"


# TrainConfig fields that are not passed through as they stand: the data files, a warm
# start's weights, the re-framed faces (with their share) and the FER+ votes arrive as channels.
NOT_FORWARDED = ("train", "valid", "init_weights", "reframed", "reframed_share", "votes", "valid_votes")
# The FER+ votes files of a launch's ``config`` (s3:// URLs) and the channel each arrives in.
VOTE_CHANNELS = (("votes", "votes"), ("valid_votes", "validvotes"))


def train_arguments(config: TrainConfig, train_url: str, valid_url: str, init_url: str = "") -> dict[str, object]:
    """facecue-train flags (without the dashes) for a run inside the container; in a launch's
    ``config``, ``reframed`` holds the s3:// URL of the one render it sends."""
    flags: dict[str, object] = {f.name.replace("_", "-"): getattr(config, f.name)
                                for f in dataclasses.fields(TrainConfig) if f.name not in NOT_FORWARDED}
    flags.update({"train": channel_path("train", train_url), "valid": channel_path("valid", valid_url),
                  "run": MODEL_DIR})
    if init_url:
        flags["init-weights"] = channel_path("init", init_url)
    if config.reframed:
        flags.update({"reframed": channel_path("reframed", config.reframed[0]),
                      "reframed-share": config.reframed_share})
    for field, channel in VOTE_CHANNELS:
        if getattr(config, field):
            flags[field.replace("_", "-")] = channel_path(channel, getattr(config, field))
    return flags


@dataclass(frozen=True)
class JobSpec:
    job_name: str
    role_arn: str
    region: str
    train: str  # s3://.../train.npz
    valid: str
    output: str  # s3:// prefix for the job's model.tar.gz
    source: str  # s3:// URL of sourcedir.tar.gz
    init_weights: str = ""  # s3:// URL of a warm start's weights file, its lineage.json beside it
    config: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    instance_type: str = "ml.c5.4xlarge"
    volume_gb: int = 30
    max_runtime_s: int = 24 * 3600
    tf_version: str = "2.16"
    py_version: str = "py310"

    def __post_init__(self) -> None:
        """Refuse settings the job's facecue-train would refuse, before anything is uploaded.
        One render only: the container hands each hyperparameter to the script as one value."""
        self.config.check_settings()
        if len(self.config.reframed) > 1:
            raise UsageError(f"--reframed: one render per SageMaker job, not {len(self.config.reframed)}")


def build_request(spec: JobSpec) -> dict:
    """The ``CreateTrainingJob`` request, as the SageMaker Python SDK would send it
    for a TensorFlow estimator in script mode (hyperparameters JSON-encoded)."""
    if not JOB_NAME.fullmatch(spec.job_name):
        raise UsageError(f"job name {spec.job_name!r}: letters, digits and hyphens, at most 63")
    hyperparameters = {key: json.dumps(value) for key, value in
                       train_arguments(spec.config, spec.train, spec.valid, spec.init_weights).items()}
    hyperparameters.update({
        "sagemaker_program": json.dumps(ENTRY_POINT),
        "sagemaker_submit_directory": json.dumps(spec.source),
        "sagemaker_region": json.dumps(spec.region),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": json.dumps(spec.job_name),
    })
    sources = [("train", spec.train), ("valid", spec.valid)]
    if spec.init_weights:
        sources.append(("init", channel_prefix(spec.init_weights)))
    if spec.config.reframed:
        sources.append(("reframed", spec.config.reframed[0]))
    sources += [(channel, getattr(spec.config, field)) for field, channel in VOTE_CHANNELS
                if getattr(spec.config, field)]
    channels = [{"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": url, "S3DataDistributionType": "FullyReplicated"}}}
        for name, url in sources]
    return {
        "TrainingJobName": spec.job_name,
        "RoleArn": spec.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": image_uri(spec.region, spec.instance_type, spec.tf_version, spec.py_version),
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "valid:accuracy", "Regex": r"val_acc(?:uracy)?[ =:]+([0-9.]+)"}],
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": spec.output},
        "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": spec.volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_s},
        # facecue-train imports tools.*, device.*, models.*: the code folder must be on the path.
        "Environment": {"PYTHONPATH": CODE_DIR},
        "Tags": [{"Key": "project", "Value": "facecue"}],
    }


def upload_warm_start(s3, weights: Path, code: S3Location) -> str:
    """Put a local weights file and its history (``lineage.json``, as ``tools.train.runs.lineage``
    reads it on this machine) alone in a folder under ``code`` named by the weights' hash;
    returns the weights' s3:// URL."""
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise JobError(f"--init-weights {weights}: {exc.strerror or exc}") from None
    folder = code.key(f"warm/{hashlib.sha256(data).hexdigest()[:16]}")
    history = json.dumps(lineage(TrainConfig(init_weights=str(weights))), indent=1).encode()
    s3.put_object(Bucket=code.bucket, Key=f"{folder}/{LINEAGE_FILE}", Body=history, ContentType="application/json")
    s3.put_object(Bucket=code.bucket, Key=f"{folder}/{weights.name}", Body=data)
    return f"s3://{code.bucket}/{folder}/{weights.name}"


def launch(sagemaker, s3, spec: JobSpec, code: S3Location, init_weights: Path | None = None) -> tuple[str, JobSpec]:
    """Upload the source under ``code`` (content-addressed, so re-launching the same
    code reuses it) and the warm start's weights if any, then create the job;
    returns (ARN, the spec as sent)."""
    bundle = package_source()
    key = code.key(f"{hashlib.sha256(bundle).hexdigest()[:16]}/sourcedir.tar.gz")
    s3.put_object(Bucket=code.bucket, Key=key, Body=bundle, ContentType="application/gzip")
    spec = dataclasses.replace(spec, source=f"s3://{code.bucket}/{key}")
    if init_weights is not None:
        spec = dataclasses.replace(spec, init_weights=upload_warm_start(s3, init_weights, code))
    arn = sagemaker.create_training_job(**build_request(spec))["TrainingJobArn"]
    return arn, spec


def fetch_run(sagemaker, s3, job_name: str, folder: Path) -> Path:
    """Download and unpack a completed job's ``model.tar.gz`` (its run folder) into ``folder``."""
    from botocore.exceptions import ClientError

    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    status = job.get("TrainingJobStatus")
    if status != "Completed":
        raise JobError(f"training job {job_name} is {status}; only a Completed job can be published")
    artifact = S3Location.parse(job["ModelArtifacts"]["S3ModelArtifacts"])
    archive = folder / "model.tar.gz"
    try:
        s3.download_file(artifact.bucket, artifact.prefix, str(archive))
    except ClientError as exc:
        raise JobError(f"output of training job {job_name}: {s3_error_message(exc, artifact.url())}") from None
    run = folder / "run"
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(run, filter="data")  # refuses absolute paths and ../ members
    except (tarfile.TarError, OSError) as exc:
        raise JobError(f"{artifact.url()} is not a readable model.tar.gz ({exc})") from None
    if not (run / "config.json").is_file():
        raise JobError(f"{artifact.url()} holds no run folder (no config.json)")
    return run


def publish_job(sagemaker, s3, job_name: str, location: S3Location, private_key, train: Path, valid: Path,
                version: str = "", workdir: Path | None = None) -> object:
    """Export a finished job's run with local copies of its data and publish the int8 model."""
    version = check_version_name(version or job_name)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        run = fetch_run(sagemaker, s3, job_name, Path(tmp))
        config = json.loads((run / "config.json").read_text())
        config.update(train=str(Path(train).resolve()), valid=str(Path(valid).resolve()))
        write_atomic(run / "config.json", json.dumps(config, indent=1).encode())
        installed = export_run(run, Path(tmp) / "export", ExportOptions(version=version, valid=str(valid)))
        return publish_model(s3, location, installed["int8"], private_key)


def _clients(args: argparse.Namespace):
    import boto3

    region = args.region or boto3.session.Session().region_name
    if not region:
        raise UsageError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    options = S3Options(endpoint_url=args.endpoint_url or "", region=region)
    sagemaker = boto3.client("sagemaker", region_name=region, endpoint_url=args.endpoint_url or None)
    return region, sagemaker, make_s3_client(options)


def cmd_launch(args: argparse.Namespace) -> int:
    region, sagemaker, s3 = _clients(args)
    config = dataclasses.replace(TrainConfig.from_args(args, skip=NOT_FORWARDED),
                                 reframed=(args.reframed,) if args.reframed else (),
                                 reframed_share=args.reframed_share, votes=args.votes or "",
                                 valid_votes=args.valid_votes or "")
    spec = JobSpec(job_name=args.job_name, role_arn=args.role_arn, region=region, train=args.train,
                   valid=args.valid, output=args.output, source="", config=config,
                   instance_type=args.instance_type, tf_version=args.tf_version, py_version=args.py_version)
    arn, spec = launch(sagemaker, s3, spec, S3Location.parse(args.code), args.init_weights)
    print(f"started {arn} ({spec.instance_type}, {spec.config.arch}, {spec.config.epochs} epochs); "
          f"then: facecue-model sagemaker publish {spec.job_name} --to s3://BUCKET/PREFIX --key ...")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    _, sagemaker, s3 = _clients(args)
    entry = publish_job(sagemaker, s3, args.job_name, S3Location.parse(args.to), load_private_key(args.key),
                        args.train, args.valid, args.version)
    print(f"published model {entry.version} (#{entry.seq}) from training job {args.job_name} to {args.to}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="facecue-model sagemaker", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    defaults = TrainConfig()

    launch_p = sub.add_parser("launch", help="start a SageMaker training job running facecue-train")
    for flag in ("--job-name", "--role-arn", "--train", "--valid", "--output", "--code"):
        launch_p.add_argument(flag, required=True)
    launch_p.add_argument("--instance-type", default=JobSpec.instance_type)
    launch_p.add_argument("--tf-version", default=JobSpec.tf_version)
    launch_p.add_argument("--py-version", default=JobSpec.py_version)
    launch_p.add_argument("--init-weights", type=Path, help="warm start: a local weights file of the same arch")
    launch_p.add_argument("--reframed", metavar="s3://.../train.npz",
                          help="training faces re-framed by tools.data.align_faces (one render), uploaded beforehand")
    launch_p.add_argument("--reframed-share", type=float, default=defaults.reframed_share,
                          help="share of each batch taken from --reframed")
    launch_p.add_argument("--votes", metavar="s3://.../ferplus/train.npz",
                          help="FER+ votes for the --train rows, uploaded beforehand: train on vote shares")
    launch_p.add_argument("--valid-votes", metavar="s3://.../ferplus/valid.npz",
                          help="FER+ votes for the --valid rows: pick the best epoch by their majority")
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_FORWARDED:
            continue
        default = getattr(defaults, f.name)
        launch_p.add_argument(f"--{f.name.replace('_', '-')}", default=default, type=type(default))
    launch_p.set_defaults(func=cmd_launch)

    publish_p = sub.add_parser("publish", help="export a finished job's model and publish it")
    publish_p.add_argument("job_name")
    publish_p.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX")
    publish_p.add_argument("--key", type=Path, required=True, help="the private signing key")
    publish_p.add_argument("--train", type=Path, required=True, help="local training npz (int8 calibration)")
    publish_p.add_argument("--valid", type=Path, required=True, help="local validation npz (accuracy check)")
    publish_p.add_argument("--version", default="", help="model version (default: the job name)")
    publish_p.set_defaults(func=cmd_publish)
    for sp in (launch_p, publish_p):
        sp.add_argument("--region", help="AWS region (default: the AWS configuration's)")
        sp.add_argument("--endpoint-url", help="one endpoint for SageMaker and S3 (tests, moto)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with s3_named("the SageMaker/S3 request"):
        return args.func(args)
