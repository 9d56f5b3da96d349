"""Where pixdrop spends its time in one workload of the comparison, sampled with py-spy.

    python -m bench.peers.profile big      # one 512 MiB file, 8 MiB chunks, 4 in parallel
    python -m bench.peers.profile one      # the same file in one request (POST /v1/images)
    python -m bench.peers.profile photos   # 300 photos of ~100 KiB, one request each, 32 at once
    python -m bench.peers.profile photos1  # the same, one at a time
    python -m bench.peers.profile tiny     # 16 photos of ~32 KiB in 1 KiB chunks, one at a time
    python -m bench.peers.profile tiny --pixdrop-rev HEAD --raw /tmp/stacks.txt

Starts a pixdrop server as the comparison does, attaches ``py-spy record --subprocesses`` to
it (so the decoder workers are sampled too; needs ``pip install py-spy``), runs the workload
with pixdrop's own client, and prints the functions most often on a CPU, for the server
process and for its workers separately, and the wall time of the workload. Sampling slows
the server a little; read the shares, not the times. Not a measurement of record.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from bench import hotspots
from bench.payload import write_tiff
from bench.peers import data, envs
from bench.peers.drivers import Contender, Runner, export_rev
from bench.peers.servers import start_pixdrop

MiB = 1024 * 1024
WORKLOADS = {
    "big": {"chunk_size": 8 * MiB, "parallel": 4, "concurrency": 1},
    "one": {"chunk_size": None, "parallel": 1, "concurrency": 1},
    "photos": {"chunk_size": None, "parallel": 1, "concurrency": 32},
    "photos1": {"chunk_size": None, "parallel": 1, "concurrency": 1},
    "tiny": {"chunk_size": 1024, "parallel": 1, "concurrency": 1},
}
_PROCESS = re.compile(r"^process (\d+):")


def split_by_process(raw: Path, server_pid: int, folder: Path) -> dict[str, Path]:
    """py-spy's raw stacks, one file for the server's own process, one for its children.

    With --subprocesses each stack starts with a "process PID:"COMMAND"" frame per process
    from the root down (a worker's has two), and a command line may hold newlines.
    """
    groups: dict[str, list[str]] = {"server": [], "workers": []}
    for record in re.split(r"\n(?=process \d+:)", raw.read_text()):
        record = record.replace("\n", " ").strip()
        if not record:
            continue
        frames = record.split(";")
        pids = [int(found.group(1)) for f in frames if (found := _PROCESS.match(f))]
        key = "server" if pids in ([], [server_pid]) else "workers"
        groups[key].append(";".join(f for f in frames if not _PROCESS.match(f)))
    out = {}
    for key, lines in groups.items():
        path = folder / f"{key}.txt"
        path.write_text("\n".join(lines) + "\n")
        out[key] = path
    return out


def summary(path: Path, top: int) -> str:
    spots = hotspots.hotspots(path, top=top)
    lines = hotspots.render(spots, path.stem).splitlines()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.profile", description=__doc__)
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--pixdrop-rev", metavar="REV")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw stacks here")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL (Python's CPU, not threads in syscalls)",
    )
    args = parser.parse_args(argv)
    cache = envs.default_cache()
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-profile-") as tmp:
        work = Path(tmp)
        src = export_rev(args.pixdrop_rev, work)[0] if args.pixdrop_rev else None
        env = {"PYTHONPATH": str(src)} if src else {}
        if args.workload in ("big", "one"):
            files = [write_tiff(work / "payload.tif", 512 * MiB).path]
        elif args.workload.startswith("photos"):
            photos = data.photos(cache, 2000, 100 * 1024)[:300]
            files = data.variant(photos, work / "photos", "profile")
        else:
            small = data.photos(cache, 16, 32 * 1024, seed=4)
            files = data.variant(small, work / "small", "profile")
        server = start_pixdrop("pixdrop", "pixdrop", work, env)
        raw = args.raw or work / "stacks.txt"
        runner = Runner({"pixdrop": server}, work, pixdrop_src=src)
        contender = Contender("p", "pixdrop", "pixdrop", "pixdrop", WORKLOADS[args.workload])
        try:
            with hotspots.record(server.pid, raw, subprocesses=True, gil=args.gil):
                run = runner.run(contender, files)
        finally:
            server.stop()
        print(f"## {args.workload}: {json.dumps({k: run[k] for k in ('seconds', 'requests')})}")
        print(f"server CPU {run['server_cpu']:.1f} s, client CPU {run['client_cpu']:.1f} s\n")
        for key, path in split_by_process(raw, server.pid, work).items():
            print(f"# {key}\n")
            print(summary(path, args.top))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
