"""Tests for claude-ops: a fake `claude` written here, real SQLite files, a real gevent server on a
loopback port, the genuine Claude Code CLI against a loopback stand-in of the Messages API, and
headless Chromium for the pages."""

from gevent import monkey

monkey.patch_all()

import base64
import dataclasses
import datetime
import gzip
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gevent
import gevent.event
import gevent.pywsgi
import pytest
import webtest

import claude_ops

HERE = os.path.dirname(os.path.abspath(__file__))
IN_CI = os.environ.get("CI") == "true"


# The fake CLI ######################################################################################
# A small `claude` that follows a plan (a JSON list of steps) and records what it was given.

FAKE_CLAUDE = r'''#!{python}
import json, os, signal, subprocess, sys, time

record = {"argv": sys.argv[1:], "pid": os.getpid(), "pgid": os.getpgid(0), "started": time.time(),
          "environ": sorted(os.environ)}
plan = json.load(open(os.environ["FAKE_CLAUDE_PLAN"]))
if not plan.get("skip_stdin"):
    record["stdin"] = sys.stdin.read()
record_path = os.environ["FAKE_CLAUDE_RECORD"]
with open(record_path, "a") as out:
    out.write(json.dumps(record) + "\n")

def emit(obj):
    line = obj if isinstance(obj, str) else json.dumps(obj)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

for step in plan["steps"]:
    kind, value = next(iter(step.items()))
    if kind == "print":
        emit(value)
    elif kind == "stderr":
        sys.stderr.write(value + "\n"); sys.stderr.flush()
    elif kind == "sleep":
        time.sleep(value)
    elif kind == "wait_for_file":
        while not os.path.exists(value):
            time.sleep(0.01)
    elif kind == "touch":
        open(value, "w").close()
    elif kind == "flood_stdout":
        for number in range(value):
            emit({"type": "assistant", "message": {"content": [{"type": "text", "text": "line %d" % number}]}})
    elif kind == "flood_stderr":
        chunk = ("e" * 1023 + "\n") * 64
        for _ in range(value // len(chunk)):
            sys.stderr.write(chunk)
        sys.stderr.flush()
    elif kind == "raw_stdout":
        sys.stdout.buffer.write(value.encode("latin-1")); sys.stdout.flush()
    elif kind == "big_line":
        emit({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t",
             "content": "x" * value}]}})
    elif kind == "child_holds_stdout":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(%d)" % value])
        with open(record_path, "a") as out:
            out.write(json.dumps({"child": child.pid}) + "\n")
    elif kind == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif kind == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(record_path, "a") as out:
            out.write(json.dumps({"child": child.pid}) + "\n")
        time.sleep(600)
    elif kind == "exit":
        sys.exit(value)
'''

INIT = {"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-haiku-4-5",
        "cwd": "/srv", "tools": ["Bash", "Read"], "claude_code_version": "fake"}


def assistant_text(text):
    return {"type": "assistant", "message": {"role": "assistant",
                                             "content": [{"type": "text", "text": text}]}}


def result(text="All services are healthy.", is_error=False, subtype="success", turns=2, cost=0.0187):
    return {"subtype": subtype, "is_error": is_error, "duration_ms": 6120, "num_turns": turns,
            "result": text, "total_cost_usd": cost, "type": "result", "session_id": "s1"}


