"""``python -m bench``: measure pixdrop's upload paths against baselines from the same run."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx
from pydantic import ByteSize, TypeAdapter, ValidationError

from bench.harness import Options, run
from bench.report import human_size, render
from bench.scenarios import BenchError

RESULTS = Path(__file__).parent / "results.md"
DEFAULT_SIZE, QUICK_SIZE = "256MiB", "64MiB"
DEFAULT_ROUNDS, QUICK_ROUNDS = 5, 3
MEMORY_FACTOR = 4


def byte_size(text: str) -> int:
    """``256MiB``, ``1GiB``, ``1048576``: the units pixdrop's own flags take."""
    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256MiB)") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput and server memory of pixdrop's upload paths, with loopback, "
        "disk and sha256 baselines measured in the same run. Prints a Markdown report.",
    )
    parser.add_argument("--size", type=byte_size, help=f"payload size (default {DEFAULT_SIZE})")
    parser.add_argument(
        "--rounds", type=int, help=f"rounds of every figure (default {DEFAULT_ROUNDS})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"defaults of {QUICK_SIZE} and {QUICK_ROUNDS} rounds (memory pass at 64 and 256 MiB)",
    )
    parser.add_argument("--database-url", help="passed to the server (default: its SQLite)")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="profile chunked x 4 uploads with py-spy; raw stacks go to FILE",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.size = args.size or byte_size(QUICK_SIZE if args.quick else DEFAULT_SIZE)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    if args.rounds < 1 or args.rounds > 1000:
        parser.error("--rounds must be between 1 and 1000")
    return args


def header(args: argparse.Namespace) -> list[str]:
    database = args.database_url.split(":", 1)[0] if args.database_url else "SQLite (default)"
    return [
        "## pixdrop benchmark",
        "",
        f"- when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; shared and noisy, so read the ratios",
        f"- pixdrop {version('pixdrop')}, one worker, metadata: {database}",
        f"- payload: {human_size(args.size)}, {args.rounds} rounds; memory pass at "
        f"{human_size(args.size)} and {human_size(args.size * MEMORY_FACTOR)}",
        f"- command: `{' '.join(['python -m bench', *args.argv])}`",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        size=args.size,
        rounds=args.rounds,
        memory_factor=MEMORY_FACTOR,
        database_url=args.database_url,
        profile=args.profile,
    )
    try:
        results, profile = run(options)
    except (BenchError, RuntimeError, httpx.HTTPError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    report = render(results, header(args))
    if profile:
        report += "\n" + profile
    print(report, end="")
    if args.write:
        RESULTS.write_text(report)
        print(f"[bench] wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
