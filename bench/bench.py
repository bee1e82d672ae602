"""Benchmark of claude-ops against its speed and memory goals (the README's "Speed and memory").

  .venv/bin/python bench/bench.py [--runs 3] [--data DIR] [--json PATH] [--keep] [--app PATH]

Runs claude_ops.py as a user does (`python claude_ops.py` on a free loopback port, its state in a
temporary folder, the tests' fake_claude.py as `claude`, the usual soft limit of 1,024 open
files), loads it from other processes (wrk for HTTP; bench/sse_load.py, page_load.py and
health_probe.py for the rest) so that no client runs on the app's event loop, reads its CPU time
and memory from /proc, and prints one row per goal: the goal, the minimum, median and maximum
over the runs, and pass or FAIL, decided on the median. Relative goals are ratios to a baseline
measured in the same run. It is a benchmark, not a test: it exits 0 once it has measured.

Needs wrk (`apt-get install wrk`) and about 4 GB of disk. On a 2-core machine a run takes about
2 minutes, after 1 to 2 minutes spent once on the big data: a table of 1,000,000 sessions, and
sessions of 2,000, 100,000 and 1,000,000 lines made by the app itself. --data DIR keeps that data
in DIR and reuses it on the next invocation (bench/profile_pages.py reads it too). --only runs
some of the measures. --app measures another copy of claude_ops.py (with its templates/ and
static/ beside it), e.g. to try a fix.

What it measures, in each run:
- GET / uncached: before every request the latest session's row changes through the app's store
  (bench/serve_app.py), so each request renders the dashboard anew (10,000 sessions, a dozen
  services). Server CPU time per request and req/s with 50 keep-alive wrk connections, against
  bench/bare_bottle.py (one Bottle route returning the same page as a static string, on the same
  gevent server and socket settings); ms per request from one keep-alive connection.
- 200 SSE clients on a session whose CLI prints 2,000 lines/s for 10 s: every line to every
  client in order, and the p99 from the CLI's write to a client's read.
- 20 triggers: until the CLI process starts, and until its first line reaches an SSE client.
- /sessions, first page and a deep one (?before=1001), with 1,000,000 rows against a table of
  one page and one row, so that every page compared shows the same number of sessions; server
  CPU time a request from one keep-alive connection.
- A finished session's page with 1,000,000 ordinary lines (~1 KB of stream-json each: an
  assistant's text, a Bash tool call, its output) against one with 2,000; server CPU time a load.
- The slowest GET /api/v1/health, asked every 5 ms by its own process, while idle; while 10
  clients load that 1M-line page; while a client replays a 100,000-line session from line 0;
  while 1,000 SSE clients follow a session printing 100 lines/s for 10 s; and from a session's
  trigger until 1 s after it ended, with 1,000,000 rows in the table (retention runs then).
- Resident memory idle; its peak with 200 SSE clients; after 1,000 SSE clients have left; after
  a session of 100,000 ordinary lines (about 100 MB) and its page and replay.
- Start (spawn to the first 200 on /api/v1/health) with 1,000,000 rows.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import resource
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
from dataclasses import dataclass, field

import sse_load

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))  # the tests' fake claude, beside claude_ops.py
import fake_claude  # noqa: E402
DEFAULT_APP = os.path.join(os.path.dirname(BENCH_DIR), "claude_ops.py")

DASHBOARD_SESSIONS = 10_000
MANY_ROWS = 1_000_000
DEEP_BEFORE = 1001
HTTP_CONNECTIONS = 50
THROUGHPUT_S = 3
THROUGHPUT_ROUNDS = 4
PAGE_LATENCY_S = 3
LATENCY_S = 4
WARM_UP_S = 1
SSE_CLIENTS = 200
FLOOD_LINES_PER_S = 2000
FLOOD_S = 10
CROWD_CLIENTS = 1000
CROWD_LINES_PER_S = 100
CROWD_S = 10
TRIGGER_REPEATS = 20
TRIGGER_HOLD_S = 0.3
SMALL_LOG_LINES, REPLAY_LOG_LINES, BIG_LOG_LINES = 2_000, 100_000, 1_000_000
BIG_PAGE_CLIENTS = 10
SMALL_PAGE_REPEATS, BIG_PAGE_REPEATS = 20, 5
IDLE_PROBE_S = 3
AFTER_END_PROBE_S = 1
USUAL_OPEN_FILES = 1024  # the soft limit of a login shell or a systemd service on Debian
RETENTION_DAYS = 30
SEEDED_EVERY = datetime.timedelta(minutes=5)
START_LIMIT_S = 30
BUSY_CPU_SHARE = 0.8  # a server below this share of a core under wrk is waiting, not working
NOISY_FOREIGN_SHARE = 0.1  # of all CPUs, taken by other processes during a measure
INIT_LINE = re.compile(re.escape(sse_load.INIT_MARKER))

# Made up, but shaped like the real thing: a user sets the key in the environment, so the app's
# redactor has a value to mask on every line and the dashboard shows no missing-credentials banner.
DUMMY_API_KEY = "sk-ant-bench-dummy-0000000000000000"
SCHEMA_SCRIPT = "import sys, claude_ops\nclaude_ops.Store(sys.argv[1]).close()\n"
SERVICES = ["jellyfin", "sonarr", "radarr", "prowlarr", "qbittorrent", "home-assistant",
            "mosquitto", "zigbee2mqtt", "nextcloud", "postgres", "traefik", "pihole"]
RESPONSE = ("Checked 12 services. jellyfin, sonarr, radarr, prowlarr, qbittorrent, home-assistant, "
            "mosquitto, zigbee2mqtt, nextcloud, postgres and traefik are healthy. pihole answered "
            "DNS queries slowly (420 ms) but within limits; no restart was needed. Disk on /srv "
            "is at 71 %. Nothing needs a human.")
# Stands in for the environment context the app keeps with every session (its
# --append-system-prompt text): about as long, so that the rows are as wide as the app's.
CONTEXT = ("You are claude-ops, an operator agent for a homelab, run by the Claude Code CLI "
           "without a human at the keyboard. Session trigger: scheduled. Dry run: no. Cooldown "
           "file: /var/lib/claude-ops/state/cooldown.json, with each service's status, last "
           "check, consecutive healthy checks, restarts and redeployments. ") * 4


# Processes and /proc ##############################################################################

def progress(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


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


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, body bytes) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


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
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def usual_open_files():
    """In the app's process before exec: the soft limit a user's app gets, whatever the bench's."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = USUAL_OPEN_FILES if hard == resource.RLIM_INFINITY else min(USUAL_OPEN_FILES, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def bench_process(name, *arguments, **popen):
    """One of the bench's own scripts, in a process of its own."""
    return subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, name), *map(str, arguments)],
                            text=True, **popen)