def plan_ok(text="All services are healthy."):
    return [{"print": INIT}, {"print": assistant_text("Checking Jellyfin.")},
            {"print": {"type": "assistant", "message": {"content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                 "input": {"command": "curl -sI http://jellyfin:8096/health"}}]}}},
            {"print": {"type": "user", "message": {"content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "HTTP/1.1 200 OK"}]}}},
            {"print": result(text)}]


class FakeClaude:
    def __init__(self, folder):
        self.bin_dir = folder / "bin"
        self.bin_dir.mkdir()
        self.path = self.bin_dir / "claude"
        self.path.write_text(FAKE_CLAUDE.replace("{python}", sys.executable))
        self.path.chmod(0o755)
        self.plan_path = folder / "plan.json"
        self.record_path = folder / "record.jsonl"
        self.record_path.write_text("")
        self.folder = folder
        self.plan(plan_ok())

    def plan(self, steps, **options):
        self.plan_path.write_text(json.dumps(dict(options, steps=steps)))

    def runs(self):
        return [json.loads(line) for line in self.record_path.read_text().splitlines()
                if '"argv"' in line]

    def children(self):
        return [json.loads(line)["child"] for line in self.record_path.read_text().splitlines()
                if '"child"' in line]

    def gate(self, name):
        """A file path the fake can wait for, and the test can create to let it go on."""
        return str(self.folder / name)

    def environ(self, **extra):
        return dict(PATH=f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}", HOME=str(self.folder),
                    FAKE_CLAUDE_PLAN=str(self.plan_path), FAKE_CLAUDE_RECORD=str(self.record_path),
                    **extra)


def wait_for(condition, timeout=15.0, message="condition"):
    """Poll `condition` until it is truthy, yielding to other greenlets; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        gevent.sleep(0.02)


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def group_alive(pgid):
    try:
        with os.scandir("/proc") as entries:
            for entry in entries:
                if entry.name.isdigit():
                    try:
                        with open(f"/proc/{entry.name}/stat") as stat:
                            fields = stat.read().split(")")[-1].split()
                    except OSError:
                        continue
                    if int(fields[2]) == pgid and fields[0] != "Z":
                        return True
    except OSError:
        pass
    return False


# Fixtures ##########################################################################################

@pytest.fixture
def fake(tmp_path):
    fake = FakeClaude(tmp_path)
    yield fake
    for run in fake.runs():
        for pid in [run["pid"]] + fake.children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def make_app(tmp_path, fake):
    apps = []

    def make(start=True, serve=False, environ=None, **settings):
        settings.setdefault("run_on_start", False)
        settings.setdefault("state_dir", str(tmp_path / "state"))
        settings.setdefault("results_dir", str(tmp_path / "results"))
        settings.setdefault("session_timeout_s", 60)
        config = dataclasses.replace(claude_ops.load_config([], {}), **settings)
        app = claude_ops.ClaudeOps(config,
                                   environ=fake.environ() if environ is None else environ)
        apps.append(app)
        if serve:
            app.port = app.start(claude_ops.listen("127.0.0.1", 0))[1]
        elif start:
            app.scheduler.start()
        return app

    yield make
    for app in apps:
        app.stop()


def browser_client(app):
    return webtest.TestApp(app.web, extra_environ={"HTTP_HOST": "localhost"})


def rows(app):
    return app.store.sessions_page(limit=1000)


def finished(app, session_id):
    session = app.store.session(session_id)
    return session if session and session["status"] != "running" else None


def log_records(app, session):
    path = os.path.join(app.config.results_dir, session["log_file"])
    with open(path) as log_file:
        return [json.loads(line) for line in log_file]


def trigger(client, prompt, status=200, **headers):
    headers.setdefault("HX-Request", "true")
    return client.post("/sessions/trigger", {"prompt": prompt}, headers=headers, status=status)


# Config ############################################################################################

def test_settings_come_from_defaults_then_environment_then_flags(tmp_path):
    config = claude_ops.load_config([], {})
    assert (config.interval_s, config.run_on_start, config.model, config.port) == (3600, True, "haiku", 8080)
    assert config.host == "127.0.0.1" and config.password is None
    assert config.allowed_tools == "Bash,Read,Grep,Glob,Task,WebFetch,WebSearch"
    assert "Bash(systemctl restart:*)" in config.disallowed_tools
    assert config.state_dir == os.path.join(HERE, "state")

    environ = {"CLAUDEOPS_INTERVAL": "600", "CLAUDEOPS_DRY_RUN": "true",
               "CLAUDEOPS_ALLOWED_HOSTS": "Pi.lan, ops.example", "CLAUDEOPS_TIER1_MODEL": "sonnet"}
    config = claude_ops.load_config(["--interval", "60", "--dashboard-port", "9000"], environ)
    assert (config.interval_s, config.port, config.dry_run, config.model) == (60, 9000, True, "sonnet")
    assert config.allowed_hosts == ("pi.lan", "ops.example")


@pytest.mark.parametrize("argv, environ, named", [
    ([], {"CLAUDEOPS_INTERVAL": "hourly"}, "CLAUDEOPS_INTERVAL"),
    (["--interval", "0"], {}, "--interval"),
    ([], {"CLAUDEOPS_DASHBOARD_PORT": "70000"}, "CLAUDEOPS_DASHBOARD_PORT"),
    ([], {"CLAUDEOPS_RUN_ON_START": "maybe"}, "CLAUDEOPS_RUN_ON_START"),
    ([], {"CLAUDEOPS_PROMPT": "/nonexistent/prompt.md"}, "CLAUDEOPS_PROMPT"),
    ([], {"CLAUDEOPS_SESSION_TIMEOUT": "-5"}, "CLAUDEOPS_SESSION_TIMEOUT"),
])
def test_a_bad_setting_is_named(argv, environ, named):
    with pytest.raises(claude_ops.ConfigError, match=named):
        claude_ops.load_config(argv, environ)


def run_program(args, environ, timeout=30):
    return subprocess.run([sys.executable, os.path.join(HERE, "claude_ops.py"), *args],
                          env=environ, capture_output=True, text=True, timeout=timeout)


def test_bad_configuration_stops_start_up_with_one_line(tmp_path):
    environ = dict(os.environ, CLAUDEOPS_INTERVAL="soon", CLAUDEOPS_STATE_DIR=str(tmp_path))
    finished_run = run_program([], environ)
    assert finished_run.returncode == 2
    assert finished_run.stderr.strip().splitlines() == [
        "claude-ops: CLAUDEOPS_INTERVAL must be a whole number of seconds, got 'soon'"]
    assert not (tmp_path / "claudeops.db").exists()


def test_a_port_in_use_stops_start_up_with_one_line(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    environ = dict(os.environ, CLAUDEOPS_STATE_DIR=str(tmp_path / "s"),
                   CLAUDEOPS_RESULTS_DIR=str(tmp_path / "r"), CLAUDEOPS_RUN_ON_START="false")
    finished_run = run_program(["--dashboard-port", str(port)], environ)
    holder.close()
    assert finished_run.returncode == 2
    errors = [line for line in finished_run.stderr.splitlines() if "claude-ops:" in line]
    assert errors == [f"claude-ops: CLAUDEOPS_DASHBOARD_HOST/PORT 127.0.0.1:{port} is in use"]
    assert "Traceback" not in finished_run.stderr


def test_a_state_dir_that_cannot_be_made_is_named_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    environ = dict(os.environ, CLAUDEOPS_STATE_DIR=str(blocker / "state"),
                   CLAUDEOPS_DASHBOARD_PORT=str(free_port()))
    finished_run = run_program([], environ)
    assert finished_run.returncode == 2
    assert finished_run.stderr.strip().splitlines() == [
        f"claude-ops: CLAUDEOPS_STATE_DIR {blocker / 'state'} cannot be used: Not a directory"]


def test_help_lists_every_flag_with_its_variable():
    finished_run = run_program(["--help"], dict(os.environ))
    assert finished_run.returncode == 0
    for setting in claude_ops.SETTINGS:
        assert setting.flag in finished_run.stdout
        assert setting.env in finished_run.stdout.replace("\n", " ").replace("  ", "")


# Database ##########################################################################################

def test_a_version_2_database_upgrades_in_place(tmp_path):
    path = tmp_path / "claudeops.db"
    old = sqlite3.connect(path, isolation_level=None)
    for number, sql in enumerate(claude_ops.MIGRATIONS[:2], start=1):
        old.executescript(f"BEGIN; {sql}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO sessions (tier, model, prompt_file, status, started_at, response,"
                " cost_usd) VALUES (1, 'haiku', '(built-in)', 'completed', '2026-01-01T00:00:00Z',"
                " 'fine', 0.5)")
    old.close()

    store = claude_ops.Store(str(path))
    session = store.session(1)
    assert session["trigger"] == "scheduled" and session["prompt_text"] is None
    assert session["error"] is None and session["response"] == "fine" and session["cost_usd"] == 0.5
    assert store.db.execute("PRAGMA user_version").fetchone()["user_version"] == len(
        claude_ops.MIGRATIONS) == 4
    assert store.db.execute("PRAGMA journal_mode").fetchone()["journal_mode"] == "wal"
    indexes = [row["name"] for row in store.db.execute("PRAGMA index_list(sessions)")]
    assert "sessions_started_at" in indexes
    store.close()


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "claudeops.db")
    claude_ops.Store(path).close()
    monkeypatch.setattr(claude_ops, "MIGRATIONS", claude_ops.MIGRATIONS + [
        "ALTER TABLE sessions ADD COLUMN extra TEXT; THIS IS NOT SQL;"])
    with pytest.raises(sqlite3.Error):
        claude_ops.Store(path)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 4
    assert "extra" not in [row[1] for row in check.execute("PRAGMA table_info(sessions)")]
    check.close()


def test_start_up_creates_the_cooldown_file_and_keeps_an_existing_one(make_app, tmp_path):
    app = make_app(start=False)
    cooldown = tmp_path / "state" / "cooldown.json"
    assert json.loads(cooldown.read_text()) == {"services": {}, "last_run": None,
                                                "last_daily_digest": None}
    cooldown.write_text('{"services": {"jellyfin": {"restarts": []}}}')
    app.stop()
    make_app(start=False)
    assert "jellyfin" in cooldown.read_text()


# Sessions ##########################################################################################

def test_a_scheduled_session_runs_at_start_and_is_recorded(make_app, fake):
    app = make_app(run_on_start=True, model="sonnet", dry_run=True)
    session = wait_for(lambda: finished(app, 1), message="the scheduled session")
    assert session["status"] == "completed", session["error"]
    assert (session["trigger"], session["prompt_text"], session["prompt_file"]) == (
        "scheduled", None, "(built-in)")
    assert (session["tier"], session["model"], session["exit_code"]) == (1, "sonnet", 0)
    assert (session["response"], session["cost_usd"], session["num_turns"],
            session["duration_ms"]) == ("All services are healthy.", 0.0187, 2, 6120)
    assert session["error"] is None
    assert session["log_file"] == "session-1-{}.jsonl".format(
        session["started_at"].replace("-", "").replace(":", ""))

    run, = fake.runs()
    assert run["stdin"] == claude_ops.BUILT_IN_PROMPT
    argv = run["argv"]
    assert argv[:6] == ["-p", "--output-format", "stream-json", "--verbose", "--model", "sonnet"]
    assert argv[argv.index("--allowedTools") + 1] == claude_ops.DEFAULT_ALLOWED_TOOLS
    assert argv[argv.index("--disallowedTools") + 1] == claude_ops.DEFAULT_DISALLOWED_TOOLS
    context = argv[argv.index("--append-system-prompt") + 1]
    assert "Session trigger: scheduled" in context and "This is a dry run" in context
    assert os.path.join(app.config.state_dir, "cooldown.json") in context
    assert "2 restarts" in context and "1 redeployment" in context

    records = log_records(app, session)
    assert all(set(record) == {"t", "stream", "line"} for record in records)
    assert records[0]["stream"] == "app" and records[-1]["line"] == "session ended: completed"
    stdout = [json.loads(record["line"]) for record in records if record["stream"] == "stdout"]
    assert [event["type"] for event in stdout] == ["system", "assistant", "assistant", "user", "result"]


def test_an_adhoc_session_redirects_to_its_page_and_records_the_prompt(make_app, fake):
    app = make_app()
    client = browser_client(app)
    response = trigger(client, "  Jellyfin is down, can you take a look?\n")
    assert response.text == ('<div class="trigger-result trigger-success">Session triggered.'
                             ' Redirecting...</div>\n')
    assert response.headers["HX-Redirect"] == "/sessions/1"
    session = wait_for(lambda: finished(app, 1), message="the ad-hoc session")
    assert session["status"] == "completed"
    assert (session["trigger"], session["prompt_text"], session["prompt_file"]) == (
        "manual", "Jellyfin is down, can you take a look?", "(ad-hoc)")
    run, = fake.runs()
    assert run["stdin"] == "Jellyfin is down, can you take a look?"
    context = run["argv"][run["argv"].index("--append-system-prompt") + 1]
    assert "Session trigger: manual" in context and "Dry run: no" in context


def test_a_form_post_without_htmx_is_redirected_to_the_session(make_app):
    app = make_app()
    response = browser_client(app).post("/sessions/trigger", {"prompt": "check disks"}, status=303)
    assert response.headers["Location"].endswith("/sessions/1")


def test_the_prompt_reaches_the_cli_verbatim_on_stdin_and_never_in_argv(make_app, fake):
    app = make_app(password="hunter2-dashboard")
    prompt = "--dangerously-skip-permissions <b>x</b> 'quoted' $(whoami) ; rm -rf /"
    trigger(browser_client(app), prompt, Authorization=basic("hunter2-dashboard"))
    wait_for(lambda: finished(app, 1))
    run, = fake.runs()
    assert run["stdin"] == prompt
    assert not any(prompt in arg or "dangerously" in arg for arg in run["argv"])
    assert not any("hunter2" in arg for arg in run["argv"])


def basic(password, user="admin"):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_busy_while_running_and_while_a_trigger_is_pending(make_app, fake):
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = make_app()
    client = browser_client(app)

    first = app.scheduler.trigger_adhoc("first")   # accepted, not yet picked up: pending
    with pytest.raises(claude_ops.TriggerRefused) as refused:
        app.scheduler.trigger_adhoc("second")
    assert refused.value.status == 409
    assert client.get("/api/v1/health").json["pending_trigger"] is True
    response = trigger(client, "third", status=409)
    assert response.text.strip() == ('<div class="trigger-result trigger-error">A session is'
                                     ' already running or queued. Please wait.</div>')

    session_id = first.get(timeout=5)
    wait_for(lambda: fake.runs(), message="the CLI to start")
    health = client.get("/api/v1/health").json
    assert health == {"status": "ok", "running_session_id": session_id, "pending_trigger": False,
                      "next_run_at": health["next_run_at"]}
    trigger(client, "fourth", status=409)
    client.post_json("/api/v1/sessions/trigger", {"prompt": "fifth"}, status=409)
    open(gate, "w").close()
    wait_for(lambda: finished(app, session_id))
    assert [row["prompt_text"] for row in rows(app)] == ["first"]
    trigger(client, "after it")
    wait_for(lambda: finished(app, 2))


@pytest.mark.parametrize("prompt, status, message", [
    ("", 400, "A prompt is required."),
    ("   \n\t ", 400, "A prompt is required."),
    ("x" * (16 * 1024 + 1), 413, "The prompt is longer than 16 KiB."),
])
def test_refused_prompts_create_nothing(make_app, fake, prompt, status, message):
    app = make_app()
    client = browser_client(app)
    response = trigger(client, prompt, status=status)
    assert response.text.strip() == f'<div class="trigger-result trigger-error">{message}</div>'
    assert rows(app) == [] and fake.runs() == []
    assert app.scheduler.pending_trigger is False


def test_a_missing_field_invalid_utf8_and_oversized_bodies_are_refused(make_app, fake):
    app = make_app()
    client = browser_client(app)
    client.post("/sessions/trigger", {}, headers={"HX-Request": "true"}, status=400)
    client.post("/sessions/trigger", b"prompt=%FF%FE", status=400,
                content_type="application/x-www-form-urlencoded")
    client.post("/sessions/trigger", b"prompt=" + b"x" * (70 * 1024), status=413,
                content_type="application/x-www-form-urlencoded")
    client.post("/sessions/trigger", b"prompt=x", status=411, headers={"Transfer-Encoding": "chunked"},
                content_type="application/x-www-form-urlencoded")
    client.post("/api/v1/sessions/trigger", b"prompt=x", status=415,
                content_type="application/x-www-form-urlencoded")
    client.post("/api/v1/sessions/trigger", b"{not json", status=400, content_type="application/json")
    client.post_json("/api/v1/sessions/trigger", {"prompt": 42}, status=400)
    client.post_json("/api/v1/sessions/trigger", {"prompt": " "}, status=400)
    client.post("/api/v1/sessions/trigger", b'{"prompt": "\\ud800"}', status=400,
                content_type="application/json")
    assert rows(app) == [] and fake.runs() == []


def test_the_json_api_triggers_lists_and_shows_sessions(make_app):
    app = make_app()
    client = browser_client(app)
    created = client.post_json("/api/v1/sessions/trigger", {"prompt": "check the NAS"}, status=201)
    assert created.json == {"id": 1, "url": "/sessions/1"}
    assert created.headers["Location"].endswith("/api/v1/sessions/1")
    wait_for(lambda: finished(app, 1))
    session = client.get("/api/v1/sessions/1").json
    assert session["status"] == "completed" and session["prompt_text"] == "check the NAS"
    assert client.get("/api/v1/sessions").json["sessions"][0]["id"] == 1
    client.get("/api/v1/sessions/2", status=404)
    assert client.get("/api/v1/sessions/x", status=404).json == {"error": "No such session."}


def test_triggers_are_refused_while_the_scheduler_is_not_running(make_app):
    app = make_app(start=False)
    client = browser_client(app)
    response = trigger(client, "anything", status=503)
    assert "The scheduler is not running." in response.text
    assert rows(app) == []


def test_an_adhoc_session_does_not_move_the_schedule(make_app, fake):
    app = make_app(interval_s=3600)
    due = app.scheduler.next_run_at
    trigger(browser_client(app), "quick look")
    wait_for(lambda: finished(app, 1))
    assert abs((app.scheduler.next_run_at - due).total_seconds()) <= 1


def test_a_run_that_falls_due_during_an_adhoc_session_starts_right_after_it(make_app, fake):
    gate = fake.gate("release")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = make_app(interval_s=1)
    trigger(browser_client(app), "long ad-hoc job")
    wait_for(lambda: fake.runs(), message="the ad-hoc CLI")
    # next_run_at is None once the run fell due and waits for the running session.
    wait_for(lambda: app.scheduler.next_run_at is None, message="the run to fall due")
    assert "Right after the running session ends." in browser_client(app).get("/").text
    assert len(fake.runs()) == 1
    fake.plan(plan_ok())
    released = time.time()
    open(gate, "w").close()
    wait_for(lambda: finished(app, 2), message="the scheduled session after the ad-hoc one")
    first, second = fake.runs()[:2]
    assert app.store.session(2)["trigger"] == "scheduled"
    assert second["started"] - released < 5
    # The next one is due an interval after that scheduled session ended, not after the ad-hoc one.
    wait_for(lambda: finished(app, 3), message="the next scheduled session")
    third = fake.runs()[2]
    assert third["started"] - second["started"] >= 1


def test_the_scheduler_runs_again_after_the_interval(make_app, fake):
    app = make_app(run_on_start=True, interval_s=1)
    wait_for(lambda: finished(app, 2), message="two scheduled sessions")
    first, second = fake.runs()[:2]
    assert second["started"] - first["started"] >= 1
    assert [row["trigger"] for row in rows(app)][-2:] == ["scheduled", "scheduled"]


# Failures ##########################################################################################

def run_plan(make_app, fake, steps, plan_options=None, **settings):
    fake.plan(steps, **(plan_options or {}))
    app = make_app(**settings)
    app.scheduler.trigger_adhoc("check")
    return app, wait_for(lambda: finished(app, 1), timeout=settings.get("session_timeout_s", 20) + 20,
                         message="the session to end")


def test_a_missing_cli_fails_with_the_reason(make_app, fake, tmp_path):
    app, session = run_plan(make_app, fake, plan_ok(), claude_bin="claude-not-installed")
    assert session["status"] == "failed"
    assert session["error"] == "claude-not-installed not found on PATH"
    assert log_records(app, session)[-1]["line"].endswith("not found on PATH")
    app.scheduler.trigger_adhoc("again")   # the scheduler goes on
    wait_for(lambda: finished(app, 2))


def test_a_non_zero_exit_fails_with_the_code_and_stderr_tail(make_app, fake):
    app, session = run_plan(make_app, fake, [
        {"print": INIT}, {"stderr": "Error: Invalid API key · Please run /login"}, {"exit": 3}])
    assert session["status"] == "failed" and session["exit_code"] == 3
    assert session["error"] == "exit code 3\nError: Invalid API key · Please run /login"


def test_an_error_result_with_exit_0_fails(make_app, fake):
    app, session = run_plan(make_app, fake, [
        {"print": INIT},
        {"print": result("API Error: 529 Overloaded", is_error=True, subtype="error_during_execution")}])
    assert session["status"] == "failed" and session["exit_code"] == 0
    assert session["error"] == "API Error: 529 Overloaded"


def test_no_result_event_fails(make_app, fake):
    app, session = run_plan(make_app, fake, [{"print": INIT}, {"print": assistant_text("hmm")}])
    assert (session["status"], session["error"]) == ("failed", "no result event")


def test_garbage_and_a_3_mb_line_are_kept(make_app, fake):
    app, session = run_plan(make_app, fake, [
        {"print": INIT}, {"raw_stdout": "DEBUG: not json\n\xff\xfe broken bytes\n{\"half\": \n"},
        {"big_line": 3 * 1024 * 1024}, {"print": result()}])
    assert session["status"] == "completed"
    lines = [record["line"] for record in log_records(app, session) if record["stream"] == "stdout"]
    assert "DEBUG: not json" in lines and '{"half": ' in lines
    assert any(line.startswith("\ufffd\ufffd broken") for line in lines)
    big = json.loads(next(line for line in lines if len(line) > 3 * 1024 * 1024))
    assert big["message"]["content"][0]["content"] == "x" * 3 * 1024 * 1024


def test_a_stderr_flood_does_not_stall_the_cli(make_app, fake):
    app, session = run_plan(make_app, fake, [
        {"print": INIT}, {"flood_stderr": 4 * 1024 * 1024}, {"print": result()}])
    assert session["status"] == "completed"
    stderr_lines = [r for r in log_records(app, session) if r["stream"] == "stderr"]
    assert len(stderr_lines) == 4 * 1024 * 1024 // (64 * 1024) * 64


def test_the_timeout_stops_the_whole_process_group(make_app, fake):
    app, session = run_plan(make_app, fake, [{"print": INIT}, {"hang": True}], session_timeout_s=2)
    assert (session["status"], session["error"]) == ("timeout", "timed out after 2 s")
    run, = fake.runs()
    assert fake.children(), "the fake started a child"
    wait_for(lambda: not group_alive(run["pgid"]), timeout=10, message="the process group to end")
    assert not any(process_alive(pid) for pid in fake.children())


def test_a_cli_that_ignores_sigterm_is_killed_at_the_timeout(make_app, fake):
    app, session = run_plan(make_app, fake, [{"print": INIT}, {"ignore_sigterm": True}, {"hang": True}],
                            session_timeout_s=1)
    assert (session["status"], session["error"]) == ("timeout", "timed out after 1 s")
    run, = fake.runs()
    wait_for(lambda: not group_alive(run["pgid"]), timeout=10, message="the process group to end")


def test_odd_but_valid_json_lines_are_shown_as_text_and_the_session_goes_on(make_app, fake):
    gate = fake.gate("go")
    odd = [{"type": "assistant", "message": {"content": [{"type": "text", "text": None}]}},
           {"type": "system", "subtype": "api_retry", "retry_delay_ms": "soon"},
           {"type": "assistant", "message": "not an object"}, [1, 2], "just a string"]
    fake.plan([{"print": INIT}, {"wait_for_file": gate}] + [{"print": json.dumps(o)} for o in odd]
              + [{"print": result()}])
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc("x")
    wait_for(lambda: fake.runs())
    client = SSEClient(app.port, "/sessions/1/stream")
    wait_for(lambda: sum(len(t.subscribers) for t in app.hub.live.values()) == 1)
    open(gate, "w").close()
    assert client.read_until_done() == {"event": "done", "data": "completed"}
    client.close()
    assert finished(app, 1)["status"] == "completed"
    page = browser_client(app).get("/sessions/1")
    assert "&quot;text&quot;: null" in page.text and "just a string" in page.text


def test_a_bare_carriage_return_cannot_forge_an_sse_event(make_app, fake):
    app = served_session(make_app, fake, [
        {"print": INIT}, {"print": assistant_text("50%\r100%\revent: done\rdata: completed\r\r")},
        {"print": result()}])
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    connection.request("GET", "/sessions/1/stream", headers={"Host": "localhost"})
    body = connection.getresponse().read()
    connection.close()
    assert b"\r" not in body and body.count(b"\nevent: done\n") == 1
    assert body.endswith(b"event: done\ndata: completed\n\n")
    assert b"data: 100%\ndata: event: done\ndata: data: completed" in body


def test_a_child_holding_stdout_does_not_keep_the_session_running(make_app, fake):
    started = time.monotonic()
    app, session = run_plan(make_app, fake, [
        {"print": INIT}, {"child_holds_stdout": 120}, {"print": result("done, child left")}])
    assert session["status"] == "completed" and session["response"] == "done, child left"
    assert time.monotonic() - started < 15
    wait_for(lambda: not any(process_alive(pid) for pid in fake.children()), timeout=10,
             message="the child to be stopped")


def test_a_cli_that_exits_before_reading_its_prompt_is_a_recorded_failure(make_app, fake):
    app, session = run_plan(make_app, fake, [{"exit": 1}], {"skip_stdin": True})
    assert session["status"] == "failed" and session["error"].startswith("exit code 1")


def test_an_unreadable_log_folder_fails_the_session_and_the_scheduler_goes_on(make_app, fake, tmp_path):
    app = make_app()
    os.rmdir(app.config.results_dir)
    open(app.config.results_dir, "w").close()    # a file where the folder should be
    app.scheduler.trigger_adhoc("check")
    session = wait_for(lambda: finished(app, 1))
    assert session["status"] == "failed"
    assert session["error"].startswith("cannot write the session log")
    os.remove(app.config.results_dir)
    os.mkdir(app.config.results_dir)
    app.scheduler.trigger_adhoc("check again")
    assert wait_for(lambda: finished(app, 2))["status"] == "completed"


def test_a_deleted_prompt_file_fails_the_scheduled_session_with_the_reason(make_app, fake, tmp_path):
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text("Check the homelab.")
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = make_app(prompt_file=str(prompt_file), run_on_start=True, interval_s=1)
    wait_for(lambda: fake.runs())
    prompt_file.unlink()
    open(gate, "w").close()
    session = wait_for(lambda: finished(app, 1))
    assert session["status"] == "completed" and session["prompt_file"] == str(prompt_file)
    assert fake.runs()[0]["stdin"] == "Check the homelab."
    second = wait_for(lambda: finished(app, 2), message="the next scheduled session")
    assert second["status"] == "failed" and second["prompt_file"] == str(prompt_file)
    assert second["error"].startswith("cannot read the prompt file: [Errno 2] No such file")
    assert len(fake.runs()) == 1


def test_secrets_are_masked_in_the_log_the_row_and_the_stream(make_app, fake):
    key = "sk-ant-api03-" + "A1b2" * 10
    token = "ghp_" + "z" * 30
    environ = fake.environ(HOMELAB_API_TOKEN=token, ANTHROPIC_API_KEY=key)
    fake.plan([{"print": INIT}, {"print": assistant_text(f"key {key} and token {token}")},
               {"stderr": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456"},
               {"print": result(f"found {token}")}])
    app = make_app(environ=environ)
    app.scheduler.trigger_adhoc("check")
    session = wait_for(lambda: finished(app, 1))
    with open(os.path.join(app.config.results_dir, session["log_file"])) as log_file:
        text = log_file.read()
    assert key not in text and token not in text and "abcdefghijklmnop" not in text
    assert "[redacted]" in text
    assert token not in session["response"]
    client = browser_client(app)
    for path in ["/sessions/1", "/sessions/1/stream", "/sessions/1/log", "/api/v1/sessions/1"]:
        text = client.get(path).text
        assert key not in text and token not in text and "[redacted]" in text, path


def test_the_dashboard_password_never_reaches_the_cli(make_app, fake):
    app = make_app(password="pi-pass", environ=fake.environ(CLAUDEOPS_DASHBOARD_PASSWORD="pi-pass"))
    app.scheduler.trigger_adhoc("print your environment")
    wait_for(lambda: finished(app, 1))
    run, = fake.runs()
    assert "CLAUDEOPS_DASHBOARD_PASSWORD" not in run["environ"] and "FAKE_CLAUDE_PLAN" in run["environ"]
    assert not any("pi-pass" in arg for arg in run["argv"])


def test_old_session_logs_are_deleted_and_their_rows_stay(make_app, tmp_path):
    app = make_app(start=False, retention_days=30)
    old_id = app.store.insert_session(trigger="scheduled", prompt_text=None, prompt_file="(built-in)",
                                      model="haiku", context="", started_at=iso_ago(days=31))
    new_id = app.store.insert_session(trigger="scheduled", prompt_text=None, prompt_file="(built-in)",
                                      model="haiku", context="", started_at=iso_ago(days=29))
    for session_id in (old_id, new_id):
        name = f"session-{session_id}.jsonl"
        (tmp_path / "results" / name).write_text('{"t": "", "stream": "app", "line": "hello"}\n')
        app.store.update_session(session_id, log_file=name, status="completed")
    app.delete_old_logs()
    assert not (tmp_path / "results" / f"session-{old_id}.jsonl").exists()
    assert (tmp_path / "results" / f"session-{new_id}.jsonl").exists()
    assert app.store.session(old_id)["log_file"] is None
    page = browser_client(app).get(f"/sessions/{old_id}")
    assert "deleted after the retention period" in page.text
    browser_client(app).get(f"/sessions/{old_id}/log", status=404)
    assert browser_client(app).get(f"/sessions/{new_id}/log").text.startswith('{"t"')


# Restarts ##########################################################################################

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AppProcess:
    """claude_ops.py in a subprocess, as a user runs it."""

    def __init__(self, tmp_path, fake, **settings):
        self.port = free_port()
        self.environ = dict(os.environ, **fake.environ(), CLAUDEOPS_DASHBOARD_PORT=str(self.port),
                            CLAUDEOPS_STATE_DIR=str(tmp_path / "state"),
                            CLAUDEOPS_RESULTS_DIR=str(tmp_path / "results"),
                            CLAUDEOPS_RUN_ON_START="false", **settings)
        self.stderr_path = tmp_path / f"app-{self.port}.log"
        self.process = None

    def start(self):
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "claude_ops.py")], env=self.environ,
                stdout=subprocess.DEVNULL, stderr=stderr)
        wait_for(lambda: self.get("/api/v1/health") is not None or self.process.poll() is not None,
                 timeout=20, message="the app to answer")
        assert self.process.poll() is None, self.stderr_path.read_text()
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def post_json(self, path, body):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def app_process(tmp_path, fake):
    processes = []

    def start(**settings):
        processes.append(AppProcess(tmp_path, fake, **settings).start())
        return processes[-1]

    yield start
    for process in processes:
        process.stop()


def test_a_killed_app_marks_its_session_interrupted_on_restart(app_process, fake, tmp_path):
    fake.plan([{"print": INIT}, {"hang": True}])
    app = app_process()
    status, body = app.post_json("/api/v1/sessions/trigger", {"prompt": "slow job"})
    assert status == 201
    wait_for(lambda: fake.runs(), message="the CLI to start")
    app.process.send_signal(signal.SIGKILL)
    app.process.wait(timeout=10)
    fake.plan(plan_ok())
    app = app_process()
    session = app.get(f"/api/v1/sessions/{body['id']}")
    assert (session["status"], session["error"]) == ("interrupted", "the app stopped")
    status, body = app.post_json("/api/v1/sessions/trigger", {"prompt": "after the restart"})
    assert status == 201
    wait_for(lambda: app.get(f"/api/v1/sessions/{body['id']}")["status"] == "completed")


@pytest.mark.parametrize("stubborn", [False, True], ids=["cli", "cli-ignoring-sigterm"])
def test_sigterm_interrupts_the_running_session_and_exits(app_process, fake, tmp_path, stubborn):
    fake.plan([{"print": INIT}] + ([{"ignore_sigterm": True}] if stubborn else []) + [{"hang": True}])
    app = app_process()
    status, body = app.post_json("/api/v1/sessions/trigger", {"prompt": "slow job"})
    run = wait_for(lambda: fake.runs(), message="the CLI to start")[0]
    stopping = time.monotonic()
    app.process.send_signal(signal.SIGTERM)
    assert app.process.wait(timeout=15) == 0
    assert time.monotonic() - stopping < 10
    assert not group_alive(run["pgid"])
    database = sqlite3.connect(tmp_path / "state" / "claudeops.db")
    status, error = database.execute("SELECT status, error FROM sessions WHERE id = ?",
                                     (body["id"],)).fetchone()
    database.close()
    assert (status, error) == ("interrupted", "the app stopped")


# Live output over SSE ##############################################################################



class SSEClient:
    """Reads an event stream from the app's real server on loopback."""

    def __init__(self, port, path, **headers):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.connection.request("GET", path, headers=dict(headers, Host="localhost"))
        self.response = self.connection.getresponse()
        self.events, self.comments, self.retry = [], [], None

    def read_event(self):
        """The next event as a dict (id, event, data), or None at the end of the stream."""
        event = {}
        while True:
            raw = self.response.readline()
            if not raw:
                return None
            line = raw.decode("utf-8").rstrip("\n")
            if not line:
                if event:
                    self.events.append(event)
                    return event
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                self.comments.append(value)
                event["comment"] = value
            elif field == "retry":
                self.retry = int(value)
            elif field == "data":
                event["data"] = event["data"] + "\n" + value if "data" in event else value
            else:
                event[field] = value

    def read_until_done(self):
        while True:
            event = self.read_event()
            if event is None or event.get("event") == "done":
                return event

    def messages(self):
        return [event for event in self.events if "event" not in event and "comment" not in event]

    def close(self):
        self.connection.close()


def numbered_lines(events):
    """The fake's flood lines, 'line N', in the order the events carried them."""
    return [int(match) for event in events for match in re.findall(r"line (\d+)<", event["data"])]


def served_session(make_app, fake, steps, prompt="x"):
    """An app on a loopback port that has run one ad-hoc session of the fake following `steps`."""
    fake.plan(steps)
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc(prompt)
    wait_for(lambda: finished(app, 1))
    return app


def test_every_client_gets_every_line_once_in_order_then_done(make_app, fake):
    gate = fake.gate("flood")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"flood_stdout": 500}, {"print": result()}])
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc("flood")
    wait_for(lambda: fake.runs())
    clients = [SSEClient(app.port, "/sessions/1/stream") for _ in range(20)]
    assert all(client.response.status == 200 for client in clients)
    assert clients[0].response.getheader("Content-Type").startswith("text/event-stream")
    wait_for(lambda: sum(len(t.subscribers) for t in app.hub.live.values()) == 20, message="20 subscribers")
    open(gate, "w").close()
    finals = gevent.joinall([gevent.spawn(client.read_until_done) for client in clients], timeout=60)
    assert [greenlet.value for greenlet in finals] == [{"event": "done", "data": "completed"}] * 20
    for client in clients:
        assert client.retry == claude_ops.SSE_RETRY_MS
        ids = [int(event["id"]) for event in client.messages()]
        assert ids == sorted(set(ids)) and ids[0] == 1
        assert numbered_lines(client.messages()) == list(range(500))
        client.close()
    assert sum(len(t.subscribers) for t in app.hub.live.values()) == 0


def test_a_reconnect_resumes_without_duplicates(make_app, fake):
    first_gate, second_gate = fake.gate("first"), fake.gate("second")
    fake.plan([{"print": INIT}, {"wait_for_file": first_gate}, {"flood_stdout": 200},
               {"touch": fake.gate("first-done")}, {"wait_for_file": second_gate},
               {"flood_stdout": 300}, {"print": result()}])
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc("flood twice")
    wait_for(lambda: fake.runs())
    client = SSEClient(app.port, "/sessions/1/stream")
    open(first_gate, "w").close()
    wait_for(lambda: os.path.exists(fake.gate("first-done")))
    while not numbered_lines(client.events[-1:]) or numbered_lines(client.events[-1:])[-1] < 150:
        client.read_event()
    last_id = client.events[-1]["id"]
    client.close()
    open(second_gate, "w").close()
    resumed = SSEClient(app.port, "/sessions/1/stream", **{"Last-Event-ID": last_id})
    assert resumed.read_until_done() == {"event": "done", "data": "completed"}
    seen = numbered_lines(client.events) + numbered_lines(resumed.messages())
    assert seen == list(range(200)) + list(range(300))
    assert int(resumed.messages()[0]["id"]) == int(last_id) + 1
    resumed.close()

    by_query = SSEClient(app.port, f"/sessions/1/stream?after={last_id}")
    by_query.read_until_done()
    assert [e["id"] for e in by_query.messages()] == [e["id"] for e in resumed.messages()]
    by_query.close()


def test_a_finished_session_streams_all_lines_then_done(make_app, fake):
    app = served_session(make_app, fake, plan_ok(), prompt="<script>alert(1)</script>")
    client = SSEClient(app.port, "/sessions/1/stream")
    assert client.read_until_done() == {"event": "done", "data": "completed"}
    texts = "\n".join(event["data"] for event in client.messages())
    assert "Checking Jellyfin." in texts and "curl -sI http://jellyfin:8096/health" in texts
    assert "HTTP/1.1 200 OK" in texts and "session ended: completed" in texts
    client.close()
    missing = SSEClient(app.port, "/sessions/99/stream")
    assert missing.response.status == 404
    missing.close()


def test_cli_output_is_escaped_in_sse_messages(make_app, fake):
    app = served_session(make_app, fake, [
        {"print": INIT}, {"print": assistant_text('<img src=x onerror="alert(1)">')}, {"print": result()}])
    client = SSEClient(app.port, "/sessions/1/stream")
    client.read_until_done()
    texts = "\n".join(event["data"] for event in client.messages())
    assert "<img" not in texts and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in texts
    client.close()


def test_the_first_bytes_go_out_at_once_and_a_heartbeat_keeps_it_alive(make_app, fake, monkeypatch):
    monkeypatch.setattr(claude_ops, "SSE_HEARTBEAT_S", 0.2)
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc("quiet")
    wait_for(lambda: fake.runs())
    client = SSEClient(app.port, "/sessions/1/stream?after=2")
    assert client.response.readline() == f"retry: {claude_ops.SSE_RETRY_MS}\n".encode()
    assert client.read_event() == {"comment": "keep-alive"}
    open(gate, "w").close()
    assert client.read_until_done() == {"event": "done", "data": "completed"}
    client.close()


def test_a_client_that_never_reads_is_dropped_while_the_others_finish(make_app, fake):
    gate = fake.gate("flood")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"flood_stdout": 40000},
               {"print": result()}])
    app = make_app(serve=True)
    # Above the lines one read of the pipe can carry, far below what the flood sends.
    app.hub.queue_bytes = 1024 * 1024
    app.scheduler.trigger_adhoc("flood")
    wait_for(lambda: fake.runs())
    stalled = socket.create_connection(("127.0.0.1", app.port))
    stalled.sendall(b"GET /sessions/1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
    readers = [SSEClient(app.port, "/sessions/1/stream") for _ in range(3)]
    wait_for(lambda: sum(len(t.subscribers) for t in app.hub.live.values()) == 4, message="4 subscribers")
    open(gate, "w").close()
    done = gevent.joinall([gevent.spawn(reader.read_until_done) for reader in readers], timeout=120)
    assert [greenlet.value for greenlet in done] == [{"event": "done", "data": "completed"}] * 3
    for reader in readers:
        assert numbered_lines(reader.messages()) == list(range(40000))
        reader.close()
    # The stalled client's connection was ended by the server before the session's end.
    received = b""
    stalled.settimeout(10)
    while True:
        chunk = stalled.recv(65536)
        if not chunk:
            break
        received += chunk
    stalled.close()
    assert b"event: done" not in received and b"line 39999<" not in received
    assert sum(len(t.subscribers) for t in app.hub.live.values()) == 0


def test_a_client_that_leaves_frees_its_subscription(make_app, fake, monkeypatch):
    gate = fake.gate("more")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"flood_stdout": 50},
               {"wait_for_file": fake.gate("end")}, {"print": result()}])
    monkeypatch.setattr(claude_ops, "SSE_HEARTBEAT_S", 0.2)
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc("x")
    wait_for(lambda: fake.runs())
    client = SSEClient(app.port, "/sessions/1/stream")
    client.read_event()
    assert sum(len(t.subscribers) for t in app.hub.live.values()) == 1
    client.response.close()
    client.close()
    open(gate, "w").close()
    wait_for(lambda: sum(len(t.subscribers) for t in app.hub.live.values()) == 0, message="the subscription to be freed")
    open(fake.gate("end"), "w").close()
    wait_for(lambda: finished(app, 1))


