"""A small, fast HTTP/1.1 keep-alive load generator (asyncio streams), so the client costs far less CPU than
the server it measures. Used by the benchmarks only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson


@dataclass(slots=True)
class Request:
    """One HTTP request to send."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Response:
    """Status, headers (lower-case names) and body of one response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


class Connection:
    """One keep-alive connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        """Disconnect."""
        if self.writer:
            self.writer.close()
            await self.writer.wait_closed()

    async def send(self, request: Request) -> Response:
        """Send one request and read its whole response."""
        assert self.reader and self.writer
        lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Accept: application/fhir+json", f"Content-Length: {len(request.body)}"]
        if request.body:
            lines.append("Content-Type: application/fhir+json")
        lines += [f"{k}: {v}" for k, v in request.headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + request.body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return Response(int(status_line.split()[1]), headers, body)


@dataclass(slots=True)
class PhaseResult:
    """Throughput and latency of one load phase."""

    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def line(self) -> str:
        """One printable summary line."""
        return (f"{self.name:<28} {self.rate:>9.0f} req/s   p50 {self.percentile(50):6.2f} ms   "
                f"p95 {self.percentile(95):6.2f} ms   p99 {self.percentile(99):6.2f} ms   errors {self.errors}")


async def run_phase(name: str, host: str, port: int, concurrency: int, total: int,
                    make_request: Callable[[int], Request], ok: Callable[[Response], bool] | None = None,
                    on_response: Callable[[int, Response], None] | None = None) -> PhaseResult:
    """Send ``total`` requests over ``concurrency`` connections; request ``i`` comes from
    ``make_request(i)``. Bounded: stops after ``total`` requests."""
    counter = iter(range(total))
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        connection = Connection(host, port)
        await connection.open()
        try:
            for i in counter:
                request = make_request(i)
                started = time.perf_counter()
                response = await connection.send(request)
                latencies.append((time.perf_counter() - started) * 1000)
                if (ok(response) if ok else response.status < 400) is False:
                    errors += 1
                if on_response:
                    on_response(i, response)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return PhaseResult(name, total, time.perf_counter() - started, latencies, errors)


@dataclass(slots=True)
class Paced:
    """A request sent on a connection of its own every ``interval`` seconds (alongside the closed loop)."""

    interval: float
    make_request: Callable[[int], Request]


async def run_windows(name: str, host: str, port: int, concurrency: int, seconds: float, window: float,
                      make_request: Callable[[int], Request], *, paced: Paced | None = None,
                      on_response: Callable[[int, Response], None] | None = None,
                      on_window: Callable[[PhaseResult], None] | None = None) -> list[PhaseResult]:
    """Closed-loop load for ``seconds`` over ``concurrency`` connections (request ``i`` from
    ``make_request(i)``, numbered across connections), plus the ``paced`` request; one PhaseResult per
    ``window`` seconds (each request counted in the window it finished in), handed to ``on_window`` as each
    window closes."""
    count = int(seconds // window)
    windows = [PhaseResult(f"{name} {n * window:.0f}-{(n + 1) * window:.0f} s", 0, window, [], 0)
               for n in range(count)]
    started = time.perf_counter()
    deadline = started + count * window
    numbers = iter(range(1 << 62))

    def record(begun: float, response: Response) -> None:
        now = time.perf_counter()
        slot = int((now - started) // window)
        if slot < count:
            result = windows[slot]
            result.requests += 1
            result.latencies_ms.append((now - begun) * 1000)
            result.errors += response.status >= 400

    async def worker() -> None:
        connection = Connection(host, port)
        await connection.open()
        try:
            while time.perf_counter() < deadline:
                i = next(numbers)
                begun = time.perf_counter()
                response = await connection.send(make_request(i))
                record(begun, response)
                if on_response:
                    on_response(i, response)
        finally:
            await connection.close()

    async def pacer(spec: Paced) -> None:
        connection = Connection(host, port)
        await connection.open()
        try:
            i = 0
            while (begun := time.perf_counter()) < deadline:
                record(begun, await connection.send(spec.make_request(i)))
                i += 1
                await asyncio.sleep(max(0.0, begun + spec.interval - time.perf_counter()))
        finally:
            await connection.close()

    async def reporter() -> None:
        for n in range(count):
            await asyncio.sleep(max(0.0, started + (n + 1) * window - time.perf_counter()))
            if on_window:
                on_window(windows[n])

    tasks = [worker() for _ in range(concurrency)] + [reporter()]
    if paced is not None:
        tasks.append(pacer(paced))
    await asyncio.gather(*tasks)
    return windows
