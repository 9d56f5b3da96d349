"""``python -m bench.peers``: pixdrop side by side with @tus/server and tuspyserver.

Sets up its own data and peers, runs the six scenarios of issue 6 in interleaved rounds and
writes ``docs/benchmarks.md`` with its charts (``docs/benchmarks/*.png``) and the raw results
(``docs/benchmarks/results.json``). ``--quick`` runs tiny sizes and one round, prints the
report and writes nothing into the repository: the CI check that the harness still works.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.peers import envs, report, scenarios, servers
from bench.peers.drivers import REPO, Runner, export_rev
from bench.peers.scenarios import Config, Session, log

DOC = REPO / "docs" / "benchmarks.md"
PIXDROP_SETUP = (
    "`pixdrop serve` (one uvicorn worker with uvloop and httptools, SQLite metadata with "
    "synchronous=FULL, the default two decoder processes), flags `--max-request-size 4GiB "
    "--min-chunk-size 1KiB --decode-timeout 600 --no-access-log`; every chunk, blob, "
    "directory entry and commit is fsynced before the answer"
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description="pixdrop side by side with @tus/server and tuspyserver (issue 6).",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (CI)")
    parser.add_argument("--rounds", type=int, help="rounds of scenarios 1-4 and 6 (default 5)")
    parser.add_argument("--images", type=int, help="photos in scenario 3 (default 2000)")
    parser.add_argument("--scenarios", default="123456", help="which to run, e.g. 135")
    parser.add_argument(
        "--no-peers", action="store_true", help="pixdrop, the limits and the floor only"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="peers and data cache")
    parser.add_argument(
        "--pixdrop-src", type=Path, help="import pixdrop from this src directory instead"
    )
    parser.add_argument(
        "--pixdrop-rev",
        metavar="REV",
        help="measure pixdrop as committed at REV (git archive), not the work tree",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help=f"write the report here (default: {DOC.relative_to(REPO)}; none with --quick)",
    )
    parser.add_argument("--no-charts", action="store_true", help="no PNG charts")
    parser.add_argument(
        "--render", type=Path, metavar="RESULTS", help="only render a results.json again"
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def config_of(args: argparse.Namespace) -> Config:
    config = Config.quick_run() if args.quick else Config.full()
    if args.rounds:
        config = replace(config, rounds=args.rounds)
    if args.images:
        config = replace(config, images=args.images)
    return replace(config, scenarios=frozenset(args.scenarios))


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model or platform.machine()}), {memory:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def commit(pixdrop_src: Path | None) -> str:
    if pixdrop_src is not None:
        return f"imported from {pixdrop_src}"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown commit"
    return f"commit {head}" + (" with uncommitted changes in src/" if dirty else "")


def prepare_envs(
    cache: Path, peers: bool, notes: list[str]
) -> tuple[envs.NodeEnv | None, envs.PythonEnv | None, Path | None]:
    """The peers' environments and the no-fsync shim, made side by side."""
    started = time.monotonic()
    # On a fresh machine the cache does not exist yet; made here, before three threads race.
    cache.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(3) as pool:
        node = pool.submit(envs.attempt, lambda: envs.node_env(cache), notes, "@tus/server")
        python = pool.submit(envs.attempt, lambda: envs.python_env(cache), notes, "tuspyserver")
        shim = pool.submit(
            envs.attempt, lambda: envs.nofsync_shim(cache), notes, "pixdrop without fsync"
        )
        if not peers:
            node.cancel()
            python.cancel()
        made = (
            node.result() if peers else None,
            python.result() if peers else None,
            shim.result(),
        )
    log(f"environments ready in {time.monotonic() - started:.0f} s (cache: {cache})")
    return made  # type: ignore[return-value]