def test_concurrent_triggers_start_exactly_one_session(make_app, fake):
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = make_app(serve=True)

    def post(number):
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
        connection.request("POST", "/api/v1/sessions/trigger", json.dumps({"prompt": f"job {number}"}),
                           {"Content-Type": "application/json", "Host": "localhost"})
        status = connection.getresponse().status
        connection.close()
        return status

    statuses = [g.value for g in gevent.joinall([gevent.spawn(post, n) for n in range(12)], timeout=30)]
    assert sorted(statuses) == [201] + [409] * 11
    open(gate, "w").close()
    wait_for(lambda: finished(app, 1))
    assert len(rows(app)) == 1 and len(fake.runs()) == 1


# Pages #############################################################################################

HOSTILE = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>']


def iso_ago(**delta):
    return claude_ops.iso(claude_ops.utc_now() - datetime.timedelta(**delta))


def write_cooldown(app, services):
    with open(os.path.join(app.config.state_dir, "cooldown.json"), "w") as cooldown:
        json.dump({"services": services, "last_run": None, "last_daily_digest": None}, cooldown)


def test_the_dashboard_shows_services_the_form_the_latest_session_and_the_next_run(make_app, fake):
    app = make_app()
    write_cooldown(app, {
        "jellyfin": {"status": "down", "last_checked": iso_ago(minutes=5), "consecutive_healthy": 0,
                     "restarts": [{"timestamp": iso_ago(hours=1), "success": True},
                                  {"timestamp": iso_ago(hours=2), "success": False, "error": "oom"},
                                  {"timestamp": iso_ago(hours=5), "success": True}],
                     "redeployments": [{"timestamp": iso_ago(hours=30), "success": True}]},
        "pihole": {"status": "healthy", "consecutive_healthy": 12, "restarts": [], "redeployments": []},
    })
    client = browser_client(app)
    page = client.get("/")
    tiles = page.html.select(".service-tile")
    assert [tile.h3.text for tile in tiles] == ["jellyfin", "pihole"]
    assert "health-down" in tiles[0]["class"]
    assert [dd.text for dd in tiles[0].select("dd")][:2] == ["2 / 2", "0 / 1"]
    assert "limit" in tiles[0].select_one("dd span")["class"]

    form = page.html.select_one("form.trigger-form")
    assert (form["hx-post"], form["hx-target"], form["hx-swap"], form["hx-disabled-elt"]) == (
        "/sessions/trigger", "#trigger-result", "innerHTML", "find button")
    assert form.textarea["name"] == "prompt"
    assert form.textarea["placeholder"] == "Describe what you want Claude to check or fix..."
    assert form.button.text == "Run Now" and page.html.select_one("#trigger-result") is not None
    assert page.html.select_one(".next-run time")["datetime"] == claude_ops.iso(app.scheduler.next_run_at)
    assert "No session yet." in page.text

    trigger(client, "look at jellyfin")
    wait_for(lambda: finished(app, 1))
    latest = client.get("/").html.select_one("a.latest")
    assert latest["href"] == "/sessions/1" and "completed" in latest.text


