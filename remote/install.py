"""What a host needs to run raftchat nodes: wheels built on the control machine, a virtualenv there.

Hosts may have no package index, so every wheel is made here and uploaded: this source tree
as a wheel (the same code the harness runs, cached by a hash of its files), and the wheels of
the few libraries the node imports, at the versions installed here, for the host's Python
(``pip wheel`` when it matches ours, else ``pip download`` of binary wheels for its version and
machine). Only what a node needs is installed there: ``--no-deps`` keeps the harness's plotting
and client libraries off the hosts. The host's venv gets pip from the uploaded pip wheel
(``python pip.whl/pip``), so the host needs neither ensurepip nor an index.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# What ``raftchat node`` imports beyond the standard library (uvloop only where installed here).
NODE_REQUIREMENTS = ("msgpack", "PyYAML", "uvloop")
SOURCE_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raftchat", "harness", "checker", "histories", "nemesis", "workloads", "systems", "remote")
PIP_TIMEOUT = 300.0


class InstallError(RuntimeError):
    """The wheels could not be made; the message carries pip's output."""


@dataclass(frozen=True)
class PythonTag:
    """What a wheel must match: implementation, X.Y and the platform (``sysconfig.get_platform``)."""

    implementation: str
    version: str
    platform: str

    @classmethod
    def local(cls) -> PythonTag:
        import sysconfig

        return cls(
            sys.implementation.name, f"{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_platform()
        )

    @property
    def key(self) -> str:
        return f"{self.implementation}{self.version}-{self.platform}"


# Run with the host's python3: prints the fields of its PythonTag, or fails if too old.
PROBE = (
    "import sys, sysconfig, venv; "
    "assert sys.version_info >= (3, 11), 'Python %d.%d is older than 3.11' % sys.version_info[:2]; "
    "print(sys.implementation.name, '%d.%d' % sys.version_info[:2], sysconfig.get_platform())"
)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "raftchat-harness" / "wheels"


def source_hash() -> str:
    """A hash of the files that go into this project's wheel: a changed file means a new wheel."""
    digest = hashlib.sha256()
    files = [SOURCE_ROOT / "pyproject.toml"]
    for package in PACKAGES:
        files += sorted(
            p for p in (SOURCE_ROOT / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        digest.update(str(path.relative_to(SOURCE_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _pip(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what}: `{' '.join(cmd)}` took more than {PIP_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise InstallError(f"{what}: `{' '.join(cmd)}` failed ({proc.returncode}):\n{tail}")


def project_wheel() -> Path:
    """This source tree as a wheel, built once per source hash (in a copy: the tree stays clean)."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise InstallError(
            f"no pyproject.toml at {SOURCE_ROOT}: the hosts need a wheel of this project's source"
        )
    out = cache_dir() / "project" / source_hash()
    found = sorted(out.glob("raftchat-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="raftchat-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            if (SOURCE_ROOT / name).is_file():
                shutil.copy2(SOURCE_ROOT / name, src / name)
        for package in PACKAGES:
            shutil.copytree(
                SOURCE_ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        built = Path(tmp) / "out"
        _pip(["wheel", "--no-deps", "-q", "-w", str(built), str(src)], "building this project's wheel")
        out.mkdir(parents=True, exist_ok=True)
        for wheel in built.glob("*.whl"):
            shutil.move(str(wheel), out / wheel.name)
    found = sorted(out.glob("raftchat-*.whl"))
    if not found:
        raise InstallError(f"pip built no raftchat wheel into {out}")
    return found[0]


def requirements() -> list[str]:
    """The node's libraries pinned to the versions installed here, and pip itself."""
    pins = []
    for name in (*NODE_REQUIREMENTS, "pip"):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name != "uvloop":  # optional: the node falls back to asyncio's loop
                raise InstallError(f"{name} is not installed on the control machine") from None
    return pins


def dependency_wheels(tag: PythonTag) -> list[Path]:
    """Wheels of :func:`requirements` for a host with this Python, cached per tag."""
    out = cache_dir() / "deps" / tag.key
    pins = requirements()
    missing = [pin for pin in pins if not _has_wheel(out, pin)]
    if missing:
        out.mkdir(parents=True, exist_ok=True)
        if tag == PythonTag.local():
            _pip(
                ["wheel", "--no-deps", "-q", "-w", str(out), *missing], "making the node's dependency wheels"
            )
        else:
            _pip(
                [
                    "download",
                    "--no-deps",
                    "-q",
                    "--only-binary=:all:",
                    "--implementation",
                    {"cpython": "cp", "pypy": "pp"}.get(tag.implementation, tag.implementation),
                    "--python-version",
                    tag.version,
                    *(arg for platform in _platforms(tag.platform) for arg in ("--platform", platform)),
                    "-d",
                    str(out),
                    *missing,
                ],
                f"downloading the node's dependency wheels for {tag.key}",
            )
    wheels = [_has_wheel(out, pin) for pin in pins]
    if not all(wheels):
        raise InstallError(
            f"no wheel for {', '.join(p for p, w in zip(pins, wheels, strict=True) if not w)} in {out}"
        )
    return [w for w in wheels if w is not None]


def _has_wheel(folder: Path, pin: str) -> Path | None:
    name, _, version = pin.partition("==")
    normal = name.lower().replace("-", "_")
    for wheel in folder.glob("*.whl") if folder.is_dir() else ():
        parts = wheel.name.split("-")
        if parts[0].lower().replace("-", "_") == normal and parts[1] == version:
            return wheel
    return None


def _platforms(platform: str) -> list[str]:
    """pip platform tags for a ``sysconfig.get_platform()`` value such as ``linux-x86_64``."""
    system, _, machine = platform.partition("-")
    if system != "linux":
        return [platform.replace("-", "_").replace(".", "_")]
    return [f"manylinux_2_{minor}_{machine}" for minor in (28, 17, 12, 5)] + [
        f"manylinux2014_{machine}",
        f"manylinux1_{machine}",
        f"linux_{machine}",
    ]


def wheels_for(tag: PythonTag) -> list[Path]:
    """Every wheel a host with this Python needs: the project's (pure Python) and its node libraries."""
    return [project_wheel(), *dependency_wheels(tag)]


def install_script(run_dir: str, python: str, wheels: list[str]) -> str:
    """Shell commands that make ``RUN/venv`` from the uploaded wheels, offline."""
    from remote.ssh import quote

    pip = next(w for w in wheels if w.startswith("pip-"))
    others = [f"{run_dir}/wheels/{w}" for w in wheels if w != pip]
    return (
        f"set -e; {quote(python)} -m venv --without-pip {quote(run_dir + '/venv')}; "
        f"{quote(run_dir + '/venv/bin/python')} {quote(run_dir + '/wheels/' + pip + '/pip')} install "
        "-q --no-compile "
        f"--disable-pip-version-check --no-index --no-deps --find-links {quote(run_dir + '/wheels')} "
        + " ".join(quote(w) for w in others)
    )