def read_line(stream, limit_s):
    readable, _, _ = select.select([stream], [], [], limit_s)
    return stream.readline().strip() if readable else "no answer"


class HealthProbe:
    """health_probe.py against an app, from `with` to the end of the block: `summary` then holds
    its answers, failures and slowest answer."""

    def __init__(self, port):
        self.port = port
        self.summary = None

    def __enter__(self):
        self.process = bench_process("health_probe.py", "--port", self.port,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if read_line(self.process.stdout, 30) != "ready":
            self.process.kill()
            raise RuntimeError("the health probe got no answer")
        return self

    def __exit__(self, *exc_info):
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
            output = self.process.communicate(timeout=120)[0]
            self.summary = json.loads(output.strip().splitlines()[-1])
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def load_page(port, path, clients=1, each=1):
    """page_load.py's figures; refuses a run where any load failed."""
    loader = bench_process("page_load.py", "--port", port, "--path", path, "--clients", clients,
                           "--each", each, stdout=subprocess.PIPE)
    summary = json.loads(loader.communicate(timeout=900)[0].strip().splitlines()[-1])
    if summary["statuses"] != [200] or summary["loads"] != clients * each:
        raise RuntimeError(f"GET {path}: {summary['loads']} loads, statuses {summary['statuses']}")
    return summary


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
            middle = [{"ordinary_stdout": options["lines"]}]
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
    """claude_ops.py with its state in its own folder, as a user runs it (or another launcher of
    it, given as argv)."""

    def __init__(self, lab, name, state_dir=None, argv=None):
        self.folder = os.path.join(lab.workdir, name)
        self.state_dir = state_dir or os.path.join(self.folder, "state")
        self.results_dir = os.path.join(os.path.dirname(self.state_dir), "results")
        os.makedirs(self.folder)
        os.makedirs(self.state_dir, exist_ok=True)
        self.argv = argv or [sys.executable, lab.app_script]
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
                            CLAUDEOPS_SESSION_TIMEOUT="900")
        self.stderr_path = os.path.join(self.folder, "app.log")
        self.process = None
        self.start_s = None

    def start(self):
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(self.argv, env=self.environ, cwd=self.folder,
                                            stdout=subprocess.DEVNULL, stderr=stderr,
                                            preexec_fn=usual_open_files)
        try:
            self.start_s = wait_for_http(self.port, "/api/v1/health", self.process, START_LIMIT_S)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; the app's log:\n{self.log_text()[-3000:]}") from None
        return self

    def log_text(self):
        with open(self.stderr_path, errors="replace") as app_log:
            return app_log.read()

    def rss_mb(self):
        return proc_status_mb(self.process.pid, "VmRSS")

    def peak_rss_mb(self):
        return proc_status_mb(self.process.pid, "VmHWM")

    def cpu_s(self):
        return cpu_seconds(self.process.pid)

    def get(self, path):
        status, body = request(self.port, "GET", path, timeout=300)
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
        status, body = request(self.port, "POST", "/api/v1/sessions/trigger",
                               json.dumps({"prompt": prompt}).encode(),
                               {"Content-Type": "application/json"})
        answer = json.loads(body)
        if status != 201 or not answer.get("id"):
            raise RuntimeError(f"trigger refused: {status} {answer}")
        return answer["id"]

    def wait_until_idle(self, limit_s=60):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            health = json.loads(self.get("/api/v1/health"))
            if health["running_session_id"] is None and not health["pending_trigger"]:
                return
            time.sleep(0.02)
        raise RuntimeError(f"still busy after {limit_s} s")

    def run_session(self, prompt, limit_s):
        """Triggers a session, waits for its end; returns its row (JSON) and the seconds it took."""
        started = time.monotonic()
        session_id = self.trigger(prompt)
        self.wait_until_idle(limit_s)
        session = self.session(session_id)
        if session["status"] != "completed":
            raise RuntimeError(f"session {session_id} ended {session['status']}:"
                               f" {session['error']}")
        return session, time.monotonic() - started

    def stop(self):
        if self.process is not None:
            stop_process(self.process)


