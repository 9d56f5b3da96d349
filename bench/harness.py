"""One benchmark run: server, payloads, warm-up, interleaved rounds, memory pass, profile.

Everything lives in one temporary directory (payload files, the server's data directory and
log, the disk baseline's file) that is removed at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import baselines, hotspots, scenarios
from bench.memory import RssSampler, read_rss
from bench.payload import Payload, write_tiff
from bench.report import (
    BASELINES,
    CHUNKED_1,
    CHUNKED_4,
    DISK,
    DOWNLOAD,
    LOOPBACK,
    ONE_REQUEST,
    SCENARIOS,
    SHA256,
    Measurement,
    Results,
    human_size,
)
from bench.server import BenchServer

#: What a scenario leaves behind and how to remove it once its time is taken.
Cleanup = Callable[[], None]
SETTLE_SECONDS = 0.5
#: Uploads profiled in one recording: one gives only a few hundred samples.
PROFILE_UPLOADS = 3


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Options:
    size: int
    rounds: int
    memory_factor: int = 4
    database_url: str | None = None
    profile: Path | None = None


class Session:
    """A running server, the payloads and the figures that can be measured against them."""

    def __init__(self, server: BenchServer, work: Path) -> None:
        self.server = server
        self.url = server.url
        self.work = work
        self._serial = 0

    def new_payload(self, size: int) -> Payload:
        self._serial += 1
        path = self.work / f"payload-{self._serial}.tif"
        log(f"writing a {human_size(size)} payload")
        return write_tiff(path, size)

    def accepted_payload(self, size: int) -> Payload:
        """A payload the server takes, checked by uploading it once (untimed, then deleted)."""
        payload = self.new_payload(size)
        scenarios.delete(self.url, scenarios.one_request(self.url, payload))
        return payload

    def timed(self, run: Callable[[], Cleanup | None], *, sample: bool) -> Measurement:
        """Time *run*; sample the server's RSS meanwhile if *sample*; clean up afterwards."""
        if not sample:
            start = time.perf_counter()
            cleanup = run()
            seconds = time.perf_counter() - start
            peak = None
        else:
            with RssSampler(self.server.pid) as rss:
                start = time.perf_counter()
                cleanup = run()
                seconds = time.perf_counter() - start
            peak = rss.peak
        if cleanup is not None:
            cleanup()
        return Measurement(seconds, peak)

    def figures(
        self, payload: Payload, data: bytes, fixture: scenarios.Uploaded
    ) -> dict[str, Callable[[], Cleanup | None]]:
        """Every figure of a round, by name: baselines and scenarios on the same *payload*."""
        url, scratch = self.url, self.work / "disk-baseline.bin"

        def upload(send: Callable[[], scenarios.Uploaded]) -> Callable[[], Cleanup]:
            def run() -> Cleanup:
                image = send()
                return lambda: scenarios.delete(url, image)

            return run

        def disk() -> Cleanup:
            baselines.disk(data, scratch)
            return lambda: scratch.unlink()

        def sha256() -> None:
            baselines.sha256(data)

        return {
            LOOPBACK: lambda: baselines.loopback(data),
            DISK: disk,
            SHA256: sha256,
            ONE_REQUEST: upload(lambda: scenarios.one_request(url, payload)),
            CHUNKED_1: upload(lambda: scenarios.chunked(url, payload, 1)),
            CHUNKED_4: upload(lambda: scenarios.chunked(url, payload, 4)),
            DOWNLOAD: lambda: scenarios.download(url, fixture.image_id, payload.size),
        }

    def rounds(self, payload: Payload, count: int, results: Results) -> None:
        """*count* rounds of every figure, A B C ... A B C ..., each round starting one later."""
        # Other bytes than the payload's: a stored copy of the payload would turn every upload
        # into a deduplicated one.
        source = self.new_payload(payload.size)
        fixture = scenarios.one_request(self.url, source)
        source.path.unlink()
        data = payload.read()
        figures = self.figures(payload, data, fixture)
        names = [*BASELINES, *SCENARIOS]
        for number in range(count):
            # Rotating the order spreads "what ran just before" over every figure.
            shift = number % len(names)
            order = names[shift:] + names[:shift]
            log(f"round {number + 1}/{count}: {', '.join(order)}")
            results.rounds.append(
                {name: self.timed(figures[name], sample=name in SCENARIOS) for name in order}
            )
        scenarios.delete(self.url, fixture)

    def memory_pass(self, payload: Payload, results: Results) -> None:
        """Peak RSS of every scenario once on *payload*, whatever its size."""
        url, pid = self.url, self.server.pid
        log(f"memory pass at {human_size(payload.size)}")
        with RssSampler(pid) as rss:
            image = scenarios.one_request(url, payload)
        results.memory[(ONE_REQUEST, payload.size)] = rss.peak
        with RssSampler(pid) as rss:
            scenarios.download(url, image.image_id, payload.size)
        results.memory[(DOWNLOAD, payload.size)] = rss.peak
        scenarios.delete(url, image)
        for name, parallel in ((CHUNKED_1, 1), (CHUNKED_4, 4)):
            with RssSampler(pid) as rss:
                image = scenarios.chunked(url, payload, parallel)
            results.memory[(name, payload.size)] = rss.peak
            scenarios.delete(url, image)

    def profile(self, payload: Payload, output: Path) -> str:
        """Chunked x 4 uploads under py-spy; the hotspots as Markdown."""
        log(f"profiling {PROFILE_UPLOADS} x {CHUNKED_4} with py-spy into {output}")
        with hotspots.record(self.server.pid, output):
            for _ in range(PROFILE_UPLOADS):
                scenarios.delete(self.url, scenarios.chunked(self.url, payload, 4))
        what = f"{PROFILE_UPLOADS} x {CHUNKED_4}, {human_size(payload.size)}"
        return hotspots.render(hotspots.hotspots(output), what)

    def warm_up(self, payload: Payload) -> None:
        """Run each path once untimed, so lazy imports and caches are in the idle figure."""
        log("warm-up")
        image = scenarios.one_request(self.url, payload)
        scenarios.download(self.url, image.image_id, payload.size)
        scenarios.delete(self.url, image)
        scenarios.delete(self.url, scenarios.chunked(self.url, payload, 4))
        time.sleep(SETTLE_SECONDS)


