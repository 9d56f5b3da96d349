"""``docs/benchmarks.md`` from a run's results (the JSON the harness writes beside it).

Figures: the median over the rounds and the spread (min-max). Ratios against a peer are
paired by round: each run of a row is divided by the run, in the same round, of that peer's
best row (the one with the highest median), and the median (min-max) of those quotients is
given. The targets of issue 18 are judged on the same ratios' medians. The ratio to the floor
is a time ratio, paired the same way: the row's time for the scenario's work over the floor's
time for the same work in the same round (1.25: a quarter slower than the floor).

Results files of runs before the floor and the CPU per operation (issue 18) render too: the
floor's column is left out when a scenario has no floor row, and CPU per operation is worked
out from ``server_cpu`` and the run's counts when a run does not carry it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
PEERS = {"tus-node": "@tus/server", "tuspyserver": "tuspyserver"}
PIXDROP_SERVERS = ("pixdrop", "pixdrop-nofsync", "pixdrop-tus")
#: Scenario 5: at most this much more peak RSS at the largest size than at the smallest.
#: Per scenario (the key's first two letters): what one operation is, which count of a run
#: says how many it did, and the unit its CPU per operation is shown in.
OPERATIONS = {
    "s1": ("upload", "files", "s"),
    "s2": ("upload", "files", "s"),
    "s3": ("image", "files", "ms"),
    "s4": ("request", "requests", "ms"),
    "s5": ("upload", "files", "s"),
    "s6": ("thumbnail", "files", "ms"),
}
FLOOR = "floor"

Run = dict[str, Any]
Row = dict[str, Any]


# --- figures --------------------------------------------------------------------------------
def rate(unit: str) -> Callable[[Run], float]:
    if unit == "MB/s":
        return lambda run: run["bytes"] / run["seconds"] / 1e6
    if unit == "images/s":
        return lambda run: run["files"] / run["seconds"]
    if unit == "requests/s":
        return lambda run: run["requests"] / run["seconds"]
    return lambda run: run["seconds"] * 1000  # ms


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def mib(value: float) -> str:
    return f"{value / MiB:.0f} MiB"


def median_of(row: Row, figure: Callable[[Run], float]) -> float | None:
    return statistics.median([figure(r) for r in row["runs"]]) if row["runs"] else None


def best_row(rows: list[Row], server: str, figure: Callable[[Run], float]) -> Row | None:
    found = [r for r in rows if r["server"] == server and r["runs"]]
    return max(found, key=lambda r: median_of(r, figure) or 0.0, default=None)


def paired(row: Row, other: Row, figure: Callable[[Run], float]) -> tuple[float, float, float]:
    """Median, min and max of row/other over the rounds both ran (by round and size)."""
    theirs = {(r["round"], r.get("size")): figure(r) for r in other["runs"]}
    quotients = [
        figure(r) / theirs[(r["round"], r.get("size"))]
        for r in row["runs"]
        if (r["round"], r.get("size")) in theirs and theirs[(r["round"], r.get("size"))] > 0
    ]
    if not quotients:
        raise ValueError("no round in common")
    return spread(quotients)


def ratio_text(row: Row, other: Row | None, figure: Callable[[Run], float]) -> str:
    if other is None or not row["runs"]:
        return "-"
    try:
        middle, low, high = paired(row, other, figure)
    except ValueError:
        return "-"
    if row is other:
        return "1"
    return f"{middle:.2f} ({low:.2f}-{high:.2f})"


def time_ratio_text(row: Row, floor: Row | None, figure: Callable[[Run], float]) -> str:
    """The row's time for the work over the floor's, paired by round: floor rate / row rate."""
    if floor is None or not floor["runs"] or not row["runs"]:
        return "-"
    if row is floor:
        return "1"
    try:
        middle, low, high = paired(floor, row, figure)
    except ValueError:
        return "-"
    return f"{middle:.2f} ({low:.2f}-{high:.2f})"


def cpu_per_op(run: Run, key: str) -> float | None:
    """CPU seconds per operation of *run*: the server's (its tree), or the floor's own."""
    for field in ("server_cpu_per_op", "floor_cpu_per_op"):
        if field in run:
            return float(run[field])
    if "server_cpu" not in run:
        return None
    _, count, _ = OPERATIONS[key[:2]]
    return float(run["server_cpu"]) / max(1, int(run.get(count) or 1))


def cpu_text(row: Row, key: str) -> str:
    """Median (min-max) CPU per operation over the row's runs, in the scenario's unit."""
    values = [v for v in (cpu_per_op(r, key) for r in row["runs"]) if v is not None]
    if not values:
        return "-"
    scale = 1000.0 if OPERATIONS[key[:2]][2] == "ms" else 1.0
    middle, low, high = spread([v * scale for v in values])
    if len(values) == 1:
        return number(middle)
    return f"{number(middle)} ({number(low)}-{number(high)})"


def cpu_head(key: str) -> str:
    operation, _, unit = OPERATIONS[key[:2]]
    return f"server CPU {unit} per {operation}"


def floor_split(floor: Row | None, key: str) -> list[str]:
    """One line: how the floor's time per operation split between writing and decoding."""
    if floor is None or not floor["runs"] or "write_seconds" not in floor["runs"][0]:
        return []
    operation, count, _ = OPERATIONS[key[:2]]
    per = statistics.median(r["seconds"] / max(1, r[count]) for r in floor["runs"])
    write = statistics.median(r["write_seconds"] / max(1, r[count]) for r in floor["runs"])
    decode = statistics.median(r["decode_seconds"] / max(1, r[count]) for r in floor["runs"])
    concurrency = floor["job"].get("concurrency") or 1
    text = f"Floor, per {operation} (medians over the rounds): {_ms(write)} writing with fsync"
    if decode > 0 and floor["job"].get("kind") != "chunks":
        text += f", {_ms(decode)} decoding"
    if concurrency > 1:
        text += (
            f" (each {operation}'s own time; {concurrency} at a time, they overlap): "
            f"{_ms(per)} of wall-clock time per {operation}"
        )
    else:
        text += f"; {_ms(per)} in all"
    return [text + "."]


