"""The peers' own environments, installed by the harness into a cache directory.

* ``node/``: ``bench/peers/node`` (package.json, package-lock.json, the two scripts) copied
  there, then ``npm ci``: @tus/server, @tus/file-store and tus-js-client at the versions the
  lock file pins.
* ``py/``: a virtual environment (``python -m venv``) with ``bench/peers/requirements.txt``:
  tuspyserver, tuspy and uvicorn[standard].
* ``charts/``: a virtual environment with matplotlib, made only when the charts are wanted
  and the running Python has no matplotlib.
* ``nofsync.so``: the LD_PRELOAD shim of ``bench/peers/nofsync.c``, built with ``cc``.

Each is rebuilt only when what it was made from changed (a stamp file holds a hash of the
inputs), so a second run starts in seconds. The cache is ``$BENCH_CACHE_DIR``, else
``$XDG_CACHE_HOME/pixdrop-bench``, else ``~/.cache/pixdrop-bench``: outside the repository,
so a fresh clone (as in CI) reuses what an earlier run on the machine installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_SOURCES = ("package.json", "package-lock.json", "tus_server.mjs", "tus_client.mjs")
MIN_NODE = (20, 19)
CHARTS_REQUIREMENT = "matplotlib>=3.8"
INSTALL_TIMEOUT = 900


def default_cache() -> Path:
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixdrop-bench"


class EnvError(Exception):
    """A peer environment could not be made; the message says why."""


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()


def _fresh(stamp: Path, digest: str) -> bool:
    return stamp.exists() and stamp.read_text().strip() == digest


def _run(command: list[str], cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvError(f"{what}: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        raise EnvError(f"{what} failed (exit {done.returncode}):\n  " + "\n  ".join(tail))


@dataclass(frozen=True, slots=True)
class NodeEnv:
    node: str
    directory: Path
    versions: dict[str, str]

    def script(self, name: str) -> Path:
        return self.directory / name


def node_version(node: str) -> tuple[int, ...]:
    text = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in text.strip().lstrip("v").split(".")[:2])


def node_env(cache: Path) -> NodeEnv:
    """@tus/server, @tus/file-store and tus-js-client in ``cache/node``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise EnvError("node and npm are needed for the @tus/server peer (Node.js >= 20.19)")
    if node_version(node) < MIN_NODE:
        raise EnvError(f"@tus/server needs Node.js >= 20.19; {node} is {node_version(node)}")
    directory = cache / "node"
    directory.mkdir(parents=True, exist_ok=True)
    sources = {name: (HERE / "node" / name).read_bytes() for name in NODE_SOURCES}
    for name, data in sources.items():
        target = directory / name
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    stamp = directory / ".installed"
    digest = _digest(sources["package.json"], sources["package-lock.json"])
    if not _fresh(stamp, digest) or not (directory / "node_modules").is_dir():
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], directory, "npm ci")
        stamp.write_text(digest)
    versions = {}
    for package in ("@tus/server", "@tus/file-store", "tus-js-client"):
        manifest = directory / "node_modules" / package / "package.json"
        versions[package] = _json_field(manifest, "version")
    versions["node"] = ".".join(map(str, node_version(node)))
    return NodeEnv(node, directory, versions)


def _json_field(path: Path, field: str) -> str:
    import json

    value = json.loads(path.read_text()).get(field)
    return str(value)


@dataclass(frozen=True, slots=True)
class PythonEnv:
    python: Path
    versions: dict[str, str]


def _venv(directory: Path, requirements: list[str], what: str) -> Path:
    """A venv at *directory* with *requirements* installed; its python."""
    python = directory / "bin" / "python"
    stamp = directory / ".installed"
    digest = _digest(sys.version.encode(), "\n".join(requirements).encode())
    if _fresh(stamp, digest) and python.exists():
        return python
    if directory.exists():
        shutil.rmtree(directory)
    # The venv's parent is the working directory of the commands below: on a fresh machine
    # the cache directory does not exist yet, and a missing cwd fails before venv runs.
    directory.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(directory)], directory.parent, f"{what}: python -m venv")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, *requirements], directory.parent, f"{what}: pip install")
    stamp.write_text(digest)
    return python


def python_env(cache: Path) -> PythonEnv:
    """tuspyserver, tuspy and uvicorn[standard] in their own venv, ``cache/py``."""
    lines = (HERE / "requirements.txt").read_text().splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    python = _venv(cache / "py", requirements, "the tuspyserver peer's venv")
    probe = (
        "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
        "('tuspyserver', 'tuspy', 'uvicorn', 'fastapi')}))"
    )
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if done.returncode != 0:
        raise EnvError(f"the tuspyserver venv is broken: {done.stderr.strip()[-500:]}")
    import json

    return PythonEnv(python, json.loads(done.stdout))


def charts_python(cache: Path) -> Path:
    """A python that can import matplotlib: this one, else a venv made for it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return _venv(cache / "charts", [CHARTS_REQUIREMENT], "the charts venv")
    return Path(sys.executable)


def nofsync_shim(cache: Path) -> Path:
    """``nofsync.so`` built from ``nofsync.c``; ``EnvError`` without a C compiler."""
    source = (HERE / "nofsync.c").read_bytes()
    target = cache / "nofsync.so"
    stamp = cache / ".nofsync"
    if _fresh(stamp, _digest(source)) and target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise EnvError("no C compiler (cc) to build the no-fsync shim")
    cache.mkdir(parents=True, exist_ok=True)
    _run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(target), str(HERE / "nofsync.c")],
        cache,
        "building nofsync.so",
    )
    stamp.write_text(_digest(source))
    return target


def attempt(make: Callable[[], object], notes: list[str], what: str) -> object | None:
    """``make()``, or None with a note when it raises ``EnvError``."""
    try:
        return make()
    except EnvError as exc:
        notes.append(f"{what} unavailable: {exc}")
        return None
