"""How the code hangs together: the packages' layers, no import cycles, and the
device's parts that run without the training extra import without TensorFlow.

Imports inside functions count too: a cycle hidden behind a late import is
still a cycle (a module that cannot be read without the one that uses it).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each package may import its own modules and those of lower layers, never a higher
# or an equal one: what runs on the hat (device) uses the audio code, both share
# the core, and the model maker's tools use them all. models holds the shipped
# files and the Keras definitions, and imports none of the others.
LAYERS = {"core": 0, "models": 0, "audio": 1, "device": 2, "tools": 3}
# A string that names a module is an import too (importlib.import_module, entry points).
MODULE_NAME = re.compile(r"({})(\.\w+)+".format("|".join(LAYERS)))


def module_files(root: Path = ROOT) -> dict[str, Path]:
    files = {}
    for package in LAYERS:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each module's imports of the project's own modules, wherever they are written."""
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        named = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                named |= {alias.name for alias in node.names}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
                named.add(node.value)
        graph[name] = {m for m in named if m in files and m != name}
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for each import of an equal or higher layer's package."""
    found = []
    for module, imports in sorted(graph.items()):
        package = module.partition(".")[0]
        for imported in sorted(imports):
            other = imported.partition(".")[0]
            if other != package and LAYERS[other] >= LAYERS[package]:
                found.append(f"{module} -> {imported}")
    return found


def test_every_import_goes_down_the_layers():
    assert layer_violations(import_graph()) == []


@pytest.mark.parametrize("package, line", [
    ("audio", "from device.config import Config"),  # up a layer
    ("core", "import audio.sound"),
    ("device", "from tools import commands"),
    ("device", 'def late():\n    import importlib\n    return importlib.import_module("tools.commands")'),
    ("models", "from core import labels"),  # an equal layer
])
def test_a_wrong_import_is_named(tmp_path, package, line):
    for name in LAYERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "core" / "labels.py").write_text("")
    (tmp_path / "audio" / "sound.py").write_text("from core import labels\n")  # down: allowed
    (tmp_path / "device" / "config.py").write_text("import audio.sound\nfrom core.labels import X\n")
    (tmp_path / "tools" / "commands.py").write_text("from device import config\n")
    assert layer_violations(import_graph(tmp_path)) == []
    (tmp_path / package / "wrong.py").write_text(line + "\n")
    found = layer_violations(import_graph(tmp_path))
    assert {violation.split(" -> ")[0] for violation in found} == {f"{package}.wrong"}, found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("module", ["device.sync", "tools.cloud.publish", "tools.eval.evaluate", "device.cli"])
def test_imports_without_tensorflow(module):
    code = (f"import sys, {module}; heavy = sorted({{'tensorflow', 'keras'}} & set(sys.modules)); "
            "print(heavy); sys.exit(bool(heavy))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_nothing_on_the_hat_can_sign_a_manifest():
    """The device only verifies manifests; making keys and signing (tools/cloud/signing.py)
    is the publisher's, so no module below ``tools`` so much as names a private key type."""
    signing = [str(path.relative_to(ROOT)) for name, path in module_files().items()
               if not name.startswith("tools") and "Ed25519PrivateKey" in path.read_text()]
    assert signing == []


def test_the_readme_code_map_names_every_package_and_only_folders_that_exist():
    """The README's table under "The code" is the layout a reader sees first."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## The code", 1)[1].split("\n## ", 1)[0]
    named = {name.rstrip("/") for name in re.findall(r"^\| `([\w./-]+)`", table, re.M)}
    named |= set(re.findall(r"^\| `[\w./-]+`, `([\w./-]+)`", table, re.M))
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS) and packages <= named
    assert all((ROOT / name).exists() for name in named), named