def run(options: Options) -> tuple[Results, str | None]:
    """Do the whole run; return the results and the profile section (if asked for)."""
    results = Results(size=options.size)
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-") as tmp:
        work = Path(tmp)
        log(f"working in {work}")
        with BenchServer(
            work / "data",
            work / "server.log",
            options.database_url,
            # 1 GiB payloads take pixdrop longer than the default 30 s to check.
            extra_args=["--decode-timeout", "600"],
        ) as server:
            session = Session(server, work)
            try:
                profile = _measure(session, options, results)
            except Exception:
                log(f"failed; the server's log ends with:\n{server.log_tail()}")
                raise
    return results, profile


def _measure(session: Session, options: Options, results: Results) -> str | None:
    payload = session.accepted_payload(options.size)
    results.notes.append(
        "payload: an uncompressed RGBA TIFF of random pixels (bench/payload.py), which pixdrop "
        "decodes in full before it stores it"
    )
    results.size = payload.size
    session.warm_up(payload)
    results.idle_rss = read_rss(session.server.pid)
    session.rounds(payload, options.rounds, results)
    time.sleep(SETTLE_SECONDS)
    results.idle_rss_after = read_rss(session.server.pid)
    session.memory_pass(payload, results)
    big = session.new_payload(payload.size * options.memory_factor)
    session.memory_pass(big, results)
    big.path.unlink()
    return session.profile(payload, options.profile) if options.profile else None
