"""scripts/submit_task.py: its pure parts, then whole runs against a stub API on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
from rich.console import Console

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "submit_task.py"


def _load_script() -> ModuleType:
    # scripts/ is not a package; register the module first so dataclasses can resolve it.
    spec = importlib.util.spec_from_file_location("submit_task", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


st = _load_script()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- arguments ---------------------------------------------------------------------------------


def test_defaults() -> None:
    opts = st.parse_args([])
    assert opts.count == 10_000
    assert opts.spread_minutes == 30.0
    assert opts.url == "http://127.0.0.1:8000"
    assert opts.concurrency == 64
    assert opts.types == ("foo", "bar", "baz")
    assert opts.watch is False
    assert opts.ids_file is None
    assert opts.timeout == 3600.0
    assert opts.json is False


def test_every_flag(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    opts = st.parse_args(
        [
            "--count",
            "50",
            "--spread-minutes",
            "0.5",
            "--url",
            "http://localhost:9/",
            "--concurrency",
            "3",
            "--types",
            " noop, foo ,,",
            "--watch",
            "--ids-file",
            str(ids),
            "--timeout",
            "12.5",
            "--json",
        ]
    )
    assert (opts.count, opts.spread_minutes, opts.concurrency) == (50, 0.5, 3)
    assert opts.url == "http://localhost:9"  # no trailing slash, so f"{url}/task" has one
    assert opts.types == ("noop", "foo")
    assert opts.watch is True
    assert opts.ids_file == ids
    assert opts.timeout == 12.5
    assert opts.json is True


@pytest.mark.parametrize(
    "argv",
    [
        ["--count", "-1"],
        ["--count", "ten"],
        ["--concurrency", "0"],
        ["--spread-minutes", "-2"],
        ["--types", " , "],
        ["--url", "ftp://127.0.0.1"],
        ["--timeout", "0"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        st.parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


# -- bodies ------------------------------------------------------------------------------------


def test_bodies_lie_in_the_window_and_cover_it() -> None:
    rng, spread = random.Random(1), timedelta(minutes=30)
    bodies = [st.make_body(lambda: NOW, rng, spread, ("foo", "bar", "baz")) for _ in range(3000)]
    times = []
    for body in bodies:
        assert set(body) == {"task_type", "execution_time"}
        when = datetime.fromisoformat(body["execution_time"])
        assert when.utcoffset() == timedelta(0)  # aware, and still UTC
        assert NOW - spread <= when <= NOW + spread
        times.append(when)
    # Uniform over the whole window: both halves reached, near both ends.
    assert min(times) < NOW - timedelta(minutes=29)
    assert max(times) > NOW + timedelta(minutes=29)
    assert Counter(b["task_type"] for b in bodies).keys() == {"foo", "bar", "baz"}


def test_bodies_keep_the_clock_offset_and_use_only_the_given_types() -> None:
    plus2 = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    rng, spread = random.Random(2), timedelta(minutes=0.5)
    for _ in range(200):
        body = st.make_body(lambda: plus2, rng, spread, ["noop"])
        assert body["task_type"] == "noop"
        assert body["execution_time"].endswith("+02:00")
        assert abs(datetime.fromisoformat(body["execution_time"]) - plus2) <= spread


def test_zero_spread_is_now() -> None:
    body = st.make_body(lambda: NOW, random.Random(3), timedelta(0), ["foo"])
    assert datetime.fromisoformat(body["execution_time"]) == NOW


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        st.make_body(lambda: datetime(2026, 1, 1), random.Random(), timedelta(minutes=1), ["foo"])


# -- percentiles and the summary ---------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    hundred = [float(n) for n in range(100, 0, -1)]  # unsorted on purpose
    assert st.percentile(hundred, 50) == 50.0
    assert st.percentile(hundred, 99) == 99.0
    assert st.percentile(hundred, 100) == 100.0
    assert st.percentile(hundred, 0) == 1.0
    assert st.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert st.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert st.percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    assert st.percentile([7.5], 99) == 7.5


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        st.percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        st.percentile([1.0], 101)


def test_summarize_counts_by_status() -> None:
    a, b = UUID(int=1), UUID(int=2)
    outcomes = [
        st.Outcome("201", 0.010, a),
        st.Outcome("422", 0.002),
        st.Outcome("201", 0.030, b),
        st.Outcome("error: ConnectError", None),
        st.Outcome("422", 0.004),
        st.Outcome("503", 0.001),
    ]
    summary = st.summarize(outcomes)
    assert summary.accepted == 2
    assert summary.task_ids == [a, b]
    assert summary.rejected == Counter({"422": 2, "error: ConnectError": 1, "503": 1})
    # A request that got no response has no latency to report.
    assert summary.latencies_ms == pytest.approx([10.0, 2.0, 30.0, 4.0, 1.0])


def test_summary_record_has_the_tables_figures() -> None:
    outcomes = [st.Outcome("201", n / 1000, UUID(int=n)) for n in range(1, 101)]
    outcomes += [st.Outcome("422", 0.5), st.Outcome("error: ConnectError", None)]
    record = st.summary_record(st.summarize(outcomes), 2.0)
    assert record == {
        "accepted": 100,
        "rejected": {"422": 1, "error: ConnectError": 1},
        "total": 102,
        "seconds": 2.0,
        "requests_per_s": 51.0,
        "latency_ms": {"p50": 51.0, "p99": 100.0, "max": 500.0},
    }
    json.dumps(record)  # plain JSON types only


def test_summary_record_of_nothing() -> None:
    record = st.summary_record(st.summarize([]), 0.0)
    assert record["total"] == 0
    assert record["requests_per_s"] is None
    assert record["latency_ms"] == {"p50": None, "p99": None, "max": None}


# -- one request -------------------------------------------------------------------------------


def test_submit_one_labels_every_kind_of_answer() -> None:
    task_id = UUID(int=42)
    answers = {
        "ok": httpx.Response(201, json={"task_id": str(task_id)}),
        "no-id": httpx.Response(201, json={"id": "x"}),
        "bad-type": httpx.Response(422, json={"detail": "task_type: unknown type"}),
    }
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        kind = request.headers.get("x-kind", "")
        if kind == "refused":
            raise httpx.ConnectError("refused", request=request)
        return answers[kind]

    async def go() -> list[Any]:
        outcomes = []
        for kind in ("ok", "no-id", "bad-type", "refused"):
            transport = httpx.MockTransport(answer)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://stub", headers={"x-kind": kind}
            ) as client:
                outcomes.append(await st.submit_one(client, {"task_type": "foo"}))
        return outcomes

    ok, no_id, bad_type, refused = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert (ok.label, ok.task_id) == ("201", task_id)
    assert (no_id.label, no_id.task_id) == ("201 without a task_id", None)
    assert (bad_type.label, bad_type.task_id) == ("422", None)
    assert ok.seconds is not None
    assert bad_type.seconds is not None
    assert (refused.label, refused.seconds) == ("error: ConnectError", None)
    assert seen[0].url.path == "/task"
    assert seen[0].method == "POST"
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"task_type": "foo"}


# -- watch, with scripted list pages ------------------------------------------------------------


def test_watch_waits_for_a_task_missed_between_the_active_scans() -> None:
    ours = [UUID(int=n) for n in range(100, 110)]
    late = ours[3]
    polls, asked = 0, Counter[str]()

    def pages(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        status = request.url.params["status"]
        asked[status] += 1
        polls += status == "submitted"
        others = [t for t in ours if t != late]
        # Poll 1: `late` was handed back to submitted after that scan had passed it, so neither
        # active scan shows it and only 9 are terminal. Poll 2: it is submitted. Poll 3: done.
        where = {1: {"done": others}, 2: {"submitted": [late], "done": others}}
        ids = where.get(polls, {"done": ours}).get(status, [])
        tasks = [{"task_id": str(t), "status": status} for t in ids]
        return httpx.Response(200, json={"tasks": tasks, "next_cursor": None})

    async def go() -> dict[str, int]:
        transport = httpx.MockTransport(pages)
        async with httpx.AsyncClient(transport=transport, base_url="http://stub") as client:
            result: dict[str, int] = await st.watch(client, ours, Console(file=io.StringIO()))
            return result

    counts = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert counts == {"submitted": 0, "started_executing": 0, "done": 10, "failed": 0, "deleted": 0}
    assert polls == 3
    # The terminal statuses are read only when no task of ours looked active: polls 1 and 3.
    assert asked["done"] == 2


# -- a stub API on loopback --------------------------------------------------------------------


class StubApi:
    """POST /task and GET /task?status= like the real API, with tasks advancing as they are listed.

    Each of our tasks moves one step (submitted → started_executing → done, or failed for every
    10th) whenever a list page shows it. Other runs' tasks sit inside and after our id range and
    never move; the script must not wait for them.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: dict[UUID, str] = {}
        self.fate: dict[UUID, str] = {}
        self.ours: list[UUID] = []
        self.bodies: list[dict[str, Any]] = []
        self.bad_requests: list[str] = []
        self.reject_every = 0
        self.frozen: set[UUID] = set()
        self.freeze_our_first = False
        self.post_delay = 0.0
        self.in_flight = self.max_in_flight = 0
        self.client_ports: set[int] = set()
        self.cursors: list[int] = []
        self._next = 1000
        self.url = ""
        for n in range(5):  # another run's tasks, created long after ours
            self._add(UUID(int=10**30 + n), "submitted", frozen=True)

    def _add(self, task_id: UUID, status: str, *, frozen: bool = False) -> None:
        self.status[task_id] = status
        if frozen:
            self.frozen.add(task_id)

    def create(self, body: dict[str, Any], port: int) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.client_ports.add(port)
            self.bodies.append(body)
            if self.reject_every and len(self.bodies) % self.reject_every == 0:
                return 422, {"detail": "task_type: unknown type", "field": "task_type"}
            self._next += 1
            if self._next % 3 == 0:  # someone else's task, interleaved with ours
                self._add(UUID(int=self._next), "submitted", frozen=True)
                self._next += 1
            task_id = UUID(int=self._next)
            self._add(task_id, "submitted", frozen=self.freeze_our_first and not self.ours)
            self.ours.append(task_id)
            self.fate[task_id] = "failed" if len(self.ours) % 10 == 0 else "done"
            return 201, {"task_id": str(task_id)}

    def page(self, status: str, limit: int, cursor: str | None) -> dict[str, Any]:
        after = UUID(cursor).int if cursor else -1
        with self.lock:
            ids = sorted(t for t, s in self.status.items() if s == status and t.int > after)
            ids = ids[:limit]
            self.cursors.append(after)
            for task_id in ids:
                if task_id in self.frozen:
                    continue
                if status == "submitted":
                    self.status[task_id] = "started_executing"
                elif status == "started_executing":
                    self.status[task_id] = self.fate[task_id]
        tasks = [{"task_id": str(t), "status": status, "task_type": "foo"} for t in ids]
        return {"tasks": tasks, "next_cursor": str(ids[-1]) if len(ids) == limit else None}