class Lab:
    """What the measures share: the temporary folder, the fake CLI, the claude_ops.py under test,
    the big data, and every app started (to stop them all at the end)."""

    def __init__(self, workdir, app_script, data_dir):
        self.workdir = workdir
        self.app_script = app_script
        self.app_dir = os.path.dirname(app_script)
        self.data_dir = data_dir
        self.fake = FakeCli(workdir)
        self.apps = []
        self.started = 0

    def app(self, name, sessions=0, cooldowns=False, state_dir=None, argv=None):
        self.started += 1
        app = App(self, f"{self.started:02d}-{name}", state_dir, argv)
        if sessions:
            seed_sessions(self.app_dir, app.state_dir, sessions)
        if cooldowns:
            write_cooldowns(app.state_dir)
        self.apps.append(app)
        return app

    def start_app(self, name, **options):
        return self.app(name, **options).start()

    def stop_all(self):
        for app in self.apps:
            app.stop()


# Data #############################################################################################

def session_row(number, count, newest):
    """The columns of finished session `number` of `count`, one every SEEDED_EVERY up to `newest`,
    as the app would have left it. Logs older than the retention have gone."""
    started = newest - SEEDED_EVERY * (count - number + 1)
    duration_s = 40 + number % 80
    manual, failed = number % 10 == 3, number % 25 == 12
    log_kept = newest - started < datetime.timedelta(days=RETENTION_DAYS - 1)
    return {"id": number, "tier": 1, "model": "haiku",
            "prompt_file": "(ad-hoc)" if manual else "(built-in)",
            "status": "failed" if failed else "completed",
            "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ended_at": (started + datetime.timedelta(seconds=duration_s)
                         ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "exit_code": 1 if failed else 0,
            "log_file": (f"session-{number}-{started.strftime('%Y%m%dT%H%M%SZ')}.jsonl"
                         if log_kept else None),
            "context": CONTEXT, "response": None if failed else RESPONSE,
            "cost_usd": None if failed else 0.01 + (number % 7) / 100,
            "num_turns": None if failed else 3 + number % 9,
            "duration_ms": None if failed else duration_s * 1000,
            "trigger": "manual" if manual else "scheduled",
            "prompt_text": "Jellyfin is down, can you take a look?" if manual else None,
            "error": "exit code 1\nError: connection reset by peer" if failed else None}


def seed_sessions(app_dir, state_dir, count):
    """`count` finished sessions: the schema from claude_ops.Store (run by the app's Python, in a
    process of its own), then one bulk INSERT of the columns that table has. A NOT NULL column
    the bench does not know stops it, rather than seeding rows the app would never write."""
    db_path = os.path.join(state_dir, "claudeops.db")
    subprocess.run([sys.executable, "-c", SCHEMA_SCRIPT, db_path], cwd=app_dir, check=True,
                   capture_output=True, text=True)
    newest = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    known = session_row(1, 1, newest)
    database = sqlite3.connect(db_path)
    table = database.execute("PRAGMA table_info(sessions)").fetchall()
    columns = [name for _, name, *_ in table if name in known]
    unknown = [name for _, name, _, not_null, default, _ in table
               if not_null and default is None and name not in known]
    if unknown:
        raise RuntimeError(f"the sessions table needs columns the bench does not fill: {unknown}")
    with database:
        database.executemany(
            f"INSERT INTO sessions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            ([row[name] for name in columns] for row in
             (session_row(number, count, newest) for number in range(1, count + 1))))
    database.execute("PRAGMA journal_mode=WAL")  # as the app leaves its database
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


def many_rows_state(lab):
    """The state folder of a table of MANY_ROWS sessions, seeded once and kept in the data folder
    (the runs' sessions add a row each; retention clears old rows' logs as the app does)."""
    state_dir = os.path.join(lab.data_dir, "many-rows", "state")
    marker = os.path.join(lab.data_dir, "many-rows", "seeded")
    if not os.path.exists(marker):
        shutil.rmtree(os.path.dirname(state_dir), ignore_errors=True)
        os.makedirs(state_dir)
        started = time.monotonic()
        seed_sessions(lab.app_dir, state_dir, MANY_ROWS)
        open(marker, "w").close()
        progress(f"seeded {MANY_ROWS:,} sessions in {time.monotonic() - started:.0f} s")
    return state_dir


