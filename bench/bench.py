"""Benchmark of claude-ops against the speed and memory goals of SPEC section 6.

  .venv/bin/python bench/bench.py [--json results.json] [--keep] [--app path/to/claude_ops.py]

Runs claude_ops.py as a user does (`python claude_ops.py` on a free loopback port, its state in a
temporary folder, the tests' fake_claude.py as `claude`), loads it from other processes (wrk for
HTTP, bench/sse_load.py for SSE clients) so that no client runs on the app's greenlets, reads its
memory from /proc, and prints one row per goal: the figure, the goal, pass or FAIL, and the ratio
to the baseline measured in the same run where the goal is relative. It is a benchmark, not a
test: it always exits 0 once it has measured. Needs wrk (`apt-get install wrk`); about 1 minute
on a 2-core machine. --app measures another copy of claude_ops.py (with its templates/ and static/
beside it), e.g. to try a fix; the baseline then uses that copy's listen() too.

What it measures:
- GET /, 10,000 sessions in the database, 50 keep-alive wrk connections, against bare_bottle.py
  (one Bottle route returning the same page as a static string, on the same gevent server and
  socket settings); and GET / from one keep-alive connection, median and p99.
- 200 SSE clients following a session whose CLI prints 2,000 lines/s for 10 s: every line to
  every client in order, and the latency from the CLI's write to a client's read.
- A trigger (POST /api/v1/sessions/trigger) until the CLI process starts, and until its first
  line reaches an SSE client, 20 times.
- GET /sessions with 100,000 rows against 10 rows, time per request from one connection.
- Resident memory idle, its growth with 200 SSE clients, and after a 100 MB session (and its
  page and stream); the time from spawning the app to its first 200 on /api/v1/health.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import sse_load

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))  # the tests' fake claude, beside claude_ops.py
import fake_claude  # noqa: E402
DEFAULT_APP = os.path.join(os.path.dirname(BENCH_DIR), "claude_ops.py")

INDEX_SESSIONS = 10_000
FEW_SESSIONS, MANY_SESSIONS = 10, 100_000
HTTP_CONNECTIONS = 50
THROUGHPUT_S = 4
THROUGHPUT_ROUNDS = 3
BUSY_CPU_SHARE = 0.8  # a server below this share of a core under wrk is waiting, not working
NOISY_FOREIGN_SHARE = 0.1  # of all CPUs, taken by other processes during a measure
LATENCY_S = 4
WARM_UP_S = 1
SSE_CLIENTS = 200
FLOOD_LINES_PER_S = 2000
FLOOD_S = 10
TRIGGER_REPEATS = 20
TRIGGER_HOLD_S = 0.3
BULK_BYTES = 100 * 1024 * 1024
BULK_LINE_BYTES = 256 * 1024
RETENTION_DAYS = 30
START_LIMIT_S = 20
INIT_LINE = re.compile(re.escape(sse_load.INIT_MARKER))

# Made up, but shaped like the real thing: a user sets the key in the environment, so the app's
# redactor has a value to mask on every line and the dashboard shows no missing-credentials banner.
DUMMY_API_KEY = "sk-ant-bench-dummy-0000000000000000"
# Run by the app's own Python: creates the schema, and prints the context the app stores per row.
SCHEMA_SCRIPT = ("import sys, claude_ops\n"
                 "claude_ops.Store(sys.argv[1]).close()\n"
                 "config = claude_ops.load_config([], {'CLAUDEOPS_STATE_DIR': sys.argv[2]})\n"
                 "print(claude_ops.environment_context(config, 'scheduled'), end='')\n")
SERVICES = ["jellyfin", "sonarr", "radarr", "prowlarr", "qbittorrent", "home-assistant",
            "mosquitto", "zigbee2mqtt", "nextcloud", "postgres", "traefik", "pihole"]
RESPONSE = ("Checked 12 services. jellyfin, sonarr, radarr, prowlarr, qbittorrent, home-assistant, "
            "mosquitto, zigbee2mqtt, nextcloud, postgres and traefik are healthy. pihole answered "
            "DNS queries slowly (420 ms) but within limits; no restart was needed. Disk on /srv "
            "is at 71 %. Nothing needs a human.")


@dataclass
class Row:
    """One line of the report."""
    measure: str
    figure: str
    goal: str
    passed: bool
    ratio: float | None = None
    data: dict = field(default_factory=dict)


# Processes and /proc ##############################################################################

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status_mb(pid, name):
    """A VmRSS / VmHWM figure of /proc/<pid>/status, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(name)