def test_the_dashboard_says_what_fills_an_empty_grid_and_what_is_missing(make_app, fake, tmp_path):
    app = make_app(claude_bin="claude-absent", environ={"PATH": os.environ["PATH"],
                                                        "HOME": str(tmp_path)})
    page = browser_client(app).get("/")
    assert "No services recorded yet." in page.text
    banners = [banner.text for banner in page.html.select(".banner-warn")]
    assert any("claude-absent" in text and "not on PATH" in text for text in banners)
    assert any("ANTHROPIC_API_KEY" in text and "CLAUDE_CODE_OAUTH_TOKEN" in text for text in banners)
    app2 = make_app(environ=fake.environ(ANTHROPIC_API_KEY="sk-ant-test-123456789"),
                    state_dir=str(tmp_path / "s2"), results_dir=str(tmp_path / "r2"))
    assert browser_client(app2).get("/").html.select(".banner-warn") == []


def test_the_history_is_newest_first_paginated_with_trigger_badges(make_app):
    app = make_app()
    for number in range(1, 121):
        app.store.insert_session(trigger="manual" if number % 2 else "scheduled",
                                 prompt_text="p" if number % 2 else None,
                                 prompt_file="(ad-hoc)", model="haiku", context="",
                                 started_at=iso_ago(minutes=200 - number))
    client = browser_client(app)
    first = client.get("/sessions")
    ids = [row.a.text for row in first.html.select("tbody tr")]
    assert ids[0] == "#120" and ids[-1] == "#71" and len(ids) == 50
    badges = first.html.select("tbody tr .trigger-badge")
    assert "trigger-badge-scheduled" in badges[0]["class"] and badges[0].text == "scheduled"
    assert "trigger-badge-manual" in badges[1]["class"] and badges[1].text == "manual"
    older = first.html.select_one(".pager a[href^='/sessions?before=']")["href"]
    second = client.get(older)
    assert [row.a.text for row in second.html.select("tbody tr")][0] == "#70"
    third = client.get(second.html.select(".pager a")[-1]["href"])
    assert [row.a.text for row in third.html.select("tbody tr")][-1] == "#1"
    assert third.html.select(".pager a[href^='/sessions?before=']") == []
    assert client.get("/sessions?before=nonsense").status_code == 200


