"""Test helpers for the cloud tests: moto's standalone S3 server on 127.0.0.1,
sockets that misbehave the way networks do, and a small fixture model.

boto3 talks HTTP to the server exactly as it talks to AWS; nothing in boto3
is patched. ``conftest.py`` registers this module as a plugin, so its
fixtures (``moto``, ``bucket``, ``fleet``, ``fixture_model``, ...) reach every
test; its helpers are imported by name.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env() -> dict[str, str]:
    """Environment for boto3 (in a subprocess too): fake keys, no host AWS config,
    no instance-metadata probing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true")
    return env


class MotoServer:
    """``python -m moto.server`` in a child process, one per test session."""

    def __init__(self) -> None:
        pytest.importorskip("moto.server")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=client_env())
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        atexit.register(self.stop)

    def post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).close()

    def require_auth(self, on: bool) -> None:
        """Make moto check signatures and IAM policies (off: anything goes)."""
        self.post("/moto-api/reset-auth", b"0" if on else b"inf")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


_server: MotoServer | None = None


@pytest.fixture(scope="session")
def moto() -> MotoServer:
    global _server
    if _server is None:
        _server = MotoServer()
    return _server


@pytest.fixture
def aws_env(monkeypatch) -> dict[str, str]:
    env = client_env()
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return env


@dataclass
class Bucket:
    """A fresh bucket and prefix on the moto server, with a client for the test's own moves."""

    moto: MotoServer
    name: str
    prefix: str
    client: object

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    def put(self, relative: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=self.key(relative), Body=data)

    def get(self, relative: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=self.key(relative))["Body"].read()


@pytest.fixture
def bucket(moto: MotoServer, aws_env) -> Bucket:
    import boto3

    client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    name = f"facecue-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(moto, name, "fleet", client)