def _ms(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{number(seconds * 1000)} ms"


def grouped(notes: list[tuple[str, str]]) -> list[str]:
    """One line per reason: "- reason: row, row"."""
    reasons: dict[str, list[str]] = {}
    for label, reason in notes:
        reasons.setdefault(reason, []).append(label)
    return [f"- {reason}: {'; '.join(labels)}" for reason, labels in reasons.items()]


def status(row: Row) -> str | None:
    if row["skipped"]:
        return f"skipped: {row['skipped']}"
    if row["failed"]:
        return f"failed: {row['failed'].splitlines()[0][:200]}"
    return None


# --- tables ---------------------------------------------------------------------------------
def throughput_table(scenario: dict[str, Any]) -> list[str]:
    """S1-S4: figure, spread, time over the floor, ratios to each peer, latencies (S3), CPU
    per operation, memory."""
    figure = rate(scenario["unit"])
    key = scenario["key"]
    rows = scenario["rows"]
    refs = {name: best_row(rows, key, figure) for key, name in PEERS.items()}
    floor = next((r for r in rows if r["id"] == FLOOR), None)
    latency = key.startswith("s3")
    head = ["contender", f"median {scenario['unit']}", "spread (min-max)"]
    if floor is not None:
        head.append("time x floor")
    head += [f"x {name}" for name in PEERS.values()]
    if latency:
        head += ["p50 ms", "p99 ms"]
    head += [cpu_head(key), "server peak RSS", "with child processes"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    notes: list[tuple[str, str]] = []
    for row in rows:
        why = status(row)
        if why and not row["runs"]:
            notes.append((row["label"], why))
            continue
        if why:
            notes.append((f"{row['label']} (after {len(row['runs'])} runs)", why))
        middle, low, high = spread([figure(r) for r in row["runs"]])
        cells = [row["label"], number(middle), f"{number(low)}-{number(high)}"]
        if floor is not None:
            cells.append(time_ratio_text(row, floor, figure))
        cells += [ratio_text(row, ref, figure) for ref in refs.values()]
        if latency:
            cells += [
                f"{statistics.median(r['p50'] for r in row['runs']) * 1000:.1f}",
                f"{statistics.median(r['p99'] for r in row['runs']) * 1000:.1f}",
            ]
        cpu = cpu_text(row, key)
        cells.append(f"harness: {cpu}" if row is floor and cpu != "-" else cpu)
        if row["server"] is None:
            cells += ["-", "-"]
        else:
            cells += [
                mib(max(r["rss_main"] for r in row["runs"])),
                mib(max(r["rss_tree"] for r in row["runs"])),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    split = floor_split(floor, key)
    return lines + (["", *split] if split else []) + (["", *grouped(notes)] if notes else [])


def memory_table(scenario: dict[str, Any]) -> list[str]:
    sizes = scenario["extra"]["sizes"]
    head = ["contender"]
    for size in sizes:
        head += [f"{_size(size)}: server", f"{_size(size)}: with children"]
    head.append("growth, smallest to largest")
    head.append(cpu_head("s5") + " (" + " / ".join(_size(size) for size in sizes) + ")")
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    notes: list[tuple[str, str]] = []
    for row in scenario["rows"]:
        why = status(row)
        if why:
            notes.append((row["label"], why))
        if not row["runs"]:
            continue
        cells = [row["label"]]
        peaks = {}
        for size in sizes:
            runs = [r for r in row["runs"] if r.get("size") == size]
            if not runs:
                cells += ["-", "-"]
                continue
            peaks[size] = max(r["rss_main"] for r in runs)
            cells += [mib(peaks[size]), mib(max(r["rss_tree"] for r in runs))]
        if sizes[0] in peaks and sizes[-1] in peaks:
            cells.append(f"{(peaks[sizes[-1]] - peaks[sizes[0]]) / MiB:+.0f} MiB")
        else:
            cells.append("-")
        cpu = []
        for size in sizes:
            values = [cpu_per_op(r, "s5") for r in row["runs"] if r.get("size") == size]
            found = [v for v in values if v is not None]
            cpu.append(number(statistics.median(found)) if found else "-")
        cells.append(" / ".join(cpu))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + (["", *grouped(notes)] if notes else [])


def thumbnail_table(scenario: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | median ms | spread (min-max) | peak RSS | RSS growth over idle | "
        f"{cpu_head('s6')} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    notes: list[tuple[str, str]] = []
    for row in scenario["rows"]:
        why = status(row)
        if why:
            notes.append((row["label"], why))
        if not row["runs"]:
            continue
        middle, low, high = spread([r["seconds"] * 1000 for r in row["runs"]])
        if row["server"] is None:
            peak = mib(max(r["rss_peak"] for r in row["runs"]))
            growth = mib(max(r["rss_growth"] for r in row["runs"]))
        else:
            peak = mib(max(r["rss_tree"] for r in row["runs"])) + " (server with children)"
            growth = "-"
        lines.append(
            f"| {row['label']} | {middle:.0f} | {low:.0f}-{high:.0f} | {peak} | {growth} | "
            f"{cpu_text(row, 's6')} |"
        )
    return lines + (["", *grouped(notes)] if notes else [])


def _size(size: int) -> str:
    return f"{size // (1024 * MiB)} GiB" if size >= 1024 * MiB else f"{size // MiB} MiB"


# --- targets --------------------------------------------------------------------------------
def _row(scenario: dict[str, Any] | None, row_id: str) -> Row | None:
    if scenario is None:
        return None
    return next((r for r in scenario["rows"] if r["id"] == row_id and r["runs"]), None)


def _judge(
    what: str, scenario: dict[str, Any] | None, mine: Row | None, theirs: Row | None, goal: float
) -> tuple[str, str, str]:
    if scenario is None or mine is None or theirs is None:
        return what, "not measured", "-"
    figure = rate(scenario["unit"])
    middle, low, high = paired(mine, theirs, figure)
    measured = (
        f"{middle:.2f}x ({low:.2f}-{high:.2f}): {mine['label']} "
        f"{number(median_of(mine, figure) or 0)} vs {theirs['label']} "
        f"{number(median_of(theirs, figure) or 0)} {scenario['unit']}"
    )
    return what, measured, "met" if middle >= goal else "missed"


def _floor_judge(
    what: str, scenario: dict[str, Any], row: Row | None, goal: float
) -> tuple[str, str, str]:
    """*row*'s time for the scenario's work at most *goal* times the floor's (paired)."""
    floor = _row(scenario, FLOOR)
    if row is None or floor is None:
        return what, "not measured", "-"
    middle, low, high = paired(floor, row, rate(scenario["unit"]))
    measured = f"{middle:.2f}x the floor's time ({low:.2f}-{high:.2f}): {row['label']}"
    return what, measured, "met" if middle <= goal else "missed"


def _median_cpu(row: Row | None, key: str) -> float | None:
    if row is None:
        return None
    values = [v for v in (cpu_per_op(r, key) for r in row["runs"]) if v is not None]
    return statistics.median(values) if values else None


def _cpu_judge(
    what: str, key: str, mine: Row | None, limit: float | None, whose: str
) -> tuple[str, str, str]:
    """*mine*'s median server CPU per operation at most *limit* seconds."""
    cpu = _median_cpu(mine, key)
    if mine is None or cpu is None or limit is None:
        return what, "not measured", "-"
    measured = f"{cpu * 1000:.2f} ms ({mine['label']}) against {limit * 1000:.2f} ms ({whose})"
    return what, measured, "met" if cpu <= limit else "missed"


#: Issue 18's limits: S3 server CPU per photo, the S5 process tree's peak.
S3_CPU_LIMIT = 0.006
TREE_LIMIT = 200 * MiB

#: What stands between each target and its figure, from the profiles of the change log (the
#: fourth to eighth rounds): kept by hand, matched on the start of the target's text.
WHAT_IS_LEFT: tuple[tuple[str, str], ...] = (
    (
        "S1: pixdrop's tus endpoint >=",
        "@tus/server writes the bytes and nothing else. pixdrop's tus endpoint hashes every "
        "byte, syncs each PATCH and commits its receipt, and decodes and checks the image "
        "before the last PATCH is answered. Seventh round: an append's bytes are hashed once, "
        "not twice (prefix receipts; python -m bench.staging_cpu: 1.01 -> 0.72 s of CPU per "
        "512 MiB of appends); server CPU 1.54 s per upload against @tus/server's 1.19.",
    ),
    (
        "S1: pixdrop's client",
        "Not the floor. Each chunk is synced and its receipt committed before its answer (the "
        "floor syncs once); after the last chunk the server decodes the image (the floor's "
        "own decode, not overlapped with the transfer) and, for chunks sent in parallel, "
        "hashes the file; the bytes cross loopback and the HTTP stack, and the client (which "
        "hashes every byte too) shares the two cores. Seventh round: server CPU 1.8 s per "
        "512 MiB against the floor's 1.5 s. Hashing chunks sent past a gap once the gap "
        "closes, so that completion need not hash the file, was measured and not kept: "
        "0.4 s more CPU per upload, no faster. Eighth round, three full runs: 1.35x, 2.61x "
        "and 2.30x the floor, while pixdrop's own rate moved less (210, 197, 190 MB/s) than "
        "the floor's (277, 512, 436 MB/s): the floor's time is the noisy side of this ratio.",
    ),
    (
        "S2: pixdrop's client",
        "Not the floor. The decode starts after the last byte (not while the bytes arrive), "
        "the body crosses loopback and the HTTP stack, and the client hashes it too, on the "
        "same two cores. Met in the sixth round (1.05x), missed in the seventh (1.50x); in "
        "the eighth round's three full runs 0.73x (met), 1.90x and 1.83x, with the floor at "
        "277, 512 and 436 MB/s in scenario 1: this ratio follows the floor's own time.",
    ),
    (
        "S1: pixdrop's tus endpoint with tus-js-client",
        "As with pixdrop's client, plus tus-js-client's PATCH loop: one PATCH at a time, "
        "each synced before the next is sent. Eighth round: met in the first of three full "
        "runs (1.10x), missed in the two where the floor ran faster (2.40x, 2.18x).",
    ),
    (
        "S2: pixdrop's tus endpoint with tus-js-client",
        "The work of POST /v1/images through one tus PATCH, and tus-js-client under Node.js "
        "on the same two cores. Seventh round: met; an append's bytes are hashed once (prefix "
        "receipts), server CPU 1.69 -> 1.28 s per 512 MiB, against 1.17 s for POST. Eighth "
        "round: met in the first of three full runs (0.79x), missed in the two where the "
        "floor ran faster (2.12x, 1.94x).",
    ),
)
#: The same, for the targets of scenarios 3-5 (matched on "S3 (", "S4 (" and "S5:").
WHAT_IS_LEFT_BY_SCENARIO: dict[tuple[str, str], str] = {
    ("S3", "CPU"): (
        "Not the floor (the floor row's CPU, the harness's own write, fsync and decode of each "
        "photo: 2.5 ms in the seventh round's run, 3.6 in the eighth's), nor the HTTP stack: "
        "a bare ASGI app storing each photo with fdatasync costs 0.57 ms per photo, as a FastAPI "
        "route 0.63 (python -m bench.stack_floor). Eighth round, per thread (/proc, 300-400 "
        "photos one at a time, four runs): the event loop 2.0-2.4 ms of user CPU per photo, "
        "the worker threads 0.9 ms of user CPU and 0.6-0.8 ms in the kernel (file creation, "
        "fsync), the decoder 3.7-3.9 ms (its 1/8-scale JPEG decode through libvips 2.2-2.3 ms "
        "in-process, where Pillow takes 1.4: measured, not adopted, a second JPEG decoder with "
        "other strictness). In the loop (py-spy): FastAPI's routing and request handling "
        "about a sixth, the decoder's job round trip a seventh, uvloop's own C code a fifth, "
        "the rest many small Python costs. A one-level blob layout (no blobs/ab/cd/ mkdir) "
        "was measured and changed nothing (kernel CPU 0.95-1.00 -> 0.93-0.97 ms)."
    ),
    ("S3", "rate"): (
        "Follows from the CPU row: client and server share two cores, and @tus/server "
        "neither decodes, nor syncs a directory, nor records a row."
    ),
    ("S4", "CPU"): (
        "A 1 KiB chunk PUT: a lookup, a write with fdatasync and a group-committed receipt, "
        "which @tus/server does not do. Eighth round: the PUT goes to its endpoint without "
        "FastAPI's router (http/fastpath.py; python -m bench.ab: 2.38 -> 2.06 ms per request, "
        "paired 0.87). What is left, per thread: the event loop about 1.1 ms (uvicorn, the "
        "ASGI middlewares, the lookup, the lease, two thread hand-offs), the worker threads "
        "0.7 ms, half of it in the kernel (fdatasync of the chunk, the SQLite commit). "
        "pixdrop's client, on the same two cores, spends about 1.6 ms of CPU per request "
        "besides (httpx and anyio)."
    ),
    ("S4", "rate"): "Follows from the CPU row (both sides share two cores with the client).",
    ("S5", ""): (
        "Eighth round: the decoders lower libvips' tile height to 32 rows (imaging/tiles.py), "
        "which shrinks the line cache libvips keeps in front of a sequential loader (4 x 128 "
        "rows by default: 64 MiB for this TIFF's 128 KiB rows); this row went 254-256 -> "
        "208-209 MiB (--scenarios 5 --no-peers, two runs each). What is left: the server "
        "process 112 MiB (95 at rest on an existing database, 102 after migrating a new one: "
        "importing FastAPI, Starlette, pydantic, SQLAlchemy, uvicorn and httpx alone takes 62 "
        "MiB, pixdrop's modules 17 more, Alembic 7 when it migrated), one decoder 40 MiB at "
        "rest (26 of them libvips' and Python's mapped code) plus 56 while it checks this TIFF "
        "(libvips' decode 22 at the lower tile height, the markup scan's 8 MiB window, the "
        "preview's shrink). Not built: a new database made from tables.py and stamped "
        "instead of migrated (7 MiB, still not under 200 with the rest)."
    ),
}


def what_is_left(target: str, verdict: str) -> str:
    """The hand-kept note on what stands between *target* and its figure (missed ones)."""
    if verdict != "missed":
        return ""
    scenario = target[:2]
    if scenario in ("S3", "S4", "S5"):
        kind = "" if scenario == "S5" else ("CPU" if "CPU" in target else "rate")
        return WHAT_IS_LEFT_BY_SCENARIO.get((scenario, kind), "")
    return next((note for start, note in WHAT_IS_LEFT if target.startswith(start)), "")


def targets(scenarios: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Issue 18's targets, judged on this run's paired medians."""
    found: list[tuple[str, str, str]] = []
    for key, mine, tus in (
        ("s1", ("pixdrop-4", "pixdrop-1"), "pixdrop-tus-js-1"),
        ("s2", ("pixdrop",), "pixdrop-tus-js"),
    ):
        scenario = scenarios.get(key)
        if scenario is None:
            continue
        figure = rate(scenario["unit"])
        ours = [row for row in (_row(scenario, i) for i in mine) if row is not None]
        best = max(ours, key=lambda r: median_of(r, figure) or 0.0, default=None)
        number_ = key[1]
        found.append(
            _floor_judge(f"S{number_}: pixdrop's client within 1.25x of the floor", scenario,
                         best, 1.25)
        )  # fmt: skip
        found.append(
            _floor_judge(
                f"S{number_}: pixdrop's tus endpoint with tus-js-client within 1.25x of the floor",
                scenario,
                _row(scenario, tus),
                1.25,
            )
        )
    s1 = scenarios.get("s1")
    if s1 is not None:
        found.append(
            _judge(
                "S1: pixdrop's tus endpoint >= 1.0x @tus/server, both with tus-js-client",
                s1,
                _row(s1, "pixdrop-tus-js-1"),
                _row(s1, "node-js-1"),
                1.0,
            )
        )
    for key in sorted(k for k in scenarios if k.startswith("s3")):
        scenario = scenarios[key]
        concurrency = scenario["extra"]["concurrency"]
        found.append(
            _cpu_judge(
                f"S3 (concurrency {concurrency}): server CPU per photo <= 6 ms, decoders included",
                key,
                _row(scenario, "pixdrop"),
                S3_CPU_LIMIT,
                "the target",
            )
        )
        for row_id, how, goal in (("pixdrop", "with", 0.6), ("pixdrop-nofsync", "without", 0.75)):
            found.append(
                _judge(
                    f"S3 (concurrency {concurrency}): pixdrop {how} fsync >= {goal:g}x @tus/server",
                    scenario,
                    _row(scenario, row_id),
                    _row(scenario, "node-js"),
                    goal,
                )
            )
    for key in sorted(k for k in scenarios if k.startswith("s4")):
        scenario = scenarios[key]
        concurrency = scenario["extra"]["concurrency"]
        node = _row(scenario, "node-js")
        found.append(
            _cpu_judge(
                f"S4 (concurrency {concurrency}): server CPU per request <= @tus/server's",
                key,
                _row(scenario, "pixdrop"),
                _median_cpu(node, key),
                "@tus/server",
            )
        )
        if concurrency > 1:
            for row_id, how, goal in (
                ("pixdrop", "with", 0.8),
                ("pixdrop-nofsync", "without", 1.0),
            ):
                found.append(
                    _judge(
                        f"S4 (concurrency {concurrency}): pixdrop {how} fsync >= {goal:g}x "
                        "@tus/server",
                        scenario,
                        _row(scenario, row_id),
                        node,
                        goal,
                    )
                )
    s5 = scenarios.get("s5")
    if s5 is not None:
        found += _memory_targets(s5)
    return found


def _memory_targets(s5: dict[str, Any]) -> list[tuple[str, str, str]]:
    sizes = s5["extra"]["sizes"]
    row = _row(s5, "pixdrop")
    what = (
        f"S5: pixdrop's process tree (decoders included) under {TREE_LIMIT // MiB} MiB during "
        f"{_size(sizes[-1])} uploads"
    )
    if row is None:
        return [(what, "not measured", "-")]
    peak = max((r["rss_tree"] for r in row["runs"] if r.get("size") == sizes[-1]), default=None)
    main = max((r["rss_main"] for r in row["runs"] if r.get("size") == sizes[-1]), default=None)
    if peak is None or main is None:
        return [(what, "not measured", "-")]
    measured = f"{mib(peak)} (server process alone {mib(main)})"
    return [(what, measured, "met" if peak < TREE_LIMIT else "missed")]


def runs_per(scenario: dict[str, Any]) -> int:
    counts = Counter(
        (row["id"], run.get("size")) for row in scenario["rows"] for run in row["runs"]
    )
    return max(counts.values(), default=0)


# --- the document ---------------------------------------------------------------------------
#: The optimisation log, kept by hand beside the harness and copied into the report.
CHANGES = Path(__file__).parent / "changes.md"


def render(results: dict[str, Any], charts: dict[str, str]) -> str:
    meta = results["meta"]
    scenarios = {s["key"]: s for s in results["scenarios"]}
    out = [
        "# Benchmarks: pixdrop against @tus/server and tuspyserver",
        "",
        "<!-- Written by `python -m bench.peers` (bench/README.md); edit the harness, "
        "not this file. -->",
        "",
        f"One run of `{meta['command']}` on {meta['date']}, {meta['duration']}. "
        f"Machine: {meta['machine']}. The machine is shared with other work and noisy, so "
        "absolute figures move from run to run; every scenario runs its contenders in "
        "interleaved rounds (A B C, B C A, ...), and the ratios are paired by round.",
        "",
        "## Targets (issue 18)",
        "",
        "| target | measured (median of paired ratios, min-max) | | what is left |",
        "|---|---|---|---|",
    ]
    for what, measured, verdict in targets(scenarios):
        mark = {"met": "**met**", "missed": "**missed**"}.get(verdict, verdict)
        out.append(f"| {what} | {measured} | {mark} | {what_is_left(what, verdict)} |")
    if CHANGES.exists():  # hand-written: what the figures led to (not a measurement of this run)
        out += ["", CHANGES.read_text().strip()]
    out += ["", "## Setup", "", *[f"- {line}" for line in meta["setup"]]]
    if results.get("notes"):
        out += ["", "Notes from this run:", "", *[f"- {n}" for n in results["notes"]]]
    for key, scenario in scenarios.items():
        out += ["", f"## {scenario['title']}", "", f"Data: {scenario['what']}.", ""]
        out += explain(scenario)
        if key == "s5":
            out += memory_table(scenario)
        elif key == "s6":
            out += thumbnail_table(scenario)
        else:
            out += throughput_table(scenario)
        per = "per contender and size" if key == "s5" else "per contender"
        out += ["", f"_{runs_per(scenario)} run(s) {per}; the scenario took "
                f"{scenario['seconds'] / 60:.1f} min._"]  # fmt: skip
        if key in charts:
            out += ["", f"![{scenario['title']}]({charts[key]})"]
    floors = any(r["id"] == FLOOR for s in results["scenarios"] for r in s["rows"])
    reading = [READING[0], *(READING_FLOOR if floors else []), *READING[1:]]
    out += ["", "## Reading the figures", "", *reading]
    return "\n".join(out) + "\n"


EXPLAIN = {
    "s1": [
        "The same file through every server, 8 MiB per request. pixdrop's own client first "
        "hashes the file (the server checks the sha256), and its figure includes that, and "
        "pixdrop's answer to the last request waits until the image is checked (decoded in "
        "full) and stored; the peers store bytes and answer. tus-js-client's 4 in parallel "
        "needs the concatenation extension, which @tus/file-store lacks.",
        "",
    ],
    "s2": [
        "pixdrop: one `POST /v1/images` with the whole file. The tus clients create the upload "
        "(POST), then send the whole file in one PATCH.",
        "",
    ],
    "s3": [
        "pixdrop validates every image (header, full decode in a worker process), hashes it, "
        "and writes its metadata (SQLite, synchronous=FULL) and the file with fsync before it "
        "answers; the peers write the bytes and a small JSON file, without fsync. *pixdrop "
        "without fsync* is the same server without those flushes (see Setup), to show what "
        "durability costs. p50/p99 are per-image latencies as each client saw them.",
        "",
    ],
    "s4": [
        "Per-request overhead: small files sent in 1 KiB chunks, one request per chunk "
        "(pixdrop: `PUT /v1/uploads/{id}/chunks/{i}`; tus: PATCH). The rate counts chunk "
        "requests; the time also covers creating and completing each upload. pixdrop makes "
        "every chunk durable (fdatasync, SQLite commit) before it answers.",
        "",
    ],
    "s5": [
        "Peak resident memory (VmRSS, sampled every 20 ms) while four uploads run at once. "
        "*server* is the server's own process; *with children* adds the processes it "
        "started (pixdrop's decoder workers; the peers start none). Pages of a file a process "
        "maps into memory count as its RSS although they are page cache the kernel can drop: "
        "up to commit dc6360e pixdrop's workers mapped each upload whole to scan it.",
        "",
    ],
    "s6": [
        "A fresh process per measurement makes one 256 px JPEG thumbnail (quality 82) of the "
        "photo: decode with shrink-on-load, orient, shrink, encode (`bench/images.py`). "
        "*Cold*: the first thumbnail of that process, so codec set-up is included. RSS growth "
        "is the child's peak RSS over its RSS after imports. The server row uploads the photo "
        "(untimed), then times the first `GET /v1/images/{id}/thumb?format=jpeg`, which renders "
        "it in a decoder worker (already started).",
        "",
    ],
}

#: Added to a scenario's explanation when its results have a floor row.
EXPLAIN_FLOOR = {
    "s1": "The floor writes the file with fsync, as the disk limit does, then decodes it once "
    "in full with pyvips.",
    "s2": "The floor is that of scenario 1.",
    "s3": "The floor writes each photo to a new file with fsync and then decodes it once in "
    "full (pyvips), as many photos at a time as the clients send.",
    "s4": "The floor appends each 1 KiB chunk to its file with one write and one fsync, as "
    "many files at a time as the clients send; it decodes nothing.",
}


def explain(scenario: dict[str, Any]) -> list[str]:
    key = scenario["key"][:2]
    lines = list(EXPLAIN.get(key, []))
    if lines and key in EXPLAIN_FLOOR and any(r["id"] == FLOOR for r in scenario["rows"]):
        lines[0] += " " + EXPLAIN_FLOOR[key]
    return lines


READING = [
    "- **median** and **spread (min-max)** are over the runs (one per round).",
    "- **x @tus/server**, **x tuspyserver**: the row's figure divided by that peer's best row "
    "in the same round (median, and min-max, over rounds). Above 1 is faster than the peer.",
    "- **server CPU per upload / image / request / thumbnail**: user + system CPU of the "
    "server's processes (the server and its children, from /proc/PID/stat: pixdrop's "
    "include its decoder workers) from the client's start to its exit, divided by the "
    "operations of the run: uploads (files) in scenarios 1, 2 and 5, images in 3, chunk "
    "requests in 4; median (min-max) over the runs. Deleting what a run stored comes after "
    "and is not counted. The floor's figure is the harness process's own CPU for the same "
    "work.",
    "- **server peak RSS**: the highest VmRSS of the server process during any run; *with "
    "child processes* adds its children (pixdrop's decoder workers).",
    "- MB/s is 10^6 bytes per second; MiB is 2^20 bytes.",
    "- Each client times itself, from its first request to the last answer; its start-up is "
    "not timed. All traffic is on 127.0.0.1.",
]

#: Read only when some scenario of the results has a floor row.
READING_FLOOR = [
    "- **floor** (scenarios 1-4): the least work an upload that is kept and checked needs, "
    "done by the harness in the same rounds on the same bytes, without HTTP, hashing or "
    "metadata: every upload's bytes written sequentially to a new file and fsynced, then "
    "the image decoded once in full with pyvips in the harness process (`pyvips.Image."
    'new_from_buffer(..., access="sequential").avg()`); in scenario 3 per photo, as many '
    "at a time as the clients send; in scenario 4 one write and one fsync per 1 KiB chunk, "
    "no decode (`bench/peers/floor.py`). No directory is fsynced. pixdrop checks a JPEG at "
    "up to 1/8 scale, which is cheaper than the floor's full decode.",
    "- **time x floor**: the row's time for the scenario's work divided by the floor's in "
    "the same round (median, and min-max, over rounds): 1.25 is a quarter slower than the "
    "floor, below 1 faster (the limits do less than the floor).",
]
