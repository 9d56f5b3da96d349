"""PNG charts of a results file: one per scenario, for docs/benchmarks.md.

    PYTHON charts.py RESULTS.json OUTPUT_DIR

Runs in any Python with matplotlib (the harness's own, or a venv it makes for this), and
imports nothing from pixdrop or the harness. Prints {scenario key: file name} as JSON.
Bars are medians, whiskers the min-max over the runs; the limits of the machine (loopback
TCP, disk write + fsync) and the floor (write + fsync + one decode, ``floor.py``) are dashed
lines. Each bar is labelled with its median and the server's CPU per operation (per upload,
image or request; worked out from ``server_cpu`` for results written before it was stored).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MiB = 1024 * 1024
#: As report.OPERATIONS (this script imports nothing from the harness).
OPERATIONS = {
    "s1": ("upload", "files", "s"),
    "s2": ("upload", "files", "s"),
    "s3": ("image", "files", "ms"),
    "s4": ("request", "requests", "ms"),
}
COLOURS = {
    "pixdrop": "#1f5fbf",
    "pixdrop-nofsync": "#7fa7e6",
    "pixdrop-tus": "#17a2b8",
    "tus-node": "#3c9a3c",
    "tuspyserver": "#e07b1a",
    None: "#888888",
}


def figure_of(unit: str, run: dict[str, Any]) -> float:
    if unit == "MB/s":
        return float(run["bytes"] / run["seconds"] / 1e6)
    if unit == "images/s":
        return float(run["files"] / run["seconds"])
    if unit == "requests/s":
        return float(run["requests"] / run["seconds"])
    return float(run["seconds"] * 1000)


def colour_of(row: dict[str, Any]) -> str:
    """pixdrop's own API, pixdrop without fsync, pixdrop's tus endpoint, each peer."""
    key = row["server"]
    if key == "pixdrop" and row["client"] != "pixdrop":
        key = "pixdrop-tus"
    return COLOURS.get(key, "#888888")


def cpu_label(scenario: dict[str, Any], row: dict[str, Any]) -> str:
    """ ", CPU 12 ms/image": the median server CPU per operation, or "" without one."""
    operation, count, unit = OPERATIONS.get(scenario["key"][:2], ("run", "files", "s"))
    values = []
    for run in row["runs"]:
        if "server_cpu_per_op" in run:
            values.append(float(run["server_cpu_per_op"]))
        elif "server_cpu" in run:
            values.append(float(run["server_cpu"]) / max(1, int(run.get(count) or 1)))
    if not values:
        return ""
    value = statistics.median(values) * (1000 if unit == "ms" else 1)
    shown = f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
    return f", server CPU {shown} {unit}/{operation}"


def bars(ax: Any, scenario: dict[str, Any], title: str) -> None:
    unit = scenario["unit"]
    rows = [r for r in scenario["rows"] if r["runs"] and r["server"] is not None]
    limits = [r for r in scenario["rows"] if r["runs"] and r["server"] is None]
    labels, medians, lows, highs, colours, cpus = [], [], [], [], [], []
    for row in reversed(rows):
        values = [figure_of(unit, run) for run in row["runs"]]
        middle = statistics.median(values)
        labels.append(row["label"])
        medians.append(middle)
        lows.append(middle - min(values))
        highs.append(max(values) - middle)
        colours.append(colour_of(row))
        cpus.append(cpu_label(scenario, row))
    positions = range(len(rows))
    ax.barh(positions, medians, xerr=[lows, highs], color=colours, capsize=3, height=0.6)
    ax.set_yticks(list(positions), labels, fontsize=8)
    # Room above the bars for the limits' labels and below them for the floor's.
    ax.set_ylim(-0.85, len(rows) + 0.25)
    top = max([m + h for m, h in zip(medians, highs, strict=True)] or [1.0])
    off_scale = []
    for row in limits:
        value = statistics.median(figure_of(unit, run) for run in row["runs"])
        name = "floor" if row["id"] == "floor" else row["label"].removeprefix("limit: ")
        # The floor is drawn further off than the limits: it is what the bars are measured by.
        if value <= top * (4.0 if row["id"] == "floor" else 1.6):
            ax.axvline(value, color="#555555", linestyle="--", linewidth=1)
            if row["id"] == "floor":  # at the foot, clear of the limits' labels at the top
                ax.text(value, -0.8, f" {name} {value:,.0f}", fontsize=7, va="bottom")
            else:
                ax.text(value, len(rows) + 0.2, f" {name} {value:,.0f}", fontsize=7, va="top")
            top = max(top, value)
        else:
            off_scale.append(f"{name}: {value:,.0f} {unit}")
    for position, middle, cpu in zip(positions, medians, cpus, strict=True):
        ax.text(middle, position + 0.32, f" {middle:,.0f}{cpu}", fontsize=7, va="center")
    ax.set_xlim(0, top * 1.45)  # room for the labels right of the bars
    ax.set_xlabel(f"{unit}, median of the runs (whiskers: min-max)", fontsize=8)
    subtitle = f"\n(off scale: {'; '.join(off_scale)})" if off_scale else ""
    ax.set_title(title + subtitle, fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def save(fig: Any, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return name


def throughput(scenarios: list[dict[str, Any]], folder: Path, name: str) -> str:
    height = sum(1.2 + 0.32 * len([r for r in s["rows"] if r["runs"]]) for s in scenarios)
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(9, max(3.0, height)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        bars(ax, scenario, scenario["title"])
    return save(fig, folder, name)


def memory(scenario: dict[str, Any], folder: Path) -> str:
    """Two panels: each server's own process (with the target), and with its children."""
    sizes = scenario["extra"]["sizes"]
    fig, (own, tree) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in (
        (own, "rss_main", "server process"),
        (tree, "rss_tree", "server process and its children (pixdrop's decoder workers)"),
    ):
        for row in scenario["rows"]:
            if not row["runs"]:
                continue
            points = [
                (size, max(r[key] for r in row["runs"] if r.get("size") == size) / MiB)
                for size in sizes
                if any(r.get("size") == size for r in row["runs"])
            ]
            ax.plot(
                [p[0] / MiB for p in points],
                [p[1] for p in points],
                "-",
                marker="o",
                color=colour_of(row),
                label=row["label"],
            )
            for size, value in points:
                ax.annotate(f"{value:,.0f}", (size / MiB, value), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks([s / MiB for s in sizes], [_size(s) for s in sizes])
        ax.set_xlabel("size of each of the four files (log scale)", fontsize=8)
        ax.set_ylabel("peak RSS, MiB", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    own.axhline(150, color="#aa0000", linestyle="--", linewidth=1)
    own.text(sizes[0] / MiB, 153, "150 MiB target", fontsize=7, color="#aa0000")
    own.set_ylim(0, 200)
    own.legend(fontsize=7, loc="lower right")
    fig.suptitle(scenario["title"], fontsize=9)
    return save(fig, folder, "scenario5.png")


def thumbnails(scenario: dict[str, Any], folder: Path) -> str:
    rows = [r for r in scenario["rows"] if r["runs"]]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 3.0), gridspec_kw={"width_ratios": [1.2, 1]}
    )
    names = [r["label"].replace(" · ", "\n", 1) for r in rows]
    latency = [statistics.median(run["seconds"] * 1000 for run in r["runs"]) for r in rows]
    memory_peaks = [
        max(run.get("rss_growth", 0) for run in r["runs"]) / MiB if r["server"] is None else 0.0
        for r in rows
    ]
    colours = ["#1f5fbf" if "vips" in n or "pixdrop" in n else "#e07b1a" for n in names]
    left.barh(range(len(rows)), latency, color=colours, height=0.6)
    left.set_yticks(range(len(rows)), names, fontsize=7)
    left.set_xlabel("median ms, cold (lower is better)", fontsize=8)
    for position, value in enumerate(latency):
        left.text(value, position, f" {value:,.0f}", fontsize=7, va="center")
    left.set_xlim(0, max(latency or [1]) * 1.25)
    libraries = [i for i, r in enumerate(rows) if r["server"] is None]
    right.barh(
        range(len(libraries)),
        [memory_peaks[i] for i in libraries],
        color=[colours[i] for i in libraries],
        height=0.6,
    )
    right.set_yticks(range(len(libraries)), [names[i] for i in libraries], fontsize=7)
    right.set_xlabel("peak RSS over idle, MiB", fontsize=8)
    for position, i in enumerate(libraries):
        right.text(memory_peaks[i], position, f" {memory_peaks[i]:,.0f}", fontsize=7, va="center")
    right.set_xlim(0, max([memory_peaks[i] for i in libraries] or [1]) * 1.3)
    fig.suptitle(scenario["title"], fontsize=9)
    return save(fig, folder, "scenario6.png")


def _size(size: int) -> str:
    return f"{size // (1024 * MiB)} GiB" if size >= 1024 * MiB else f"{size // MiB} MiB"


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text())
    folder = Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    scenarios = {s["key"]: s for s in results["scenarios"]}
    made: dict[str, str] = {}
    for key in ("s1", "s2"):
        if key in scenarios:
            made[key] = throughput([scenarios[key]], folder, f"scenario{key[1]}.png")
    for prefix in ("s3", "s4"):
        group = [scenarios[k] for k in sorted(scenarios, key=_by_concurrency) if k[:2] == prefix]
        if group:
            name = throughput(group, folder, f"scenario{prefix[1]}.png")
            made[sorted((s["key"] for s in group), key=_by_concurrency)[-1]] = name
    if "s5" in scenarios:
        made["s5"] = memory(scenarios["s5"], folder)
    if "s6" in scenarios:
        made["s6"] = thumbnails(scenarios["s6"], folder)
    print(json.dumps(made))


def _by_concurrency(key: str) -> tuple[str, int]:
    head, _, tail = key.partition("-c")
    return head, int(tail) if tail.isdigit() else 0


if __name__ == "__main__":
    main()