def long_logs(lab):
    """(state folder, {lines: session id}) of finished sessions of SMALL_, REPLAY_ and
    BIG_LOG_LINES ordinary lines, made once by the app itself from the fake CLI's output, as a
    user's would be (the app writes whatever it keeps beside a log as it goes)."""
    folder = os.path.join(lab.data_dir, "long-logs")
    index_path = os.path.join(folder, "sessions.json")
    if not os.path.exists(index_path):
        shutil.rmtree(folder, ignore_errors=True)
        app = lab.start_app("long-logs", state_dir=os.path.join(folder, "state"))
        sessions = {}
        for lines in (SMALL_LOG_LINES, REPLAY_LOG_LINES, BIG_LOG_LINES):
            lab.fake.plan(kind="ordinary", lines=lines)
            session, took_s = app.run_session(f"bench: {lines:,} lines", limit_s=1800)
            sessions[lines] = session["id"]
            progress(f"a session of {lines:,} lines in {took_s:.0f} s")
        app.stop()
        with open(index_path, "w") as index:
            json.dump(sessions, index)
    with open(index_path) as index:
        return os.path.join(folder, "state"), {int(lines): session_id for lines, session_id
                                               in json.load(index).items()}


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
    """wrk's figures, refusing a run with errors; with `pid`, also that server's CPU seconds."""
    cpu_before = cpu_seconds(pid) if pid else 0
    figures = wrk(port, path, connections, seconds)
    if figures["non_2xx"] or figures["socket_errors"]:
        raise RuntimeError(f"wrk on {path}: {figures['non_2xx']} non-2xx responses,"
                           f" {figures['socket_errors']} socket errors")
    figures["cpu_s"] = cpu_seconds(pid) - cpu_before if pid else None
    return figures


def page_cost(app, path):
    """(server CPU µs, wall ms) a request of `path` from one keep-alive wrk connection, after a
    warm-up. The CPU time is the steadier figure on a shared machine."""
    wrk(app.port, path, 1, WARM_UP_S)
    figures = checked_wrk(app.port, path, 1, PAGE_LATENCY_S, app.process.pid)
    return figures["cpu_s"] * 1e6 / figures["requests"], figures["mean_ms"]


# Measures #########################################################################################
# Each takes the lab and returns {goal key: (figure, note)} for one run; GOALS below says what
# each key is and what it must reach.