def test_the_history_polls_while_a_session_runs_and_stops_after(make_app, fake):
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = make_app()
    client = browser_client(app)
    assert client.get("/sessions").html.select_one("#sessions").get("hx-trigger") is None
    trigger(client, "x")
    wait_for(lambda: fake.runs())
    fragment = client.get("/sessions", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="sessions" hx-get="/sessions" hx-trigger="every 3s"')
    assert "<html" not in fragment.text
    open(gate, "w").close()
    wait_for(lambda: finished(app, 1))
    assert client.get("/sessions", headers={"HX-Request": "true"}).html.select_one(
        "#sessions").get("hx-trigger") is None


def test_a_session_page_shows_the_card_the_prompt_the_transcript_and_the_response(make_app, fake):
    app = make_app()
    fake.plan(plan_ok("**Jellyfin** is up again.") [:-1] + [
        {"print": {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
                   "retry_delay_ms": 1200, "error": "overloaded_error"}},
        {"stderr": "warning: slow disk"},
        {"print": {"type": "system", "subtype": "permission_denied", "tool_name": "Bash",
                   "message": "systemctl restart jellyfin needs approval"}},
        {"print": result("**Jellyfin** is up again.")}])
    client = browser_client(app)
    trigger(client, "Jellyfin is down")
    wait_for(lambda: finished(app, 1))
    page = client.get("/sessions/1")
    meta = dict(zip([dt.text for dt in page.html.select(".meta dt")],
                    [dd.text for dd in page.html.select(".meta dd")]))
    assert (meta["Trigger"], meta["Status"], meta["Model"], meta["Cost"], meta["Turns"],
            meta["Exit code"]) == ("manual", "completed", "haiku", "$0.0187", "2", "0")
    assert page.html.select_one(".prompt-block pre").text == "Jellyfin is down"
    transcript = page.html.select_one("#transcript")
    assert transcript.get("sse-connect") is None
    entries = [(entry.select_one(".label").text, entry.select_one(".text").text)
               for entry in transcript.select(".entry")]
    assert ("assistant", "Checking Jellyfin.") in entries
    assert ("Bash", "curl -sI http://jellyfin:8096/health") in entries
    assert ("output", "HTTP/1.1 200 OK") in entries
    assert ("API retry", "attempt 1 of 10, next in 1.2 s: overloaded_error") in entries
    assert ("stderr", "warning: slow disk") in entries
    assert ("denied", "Bash: systemctl restart jellyfin needs approval") in entries
    assert ("result", "success · 2 turns · $0.0187 · 6.1 s") in entries
    assert page.html.select_one(".response").text == "**Jellyfin** is up again."


def test_a_failed_session_page_shows_why_and_a_scheduled_one_has_no_prompt_block(make_app, fake):
    app = make_app(run_on_start=True)
    fake.plan([{"print": INIT}, {"stderr": "Error: Invalid API key"}, {"exit": 1}])
    session = wait_for(lambda: finished(app, 1))
    page = browser_client(app).get("/sessions/1")
    assert page.html.select_one(".prompt-block") is None
    assert page.html.select_one(".error-block pre").text == session["error"]
    assert "Invalid API key" in session["error"]


def test_odd_numbers_in_urls_and_headers_are_not_faults(make_app):
    client = browser_client(make_app())
    client.get("/sessions/%C2%B2", status=404)
    client.get("/sessions/%C2%B2/stream", status=404)
    client.get("/api/v1/sessions/%C2%B2", status=404)
    assert client.get("/sessions?before=%C2%B2").status_code == 200
    assert client.get("/api/v1/sessions?before=%C2%B2").json["sessions"] == []


def test_every_response_carries_the_security_headers(make_app):
    app = make_app(password="correct horse")
    client = browser_client(app)
    auth = {"Authorization": basic("correct horse")}
    responses = [client.get("/", headers=auth), client.get("/nowhere", headers=auth, status=404),
                 client.get("/", status=401), client.get("/api/v1/health"),
                 client.post("/sessions/trigger", {"prompt": "x"}, headers=auth, status=303),
                 client.get("/static/style.css", headers=auth)]
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/sessions/999", "/sessions/abc", "/sessions/-1", "/sessions/1.5",
                                  "/sessions/99999999999999999999999", "/nowhere"])
def test_unknown_pages_are_404_pages(make_app, path):
    page = browser_client(make_app()).get(path, status=404)
    assert "404" in page.html.h1.text and "Traceback" not in page.text
    assert page.html.select_one("a.brand") is not None


def test_a_fault_in_a_handler_is_a_500_page_without_a_traceback(make_app, monkeypatch):
    app = make_app()
    monkeypatch.setattr(app.store, "latest_session", lambda: 1 / 0)
    page = browser_client(app).get("/", status=500, expect_errors=True)
    assert "Something went wrong" in page.text
    assert "Traceback" not in page.text and "ZeroDivisionError" not in page.text


def test_what_users_and_the_cli_write_is_escaped_on_every_page(make_app, fake):
    app = make_app()
    hostile = " ".join(HOSTILE)
    fake.plan([{"print": INIT}, {"print": assistant_text(hostile)},
               {"print": {"type": "assistant", "message": {"content": [
                   {"type": "tool_use", "name": HOSTILE[1], "input": {"command": HOSTILE[0]}}]}}},
               {"stderr": hostile}, {"print": result(hostile)}])
    write_cooldown(app, {HOSTILE[0]: {"status": HOSTILE[1], "last_checked": HOSTILE[1],
                                      "restarts": [{"timestamp": HOSTILE[0]}]}})
    client = browser_client(app)
    trigger(client, hostile)
    wait_for(lambda: finished(app, 1))
    for path in ["/", "/sessions", "/sessions/1", "/cooldowns"]:
        page = client.get(path)
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert page.html.select("script:not([src])") == [] and page.html.select("img[onerror]") == []
    detail = client.get("/sessions/1").text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in detail


def test_the_cooldown_page_and_an_unreadable_cooldown_file(make_app):
    app = make_app()
    write_cooldown(app, {"nextcloud": {"status": "healthy", "consecutive_healthy": 3,
                                       "restarts": [{"timestamp": iso_ago(hours=1), "success": True}],
                                       "redeployments": [{"timestamp": iso_ago(hours=3), "success": True}]}})
    client = browser_client(app)
    cells = [td.text.strip() for td in client.get("/cooldowns").html.select("tbody td")]
    assert cells[:4] == ["nextcloud", "healthy", "1 / 2", "1 / 1"]
    with open(os.path.join(app.config.state_dir, "cooldown.json"), "w") as cooldown:
        cooldown.write("{not json")
    for path in ["/cooldowns", "/"]:
        page = client.get(path, status=200)
        assert "cooldown.json cannot be read" in page.html.select_one(".notice").text
    os.remove(os.path.join(app.config.state_dir, "cooldown.json"))
    assert "No services recorded yet." in client.get("/cooldowns").text


def test_static_files_are_served_with_their_types_and_nothing_else(make_app):
    client = browser_client(make_app())
    htmx = client.get("/static/htmx-2.0.11.min.js")
    assert htmx.content_type == "text/javascript" and b"htmx" in htmx.body[:200]
    assert client.get("/static/htmx-ext-sse-2.2.4.min.js").content_type == "text/javascript"
    css = client.get("/static/style.css")
    assert css.content_type == "text/css" and ".trigger-badge-manual" in css.text
    assert client.get("/static/style.css", headers={"If-None-Match": css.headers["ETag"]},
                      status=304)
    for path in ["/static/../claude_ops.py", "/static/%2e%2e/claude_ops.py", "/static/missing.css",
                 "/static/htmx-LICENSE.txt"]:
        client.get(path, status=404)


def test_pages_load_nothing_from_another_host(make_app):
    client = browser_client(make_app())
    for path in ["/", "/sessions", "/cooldowns"]:
        text = client.get(path).text
        assert re.findall(r'(?:src|href)="(?!/|#)', text) == [], path
        assert "http://" not in text and "https://" not in text


# Safety ############################################################################################

def test_foreign_host_names_are_refused(make_app):
    app = make_app(allowed_hosts=("pi.lan",))
    client = webtest.TestApp(app.web)
    for host in ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "192.168.1.20",
                 "pi.lan:8080", "PI.LAN", socket.gethostname()]:
        client.get("/api/v1/health", extra_environ={"HTTP_HOST": host}, status=200)
    for host in ["evil.example", "evil.example:8080", "localhost.evil.example", "pi.lan.evil"]:
        response = client.get("/", extra_environ={"HTTP_HOST": host}, status=403)
        assert "CLAUDEOPS_ALLOWED_HOSTS" in response.text
        client.post("/sessions/trigger", {"prompt": "x"}, extra_environ={"HTTP_HOST": host},
                    status=403)
    assert rows(app) == []


def test_cross_site_requests_change_nothing(make_app, fake):
    app = make_app()
    client = browser_client(app)
    for headers in [{"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": "http://localhost:9999"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"}]:
        trigger(client, "x", status=403, **headers)
        client.post_json("/api/v1/sessions/trigger", {"prompt": "x"}, headers=headers, status=403)
    assert rows(app) == [] and fake.runs() == []
    trigger(client, "same origin", Origin="http://localhost", **{"Sec-Fetch-Site": "same-origin"})
    wait_for(lambda: finished(app, 1))


def test_a_password_guards_everything_but_health(make_app, fake):
    app = make_app(password="correct horse")
    client = browser_client(app)
    assert client.get("/api/v1/health").json["status"] == "ok"
    for path in ["/", "/sessions", "/cooldowns", "/api/v1/sessions", "/static/style.css"]:
        response = client.get(path, status=401)
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    client.get("/", headers={"Authorization": basic("wrong")}, status=401)
    client.get("/", headers={"Authorization": "Basic !!!"}, status=401)
    trigger(client, "x", status=401)
    assert rows(app) == []
    client.get("/", headers={"Authorization": basic("correct horse", user="anyone")}, status=200)


# In a real browser #################################################################################
# Debian's Chromium driven by Playwright, the app in a subprocess as a user runs it.


CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # Anything not on loopback goes to a dead proxy and fails: nothing leaves.
                 "--proxy-server=http://127.0.0.1:9"]
PHONE, LAPTOP = {"width": 375, "height": 812}, {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        reason = "browser tests need Debian's chromium (apt-get install chromium) and playwright"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True, timeout=60_000)
        yield browser
        browser.close()


class BrowserPage:
    """A fresh browser context at a viewport, recording console errors and every request."""

    def __init__(self, browser, viewport):
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.console_errors, self.requests = [], []
        self.page.on("console", lambda message: message.type == "error"
                     and self.console_errors.append(message.text))
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def foreign_requests(self):
        return [url for url in self.requests
                if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost")
                and not url.startswith(("data:", "about:"))]

    def scrolls_sideways(self):
        return self.page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth")

    def close(self):
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def open_at(viewport):
        pages.append(BrowserPage(browser, viewport))
        return pages[-1]

    yield open_at
    for page in pages:
        page.close()


def unexpected_console_errors(page, allowed_statuses=()):
    """Console errors, less the browser's own note on a status the test asked for."""
    allowed = tuple(f"status of {status}" for status in allowed_statuses)
    return [text for text in page.console_errors if not (allowed and any(a in text for a in allowed))]


def test_run_now_in_the_browser_lands_on_the_session_and_shows_409_and_400(
        app_process, fake, open_page, tmp_path):
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"print": assistant_text("Looking at Jellyfin.")},
               {"wait_for_file": gate}, {"print": result("Jellyfin restarted.")}])
    app = app_process()
    phone = open_page(PHONE)
    page = phone.page
    page.goto(app.url + "/")
    page.fill("textarea[name=prompt]", "Jellyfin is down, can you take a look?")
    page.click("form.trigger-form button")
    page.wait_for_url(app.url + "/sessions/1")
    assert page.inner_text(".prompt-block pre") == "Jellyfin is down, can you take a look?"
    page.wait_for_selector("#transcript .entry-assistant >> text=Looking at Jellyfin.")
    page.screenshot(path=str(tmp_path / "session-375.png"), full_page=True)

    page.goto(app.url + "/")
    page.fill("textarea[name=prompt]", "and the NAS?")
    page.click("form.trigger-form button")
    page.wait_for_selector("#trigger-result .trigger-error")
    assert page.inner_text("#trigger-result") == "A session is already running or queued. Please wait."
    assert page.url == app.url + "/"
    page.fill("textarea[name=prompt]", "   ")
    page.click("form.trigger-form button")
    page.wait_for_selector("#trigger-result >> text=A prompt is required.")
    page.screenshot(path=str(tmp_path / "index-375.png"), full_page=True)
    assert not phone.scrolls_sideways()
    assert unexpected_console_errors(phone, allowed_statuses=(400, 409)) == []
    assert phone.foreign_requests() == []
    open(gate, "w").close()
    wait_for(lambda: app.get("/api/v1/sessions/1")["status"] == "completed")
    assert len(app.get("/api/v1/sessions")["sessions"]) == 1


