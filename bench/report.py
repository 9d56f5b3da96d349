"""Figures and the Markdown report: medians, spreads and ratios from the rounds of one run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

MiB = 1024 * 1024
MB = 1_000_000  # throughput is in MB/s (10**6 bytes per second), sizes in MiB/GiB

LOOPBACK, DISK, SHA256 = "loopback TCP", "disk write + fsync", "sha256 in memory"
BASELINES = (LOOPBACK, DISK, SHA256)
ONE_REQUEST, CHUNKED_1, CHUNKED_4, DOWNLOAD = (
    "one-request upload",
    "chunked upload, 8 MiB x 1",
    "chunked upload, 8 MiB x 4 parallel",
    "download original",
)
SCENARIOS = (ONE_REQUEST, CHUNKED_1, CHUNKED_4, DOWNLOAD)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed run of one figure; ``peak_rss`` is the server's (None for baselines)."""

    seconds: float
    peak_rss: int | None = None


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class Results:
    """Everything one run measured; ``rounds`` maps each figure to its measurement."""

    size: int
    rounds: list[dict[str, Measurement]] = field(default_factory=list)
    idle_rss: int = 0
    idle_rss_after: int = 0
    #: (scenario, payload size) -> peak RSS of the memory pass
    memory: dict[tuple[str, int], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def human_size(count: float) -> str:
    for unit, scale in (("GiB", 1024 * MiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(count) >= scale:
            return f"{count / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{count:.0f} B"


def growth(peak: int, results: Results) -> str:
    """Peak minus idle RSS, signed (a peak below idle means memory was given back meanwhile)."""
    delta = peak - results.idle_rss
    return ("+" if delta >= 0 else "-") + human_size(abs(delta))


def _throughputs(results: Results, name: str) -> list[float]:
    return [results.size / r[name].seconds / MB for r in results.rounds]


def _ratio(results: Results, name: str, baseline: str) -> str:
    if name == baseline:
        return "1"
    # Paired per round: each scenario against the baseline measured next to it.
    spread = Spread.of([r[baseline].seconds / r[name].seconds for r in results.rounds])
    return f"{spread.median:.2f} ({spread.low:.2f}-{spread.high:.2f})"


def _peak(results: Results, name: str) -> str:
    peaks = [peak for r in results.rounds if (peak := r[name].peak_rss) is not None]
    return human_size(max(peaks)) if peaks else "-"


def throughput_table(results: Results) -> str:
    lines = [
        "| figure | median MB/s | spread MB/s (min-max) | x loopback | x disk | server peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in (*BASELINES, *SCENARIOS):
        mbps = Spread.of(_throughputs(results, name))
        lines.append(
            f"| {name} | {mbps.median:.0f} | {mbps.low:.0f}-{mbps.high:.0f} | "
            f"{_ratio(results, name, LOOPBACK)} | {_ratio(results, name, DISK)} | "
            f"{_peak(results, name)} |"
        )
    return "\n".join(lines)


def memory_table(results: Results) -> str:
    sizes = sorted({size for _, size in results.memory})
    names = [name for name in SCENARIOS if any((name, s) in results.memory for s in sizes)]
    head = " | ".join(f"peak RSS, {human_size(s)} (growth)" for s in sizes)
    lines = [f"| scenario | {head} |", "|---|" + "---:|" * len(sizes)]
    for name in names:
        cells = []
        for size in sizes:
            peak = results.memory.get((name, size))
            cells.append("-" if peak is None else f"{human_size(peak)} ({growth(peak, results)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(results: Results, header: Sequence[str]) -> str:
    """The whole report as Markdown."""
    parts = [
        *header,
        "",
        f"### Throughput ({human_size(results.size)} payload, {len(results.rounds)} rounds)",
        "",
        throughput_table(results),
        "",
        "### Server memory (VmRSS)",
        "",
        f"Idle after warm-up: {human_size(results.idle_rss)}; idle after the timed rounds: "
        f"{human_size(results.idle_rss_after)}. Growth is peak minus the idle figure after "
        "warm-up.",
        "",
        memory_table(results),
    ]
    if results.notes:
        parts += ["", *(f"- {note}" for note in results.notes)]
    return "\n".join(parts) + "\n"