def machine_busy_ticks():
    """Clock ticks all CPUs spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:8]]
    return sum(ticks) - ticks[3] - ticks[4]


def own_ticks():
    """Clock ticks of CPU used by this process and every process under it, ended ones included
    (a parent's cutime/cstime holds the children it has reaped)."""
    children, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
            ticks[int(entry)] = sum(int(value) for value in fields[11:15])
    total, pending = 0, [os.getpid()]
    while pending:
        pid = pending.pop()
        total += ticks.get(pid, 0)
        pending += children.get(pid, [])
    return total


class ForeignLoad:
    """What the rest of the machine took while a measure ran: the CPUs' busy time less the bench's
    own, as a share of all CPUs. Other work makes the figures noisy, so the report says so."""

    def __init__(self):
        self.started = time.monotonic()
        self.busy, self.own = machine_busy_ticks(), own_ticks()

    def share(self):
        elapsed_ticks = (time.monotonic() - self.started) * os.sysconf("SC_CLK_TCK")
        foreign = (machine_busy_ticks() - self.busy) - (own_ticks() - self.own)
        return max(0.0, foreign / (elapsed_ticks * os.cpu_count()))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(port, method, path, body=None, headers=None, timeout=10):
    """(status, body bytes) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post_json(port, path, payload):
    status, body = request(port, "POST", path, json.dumps(payload).encode(),
                           {"Content-Type": "application/json"})
    return status, json.loads(body)


def wait_for_http(port, path, process, limit_s):
    """Seconds until `path` answers 200, polling every 5 ms; fails if the process dies."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering")
        try:
            if request(port, "GET", path, timeout=1)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"no 200 on {path} within {limit_s} s")