def test_a_live_session_grows_in_the_page_and_ends_by_itself(app_process, fake, open_page, tmp_path):
    first, second = fake.gate("first"), fake.gate("second")
    fake.plan([{"print": INIT}, {"print": assistant_text("Step one.")}, {"wait_for_file": first},
               {"print": {"type": "assistant", "message": {"content": [
                   {"type": "tool_use", "name": "Bash", "input": {"command": "docker ps"}}]}}},
               {"flood_stdout": 150}, {"print": assistant_text("Step two.")},
               {"wait_for_file": second}, {"flood_stdout": 20},
               {"print": result("All healthy now.")}])
    app = app_process()
    app.post_json("/api/v1/sessions/trigger", {"prompt": "watch me"})
    wait_for(lambda: fake.runs())
    laptop = open_page(LAPTOP)
    page = laptop.page
    page.goto(app.url + "/sessions/1")
    page.wait_for_selector("#transcript >> text=Step one.")
    assert page.get_attribute("#transcript", "sse-connect").startswith("/sessions/1/stream?after=")
    open(first, "w").close()
    page.wait_for_selector("#transcript >> text=Step two.")
    page.wait_for_selector("#transcript .entry-tool >> text=docker ps")
    assert page.inner_text(".meta dd:nth-of-type(2)") == "running"
    assert app.get("/api/v1/sessions/1")["status"] == "running"
    distance_from_end = ("(box => box.scrollHeight > box.clientHeight * 2 &&"
                         " box.scrollHeight - box.scrollTop - box.clientHeight)"
                         "(document.getElementById('transcript'))")
    page.wait_for_function(f"{distance_from_end} !== false && {distance_from_end} < 40")
    page.evaluate("document.getElementById('transcript').scrollTop = 0")  # the reader scrolls up
    page.wait_for_function("document.getElementById('transcript').scrollTop === 0")
    open(second, "w").close()
    page.wait_for_selector(".response >> text=All healthy now.")
    page.wait_for_selector("#session-summary .status-badge.status-completed")
    page.wait_for_selector("#transcript >> text=session ended: completed")
    assert page.evaluate("document.getElementById('transcript').scrollTop") == 0
    page.screenshot(path=str(tmp_path / "session-1280.png"), full_page=True)
    streams = lambda: [url for url in laptop.requests if "/stream" in url]
    assert len(streams()) == 1
    # An observation window longer than the stream's retry (3 s): no reconnect may happen in it.
    page.wait_for_timeout(claude_ops.SSE_RETRY_MS + 1500)
    assert len(streams()) == 1
    assert page.locator("#transcript .line").count() == len(set(
        page.eval_on_selector_all("#transcript .line", "lines => lines.map(l => l.dataset.line)")))
    assert unexpected_console_errors(laptop) == [] and laptop.foreign_requests() == []


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["375px", "1280px"])
def test_no_page_scrolls_sideways_or_errors(app_process, fake, open_page, tmp_path, viewport):
    fake.plan([{"print": INIT}, {"print": assistant_text("word " * 200 + "x" * 300)},
               {"print": {"type": "assistant", "message": {"content": [
                   {"type": "tool_use", "name": "Bash", "input": {"command": "y" * 400}}]}}},
               {"print": result("z" * 500)}])
    app = app_process(ANTHROPIC_API_KEY="sk-ant-test-key-for-the-banner")
    state = tmp_path / "state" / "cooldown.json"
    state.write_text(json.dumps({"services": {
        "a-service-with-a-very-long-name-" + "x" * 40: {"status": "healthy", "restarts": []},
        "jellyfin": {"status": "down", "last_checked": iso_ago(minutes=3),
                     "restarts": [{"timestamp": iso_ago(hours=1), "success": True}]}}}))
    app.post_json("/api/v1/sessions/trigger", {"prompt": "p" * 600})
    wait_for(lambda: app.get("/api/v1/sessions/1")["status"] == "completed")
    view = open_page(viewport)
    for path in ["/", "/sessions", "/sessions/1", "/cooldowns", "/sessions/404"]:
        view.page.goto(app.url + path)
        name = path.strip("/").replace("/", "-") or "index"
        view.page.screenshot(path=str(tmp_path / f"{name}-{viewport['width']}.png"), full_page=True)
        assert not view.scrolls_sideways(), path
    view.page.goto(app.url + "/sessions")
    shown = view.page.inner_text("tbody time")   # in the browser's zone, not the stored UTC text
    assert "UTC" not in shown and "T" not in shown.split()[0]
    assert unexpected_console_errors(view, allowed_statuses=(404,)) == []
    assert view.foreign_requests() == []


# The genuine Claude Code CLI #######################################################################
# The real CLI, installed from npm at a pinned version, talking to a loopback stand-in of the
# Anthropic Messages API: nothing leaves the machine.


CLAUDE_CLI_VERSION = "2.1.331"
REAL_CLAUDE = os.environ.get("CLAUDEOPS_TEST_CLAUDE") or os.path.join(
    HERE, ".cli", "node_modules", ".bin", "claude")


def text_reply(text):
    return {"blocks": [{"type": "text", "text": text}]}


def tool_reply(name, tool_input):
    return {"blocks": [{"type": "tool_use", "id": f"toolu_{abs(hash(name)) % 10**8}", "name": name,
                        "input": tool_input}]}


def error_reply(status):
    kind = {500: "api_error", 529: "overloaded_error"}[status]
    return {"status": status, "error": {"type": kind,
                                        "message": "Overloaded" if status == 529 else "Internal error"}}