def measure_index(lab):
    """GET / rendered for every request, against the bare route, in alternating rounds so that a
    disturbance of the machine hits both alike."""
    app = lab.app("index", sessions=DASHBOARD_SESSIONS, cooldowns=True,
                  argv=[sys.executable, os.path.join(BENCH_DIR, "serve_app.py"), lab.app_dir,
                        str(DASHBOARD_SESSIONS)]).start()
    first, second = app.get("/"), app.get("/")
    if first == second:
        raise RuntimeError("GET / did not change between requests: the measure would be cached")
    update_us = float(re.search(r"row update: ([\d.]+) us", app.log_text()).group(1))
    page_path = os.path.join(app.folder, "index.html")
    with open(page_path, "wb") as page:
        page.write(second)
    baseline_port = free_port()
    baseline = bench_process("bare_bottle.py", lab.app_dir, baseline_port, page_path,
                             cwd=app.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(baseline_port, "/", baseline, START_LIMIT_S)
        servers = {"app": (app.port, app.process.pid), "bare": (baseline_port, baseline.pid)}
        for port, _ in servers.values():
            wrk(port, "/", HTTP_CONNECTIONS, WARM_UP_S)
        totals = {name: {"requests": 0, "seconds": 0, "cpu_s": 0} for name in servers}
        for _ in range(THROUGHPUT_ROUNDS):
            for name, (port, pid) in servers.items():
                figures = checked_wrk(port, "/", HTTP_CONNECTIONS, THROUGHPUT_S, pid)
                for key in totals[name]:
                    totals[name][key] += figures[key]
    finally:
        stop_process(baseline)
    single = checked_wrk(app.port, "/", 1, LATENCY_S)
    app.stop()
    rps = {name: total["requests"] / total["seconds"] for name, total in totals.items()}
    cpu_us = {name: total["cpu_s"] * 1e6 / total["requests"] for name, total in totals.items()}
    share = {name: total["cpu_s"] / total["seconds"] for name, total in totals.items()}
    waiting = (f"; the bare route is idle {1 - share['bare']:.0%} of the time, so req/s compares"
               " waits, not work" if share["bare"] < BUSY_CPU_SHARE else "")
    return {
        "index_cpu": (cpu_us["app"] / cpu_us["bare"],
                      f"{cpu_us['app']:.0f} vs {cpu_us['bare']:.0f} µs of server CPU a request"
                      f" (the row update {update_us:.0f} µs of it); {len(second) / 1024:.1f} KiB"
                      " page"),
        "index_rps": (rps["app"] / rps["bare"],
                      f"{rps['app']:,.0f} vs {rps['bare']:,.0f} req/s; {share['app']:.0%} vs"
                      f" {share['bare']:.0%} of a core{waiting}"),
        "index_single": (single["p99"], f"mean {single['mean_ms']:.2f} ms, median"
                                        f" {single['p50']:.2f} ms"),
    }


def probe_note(probe):
    summary = probe.summary
    return (f"{summary['answers']} answers in {summary['seconds']:.1f} s, median"
            f" {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms"
            + (f", {summary['failures']} failed" if summary["failures"] else ""))


def measure_many_rows(lab):
    """Start-up, /sessions pages and the end of a session with MANY_ROWS sessions in the table;
    the pages against a table of one page and one row."""
    app = lab.start_app("many-rows", state_dir=many_rows_state(lab))
    page_size = len(json.loads(app.get("/api/v1/sessions"))["sessions"])
    paths = {"first": "/sessions", "deep": f"/sessions?before={DEEP_BEFORE}"}
    many = {name: page_cost(app, path) for name, path in paths.items()}
    lab.fake.plan(kind="hold", hold_s=TRIGGER_HOLD_S)
    with HealthProbe(app.port) as probe:
        app.run_session("bench: a session ends", limit_s=60)
        time.sleep(AFTER_END_PROBE_S)  # what follows the end (retention) is what is measured
    app.stop()
    small_app = lab.start_app("few-rows", sessions=page_size + 1)
    paths["deep"] = f"/sessions?before={page_size + 1}"
    few = {name: page_cost(small_app, path) for name, path in paths.items()}
    small_app.stop()

    def compared(name):
        (many_us, many_ms), (few_us, few_ms) = many[name], few[name]
        return (many_us / few_us, f"{many_us:.0f} vs {few_us:.0f} µs of server CPU a request;"
                                  f" {many_ms:.2f} vs {few_ms:.2f} ms ({page_size} sessions shown,"
                                  f" against a table of {page_size + 1})")

    return {
        "start_many": (app.start_s, ""),
        "sessions_first": compared("first"),
        "sessions_deep": compared("deep"),
        "freeze_end": (probe.summary["max_ms"], probe_note(probe)),
    }


def follow_session(lab, app, clients, lines_per_s, seconds, watch):
    """`clients` SSE clients (sse_load.py) on a session printing `lines_per_s` for `seconds`;
    `watch()` is called every 0.1 s while the lines flow. Returns (the clients' summary, what
    the CLI emitted, the app's share of a core meanwhile, the session's final status)."""
    gate = os.path.join(lab.workdir, "flood-gate")
    report = os.path.join(lab.workdir, "flood-report.json")
    for stale in (gate, report):
        if os.path.exists(stale):
            os.remove(stale)
    lab.fake.plan(kind="flood", gate=gate, lines_per_s=lines_per_s, seconds=seconds,
                  report=report)
    session_id = app.trigger(f"bench: {clients} followers")
    expected = lines_per_s * seconds
    loader = bench_process("sse_load.py", "--port", app.port, "--path",
                           f"/sessions/{session_id}/stream", "--clients", clients, "--lines",
                           expected, "--ready-timeout", 60, stdout=subprocess.PIPE)
    try:
        ready = read_line(loader.stdout, 90)
        if ready != "ready":
            raise RuntimeError(f"the {clients} SSE clients did not all connect: {ready}; the"
                               f" app has {open_files(app.process.pid)} open files")
        time.sleep(0.5)
        watch()
        cpu_before, flowing = app.cpu_s(), time.monotonic()
        open(gate, "w").close()
        deadline = time.monotonic() + seconds + 120
        while loader.poll() is None and time.monotonic() < deadline:
            watch()
            time.sleep(0.1)
        app_share = (app.cpu_s() - cpu_before) / (time.monotonic() - flowing)
        summary = json.loads(loader.communicate(timeout=60)[0].strip().splitlines()[-1])
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.wait()
    app.wait_until_idle()
    with open(report) as report_file:
        emitted = json.load(report_file)
    return summary, emitted, app_share, app.session(session_id)["status"]


def delivery_note(summary, emitted, status, app_share):
    emit_s = emitted["last_emit"] - emitted["first_emit"]
    return (f"{summary['complete_clients']}/{summary['clients']} clients got all"
            f" {emitted['lines']:,} lines in order (emitted in {emit_s:.1f} s; session {status};"
            f" CPU: the app {app_share:.0%} of a core, the clients' process"
            f" {summary['client_cpu_s'] / summary['wall_s']:.0%})"
            + (f"; {'; '.join(summary['problems'])}" if summary["problems"] else ""))


def measure_flood(lab, app):
    """200 SSE clients on a flooding session; the app's memory before, with them, at its peak."""
    idle_mb = app.idle_rss_mb()
    peak = {"mb": app.rss_mb()}

    def watch():
        peak["mb"] = max(peak["mb"], app.rss_mb())

    summary, emitted, app_share, status = follow_session(lab, app, SSE_CLIENTS, FLOOD_LINES_PER_S,
                                                         FLOOD_S, watch)
    peak_mb = max(peak["mb"], app.peak_rss_mb())  # the sampling may miss a short peak
    latency = summary["latency_ms"]
    return {
        "flood_delivery": (summary["complete_clients"],
                           delivery_note(summary, emitted, status, app_share)),
        "flood_p99": (latency["p99"] if latency["p99"] is not None else float("inf"),
                      f"p50 {latency['p50']} ms, max {latency['max']} ms"),
        "memory_flood": (peak_mb - idle_mb, f"idle {idle_mb:.1f} MiB, peak {peak_mb:.1f} MiB"),
    }


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
    return {
        "trigger_start": (max(to_start), f"median {statistics.median(to_start):.1f} ms of"
                                         f" {TRIGGER_REPEATS}"),
        "trigger_line": (statistics.median(to_first_line),
                         f"max {max(to_first_line):.1f} ms; CLI write → client median"
                         f" {statistics.median(app_share):.1f} ms"),
    }


def measure_crowd(lab):
    """Idle memory and health; then 1,000 SSE clients follow a session, and leave."""
    app = lab.start_app("crowd", sessions=DASHBOARD_SESSIONS, cooldowns=True)
    idle_mb = app.idle_rss_mb()
    idle_files = open_files(app.process.pid)
    with HealthProbe(app.port) as idle_probe:
        time.sleep(IDLE_PROBE_S)
    most = {"files": idle_files}

    def watch():
        most["files"] = max(most["files"], open_files(app.process.pid))

    with HealthProbe(app.port) as probe:
        summary, emitted, app_share, status = follow_session(
            lab, app, CROWD_CLIENTS, CROWD_LINES_PER_S, CROWD_S, watch)
    deadline = time.monotonic() + 10  # until the app has closed the clients' sockets
    while open_files(app.process.pid) > idle_files + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    left_mb = app.rss_mb()
    app.stop()
    return {
        "memory_idle": (idle_mb, f"{DASHBOARD_SESSIONS:,} sessions, a dozen services"),
        "freeze_idle": (idle_probe.summary["max_ms"], probe_note(idle_probe)),
        "freeze_crowd": (probe.summary["max_ms"],
                         probe_note(probe) + "; " + delivery_note(summary, emitted, status,
                                                                   app_share)
                         + f"; at most {most['files']} open files (limit {USUAL_OPEN_FILES})"),
        "memory_crowd": (left_mb - idle_mb, f"idle {idle_mb:.1f} MiB, after {left_mb:.1f} MiB"),
    }


def measure_bulk(lab):
    """A session of REPLAY_LOG_LINES ordinary lines (about 100 MB): the app's memory after it and
    after its page and a replay from line 0, which the health probe watches."""
    app = lab.start_app("bulk")
    idle_mb = app.idle_rss_mb()
    lab.fake.plan(kind="ordinary", lines=REPLAY_LOG_LINES)
    session, took_s = app.run_session("bench: about 100 MB of output", limit_s=600)
    log_mb = os.path.getsize(os.path.join(app.results_dir, session["log_file"])) / 2**20
    time.sleep(0.5)
    after_end_mb = app.rss_mb()
    with HealthProbe(app.port) as probe:
        replay_started = time.monotonic()
        stream = sse_load.EventStream(app.port, f"/sessions/{session['id']}/stream",
                                      timeout_s=600)
        try:
            ended, _ = stream.read_until(sse_load.DONE_EVENT, time.monotonic() + 600)
        finally:
            stream.close()
        replay_s = time.monotonic() - replay_started
    if ended is None:
        raise RuntimeError("the replay did not end")
    app.get(f"/sessions/{session['id']}")
    time.sleep(0.5)
    after_views_mb = app.rss_mb()
    app.stop()
    return {
        "freeze_replay": (probe.summary["max_ms"],
                          f"the replay took {replay_s:.2f} s; " + probe_note(probe)),
        "memory_bulk": (max(after_end_mb, after_views_mb) - idle_mb,
                        f"+{after_end_mb - idle_mb:.1f} MiB after it ended, +"
                        f"{after_views_mb - idle_mb:.1f} after its page and replay (idle"
                        f" {idle_mb:.1f} MiB; {REPLAY_LOG_LINES:,} lines, {log_mb:.0f} MiB log,"
                        f" made in {took_s:.1f} s)"),
    }


def measure_long_page(lab):
    """The page of the BIG_LOG_LINES session against the SMALL_LOG_LINES one, in server CPU time
    a load from one client; then the health probe while 10 clients load the big one at once."""
    state_dir, sessions = long_logs(lab)
    app = lab.start_app("long-page", state_dir=state_dir)
    small, big = (f"/sessions/{sessions[lines]}" for lines in (SMALL_LOG_LINES, BIG_LOG_LINES))
    costs = {}
    for path, repeats in ((small, SMALL_PAGE_REPEATS), (big, BIG_PAGE_REPEATS)):
        load_page(app.port, path)
        cpu_before = app.cpu_s()
        loads = load_page(app.port, path, each=repeats)
        costs[path] = ((app.cpu_s() - cpu_before) * 1000 / repeats,
                       statistics.median(loads["ms"]), loads["body_bytes"])
    with HealthProbe(app.port) as probe:
        crowd = load_page(app.port, big, clients=BIG_PAGE_CLIENTS)
    app.stop()
    (big_cpu, big_ms, big_bytes), (small_cpu, small_ms, _) = costs[big], costs[small]
    return {
        "long_page": (big_cpu / small_cpu,
                      f"{big_cpu:,.0f} vs {small_cpu:.0f} ms of server CPU a load; median"
                      f" {big_ms:,.0f} vs {small_ms:.0f} ms ({big_bytes / 1024:.0f} KiB page)"),
        "freeze_long_page": (probe.summary["max_ms"],
                             f"the {BIG_PAGE_CLIENTS} loads took {crowd['wall_s']:.1f} s, the"
                             f" slowest {max(crowd['ms']):.0f} ms; " + probe_note(probe)),
    }


def measure_live(lab):
    app = lab.start_app("live")
    figures = measure_flood(lab, app)
    figures.update(measure_triggers(lab, app))
    app.stop()
    return figures


MEASURES = [measure_index, measure_many_rows, measure_live, measure_crowd, measure_bulk,
            measure_long_page]


# Goals and report #################################################################################

@dataclass
class Goal:
    key: str
    measure: str
    goal: str
    unit: str  # how a figure is written: "x" a ratio, "ms", "s", "MiB", "+MiB", "clients"
    met: object  # figure -> bool
    figures: list = field(default_factory=list)  # (figure, note) of each run


def ratio_at_most(limit):
    return lambda figure: figure <= limit


GOALS = [
    Goal("index_cpu", "GET / uncached (row changed each request): CPU a request vs bare Bottle",
         "≤ 2×", "x", ratio_at_most(2)),
    Goal("index_rps", "GET / uncached, 50 keep-alive clients: req/s vs bare Bottle", "≥ 0.5×",
         "x", lambda figure: figure >= 0.5),
    Goal("index_single", "GET / uncached, one keep-alive client: p99", "≤ 5 ms", "ms",
         ratio_at_most(5)),
    Goal("flood_delivery", "200 SSE clients, 2,000 lines/s for 10 s: every line in order",
         "200 of 200", "clients", lambda figure: figure == SSE_CLIENTS),
    Goal("flood_p99", "200 SSE clients, 2,000 lines/s for 10 s: p99 CLI → client", "≤ 250 ms",
         "ms", ratio_at_most(250)),
    Goal("trigger_start", "trigger → CLI started (slowest of 20)", "≤ 50 ms", "ms",
         ratio_at_most(50)),
    Goal("trigger_line", "trigger → first line at an SSE client (median of 20)", "≤ 150 ms",
         "ms", ratio_at_most(150)),
    Goal("sessions_first", "/sessions first page, 1,000,000 rows vs one page's worth", "≤ 1.5×",
         "x", ratio_at_most(1.5)),
    Goal("sessions_deep", "/sessions deep page, 1,000,000 rows vs one page's worth", "≤ 1.5×",
         "x", ratio_at_most(1.5)),
    Goal("long_page", "session page, 1,000,000 lines vs 2,000 (same lines shown)", "≤ 3×", "x",
         ratio_at_most(3)),
    Goal("freeze_idle", "slowest health answer: idle", "~2 ms (≤ 50)", "ms", ratio_at_most(50)),
    Goal("freeze_long_page", "slowest health answer: 10 clients load the 1M-line page",
         "≤ 50 ms", "ms", ratio_at_most(50)),
    Goal("freeze_replay", "slowest health answer: a 100,000-line replay from line 0", "≤ 50 ms",
         "ms", ratio_at_most(50)),
    Goal("freeze_crowd", "slowest health answer: 1,000 SSE clients follow a session", "≤ 50 ms",
         "ms", ratio_at_most(50)),
    Goal("freeze_end", "slowest health answer: a session ends, 1,000,000 rows", "≤ 50 ms", "ms",
         ratio_at_most(50)),
    Goal("memory_idle", "resident memory idle", "≤ 45 MB", "MiB", ratio_at_most(45)),
    Goal("memory_flood", "resident memory, 200 SSE clients (peak)", "≤ +15 MB", "+MiB",
         ratio_at_most(15)),
    Goal("memory_crowd", "resident memory after 1,000 SSE clients left", "≤ +10 MB", "+MiB",
         ratio_at_most(10)),
    Goal("memory_bulk", "resident memory after a 100 MB session of ~1 KB lines", "≤ +10 MB",
         "+MiB", ratio_at_most(10)),
    Goal("start_many", "start → first 200, 1,000,000 rows", "≤ 1 s", "s", ratio_at_most(1)),
]


def written(figure, unit):
    if figure == float("inf"):
        return "none"
    if unit == "x":
        return f"{figure:.2f}×"
    if unit == "ms":
        return f"{figure:,.0f} ms" if figure >= 100 else f"{figure:.1f} ms"
    if unit == "s":
        return f"{figure:.2f} s"
    if unit == "MiB":
        return f"{figure:.1f} MiB"
    if unit == "+MiB":
        return f"{figure:+.1f} MiB"
    return f"{figure:.0f}"


def median_run(goal):
    """The (figure, note) of the median run (the lower middle one for an even count)."""
    ordered = sorted(goal.figures, key=lambda pair: pair[0])
    return ordered[(len(ordered) - 1) // 2]


def report(goals, runs):
    headers = ("measure", "goal", "min", "median", "max", "result")
    table = []
    for goal in goals:
        figures = sorted(figure for figure, _ in goal.figures)
        median = median_run(goal)[0]
        table.append((goal.measure, goal.goal, written(figures[0], goal.unit),
                      written(median, goal.unit), written(figures[-1], goal.unit),
                      "pass" if goal.met(median) else "FAIL"))
    widths = [max(len(line[column]) for line in table + [headers]) for column in range(6)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip()
             for line in [headers, tuple("-" * width for width in widths)] + table]
    met = sum(goal.met(median_run(goal)[0]) for goal in goals)
    lines += ["", f"{met} of {len(goals)} goals met (pass or FAIL on the median of {runs} runs).",
              "", "Notes (the median run):"]
    lines += [f"- {goal.measure}: {median_run(goal)[1]}" for goal in goals if median_run(goal)[1]]
    return "\n".join(lines)


def run_once(lab, measures, goals_by_key, foreign_shares):
    for measure in measures:
        name = measure.__name__.removeprefix("measure_")
        progress(name.replace("_", " "))
        load = ForeignLoad()
        figures = measure(lab)
        foreign_shares.setdefault(name, []).append(load.share())
        for key, figure in figures.items():
            goals_by_key[key].figures.append(figure)


def measure_names(text):
    names = [f"measure_{name.strip()}" for name in text.split(",")]
    known = {measure.__name__ for measure in MEASURES}
    if not set(names) <= known:
        raise argparse.ArgumentTypeError(f"not a measure: {', '.join(set(names) - known)}")
    return names


def main():
    parser = argparse.ArgumentParser(description="Benchmark claude-ops against its speed and memory goals.")
    parser.add_argument("--runs", type=int, default=3,
                        help="how many runs (default 3; 0 only prepares the big data)")
    parser.add_argument("--data", metavar="DIR",
                        help="keep the big data (1,000,000 rows, long logs) here and reuse it")
    parser.add_argument("--json", metavar="PATH", help="also write every run's figures here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (databases, logs, the apps' stderr)")
    parser.add_argument("--app", metavar="PATH", default=DEFAULT_APP,
                        help="the claude_ops.py to measure (default: the one beside bench/)")
    parser.add_argument("--only", metavar="NAMES", type=measure_names,
                        default=[measure.__name__ for measure in MEASURES],
                        help="a comma-separated subset of: " + ", ".join(
                            measure.__name__.removeprefix("measure_") for measure in MEASURES))
    args = parser.parse_args()
    measures = [measure for measure in MEASURES if measure.__name__ in args.only]
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    workdir = tempfile.mkdtemp(prefix="claude-ops-bench-")
    data_dir = os.path.abspath(args.data) if args.data else os.path.join(workdir, "data")
    os.makedirs(data_dir, exist_ok=True)
    lab = Lab(workdir, os.path.abspath(args.app), data_dir)
    goals = [Goal(goal.key, goal.measure, goal.goal, goal.unit, goal.met) for goal in GOALS]
    foreign_shares, run_seconds = {}, []
    began = time.monotonic()
    try:
        if measure_many_rows in measures:
            many_rows_state(lab)
        if measure_long_page in measures:
            long_logs(lab)
        prepared_s = time.monotonic() - began
        for run in range(1, args.runs + 1):
            progress(f"run {run} of {args.runs}")
            run_began = time.monotonic()
            run_once(lab, measures, {goal.key: goal for goal in goals}, foreign_shares)
            run_seconds.append(time.monotonic() - run_began)
    finally:
        lab.stop_all()
        if args.keep:
            progress(f"the temporary folder is {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not args.runs:  # --runs 0 only prepares the big data
        return
    print(report([goal for goal in goals if goal.figures], args.runs))
    print(f"\n{args.runs} runs of {', '.join(f'{seconds:.0f}' for seconds in run_seconds)} s on"
          f" {os.cpu_count()} CPUs, after {prepared_s:.0f} s preparing the big data;"
          f" {sys.executable.rsplit('/', 1)[-1]} {sys.version.split()[0]}")
    if any(max(shares) > NOISY_FOREIGN_SHARE for shares in foreign_shares.values()):
        print("Other processes took this share of all CPUs while the measures ran (least and"
              " most of the runs): " + ", ".join(f"{name} {min(shares):.0%}-{max(shares):.0%}"
                                                 for name, shares in foreign_shares.items())
              + ". The figures are noisy; run again on a quiet machine.")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"python": sys.version.split()[0], "cpus": os.cpu_count(),
                       "run_seconds": run_seconds, "foreign_cpu_shares": foreign_shares,
                       "goals": {goal.key: goal.figures for goal in goals}}, out, indent=2)


if __name__ == "__main__":
    main()