def stop_process(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class FakeCli:
    """The `claude` the app runs: the tests' fake (fake_claude.py) behind a bash wrapper that notes
    when the process started, before any interpreter start-up."""

    INIT = dict(fake_claude.INIT, session_id="bench", model="bench-fake",
                claude_code_version="bench-fake")
    RESULT = fake_claude.result(turns=1, cost=0.001)

    def __init__(self, folder):
        self.fake = fake_claude.FakeClaude(folder)
        self.path = os.path.join(folder, "claude")
        self.starts_path = os.path.join(folder, "cli-starts.txt")
        with open(self.path, "w") as wrapper:
            wrapper.write("#!/bin/bash\n"
                          'echo "${EPOCHREALTIME/,/.}" >> "$BENCH_CLI_STARTS"\n'
                          f'exec "{self.fake.path}" "$@"\n')
        os.chmod(self.path, 0o755)
        open(self.starts_path, "w").close()

    def plan(self, kind, **options):
        """The fake's plan for one kind of session: init; then for "hold" a pause of hold_s; for
        "flood", once the gate file exists, lines_per_s assistant lines a second ("t=<emit time>
        n=<seq>") for `seconds`, and what it managed written to `report`; for "bulk", `lines`
        tool_result lines of line_bytes each, as fast as the pipe takes them; then a result."""
        if kind == "hold":
            middle = [{"sleep": options["hold_s"]}]
        elif kind == "flood":
            middle = [{"hold": options["gate"]}, {"paced_stdout": {
                "per_s": options["lines_per_s"], "seconds": options["seconds"],
                "report": options["report"]}}]
        else:
            middle = [{"tool_output": {"lines": options["lines"],
                                       "line_bytes": options["line_bytes"]}}]
        self.fake.plan([{"mark": "init"}, {"print": self.INIT}, *middle, {"print": self.RESULT}])

    def last_run(self):
        """(start time, init line's emit time) of the latest run, as wall-clock seconds."""
        with open(self.starts_path) as starts:
            started = starts.read().split()
        inits = self.fake.marks("init")
        return (float(started[-1]) if started else None), (inits[-1] if inits else None)

    def environ(self):
        return dict(self.fake.plan_environ(), BENCH_CLI_STARTS=self.starts_path)


class App:
    """`python claude_ops.py` with its state in its own folder, as a user runs it."""

    def __init__(self, lab, name):
        self.script = lab.app_script
        self.folder = os.path.join(lab.workdir, name)
        self.state_dir = os.path.join(self.folder, "state")
        self.results_dir = os.path.join(self.folder, "results")
        os.makedirs(self.state_dir)
        self.port = free_port()
        self.environ = {variable: value for variable, value in os.environ.items()
                        if not variable.startswith("CLAUDEOPS_")}
        self.environ.update(lab.fake.environ(), ANTHROPIC_API_KEY=DUMMY_API_KEY,
                            CLAUDEOPS_STATE_DIR=self.state_dir,
                            CLAUDEOPS_RESULTS_DIR=self.results_dir,
                            CLAUDEOPS_RUN_ON_START="false",
                            CLAUDEOPS_DASHBOARD_PORT=str(self.port),
                            CLAUDEOPS_CLAUDE_BIN=lab.fake.path,
                            CLAUDEOPS_RETENTION_DAYS=str(RETENTION_DAYS),
                            CLAUDEOPS_SESSION_TIMEOUT="300")
        self.stderr_path = os.path.join(self.folder, "app.log")
        self.process = None
        self.start_s = None

    def start(self):
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen([sys.executable, self.script], env=self.environ,
                                            cwd=self.folder, stdout=subprocess.DEVNULL,
                                            stderr=stderr)
        try:
            self.start_s = wait_for_http(self.port, "/api/v1/health", self.process, START_LIMIT_S)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; the app's log:\n{self.log_tail()}") from None
        return self

    def log_tail(self):
        with open(self.stderr_path, errors="replace") as app_log:
            return "".join(app_log.readlines()[-20:])

    def rss_mb(self):
        return proc_status_mb(self.process.pid, "VmRSS")

    def peak_rss_mb(self):
        return proc_status_mb(self.process.pid, "VmHWM")

    def cpu_s(self):
        return cpu_seconds(self.process.pid)

    def get(self, path):
        status, body = request(self.port, "GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
        return body

    def idle_rss_mb(self):
        """Resident memory after start-up and a few page views, once it has settled."""
        for path in ("/", "/sessions", "/"):
            self.get(path)
        time.sleep(0.5)
        return self.rss_mb()

    def session(self, session_id):
        return json.loads(self.get(f"/api/v1/sessions/{session_id}"))

    def trigger(self, prompt):
        status, body = post_json(self.port, "/api/v1/sessions/trigger", {"prompt": prompt})
        if status != 201 or not body.get("id"):
            raise RuntimeError(f"trigger refused: {status} {body}")
        return body["id"]

    def wait_until_idle(self, limit_s=30):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            health = json.loads(self.get("/api/v1/health"))
            if health["running_session_id"] is None and not health["pending_trigger"]:
                return
            time.sleep(0.01)
        raise RuntimeError(f"still busy after {limit_s} s")

    def stop(self):
        if self.process is not None:
            stop_process(self.process)


class Lab:
    """What the measures share: the temporary folder, the fake CLI, the claude_ops.py under test,
    and every app started (for the start-up figure, and to stop them all at the end)."""

    def __init__(self, workdir, app_script):
        self.workdir = workdir
        self.app_script = app_script
        self.app_dir = os.path.dirname(app_script)
        self.fake = FakeCli(workdir)
        self.apps = []

    def start_app(self, name, sessions=0, cooldowns=False):
        app = App(self, name)
        if sessions:
            seed_sessions(self.app_dir, app.state_dir, sessions)
        if cooldowns:
            write_cooldowns(app.state_dir)
        self.apps.append(app)
        return app.start()

    def stop_all(self):
        for app in self.apps:
            app.stop()


# Data #############################################################################################

def seed_sessions(app_dir, state_dir, count):
    """`count` finished sessions, one an hour up to now, as the app would have left them: the
    schema from claude_ops.Store, then one bulk INSERT. Logs older than the retention have gone."""
    db_path = os.path.join(state_dir, "claudeops.db")
    context = subprocess.run([sys.executable, "-c", SCHEMA_SCRIPT, db_path, state_dir],
                             cwd=app_dir, check=True, capture_output=True, text=True).stdout
    newest = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    keep_logs_after = newest - datetime.timedelta(days=RETENTION_DAYS - 1)

    def session_row(number):
        started = newest - datetime.timedelta(hours=count - number + 1)
        duration_s = 40 + number % 80
        manual = number % 10 == 3
        failed = number % 25 == 0  # and, as when the CLI dies early, with no result event
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        return (number, "haiku", "(ad-hoc)" if manual else "(built-in)",
                "failed" if failed else "completed", started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                (started + datetime.timedelta(seconds=duration_s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                1 if failed else 0,
                f"session-{number}-{stamp}.jsonl" if started > keep_logs_after else None,
                context, None if failed else RESPONSE,
                None if failed else 0.01 + (number % 7) / 100,
                None if failed else 3 + number % 9, None if failed else duration_s * 1000,
                "manual" if manual else "scheduled",
                "Jellyfin is down, can you take a look?" if manual else None,
                "exit code 1\nError: connection reset by peer" if failed else None)

    database = sqlite3.connect(db_path)
    with database:
        database.executemany(
            "INSERT INTO sessions (id, model, prompt_file, status, started_at, ended_at, exit_code,"
            " log_file, context, response, cost_usd, num_turns, duration_ms, trigger, prompt_text,"
            " error, tier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (session_row(number) for number in range(1, count + 1)))
    database.close()


def write_cooldowns(state_dir):
    """A homelab of a dozen services, a few with recent restarts."""
    now = datetime.datetime.now(datetime.timezone.utc)
    services = {}
    for index, name in enumerate(SERVICES):
        restarts = [{"timestamp": (now - datetime.timedelta(hours=hours)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"), "success": True} for hours in range(1, index % 4)]
        services[name] = {"status": "degraded" if index == 11 else "healthy",
                          "last_checked": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "consecutive_healthy": index * 3, "restarts": restarts,
                          "redeployments": []}
    with open(os.path.join(state_dir, "cooldown.json"), "w") as cooldown:
        json.dump({"services": services, "last_run": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "last_daily_digest": None}, cooldown)


# wrk ##############################################################################################

WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(port, path, connections, seconds):
    """wrk's figures for GET `path`: requests, seconds, requests/s, latency percentiles (ms),
    responses that were not 2xx/3xx, socket errors."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
            f"http://127.0.0.1:{port}{path}"]
    output = subprocess.run(argv, capture_output=True, text=True, check=True,
                            timeout=seconds + 30).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", output)
    percentiles = {f"p{name}": float(value) * WRK_UNITS[unit] for name, value, unit in
                   re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)$", output, re.MULTILINE)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    requests = int(total.group(1))
    elapsed_s = float(total.group(2)) * WRK_UNITS[total.group(3)] / 1000
    return {"requests": requests, "seconds": elapsed_s, "rps": requests / elapsed_s,
            "mean_ms": elapsed_s * 1000 * connections / requests, **percentiles,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def checked_wrk(port, path, connections, seconds, pid=None):
    """wrk's figures, refusing a run with errors; with `pid`, also that server's CPU use while it
    ran: its share of one core, and CPU microseconds a request."""
    cpu_before, wall_before = (cpu_seconds(pid), time.monotonic()) if pid else (0, 0)
    figures = wrk(port, path, connections, seconds)
    if figures["non_2xx"] or figures["socket_errors"]:
        raise RuntimeError(f"wrk on {path}: {figures['non_2xx']} non-2xx responses,"
                           f" {figures['socket_errors']} socket errors")
    if pid:
        cpu_s = cpu_seconds(pid) - cpu_before
        figures.update(cpu_share=cpu_s / (time.monotonic() - wall_before),
                       cpu_us_per_request=cpu_s * 1e6 / figures["requests"])
    return figures


def median_run(runs):
    return sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]


# Measures #########################################################################################

def measure_index(lab):
    """GET / on the app against the bare route, in alternating rounds so that a disturbance of
    the machine hits both alike; the median round of each counts."""
    app = lab.start_app("index", sessions=INDEX_SESSIONS, cooldowns=True)
    idle_mb = app.idle_rss_mb()
    page_path = os.path.join(lab.workdir, "index.html")
    with open(page_path, "wb") as page:
        page.write(app.get("/"))
    baseline_port = free_port()
    baseline = subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "bare_bottle.py"),
                                 lab.app_dir, str(baseline_port), page_path], cwd=lab.workdir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(baseline_port, "/", baseline, START_LIMIT_S)
        servers = ((app.port, app.process.pid), (baseline_port, baseline.pid))
        for port, _ in servers:
            wrk(port, "/", HTTP_CONNECTIONS, WARM_UP_S)
        runs = {port: [] for port, _ in servers}
        for _ in range(THROUGHPUT_ROUNDS):
            for port, pid in servers:
                runs[port].append(checked_wrk(port, "/", HTTP_CONNECTIONS, THROUGHPUT_S, pid))
    finally:
        stop_process(baseline)
    single = checked_wrk(app.port, "/", 1, LATENCY_S)
    app.stop()

    loaded, bare = median_run(runs[app.port]), median_run(runs[baseline_port])
    ratio = loaded["rps"] / bare["rps"]
    page_kb = os.path.getsize(page_path) / 1024
    return [
        Row("GET /, 10,000 sessions, 50 keep-alive clients",
            f"{loaded['rps']:,.0f} req/s vs bare Bottle {bare['rps']:,.0f} req/s; CPU"
            f" {loaded['cpu_us_per_request']:.0f} vs {bare['cpu_us_per_request']:.0f} µs a request,"
            f" {loaded['cpu_share']:.0%} vs {bare['cpu_share']:.0%} of a core"
            f" ({page_kb:.1f} KiB page)"
            + (f"; the baseline is idle {1 - bare['cpu_share']:.0%} of the time, so the ratio"
               " compares waits, not work" if bare["cpu_share"] < BUSY_CPU_SHARE else ""),
            "≥ 0.5× baseline", ratio >= 0.5, ratio,
            {"app": runs[app.port], "baseline": runs[baseline_port],
             "page_bytes": os.path.getsize(page_path)}),
        Row("GET /, one keep-alive client",
            f"median {single['p50']:.2f} ms, p99 {single['p99']:.2f} ms",
            "≤ 5 ms a request (p99)", single["p99"] <= 5, None, single),
        Row("resident memory idle (10,000 sessions)", f"{idle_mb:.1f} MiB", "≤ 45 MB",
            idle_mb <= 45, None, {"rss_mb": idle_mb}),
    ]


def measure_sessions_page(lab):
    per_request = {}
    for count in (FEW_SESSIONS, MANY_SESSIONS):
        app = lab.start_app(f"sessions-{count}", sessions=count)
        wrk(app.port, "/sessions", 1, WARM_UP_S)
        per_request[count] = checked_wrk(app.port, "/sessions", 1, LATENCY_S)
        app.stop()
    few, many = per_request[FEW_SESSIONS], per_request[MANY_SESSIONS]
    ratio = many["mean_ms"] / few["mean_ms"]
    return [Row("/sessions, 100,000 rows vs 10 rows",
                f"{many['mean_ms']:.2f} ms vs {few['mean_ms']:.2f} ms a request"
                f" (medians {many['p50']:.2f} / {few['p50']:.2f} ms)",
                "≤ 3×", ratio <= 3, ratio, {"many": many, "few": few})]


def measure_sse(lab, app):
    """200 SSE clients on a flooding session; the app's memory before, with them, at its peak."""
    idle_mb = app.idle_rss_mb()
    gate = os.path.join(lab.workdir, "flood-gate")
    report = os.path.join(lab.workdir, "flood-report.json")
    lab.fake.plan(kind="flood", gate=gate, lines_per_s=FLOOD_LINES_PER_S, seconds=FLOOD_S,
                  report=report)
    session_id = app.trigger("bench: flood")
    expected = FLOOD_LINES_PER_S * FLOOD_S
    loader = subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "sse_load.py"),
                               "--port", str(app.port), "--path", f"/sessions/{session_id}/stream",
                               "--clients", str(SSE_CLIENTS), "--lines", str(expected)],
                              stdout=subprocess.PIPE, text=True)
    try:
        readable, _, _ = select.select([loader.stdout], [], [], 30)
        signal_line = loader.stdout.readline().strip() if readable else "no answer"
        if signal_line != "ready":
            raise RuntimeError(f"the SSE clients did not all connect: {signal_line}")
        time.sleep(0.5)
        connected_mb = app.rss_mb()
        peak_mb = connected_mb
        cpu_before, flood_started = app.cpu_s(), time.monotonic()
        open(gate, "w").close()
        deadline = time.monotonic() + FLOOD_S + 90
        while loader.poll() is None and time.monotonic() < deadline:
            peak_mb = max(peak_mb, app.rss_mb())
            time.sleep(0.1)
        app_cpu = (app.cpu_s() - cpu_before) / (time.monotonic() - flood_started)
        peak_mb = max(peak_mb, app.peak_rss_mb())  # the sampling may miss a short peak
        summary = json.loads(loader.communicate(timeout=30)[0].strip().splitlines()[-1])
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.wait()
    app.wait_until_idle()
    with open(report) as report_file:
        emitted = json.load(report_file)
    emit_s = emitted["last_emit"] - emitted["first_emit"]
    latency = summary["latency_ms"]
    delivered = summary["complete_clients"] == SSE_CLIENTS
    status = app.session(session_id)["status"]
    details = dict(summary, emitted_lines=emitted["lines"], emit_seconds=emit_s,
                   app_cpu_share=app_cpu, session_status=status)
    return [
        Row("200 SSE clients, 2,000 lines/s for 10 s: delivery",
            f"{summary['complete_clients']}/{SSE_CLIENTS} clients got all {expected:,} lines in"
            f" order ({emitted['lines']:,} emitted in {emit_s:.1f} s; session {status})"
            + (f"; {'; '.join(summary['problems'])}" if summary["problems"] else ""),
            "every line, in order", delivered, None, details),
        Row("200 SSE clients, 2,000 lines/s for 10 s: latency",
            f"p50 {latency['p50']} ms, p99 {latency['p99']} ms, max {latency['max']} ms"
            f" (app CPU {app_cpu:.0%} of a core, the clients' process"
            f" {summary['client_cpu_s'] / summary['wall_s']:.0%})",
            "p99 ≤ 250 ms", latency["p99"] is not None and latency["p99"] <= 250, None, details),
        Row("resident memory +200 SSE clients",
            f"+{connected_mb - idle_mb:.1f} MiB connected, +{peak_mb - idle_mb:.1f} MiB at the"
            f" flood's peak (idle {idle_mb:.1f} MiB)",
            "≤ +15 MB (peak)", peak_mb - idle_mb <= 15, None,
            {"idle_mb": idle_mb, "connected_mb": connected_mb, "peak_mb": peak_mb}),
    ]


def measure_triggers(lab, app):
    lab.fake.plan(kind="hold", hold_s=TRIGGER_HOLD_S)
    to_start, to_first_line, app_share = [], [], []
    for _ in range(TRIGGER_REPEATS):
        app.wait_until_idle()
        triggered = time.time()
        session_id = app.trigger("bench: trigger latency")
        stream = sse_load.EventStream(app.port, f"/sessions/{session_id}/stream")
        try:
            arrived, seen = stream.read_until(INIT_LINE, time.monotonic() + 10)
            ended = (sse_load.DONE_EVENT.search(seen)
                     or stream.read_until(sse_load.DONE_EVENT, time.monotonic() + 10)[0])
        finally:
            stream.close()
        if arrived is None or ended is None:
            raise RuntimeError(f"session {session_id}: no init line or no end on its stream")
        cli_started, init_emitted = lab.fake.last_run()
        to_start.append((cli_started - triggered) * 1000)
        to_first_line.append((arrived - triggered) * 1000)
        app_share.append((arrived - init_emitted) * 1000)
    started_median, first_median = statistics.median(to_start), statistics.median(to_first_line)
    data = {"to_cli_start_ms": to_start, "to_first_line_ms": to_first_line,
            "cli_write_to_client_ms": app_share}
    return [
        Row("trigger → CLI started",
            f"median {started_median:.1f} ms, max {max(to_start):.1f} ms"
            f" ({TRIGGER_REPEATS} triggers)", "≤ 50 ms (each)", max(to_start) <= 50, None, data),
        Row("trigger → first line at an SSE client",
            f"median {first_median:.1f} ms, max {max(to_first_line):.1f} ms (of which CLI write"
            f" → client median {statistics.median(app_share):.1f} ms)",
            "≤ 150 ms median", first_median <= 150, None, data),
    ]


def measure_bulk_session(lab):
    """The app's memory after a session that printed about 100 MB, and after its page and stream
    were viewed, against the same app idle just before."""
    app = lab.start_app("bulk")
    idle_mb = app.idle_rss_mb()
    lab.fake.plan(kind="bulk", lines=BULK_BYTES // BULK_LINE_BYTES, line_bytes=BULK_LINE_BYTES)
    started = time.monotonic()
    session_id = app.trigger("bench: 100 MB of output")
    deadline = started + 120
    while app.session(session_id)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    session = app.session(session_id)
    took_s = time.monotonic() - started
    log_mb = os.path.getsize(os.path.join(app.results_dir, session["log_file"])) / 2**20
    time.sleep(0.5)
    after_end_mb = app.rss_mb()
    app.get(f"/sessions/{session_id}")
    stream = sse_load.EventStream(app.port, f"/sessions/{session_id}/stream", timeout_s=60)
    try:
        ended, _ = stream.read_until(sse_load.DONE_EVENT, time.monotonic() + 60)
    finally:
        stream.close()
    if ended is None:
        raise RuntimeError("the 100 MB session's stream did not end")
    time.sleep(0.5)
    after_views_mb = app.rss_mb()
    peak_mb = app.peak_rss_mb()
    app.stop()
    growth = max(after_end_mb, after_views_mb) - idle_mb
    return [Row("resident memory after a 100 MB session",
                f"+{after_end_mb - idle_mb:.1f} MiB after it ended, +{after_views_mb - idle_mb:.1f}"
                f" MiB after its page and stream (idle {idle_mb:.1f}, peak {peak_mb:.1f} MiB;"
                f" {log_mb:.0f} MiB log, {session['status']} in {took_s:.1f} s)",
                "≤ +10 MB", growth <= 10, None,
                {"idle_mb": idle_mb, "after_end_mb": after_end_mb,
                 "after_views_mb": after_views_mb, "peak_mb": peak_mb, "log_mb": log_mb,
                 "session_status": session["status"], "seconds": took_s})]


def start_up_row(apps):
    starts = {os.path.basename(app.folder): app.start_s for app in apps}
    worst = max(starts.values())
    return Row("start → first 200 on /api/v1/health",
               f"worst {worst:.2f} s of {len(starts)} starts ("
               + ", ".join(f"{name} {seconds:.2f}" for name, seconds in starts.items()) + ")",
               "≤ 1 s", worst <= 1, None, starts)


# Report ###########################################################################################

def print_table(rows):
    headers = ("measure", "result", "ratio", "goal", "figure")
    table = [(row.measure, "pass" if row.passed else "FAIL",
              "" if row.ratio is None else f"{row.ratio:.2f}×", row.goal, row.figure)
             for row in rows]
    widths = [max(len(line[column]) for line in table + [headers]) for column in range(5)]
    for line in [headers, tuple("-" * width for width in widths)] + table:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())


def main():
    parser = argparse.ArgumentParser(description="Benchmark claude-ops against SPEC section 6.")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (databases, logs, the app's stderr)")
    parser.add_argument("--app", metavar="PATH", default=DEFAULT_APP,
                        help="the claude_ops.py to measure (default: the one beside bench/)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    workdir = tempfile.mkdtemp(prefix="claude-ops-bench-")
    lab = Lab(workdir, os.path.abspath(args.app))
    rows, noisy = [], []
    began = time.monotonic()

    def measure(run, *arguments):
        load = ForeignLoad()
        measured = run(*arguments)
        foreign = load.share()
        for row in measured:
            row.data["foreign_cpu_share"] = foreign
            if foreign > NOISY_FOREIGN_SHARE:
                noisy.append(f"{row.measure} ({foreign:.0%})")
        rows.extend(measured)

    try:
        measure(measure_index, lab)
        measure(measure_sessions_page, lab)
        live = lab.start_app("live")
        measure(measure_sse, lab, live)
        measure(measure_triggers, lab, live)
        live.stop()
        measure(measure_bulk_session, lab)
        rows.append(start_up_row(lab.apps))
    finally:
        lab.stop_all()
        if args.keep:
            print(f"bench: the temporary folder is {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    print(f"\n{sum(row.passed for row in rows)} of {len(rows)} goals met;"
          f" {time.monotonic() - began:.0f} s on {os.cpu_count()} CPUs")
    if noisy:
        print("Other processes took this share of the CPUs during: " + ", ".join(noisy)
              + ". Those figures are noisy; run again on a quiet machine.")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"python": sys.version.split()[0], "cpus": os.cpu_count(),
                       "seconds": time.monotonic() - began,
                       "rows": [asdict(row) for row in rows]}, out, indent=2)


if __name__ == "__main__":
    main()