# --- misbehaving network ------------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never answers: the worst kind of slow endpoint."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Proxy:
    """A TCP relay to ``upstream`` that counts requests and misbehaves, the way broken
    servers and middleboxes do, on the response to each request whose line contains
    ``cut_marker``:

    - ``cut_after=N``: the connection closes after N bytes of it (a download cut off);
    - ``drop_header=b"ETag"``: it comes without that header (without Content-Length,
      the body is then ended by closing the connection, as HTTP/1.0 servers do);
    - ``chunked=True``: its body comes with ``Transfer-Encoding: chunked`` instead of a
      Content-Length;
    - ``trickle=S``: it comes one byte every S seconds, headers included: no read ever
      times out and the response never ends;
    - ``not_modified=True``: it is replaced by ``304 Not Modified``, whatever was asked
      (a cache or a hostile store freezing what a device sees).
    """

    METHODS = (b"GET ", b"PUT ", b"HEAD ", b"POST ", b"DELETE ")

    def __init__(self, upstream_port: int, cut_marker: bytes | None = None, cut_after: int | None = None,
                 drop_header: bytes | None = None, chunked: bool = False, trickle: float | None = None,
                 not_modified: bool = False) -> None:
        self.upstream_port, self.cut_marker = upstream_port, cut_marker
        self.cut_after, self.drop_header, self.chunked, self.trickle = cut_after, drop_header, chunked, trickle
        self.not_modified = not_modified
        self.requests: list[bytes] = []
        self.closed = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client = self.sock.accept()[0]
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"marked": False}
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, state), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, state: dict) -> None:
        try:
            while data := src.recv(65536):
                if data.startswith(self.METHODS):
                    line = data.split(b"\r\n", 1)[0]
                    self.requests.append(line)
                    if self.cut_marker and self.cut_marker in line:
                        state["marked"] = True
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(dst)

    def _responses(self, src: socket.socket, dst: socket.socket, state: dict) -> None:
        """Relay; the client sends its next request only after reading the whole previous
        response, so whatever arrives once a request was marked is that request's response."""
        try:
            while data := src.recv(65536):
                if not state["marked"]:
                    dst.sendall(data)
                    continue
                state["marked"] = False
                if not self._misbehave(*_read_response(src, data), dst):
                    break
        except OSError:
            pass
        finally:
            _hang_up(dst)
            _hang_up(src)

    def _misbehave(self, head: bytes, body: bytes, dst: socket.socket) -> bool:
        """Send one marked response the broken way; False: the connection must close."""
        if self.cut_after is not None:
            dst.sendall((head + body)[:self.cut_after])
            return False
        if self.not_modified:
            dst.sendall(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n")
            return True
        if self.trickle is not None:
            for i in range(len(head + body)):
                if self.closed:
                    return False
                time.sleep(self.trickle)
                dst.sendall((head + body)[i:i + 1])
            return False
        keep_open = True
        if self.drop_header:
            head = _without_header(head, self.drop_header)
            keep_open = self.drop_header.lower() != b"content-length"
        if self.chunked:
            head = _without_header(head, b"Content-Length")[:-2] + b"Transfer-Encoding: chunked\r\n\r\n"
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                            for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
        dst.sendall(head + body)
        return keep_open

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def _read_response(src: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    """The whole HTTP response that starts with ``data``: its head (ending in a blank
    line) and its body (as long as its Content-Length says)."""
    while b"\r\n\r\n" not in data:
        data += src.recv(65536) or b"\r\n\r\n"
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length[1]):
        more = src.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n", body


def _without_header(head: bytes, name: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(name.lower() + b":"))


def _hang_up(sock: socket.socket) -> None:
    """Send FIN now; a bare close() waits for the other thread's recv on this socket."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# --- a small model, made by the real exporter --------------------------------------------


def fixture_faces_npz(path: Path, n: int = 21) -> Path:
    """Random-pixel "faces" in the FER2013 npz layout: enough for export to calibrate
    and score; no real face is involved."""
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
             labels=np.arange(n, dtype=np.uint8) % len(LABELS), classes=np.array(LABELS))
    return path


def fixture_run(folder: Path, faces: Path) -> Path:
    """A run folder like ``tools.train`` (or a SageMaker job) leaves: an untrained
    ``vgg_elu-tiny`` with its config."""
    from models.architectures import build

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"arch": "vgg_elu-tiny", "train": str(faces),
                                                    "valid": str(faces)}))
    build("vgg_elu-tiny").save_weights(folder / "best.weights.h5")
    return folder


FIXTURE_MODEL = Path(__file__).with_name("fixtures") / "fixture_int8.tflite"


def export_fixture_model(work: Path) -> dict[str, Path]:
    """What ``tests/fixtures/fixture_int8.tflite`` and its JSON are: ``tools.train.export``
    of an untrained tiny net. Needs TensorFlow; ``test_export`` checks the committed
    files still match what this makes, so the sync tests need no TensorFlow."""
    from tools.train.export import ExportOptions, export_run

    run = fixture_run(work / "run", fixture_faces_npz(work / "faces.npz"))
    return export_run(run, work / "out", ExportOptions(name="fixture", version="1.0.0", calib=10, threads=1),
                      log=lambda *_: None)


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory) -> Path:
    """A copy of the committed fixture model (version 1.0.0) with its JSON, which tests may change."""
    folder = tmp_path_factory.mktemp("fixture-model")
    for src in (FIXTURE_MODEL, FIXTURE_MODEL.with_suffix(".json")):
        shutil.copy2(src, folder / src.name)
    return folder / FIXTURE_MODEL.name


def model_version(src: Path, folder: Path, version: str, **meta_changes) -> Path:
    """A copy of ``src`` under ``folder`` whose metadata says ``version`` (and any
    other changed keys): the same weights released under another name."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"fixture-{version}.tflite"
    shutil.copyfile(src, dest)
    meta = json.loads(src.with_suffix(".json").read_text())
    meta.update(version=version, file=dest.name, **meta_changes)
    dest.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return dest


def crashing_model(src: Path, folder: Path, version: str) -> Path:
    """A copy of ``src`` that segfaults LiteRT, with metadata that matches it.

    A valid flatbuffer, as a buggy converter or a hostile key holder could sign:
    its input tensor is made a constant (data in the read-only mapped file) of
    batch 7, so the interpreter loads it and ``set_tensor`` for the 7 smoke
    faces writes into read-only memory: SIGSEGV, with no Python error first.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    dest = model_version(src, folder, version)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(src.read_bytes(), 0))
    graph = model.subgraphs[0]
    face = graph.tensors[graph.inputs[0]]
    face.shape = np.array([7, 48, 48, 1], dtype=np.int32)
    constant = schema.BufferT()
    constant.data = np.zeros(7 * 48 * 48, np.uint8)
    model.buffers.append(constant)
    face.buffer = len(model.buffers) - 1
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dest.write_bytes(builder.Output())
    meta = json.loads(dest.with_suffix(".json").read_text())
    meta.update(sha256=hashlib.sha256(dest.read_bytes()).hexdigest(), size=dest.stat().st_size)
    dest.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return dest


# --- pulling the plug -------------------------------------------------------------------

# Prepended to a child's script: SIGKILL itself just before a chosen file-system
# call of the store or sync code, the closest a test gets to cutting the power
# between two steps. KILL_AT="7": before the 7th call of any of STEPS;
# KILL_AT="replace:3": before the 3rd os.replace (or any call of that name).
KILL_SWITCH = r'''
import os, signal, sys
STEPS = {"rename", "replace", "symlink", "unlink", "rmdir", "mkdir", "fsync"}
FILES = ("model_store.py", "sync.py", "core/files.py", "shutil.py", "tempfile.py")
_name, _, _n = os.environ["KILL_AT"].rpartition(":")
kill_at, seen = int(_n), 0
def _profile(frame, event, arg):
    global seen
    if event != "c_call" or not frame.f_code.co_filename.endswith(FILES):
        return
    name = getattr(arg, "__name__", "")
    if (name == _name) if _name else (name in STEPS and getattr(arg, "__module__", "") == "posix"):
        seen += 1
        if seen == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(_profile)
'''


def killed_run(args: list[str], kill_at: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` (a ``-c`` script starting with KILL_SWITCH) with ``KILL_AT``."""
    env = {**(env or os.environ), "KILL_AT": kill_at, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


# --- a publisher and a device around one bucket -------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_main(main, argv: list[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # a usage error, as the parser ends it in a console script
            code = exc.code
    return Result(code, out.getvalue(), err.getvalue())


@dataclass
class Fleet:
    """The publisher's key and bucket, and one device's store, state and config (its
    [sync] table last, so that a test may append a key to it)."""

    bucket: Bucket
    root: Path

    @property
    def private_key(self) -> Path:
        return self.root / "signing.pem"

    @property
    def store(self) -> Path:
        return self.root / "device" / "models"

    @property
    def config(self) -> Path:
        return self.root / "device" / "config.toml"

    def set_sync(self, **keys: object) -> None:
        """Add keys (not set yet) to the config's [sync] table."""
        from device.config import _toml_value

        self.config.write_text(self.config.read_text() + "".join(f"{k} = {_toml_value(v)}\n"
                                                                 for k, v in keys.items()))

    def publish(self, model: Path, *extra: str) -> Result:
        from tools.cli import main  # facecue-model: publish, refresh

        return run_main(main, ["publish", str(model), "--to", self.bucket.url, "--key", str(self.private_key),
                               "--endpoint-url", self.bucket.moto.url, *extra])

    def sync_argv(self, *extra: str) -> list[str]:
        return ["--config", str(self.config), *extra]

    def sync(self, *extra: str) -> Result:
        from device.sync import main

        return run_main(main, self.sync_argv(*extra))

    def manifest(self) -> dict:
        return json.loads(self.bucket.get("manifest.json"))

    def put_manifest(self, doc: dict, sign: bool = True) -> None:
        """Upload ``doc``, re-signed with the fleet key: a publisher with the key but a bug."""
        import base64

        from device.manifest import signed_bytes
        from tools.cloud.signing import load_private_key

        if sign:
            doc["signature"] = base64.b64encode(load_private_key(self.private_key).sign(
                signed_bytes(doc["body"]))).decode()
        self.bucket.put("manifest.json", json.dumps(doc).encode())

    def state(self) -> dict:
        return json.loads((self.root / "device" / "state" / "state.json").read_text())


@pytest.fixture
def fleet(bucket: Bucket, tmp_path: Path) -> Fleet:
    from tools.cloud.signing import generate_keypair

    root = tmp_path / "fleet"
    (root / "device").mkdir(parents=True)
    generate_keypair(root / "signing.pem", root / "device" / "signing.pub")
    (root / "device" / "config.toml").write_text(
        f'[model]\nstore = "{root / "device" / "models"}"\n\n'
        f'[sync]\nsource = "{bucket.url}"\n'
        f'endpoint_url = "{bucket.moto.url}"\n'
        f'public_key = "{root / "device" / "signing.pub"}"\n'
        f'state_dir = "{root / "device" / "state"}"\n'
        "connect_timeout = 2.0\nread_timeout = 5.0\nmax_attempts = 2\n")
    return Fleet(bucket, root)


@pytest.fixture
def releases(fixture_model: Path, tmp_path: Path) -> dict[str, Path]:
    """The fixture model released as 1.0.0, 1.1.0 and 1.2.0."""
    return {v: model_version(fixture_model, tmp_path / "releases", v) for v in ("1.0.0", "1.1.0", "1.2.0")}