class MessagesAPI:
    """POST /v1/messages answered from a script of replies, streamed as the real API streams:
    message_start, content blocks with text or input_json deltas, message_delta, message_stop."""

    def __init__(self, replies, default=None):
        self.replies, self.default, self.requests = list(replies), default, []
        self.server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), self.answer, log=None)

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(timeout=1)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_port}"

    def message_requests(self):
        return [request["body"] for request in self.requests if request["path"] == "/v1/messages"]

    def answer(self, environ, start_response):
        raw = environ["wsgi.input"].read()
        if environ.get("HTTP_CONTENT_ENCODING") == "gzip":
            raw = gzip.decompress(raw)
        body = json.loads(raw) if raw else None
        self.requests.append({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
                              "body": body})
        if (environ["REQUEST_METHOD"], environ["PATH_INFO"]) != ("POST", "/v1/messages"):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"type": "error", "error": {"type": "not_found_error", "message": "no"}}']
        reply = self.replies.pop(0) if self.replies else self.default
        if "status" in reply:
            start_response(f"{reply['status']} Error", [("Content-Type", "application/json")])
            return [json.dumps({"type": "error", "error": reply["error"]}).encode()]
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        return [self.events(reply["blocks"], body.get("model", "claude-test"))]

    @staticmethod
    def events(blocks, model):
        def event(name, data):
            return f"event: {name}\ndata: {json.dumps(dict(data, type=name))}\n\n"

        out = [event("message_start", {"message": {
            "id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 120, "output_tokens": 1}}})]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                out.append(event("content_block_start", {"index": index,
                                                         "content_block": {"type": "text", "text": ""}}))
                for start in range(0, len(block["text"]), 20):
                    out.append(event("content_block_delta", {"index": index, "delta": {
                        "type": "text_delta", "text": block["text"][start:start + 20]}}))
            else:
                out.append(event("content_block_start", {"index": index, "content_block": dict(
                    block, input={})}))
                out.append(event("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
            out.append(event("content_block_stop", {"index": index}))
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        out.append(event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                           "usage": {"output_tokens": 42}}))
        out.append(event("message_stop", {}))
        return "".join(out).encode()


@pytest.fixture
def real_cli(tmp_path):
    if not os.path.exists(REAL_CLAUDE):
        reason = (f"the genuine CLI is not installed: npm install --prefix .cli "
                  f"@anthropic-ai/claude-code@{CLAUDE_CLI_VERSION}")
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    version = subprocess.run([REAL_CLAUDE, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith(CLAUDE_CLI_VERSION), version.stdout + version.stderr
    return REAL_CLAUDE


@pytest.fixture
def run_real(make_app, real_cli, tmp_path):
    """Runs one ad-hoc session through claude-ops with the genuine CLI against `api`."""

    def run(api, prompt, **extra_environ):
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        environ = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home),
                   "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
                   "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **extra_environ}
        app = make_app(environ=environ, claude_bin=real_cli, session_timeout_s=120)
        app.scheduler.trigger_adhoc(prompt)
        session = wait_for(lambda: finished(app, 1), timeout=150, message="the real CLI's session")
        return app, session

    return run


def transcript_entries(app, session_id=1):
    page = browser_client(app).get(f"/sessions/{session_id}")
    return [(entry.select_one(".label").text, entry.select_one(".text").text)
            for entry in page.html.select("#transcript .entry")]


def test_the_real_cli_answers_a_plain_question(run_real):
    with MessagesAPI([text_reply("Jellyfin is up: HTTP 200 on /health.")]) as api:
        app, session = run_real(api, "Is Jellyfin up?")
    assert session["status"] == "completed", session["error"]
    assert (session["exit_code"], session["num_turns"]) == (0, 1)
    assert session["response"] == "Jellyfin is up: HTTP 200 on /health."
    assert session["cost_usd"] > 0 and session["duration_ms"] >= 0
    request, = api.message_requests()
    assert request["model"].startswith("claude-haiku") and request["stream"] is True
    system = json.dumps(request["system"])
    assert "Session trigger: manual" in system and "cooldown.json" in system
    assert "Is Jellyfin up?" in json.dumps(request["messages"])
    entries = transcript_entries(app)
    assert entries[1][0] == "started" and f"Claude Code {CLAUDE_CLI_VERSION}" in entries[1][1]
    assert ("assistant", "Jellyfin is up: HTTP 200 on /health.") in entries
    assert ("result", entries[-2][1]) == entries[-2] and entries[-2][1].startswith("success · 1 turn ·")
    with open(os.path.join(app.config.results_dir, session["log_file"])) as log_file:
        assert "sk-ant-test-not-a-real-key" not in log_file.read()


def test_the_real_cli_runs_a_bash_tool_call_and_answers_with_its_output(run_real):
    with MessagesAPI([tool_reply("Bash", {"command": "echo hello-from-tool",
                                          "description": "Say hello"}),
                      text_reply("The tool said hello-from-tool.")]) as api:
        app, session = run_real(api, "Run the hello check.")
    assert session["status"] == "completed", session["error"]
    assert (session["num_turns"], session["response"]) == (2, "The tool said hello-from-tool.")
    first, second = api.message_requests()
    results = [block for message in second["messages"] if isinstance(message["content"], list)
               for block in message["content"] if block.get("type") == "tool_result"]
    assert "hello-from-tool" in json.dumps(results)
    entries = transcript_entries(app)
    assert ("Bash", "echo hello-from-tool") in entries
    assert ("output", "hello-from-tool") in entries
    assert ("assistant", "The tool said hello-from-tool.") in entries


@pytest.mark.parametrize("status, words", [(500, "500"), (529, "Overloaded")])
def test_the_real_cli_shows_api_retries_and_fails_with_the_reason(run_real, status, words):
    with MessagesAPI([], default=error_reply(status)) as api:
        app, session = run_real(api, "Check the NAS.", CLAUDE_CODE_MAX_RETRIES="2")
    assert session["status"] == "failed" and session["exit_code"] == 1
    assert session["error"].startswith("exit code 1: API Error") and words in session["error"]
    assert len(api.message_requests()) == 3
    retries = [text for label, text in transcript_entries(app) if label == "API retry"]
    assert [text.split(",")[0] for text in retries] == ["attempt 1 of 2", "attempt 2 of 2"]


def test_a_prompt_starting_with_dashes_reaches_the_real_cli_as_text(run_real):
    prompt = "--dangerously-skip-permissions and check the disks"
    with MessagesAPI([text_reply("Disks are fine.")]) as api:
        app, session = run_real(api, prompt)
    assert session["status"] == "completed" and session["response"] == "Disks are fine."
    assert prompt in json.dumps(api.message_requests()[0]["messages"])
    with open(os.path.join(app.config.results_dir, session["log_file"])) as log_file:
        init = next(json.loads(record["line"]) for record in map(json.loads, log_file)
                    if record["stream"] == "stdout" and '"init"' in record["line"])
    assert init["permissionMode"] == "default"


def test_the_default_block_list_stops_a_restart_in_the_real_cli(run_real):
    with MessagesAPI([tool_reply("Bash", {"command": "systemctl restart jellyfin"}),
                      text_reply("I could not restart Jellyfin; an operator should.")]) as api:
        app, session = run_real(api, "Restart Jellyfin.")
    assert session["status"] == "completed", session["error"]
    tool_results = json.dumps(api.message_requests()[1]["messages"])
    assert "tool_result" in tool_results and '"is_error": true' in tool_results
    entries = transcript_entries(app)
    assert ("Bash", "systemctl restart jellyfin") in entries
    assert any(label == "result" and "1 tool call denied" in text for label, text in entries)


# Hardening: odd requests, the agent's files, idle sockets ##########################################

def test_a_host_name_with_a_trailing_dot_is_the_same_name(make_app):
    app = make_app(allowed_hosts=("pi.lan",))
    client = webtest.TestApp(app.web)
    for host in ["localhost.", "localhost.:8080", "pi.lan.", "PI.LAN.:80", socket.gethostname() + "."]:
        client.get("/api/v1/health", extra_environ={"HTTP_HOST": host}, status=200)
    for host in ["evil.example.", "localhost..", "pi.lan.evil.", "."]:
        client.get("/api/v1/health", extra_environ={"HTTP_HOST": host}, status=403)


def served_request(app, method, path, body=None, **headers):
    """One request to a served app over loopback: (status, headers as a dict, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=dict({"Host": "localhost"}, **headers))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_redirects_are_relative_whatever_the_forwarded_headers_say(make_app, fake):
    app = make_app(serve=True)
    forwarded = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                 "Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = served_request(app, "POST", "/sessions/trigger", b"prompt=x", **forwarded)
    assert (status, headers["Location"]) == (303, "/sessions/1")
    wait_for(lambda: finished(app, 1))
    forwarded["Content-Type"] = "application/json"
    status, headers, _ = served_request(app, "POST", "/api/v1/sessions/trigger", b'{"prompt": "y"}',
                                        **forwarded)
    assert (status, headers["Location"]) == (201, "/api/v1/sessions/2")


def test_the_form_route_takes_only_form_bodies(make_app, fake):
    app = make_app()
    client = browser_client(app)
    for content_type, body in [("application/json", b'{"prompt": "x"}'), ("text/plain", b"prompt=x"),
                               ("application/xml", b"prompt=x"), ("", b"prompt=x")]:
        response = client.post("/sessions/trigger", body, content_type=content_type, status=415,
                               headers={"HX-Request": "true"})
        assert "application/x-www-form-urlencoded" in response.text
    assert rows(app) == [] and fake.runs() == [] and app.scheduler.pending_trigger is False
    client.post("/sessions/trigger", {"prompt": "as multipart"}, content_type="multipart/form-data",
                headers={"HX-Request": "true"}, status=200)
    wait_for(lambda: finished(app, 1))
    trigger(client, "as a url-encoded form")
    wait_for(lambda: finished(app, 2))
    assert [row["prompt_text"] for row in rows(app)] == ["as a url-encoded form", "as multipart"]


def raw_exchange(port, request, timeout=10):
    """Sends `request` bytes as they are and returns everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def raw_status(port, method, path, *header_lines, body=b""):
    head = f"{method} {path} HTTP/1.1\r\nConnection: close\r\n".encode("latin-1")
    if not any(line.lower().startswith(b"host:") for line in header_lines):
        head += b"Host: localhost\r\n"
    head += b"".join(line + b"\r\n" for line in header_lines)
    answer = raw_exchange(port, head + b"\r\n" + body)
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else None


def multipart(name, value, boundary="fence", charset=None):
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value + f"\r\n--{boundary}--\r\n".encode())
    content_type = f"multipart/form-data; boundary={boundary}" + (f"; charset={charset}" if charset else "")
    return (f"Content-Type: {content_type}".encode(), b"Content-Length: %d" % len(body)), body


ODD_REQUESTS = [  # (why, method, path, header lines, body, the status it earns)
    ("a NUL in a static name", "GET", "/static/style.css%00.js", (), b"", 404),
    ("a multipart prompt that is not UTF-8", "POST", "/sessions/trigger",
     *multipart("prompt", b"\xff\xfe look"), 400),
    ("a multipart charset that does not exist", "POST", "/sessions/trigger",
     *multipart("prompt", b"look", charset="no-such-charset"), 400),
    ("a multipart body without its boundary", "POST", "/sessions/trigger",
     (b"Content-Type: multipart/form-data; boundary=x", b"Content-Length: 5"), b"abcde", 400),
    ("JSON nested 50,000 deep", "POST", "/api/v1/sessions/trigger",
     (b"Content-Type: application/json", b"Content-Length: 50000"), b"[" * 50000, 400),
    ("a Host that is not UTF-8", "GET", "/", (b"Host: \xff\xfe",), b"", 400),
    ("an HX-Request that is not UTF-8", "GET", "/sessions", (b"HX-Request: \xff",), b"", 400),
    ("a Last-Event-ID that is not UTF-8", "GET", "/sessions/1/stream", (b"Last-Event-ID: \xff",),
     b"", 400),
    ("an If-None-Match that is not UTF-8", "GET", "/static/style.css", (b"If-None-Match: \xff",),
     b"", 400),
    ("an Origin that is not UTF-8", "POST", "/sessions/trigger",
     (b"Origin: \xff", b"Content-Length: 0"), b"", 400),
    ("a path that is not UTF-8", "GET", "/%ff%fe", (), b"", 400),
    ("a raw path byte that is not UTF-8", "GET", "/\xff", (), b"", 400),
    ("a Content-Length that is not a number", "POST", "/sessions/trigger",
     (b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: abc"), b"prompt=x", 400),
    ("a negative Content-Length", "POST", "/sessions/trigger",
     (b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: -1"), b"prompt=x", 400),
    ("a 70 KB header", "GET", "/", (b"X-Big: " + b"a" * 70000,), b"", 400),
    ("query strings that do not decode", "GET", "/sessions?before=%FF%FE&x=%&y=%zz", (), b"", 200),
    ("an API query that does not decode", "GET", "/api/v1/sessions?before=%ZZ", (), b"", 200),
    ("cookies of any shape", "GET", "/", (b'Cookie: a="\xff\\"; b=;;;=; c',), b"", 200),
    ("a stream resumed from nonsense", "GET", "/sessions/1/stream?after=%ff", (), b"", 200),
]


@pytest.mark.parametrize("why, method, path, header_lines, body, status", ODD_REQUESTS,
                         ids=[case[0] for case in ODD_REQUESTS])
def test_no_input_is_a_fault(make_app, fake, why, method, path, header_lines, body, status):
    app = served_session(make_app, fake, plan_ok())
    assert raw_status(app.port, method, path, *header_lines, body=body) == status
    assert len(rows(app)) == 1 and len(fake.runs()) == 1


def absurd_result(cost, duration_ms, turns):
    # Written as raw JSON text: a 301-digit number has no float to come from.
    return (f'{{"type": "result", "subtype": "success", "is_error": false, "result": "done",'
            f' "total_cost_usd": {cost}, "duration_ms": {duration_ms}, "num_turns": {turns}}}')


@pytest.mark.parametrize("cost, duration_ms, turns, shown_cost, shown_duration", [
    ("1e308", "-1", "1" + "0" * 300, ">$10,000", "—"),
    ("-5", "1e300", "-3", "—", "—"),
    ("NaN", "Infinity", "2.5e9", "—", r"[0-9]\.[0-9] s"),  # no duration stored: the wall clock's
])
def test_absurd_costs_durations_and_turns_show_as_sane_values(make_app, fake, cost, duration_ms,
                                                              turns, shown_cost, shown_duration):
    app = served_session(make_app, fake, [{"print": INIT},
                                          {"print": absurd_result(cost, duration_ms, turns)}])
    assert finished(app, 1)["status"] == "completed"
    client = browser_client(app)
    page = client.get("/sessions/1")
    meta = dict(zip([dt.text for dt in page.html.select(".meta dt")],
                    [dd.text for dd in page.html.select(".meta dd")]))
    assert (meta["Cost"], meta["Turns"]) == (shown_cost, "—")
    assert re.fullmatch(shown_duration, meta["Duration"])
    result_line = [entry.select_one(".text").text for entry in page.html.select("#transcript .entry")
                   if entry.select_one(".label").text == "result"]
    assert result_line == ["success" + (" · " + shown_cost if shown_cost != "—" else "")]
    for path in ["/", "/sessions", "/sessions/1", "/sessions/1/summary"]:
        text = client.get(path).text
        assert not re.search(r"[0-9]{20}", text) and "-0.0" not in text and "nan" not in text, path


def test_an_address_that_keeps_giving_wrong_passwords_is_refused_for_a_while(make_app, caplog):
    app = make_app(serve=True, password="correct horse")
    caplog.set_level("WARNING", logger="claude-ops")
    wrong = {"Authorization": basic("Tr0ub4dor&3")}
    for attempt in range(claude_ops.SIGN_IN_FAILURES_ALLOWED):
        assert served_request(app, "GET", "/", **wrong)[0] == 401, attempt
    right = {"Authorization": basic("correct horse")}
    for path in ["/", "/api/v1/sessions"]:
        status, headers, _ = served_request(app, "GET", path, **right)
        assert status == 429 and 0 < int(headers["Retry-After"]) <= claude_ops.SIGN_IN_LOCKOUT_S
    assert served_request(app, "GET", "/api/v1/health")[0] == 200
    failures = [record.getMessage() for record in caplog.records
                if record.getMessage().startswith("wrong dashboard password")]
    assert failures == ["wrong dashboard password from 127.0.0.1 for GET /"] * 10
    assert "refused for" in caplog.text and "Tr0ub4dor" not in caplog.text
    client = browser_client(app)  # another address still signs in
    client.get("/", headers=right, extra_environ={"REMOTE_ADDR": "192.0.2.9"}, status=200)
    client.get("/", headers=right, extra_environ={"REMOTE_ADDR": "127.0.0.1"}, status=429)


def test_sign_in_failures_end_count_ipv6_networks_and_stay_bounded():
    failures = claude_ops.SignInFailures()
    network = claude_ops.client_network
    for number in range(claude_ops.SIGN_IN_FAILURES_ALLOWED):  # every address of one /64
        failures.failed(network(f"2001:db8::{number + 1:x}"), now=1000.0 + number)
    assert failures.retry_after(network("2001:db8::ffff"), now=1010.0) > 0
    assert failures.retry_after(network("2001:db8:0:1::1"), now=1010.0) == 0
    assert failures.retry_after(network("2001:db8::1"),
                                now=1010.0 + claude_ops.SIGN_IN_LOCKOUT_S) == 0
    for number in range(claude_ops.SIGN_IN_FAILURES_ALLOWED):  # slower than the window allows
        failures.failed("192.0.2.1", now=5000.0 + number * claude_ops.SIGN_IN_WINDOW_S)
    assert failures.retry_after("192.0.2.1", now=5000.0 + 10 * claude_ops.SIGN_IN_WINDOW_S) == 0
    for number in range(3 * claude_ops.SIGN_IN_ADDRESSES_KEPT):
        failures.failed(f"10.{number >> 16}.{number >> 8 & 255}.{number & 255}", now=9000.0)
    assert len(failures.by_network) == claude_ops.SIGN_IN_ADDRESSES_KEPT


def cooldown_path(app):
    return os.path.join(app.config.state_dir, "cooldown.json")


def assert_cooldown_notice(client, *words):
    """/ and /cooldowns answer 200 with a notice holding `words`, and the dashboard keeps Run now."""
    for path in ["/", "/cooldowns"]:
        page = client.get(path, status=200)
        notice = page.html.select_one(".notice").text
        assert all(word in notice for word in words), (path, notice)
    assert client.get("/").html.select_one("form.trigger-form textarea[name=prompt]") is not None
    return page


def test_wrong_types_in_cooldown_json_are_named_and_the_rest_is_shown(make_app, monkeypatch):
    app = make_app()
    write_cooldown(app, {
        "jellyfin": {"status": "down", "restarts": 2, "consecutive_healthy": "many",
                     "last_checked": 12345,
                     "redeployments": [{"timestamp": iso_ago(hours=1), "success": True}]},
        "nas": "broken",
        "pihole": {"status": 5, "redeployments": {"when": "now"},
                   "restarts": [{"timestamp": 17}, "x", {"success": True},
                                {"timestamp": iso_ago(hours=1), "success": "yes", "error": ["a"]},
                                {"timestamp": "yesterday"}]},
        "sonarr": {"status": "healthy", "consecutive_healthy": 4, "last_checked": iso_ago(minutes=3),
                   "restarts": [{"timestamp": iso_ago(hours=1), "success": False, "error": "oom"}]},
    })
    with open(cooldown_path(app)) as cooldown:
        state = json.load(cooldown)
    state.update(last_run=5, last_daily_digest=[])
    with open(cooldown_path(app), "w") as cooldown:
        json.dump(state, cooldown)
    client = browser_client(app)
    page = assert_cooldown_notice(client, "jellyfin.restarts should be a list, not 2",
                                  'jellyfin.consecutive_healthy should be a count, not "many"',
                                  "jellyfin.last_checked should be a time, not 12345",
                                  ": last_run should be a time, not 5",
                                  "; last_daily_digest should be a time, not a list", "more")
    cells = [[td.text.strip() for td in row.select("td")] for row in page.html.select("tbody tr")]
    assert [row[:4] for row in cells] == [["jellyfin", "down", "0 / 2", "1 / 1"],
                                          ["nas", "unknown", "0 / 2", "0 / 1"],
                                          ["pihole", "unknown", "1 / 2", "0 / 1"],
                                          ["sonarr", "healthy", "1 / 2", "0 / 1"]]
    assert "(failed)" in cells[3][4] and cells[3][5] == "4"
    tiles = client.get("/").html.select(".service-tile")
    assert [tile.h3.text for tile in tiles] == ["jellyfin", "nas", "pihole", "sonarr"]
    monkeypatch.setattr(claude_ops, "COOLDOWN_PROBLEMS_SHOWN", 100)  # the notice names them all
    notice = claude_ops.read_cooldowns(cooldown_path(app))[1]
    for problem in ['nas should be an object, not "broken"', "pihole.status should be text, not 5",
                    "pihole.redeployments should be a list, not an object",
                    "pihole.restarts[0].timestamp should be a time, not 17",
                    'pihole.restarts[1] should be an object, not "x"',
                    "pihole.restarts[2] has no timestamp",
                    'pihole.restarts[3].success should be true or false, not "yes"',
                    "pihole.restarts[3].error should be text, not a list",
                    'pihole.restarts[4].timestamp should be a time, not "yesterday"']:
        assert problem in notice, problem


@pytest.mark.parametrize("content, words", [
    (b"[" * 100_000, ["nested too deeply"]),
    (b'{"services": ' * 50_000, ["nested too deeply"]),
    (b'{"services": {"nas": {"status": "\xff\xfe"}}}', ["not JSON"]),
    (b"[]", ["the file should be an object, not a list"]),
    (b"null", ["the file should be an object, not null"]),
    (b'{"services": []}', ["services should be an object, not a list"]),
    (b'{"last_run": null}', ['no "services" object']),
])
def test_a_cooldown_json_that_makes_no_sense_is_a_notice(make_app, content, words):
    app = make_app()
    with open(cooldown_path(app), "wb") as cooldown:
        cooldown.write(content)
    assert_cooldown_notice(browser_client(app), *words)


def test_a_cooldown_json_of_many_services_shows_the_first_ones(make_app):
    app = make_app()
    write_cooldown(app, {f"service-{number:05}": {"status": "healthy"} for number in range(5000)})
    client = browser_client(app)
    assert_cooldown_notice(client, "it lists 5000 services, of which the first 200 are shown")
    assert len(client.get("/").html.select(".service-tile")) == 200


def fetch(url, timeout):
    """(status, text, seconds taken) of a GET; a status of None when no answer came in time."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(), time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return None, "", time.monotonic() - started


def peak_memory_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+) kB", status.read()).group(1))


def replace_cooldown_file(path, kind):
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    elif os.path.lexists(path):
        os.remove(path)
    if kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a directory":
        os.mkdir(path)
    elif kind == "a symlink to /dev/zero":
        os.symlink("/dev/zero", path)
    elif kind == "a 256 MB file":
        with open(path, "wb") as cooldown:  # sparse: no disk is used
            cooldown.write(b'{"services": {"nas": {"status": "')
            cooldown.truncate(256 * 1024 * 1024)


def test_a_cooldown_json_that_is_no_regular_file_or_huge_never_hangs_or_bloats_a_page(
        app_process, tmp_path):
    app = app_process()
    path = str(tmp_path / "state" / "cooldown.json")
    for kind, words in [("a FIFO", "not a regular file"), ("a directory", "not a regular file"),
                        ("a symlink to /dev/zero", "not a regular file"),
                        ("a 256 MB file", "larger than 1 MiB")]:
        replace_cooldown_file(path, kind)
        for page in ["/", "/cooldowns"]:
            status, text, seconds = fetch(app.url + page, timeout=10)
            assert status == 200, f"{kind}: {page} did not answer"
            assert seconds < 3 and words in text and "cannot be read" in text, (kind, page, seconds)
            assert page == "/cooldowns" or 'name="prompt"' in text
    assert peak_memory_kib(app.process.pid) < 150 * 1024


def time_to_close(port, request):
    """(seconds until the server closes a connection that sent `request`, what it answered)."""
    started = time.monotonic()
    return raw_exchange(port, request, timeout=30), time.monotonic() - started


@pytest.mark.parametrize("request_bytes", [
    b"",
    b"GET / HTTP/1.1\r\nHost: localhost\r\n",
    b"POST /sessions/trigger HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n\r\nprompt=abc",
], ids=["nothing", "half a head", "half a body"])
def test_a_request_that_does_not_arrive_in_time_is_closed(make_app, fake, monkeypatch, request_bytes):
    monkeypatch.setattr(claude_ops, "REQUEST_TIMEOUT_S", 1)
    app = make_app(serve=True)
    answer, seconds = time_to_close(app.port, request_bytes)
    assert answer == b"" and 0.9 < seconds < 5
    assert rows(app) == [] and fake.runs() == []


def test_a_body_too_large_is_refused_and_the_connection_closed_without_reading_it(make_app):
    app = make_app(serve=True)
    answer, seconds = time_to_close(app.port, b"POST /sessions/trigger HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Content-Length: " + b"9" * 23 + b"\r\n\r\nprompt=x")
    assert answer.startswith(b"HTTP/1.1 413 ") and seconds < 5
    assert rows(app) == []


def test_a_live_stream_outlasts_the_request_timeout(make_app, fake, monkeypatch):
    monkeypatch.setattr(claude_ops, "REQUEST_TIMEOUT_S", 1)
    gate = fake.gate("second")
    fake.plan([{"print": INIT}, {"print": assistant_text("first line")}, {"wait_for_file": gate},
               {"print": assistant_text("second line")}, {"print": result()}])
    app = make_app(serve=True)
    app.scheduler.trigger_adhoc("x")
    wait_for(lambda: fake.runs(), message="the CLI to start")
    client = SSEClient(app.port, "/sessions/1/stream")
    event = client.read_event()
    while event is not None and "first line" not in event.get("data", ""):
        event = client.read_event()
    assert event is not None
    gevent.sleep(2.5)  # not a wait for something: the stream must outlive the request timeout
    open(gate, "w").close()
    assert client.read_until_done() == {"event": "done", "data": "completed"}
    assert any("second line" in event["data"] for event in client.messages())
    client.close()


class AppWithFileLimit(AppProcess):
    """claude_ops.py in a subprocess that starts with its limit on open files at (soft, hard)."""

    def __init__(self, tmp_path, fake, file_limit):
        super().__init__(tmp_path, fake)
        self.file_limit = file_limit

    def start(self):
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "claude_ops.py")], env=self.environ,
                stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=self.limit_files)
        wait_for(lambda: self.get("/api/v1/health") is not None or self.process.poll() is not None,
                 timeout=20, message="the app to answer")
        assert self.process.poll() is None, self.stderr_path.read_text()
        return self

    def limit_files(self):
        resource.setrlimit(resource.RLIMIT_NOFILE, self.file_limit)

    def open_files(self):
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@pytest.fixture
def app_with_file_limit(tmp_path, fake):
    processes = []

    def start(file_limit, **settings):
        processes.append(AppWithFileLimit(tmp_path, fake, file_limit))
        processes[-1].environ.update(settings)
        return processes[-1].start()

    yield start
    for process in processes:
        process.stop()


def test_the_soft_limit_on_open_files_is_raised_to_the_hard_one(app_with_file_limit):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard < 1024:
        pytest.skip(f"the hard limit on open files here is {hard}")
    app = app_with_file_limit((256, hard))
    with open(f"/proc/{app.process.pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    assert line.split()[3:5] == [str(hard), str(hard)]


def test_idle_sockets_past_the_connection_cap_cannot_lock_the_dashboard_out(app_with_file_limit):
    app = app_with_file_limit((256, 256))
    cap = claude_ops.connection_limit(256)
    idle = [socket.create_connection(("127.0.0.1", app.port)) for _ in range(cap + 72)]
    try:
        wait_for(lambda: app.open_files() >= cap, message="the app to hold the idle connections")
        status, text, seconds = fetch(app.url + "/", timeout=claude_ops.REQUEST_TIMEOUT_S + 10)
        assert status == 200 and 'name="prompt"' in text
        assert seconds < claude_ops.REQUEST_TIMEOUT_S + 4
        assert app.open_files() < 256 - claude_ops.SPARE_FILES // 2
    finally:
        for connection in idle:
            connection.close()


def keep_asking_for_health(port, served, stop):
    """One client that keeps its connection busy with a request a second, as a dashboard tab
    polling would, so that the server never closes it for idleness."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        while not stop.is_set():
            connection.request("GET", "/api/v1/health", headers={"Host": "localhost"})
            connection.getresponse().read()
            served.add(id(connection))
            stop.wait(1)  # pacing the load, well inside the request timeout
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()


def test_the_connection_cap_keeps_files_for_a_session_when_clients_crowd_in(
        app_with_file_limit, fake, tmp_path):
    gate = fake.gate("go")
    fake.plan([{"print": INIT}, {"wait_for_file": gate}, {"print": result()}])
    app = app_with_file_limit((256, 256), CLAUDEOPS_RUN_ON_START="true", CLAUDEOPS_INTERVAL="1")
    wait_for(lambda: fake.runs(), message="the first scheduled session")
    cap, served, stop = claude_ops.connection_limit(256), set(), gevent.event.Event()
    clients = [gevent.spawn(keep_asking_for_health, app.port, served, stop) for _ in range(300)]
    try:
        wait_for(lambda: len(served) >= cap, timeout=30, message="as many clients as the cap")
        open(gate, "w").close()  # the first session ends; the second starts a second later
        database = sqlite3.connect(tmp_path / "state" / "claudeops.db")
        second = wait_for(lambda: database.execute(
            "SELECT status, error FROM sessions WHERE id = 2 AND status != 'running'").fetchone(),
            timeout=30, message="the second session to end")
        database.close()
        assert second == ("completed", None)
        assert len(served) == cap
    finally:
        stop.set()
        gevent.killall(clients)