def start_servers(
    work: Path,
    node: envs.NodeEnv | None,
    python: envs.PythonEnv | None,
    shim: Path | None,
    pixdrop_src: Path | None,
    missing: dict[str, str],
    nofsync: list[str],
) -> dict[str, servers.Server]:
    """Every server that can run, started side by side; *missing* gets why the others don't."""
    env = {"PYTHONPATH": str(pixdrop_src)} if pixdrop_src else {}
    starts: dict[str, Callable[[], servers.Server]] = {
        "pixdrop": lambda: servers.start_pixdrop("pixdrop", "pixdrop", work, env),
    }
    if servers.pixdrop_has_flag("--no-fsync", env):
        starts["pixdrop-nofsync"] = lambda: servers.start_pixdrop(
            "pixdrop-nofsync", "pixdrop without fsync", work, env, ["--no-fsync"]
        )
        nofsync.append("`pixdrop serve --no-fsync`")
    elif shim is not None:
        starts["pixdrop-nofsync"] = lambda: servers.start_pixdrop(
            "pixdrop-nofsync", "pixdrop without fsync", work, {**env, "LD_PRELOAD": str(shim)}
        )
        nofsync.append("`bench/peers/nofsync.c` preloaded (fsync returns at once)")
    else:
        missing["pixdrop-nofsync"] = "no --no-fsync flag, and the no-fsync shim was not built"
    if node is not None:
        command = [node.node, str(node.script("tus_server.mjs"))]
        starts["tus-node"] = lambda: servers.start_process("tus-node", "@tus/server", command, work)
    elif "tus-node" not in missing:
        missing["tus-node"] = "@tus/server is not installed (see the notes)"
    if python is not None:
        app = [str(python.python), str(Path(__file__).parent / "tuspyserver_app.py")]
        starts["tuspyserver"] = lambda: servers.start_process(
            "tuspyserver", "tuspyserver", app, work
        )
    elif "tuspyserver" not in missing:
        missing["tuspyserver"] = "tuspyserver is not installed (see the notes)"
    running: dict[str, servers.Server] = {}
    errors: dict[str, Exception] = {}
    with ThreadPoolExecutor(len(starts)) as pool:
        futures = {key: pool.submit(start) for key, start in starts.items()}
    for key, future in futures.items():
        try:
            running[key] = future.result()
        except Exception as exc:
            errors[key] = exc
            missing[key] = f"{key} did not start: {exc}"
    if "pixdrop" in errors:
        for server in running.values():
            server.stop()
        raise errors["pixdrop"]
    probe = running["pixdrop"].tus
    if not probe.present:
        missing["pixdrop-tus"] = (
            f"pixdrop has no tus endpoint yet: OPTIONS /files/ answered {probe.status or 'nothing'}"
        )
    return running


def setup_lines(
    config: Config,
    node: envs.NodeEnv | None,
    python: envs.PythonEnv | None,
    pixdrop: str,
    nofsync: list[str],
) -> list[str]:
    lines = [f"pixdrop {version('pixdrop')} ({pixdrop}): {PIXDROP_SETUP}."]
    if nofsync:
        lines.append(f"*pixdrop without fsync*: the same server with {nofsync[0]}.")
    if node is not None:
        v = node.versions
        lines.append(
            f"@tus/server {v['@tus/server']} with @tus/file-store {v['@tus/file-store']} on "
            f"Node.js {v['node']}, one process (`bench/peers/node/tus_server.mjs`, the "
            "package's README configuration); writes without fsync."
        )
    if python is not None:
        v = python.versions
        lines.append(
            f"tuspyserver {v['tuspyserver']} (FastAPI {v['fastapi']}) under uvicorn "
            f"{v['uvicorn']}, one worker with uvloop and httptools "
            "(`bench/peers/tuspyserver_app.py`, default local storage); writes without fsync."
        )
    clients = ["pixdrop's own client (`pixdrop.client`, httpx)"]
    if node is not None:
        clients.append(f"tus-js-client {node.versions['tus-js-client']} on Node.js")
    if python is not None:
        clients.append(f"tuspy {python.versions['tuspy']} (requests, a new connection each)")
    lines.append(
        "Clients: " + "; ".join(clients) + ". Each client runs in its own process on the same "
        "machine as the servers (2 cores between them) and times itself."
    )
    lines.append(
        "Limits in the same run: loopback TCP (the payload in 1 MiB sendall()s over 127.0.0.1 "
        "to a thread that discards it) and a sequential disk write of the payload with fsync, "
        "both in the harness process."
    )
    lines.append(
        "Floor in the same run, in the harness process (`bench/peers/floor.py`): the upload's "
        "bytes written sequentially to a new file and fsynced, plus one full decode of the "
        f"image with pyvips {_pyvips_version()}; per photo in scenario 3, at the clients' "
        "concurrency; per 1 KiB chunk one write and one fsync (no decode) in scenario 4."
    )
    lines.append(
        f"Rounds: {config.rounds} per scenario (scenario 5: {config.memory_rounds} per size); "
        "the harness deletes what each run stored and runs sync before the next run."
    )
    return lines