def _handler(api: StubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is really used
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls

        def _send(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            with api.lock:
                api.in_flight += 1
                api.max_in_flight = max(api.max_in_flight, api.in_flight)
            try:
                body = json.loads(raw)
                when = datetime.fromisoformat(body["execution_time"])
                ok = (
                    self.path == "/task"
                    and self.headers.get("content-type") == "application/json"
                    and set(body) == {"task_type", "execution_time"}
                    and when.tzinfo is not None
                )
                if not ok:
                    api.bad_requests.append(f"{self.path} {self.headers} {raw!r}")
                    self._send(400, {"detail": "bad request"})
                    return
                time.sleep(api.post_delay)  # server-side work, so requests overlap
                self._send(*api.create(body, self.client_address[1]))
            finally:
                with api.lock:
                    api.in_flight -= 1

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != "/task" or "status" not in query:
                api.bad_requests.append(self.path)
                self._send(400, {"detail": "bad request"})
                return
            limit = int(query.get("limit", "100"))
            self._send(200, api.page(query["status"], limit, query.get("cursor")))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 resets a burst of 50 new connections


@pytest.fixture
def stub() -> Iterator[StubApi]:
    api = StubApi()
    server = _Server(("127.0.0.1", 0), _handler(api))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small pages so that paging and the id-range cut-off are exercised with 50 tasks.
    monkeypatch.setattr(st, "PAGE_SIZE", 7)
    monkeypatch.setattr(st, "POLL_SECONDS", 0.01)


@pytest.mark.timeout(60)
def test_submit_and_watch_to_the_end(
    stub: StubApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids_file = tmp_path / "ids.txt"
    argv = [
        "--url",
        stub.url,
        "--count",
        "50",
        "--watch",
        "--ids-file",
        str(ids_file),
        "--timeout",
        "30",
        "--spread-minutes",
        "0.5",
    ]
    assert st.main(argv) == 0

    assert stub.bad_requests == []
    written = [UUID(line) for line in ids_file.read_text().splitlines()]
    assert len(written) == 50
    assert set(written) == set(stub.ours)
    assert {b["task_type"] for b in stub.bodies} <= {"foo", "bar", "baz"}
    assert all(stub.status[t] in ("done", "failed") for t in stub.ours)
    # Paging starts just below our first id and stops once a page reaches our last one.
    assert stub.cursors
    assert min(stub.cursors) == min(stub.ours).int - 1
    assert max(stub.cursors) < max(stub.ours).int
    out = capsys.readouterr().out
    assert re.search(r"accepted \(201\)\W+50\b", out)
    assert "final: done 45, failed 5, deleted 0" in out


@pytest.mark.timeout(60)
def test_rejections_exit_1_and_are_counted(
    stub: StubApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.reject_every = 5
    ids_file = tmp_path / "ids.txt"
    argv = [
        "--url",
        stub.url,
        "--count",
        "50",
        "--ids-file",
        str(ids_file),
        "--watch",
        "--timeout",
        "30",
    ]
    assert st.main(argv) == 1

    assert len(stub.bodies) == 50
    assert len(ids_file.read_text().splitlines()) == 40
    out = capsys.readouterr().out
    assert re.search(r"accepted \(201\)\W+40\b", out)
    assert re.search(r"rejected 422\W+10\b", out)
    assert "final: done 36, failed 4, deleted 0" in out


@pytest.mark.timeout(60)
def test_json_prints_only_json_lines(stub: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    stub.reject_every = 5
    argv = ["--url", stub.url, "--count", "50", "--json", "--watch", "--timeout", "30"]
    assert st.main(argv) == 1

    summary_line, final_line = capsys.readouterr().out.splitlines()
    summary = json.loads(summary_line)
    assert (summary["accepted"], summary["rejected"], summary["total"]) == (40, {"422": 10}, 50)
    assert summary["seconds"] > 0
    assert summary["requests_per_s"] == pytest.approx(50 / summary["seconds"])
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert json.loads(final_line) == {"final": {"done": 36, "failed": 4, "deleted": 0}}


@pytest.mark.timeout(60)
def test_concurrency_bounds_requests_and_connections(stub: StubApi) -> None:
    stub.post_delay = 0.02
    assert st.main(["--url", stub.url, "--count", "40", "--concurrency", "4"]) == 0
    assert len(stub.ours) == 40
    assert 2 <= stub.max_in_flight <= 4
    assert len(stub.client_ports) <= 4  # one pooled client, not a connection per request


@pytest.mark.timeout(60)
def test_watch_gives_up_at_the_timeout(stub: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    stub.freeze_our_first = True
    started = time.monotonic()
    assert st.main(["--url", stub.url, "--count", "10", "--watch", "--timeout", "0.5"]) == 3
    assert time.monotonic() - started < 20
    assert "not all tasks finished within 0.5 s" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_connection_errors_are_their_own_row(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert st.main(["--url", f"http://127.0.0.1:{port}", "--count", "5"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"error: ConnectError\W+5\b", out)
    assert re.search(r"accepted \(201\)\W+0\b", out)
