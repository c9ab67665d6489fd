"""`pip install .` gives a working rbd: dependencies, the `rbd` command, one version, pins inside the ranges."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import rbd

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(path: Path) -> dict[str, Requirement]:
    """The exact pins of a requirements file (not its -r includes or comments), by canonical name."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    pins = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return {canonicalize_name(pin.name): pin for pin in pins}


def _ranges() -> dict[str, Requirement]:
    everything = PROJECT["dependencies"] + [r for extra in PROJECT["optional-dependencies"].values() for r in extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, everything)}


def test_every_dependency_is_pinned_inside_its_range():
    pins, ranges = _pins(ROOT / "requirements.txt"), _ranges()
    assert set(ranges) <= set(pins), set(ranges) - set(pins)
    for name, wanted in ranges.items():
        (pinned,) = pins[name].specifier
        assert pinned.operator == "==" and wanted.specifier.contains(pinned.version), (name, str(wanted.specifier), pinned.version)
        assert wanted.extras == pins[name].extras, name
    assert "pandas" in ranges and "pandas" in pins  # the app imports it


def test_requires_python_admits_no_python_the_pinned_packages_refuse():
    """The oldest Python that requires-python allows must install every pin (numpy 2.4 and scipy 1.17 need 3.11)."""
    oldest = Version(PROJECT["requires-python"].removeprefix(">="))
    for name, pin in _pins(ROOT / "requirements.txt").items():
        installed = metadata.metadata(name)
        assert installed["Version"] == next(iter(pin.specifier)).version, name  # the tests run on the pins
        needs = installed.get("Requires-Python")
        if needs:
            assert Requirement(f"x{needs}").specifier.contains(oldest), (name, needs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would install, built offline from a copy (the build writes next to the sources)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "rbd", source / "rbd", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True)
    (built,) = out.glob("rbd-*.whl")
    return built


def test_wheel_has_dependencies_command_version_and_every_module(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"rbd-{rbd.__version__}.dist-info"
        meta = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert meta["Version"] == rbd.__version__ and meta["Requires-Python"] == PROJECT["requires-python"]
    required = {canonicalize_name(Requirement(r).name) for r in meta.get_all("Requires-Dist")}
    assert required == set(_ranges())
    assert "[console_scripts]\nrbd = rbd.cli:main" in entry_points  # the function python -m rbd runs
    assert "from .cli import main" in (ROOT / "rbd" / "__main__.py").read_text()
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "rbd").rglob("*.py")}
    assert modules <= set(names), modules - set(names)


def test_every_name_the_readmes_python_example_uses_exists(detector, category):
    """The example is read before the API: a name it uses that rbd lacks (`calibration.describe()` once) fails the
    first user who copies it. Each attribute chain on the example's objects is looked up on real ones."""
    import ast

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("## Use it from Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    prediction = detector.predict(sorted((category / "test" / "hole").iterdir())[0])
    objects = {"rbd": rbd, "detector": detector, "new": detector, "prediction": prediction, "p": prediction}
    checked = 0
    for node in ast.walk(ast.parse(example)):
        if not isinstance(node, ast.Attribute):  # inner links of a chain are checked as chains of their own too
            continue
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in objects:
            value = objects[base.id]
            for name in chain:
                assert hasattr(value, name), f"README: {base.id}.{'.'.join(chain)} ({name} is missing)"
                value = getattr(value, name)
            checked += 1
        elif isinstance(base, ast.Call) and ast.unparse(base.func) == "rbd.evaluate":
            assert hasattr(rbd.Evaluation, chain[0]), f"README: rbd.evaluate(...).{chain[0]}"
            checked += 1
    assert checked >= 20  # the example's calls were all found