def _pyvips_version() -> str:
    try:
        import pyvips  # type: ignore[import-untyped]
    except ImportError:
        return "(not installed)"
    return f"{pyvips.__version__} (libvips {pyvips.version(0)}.{pyvips.version(1)})"


def render_outputs(
    results: dict[str, Any], doc: Path | None, charts: bool, cache: Path, work: Path
) -> str:
    """Write the JSON, the charts and the Markdown; return the Markdown."""
    folder = doc.parent / doc.stem if doc else work / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    results_path = folder / "results.json"
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    made: dict[str, str] = {}
    if charts:
        try:
            python = envs.charts_python(cache)
            done = subprocess.run(
                [
                    str(python),
                    str(Path(__file__).parent / "charts.py"),
                    str(results_path),
                    str(folder),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            made = {k: f"{folder.name}/{v}" for k, v in json.loads(done.stdout).items()}
        except (envs.EnvError, subprocess.CalledProcessError, ValueError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            results.setdefault("notes", []).append(f"charts not made: {detail.strip()[-300:]}")
    text = report.render(results, made)
    if doc is not None:
        doc.write_text(text)
        log(f"wrote {doc} and {folder}/")
    return text


def measure(args: argparse.Namespace, config: Config, cache: Path, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    notes: list[str] = []
    node, python, shim = prepare_envs(cache, not args.no_peers, notes)
    missing: dict[str, str] = {}
    if args.no_peers:
        missing["tus-node"] = missing["tuspyserver"] = "left out (--no-peers)"
    pixdrop_src, measured = args.pixdrop_src, commit(args.pixdrop_src)
    if args.pixdrop_rev:
        pixdrop_src, measured = export_rev(args.pixdrop_rev, work)
    nofsync: list[str] = []
    running = start_servers(work, node, python, shim, pixdrop_src, missing, nofsync)
    runner = Runner(
        running,
        work,
        node=node.node if node else None,
        node_dir=node.directory if node else None,
        peer_python=python.python if python else None,
        pixdrop_src=pixdrop_src,
    )

    def restart() -> None:
        for server in runner.servers.values():
            server.stop()
        (work / "restarted").mkdir(exist_ok=True)
        fresh = start_servers(work / "restarted", node, python, shim, pixdrop_src, {}, [])
        runner.servers.clear()
        runner.servers.update(fresh)

    session = Session(runner, config, cache, work, missing, restart=restart)
    done: list[scenarios.Scenario] = []
    try:
        if config.scenarios & set("12"):
            done += scenarios.big_files(session)
        if config.scenarios & set("34"):
            done += scenarios.small_files(session)
        if "5" in config.scenarios:
            done.append(scenarios.memory_scenario(session))
        if "6" in config.scenarios:
            done.append(scenarios.thumbnails(session))
    except BaseException:
        for server in runner.servers.values():
            log(f"{server.label} log ends with:\n{server.log_tail(1500)}")
        raise
    finally:
        for server in runner.servers.values():
            server.stop()
    elapsed = time.monotonic() - started
    command = " ".join(["python -m bench.peers", *args.argv])
    return {
        "meta": {
            "command": command,
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC (end)",
            "duration": f"which took {elapsed / 60:.1f} minutes",
            "machine": machine(),
            "setup": setup_lines(config, node, python, measured, nofsync),
            "quick": config.quick,
        },
        "notes": notes + [f"{key}: {why}" for key, why in missing.items()],
        "failures": session.failures,
        "scenarios": [s.as_json() for s in done],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cache = (args.cache_dir or envs.default_cache()).resolve()
    if args.render:
        results = json.loads(args.render.read_text())
        doc = args.doc or DOC
        with tempfile.TemporaryDirectory(prefix="pixdrop-bench-peers-") as tmp:
            render_outputs(results, doc, not args.no_charts, cache, Path(tmp))
        return 0
    config = config_of(args)
    doc = args.doc if args.doc else (None if config.quick else DOC)
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-peers-") as tmp:
        work = Path(tmp)
        log(f"working in {work}")
        results = measure(args, config, cache, work)
        charts = not args.no_charts and (not config.quick or doc is not None)
        text = render_outputs(results, doc, charts, cache, work)
    if doc is None:
        print(text, end="")
    for failure in results["failures"]:
        log(f"FAILED: {failure}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
