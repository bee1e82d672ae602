"""What the tests of claude-ops stand on: waiting on conditions, readers of an app's state, a
session held open by the fake CLI, the app as a program, an SSE client, a browser page and
axe-core's check of it, and a loopback stand-in of the Messages API. The fake `claude` is fake_claude.py; the fixtures that put
these together are in conftest.py."""

import base64
import contextlib
import datetime
import gzip
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gevent
import gevent.pywsgi
import webtest

import claude_ops
from fake_claude import INIT, hold, result

HERE = os.path.dirname(os.path.abspath(__file__))
IN_CI = os.environ.get("CI") == "true"


# Waiting ##########################################################################################
# On conditions with deadlines; sleeping is only for letting time pass when time is the subject.

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


def let_time_pass(seconds):
    """For tests of the schedule and of time windows, where the clock moving on is the point."""
    gevent.sleep(seconds)


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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# An app in this process ###########################################################################
# Built by the make_app fixture; these read it the way a browser or the operator would.

def browser_client(app):
    return webtest.TestApp(app.web, extra_environ={"HTTP_HOST": "localhost"})


def trigger(client, prompt, status=200, **headers):
    """Run now, as the dashboard's form posts it."""
    headers.setdefault("HX-Request", "true")
    return client.post("/sessions/trigger", {"prompt": prompt}, headers=headers, status=status)


def basic(password, user="admin"):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def rows(app):
    return app.store.sessions_page(limit=1000)


def finished(app, session_id):
    session = app.store.session(session_id)
    return session if session and session["status"] != "running" else None


def log_records(app, session):
    path = os.path.join(app.config.results_dir, session["log_file"])
    with open(path) as log_file:
        return [json.loads(line) for line in log_file]


def transcript_entries(app, session_id=1):
    page = browser_client(app).get(f"/sessions/{session_id}")
    return [(entry.select_one(".label").text, entry.select_one(".text").text)
            for entry in page.html.select("#transcript .entry")]


def subscriber_count(app):
    """Browsers following a live transcript of `app`, across its sessions."""
    return sum(len(transcript.subscribers) for transcript in app.hub.live.values())


def iso_ago(**delta):
    return claude_ops.iso(claude_ops.utc_now() - datetime.timedelta(**delta))


def write_cooldown(app, services):
    with open(os.path.join(app.config.state_dir, "cooldown.json"), "w") as cooldown:
        json.dump({"services": services, "last_run": None, "last_daily_digest": None}, cooldown)


# A held session ###################################################################################

class HeldSession:
    """A running session whose fake CLI waits at each hold of its plan until the test lets it go
    on, so that a test decides how long it runs, and "after it started" and "after it ended" can
    be seconds apart."""

    def __init__(self, app, fake, session_id, holds):
        self.app, self.fake, self.id = app, fake, session_id
        self.holds = holds    # names not yet released, in the plan's order
        self.session = None   # its final row, once it has ended

    def release(self, name=None):
        """Let the CLI go on from hold `name` (the next one by default); returns the time."""
        name = name or self.holds[0]
        self.holds.remove(name)
        released = time.time()
        self.fake.release(name)
        return released

    def wait_held(self, name):
        wait_for(lambda: self.fake.reached(name), message=f"the CLI to reach its hold {name!r}")

    def end(self):
        """Release what is still held and wait for the session's final row."""
        for name in list(self.holds):
            self.release(name)
        self.session = wait_for(lambda: finished(self.app, self.id), timeout=30,
                                message=f"held session {self.id} to end")
        return self.session


@contextlib.contextmanager
def hold_session(make_app, fake, steps=None, prompt="held", scheduled=False, app=None,
                 **settings):
    """An app (make_app(**settings), or `app` when given) running one session of the fake
    following `steps`, by default init, a hold named "go", a result. The session is ad hoc with
    `prompt`, or the scheduled run at start. The block starts once the CLI is at its first hold;
    leaving the block releases every hold and waits for the session to end."""
    steps = steps or [{"print": INIT}, hold(), {"print": result()}]
    fake.plan(steps)
    app = app or make_app(run_on_start=scheduled, **settings)
    if scheduled:
        session_id = wait_for(lambda: rows(app), message="the scheduled session")[-1]["id"]
    else:
        session_id = app.scheduler.trigger_adhoc(prompt).get(timeout=15)
    held = HeldSession(app, fake, session_id, [step["hold"] for step in steps if "hold" in step])
    if held.holds:
        held.wait_held(held.holds[0])
    yield held
    held.end()


# The app as a program #############################################################################

def run_program(args, environ, timeout=30):
    return subprocess.run([sys.executable, os.path.join(HERE, "claude_ops.py"), *args],
                          env=environ, capture_output=True, text=True, timeout=timeout)


class AppProcess:
    """claude_ops.py in a subprocess, as a user runs it."""

    def __init__(self, tmp_path, fake, cwd=None, **settings):
        self.cwd = cwd
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
                cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=stderr)
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


# Server-sent events ###############################################################################

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


# A browser page ###################################################################################
# Debian's Chromium driven by Playwright (the browser fixture in conftest.py launches it).

CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # Anything not on loopback goes to a dead proxy and fails: nothing leaves.
                 "--proxy-server=http://127.0.0.1:9"]
PHONE, LAPTOP = {"width": 375, "height": 812}, {"width": 1280, "height": 800}


class BrowserPage:
    """A fresh browser context at a viewport, recording console errors and every request."""

    def __init__(self, browser, viewport):
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(15_000)
        self.console_errors, self.requests = [], []
        self.page = self.new_tab()

    def new_tab(self):
        """Another page of the same browser context, which shares its connections per origin."""
        page = self.context.new_page()
        page.on("console", lambda message: message.type == "error"
                and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))
        return page

    def foreign_requests(self):
        return [url for url in self.requests
                if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost")
                and not url.startswith(("data:", "about:"))]

    def scrolls_sideways(self):
        return self.page.evaluate(
            "document.documentElement.scrollWidth > document.documentElement.clientWidth")

    def close(self):
        self.context.close()


def unexpected_console_errors(page, allowed_statuses=()):
    """Console errors, less the browser's own note on a status the test asked for."""
    allowed = tuple(f"status of {status}" for status in allowed_statuses)
    return [text for text in page.console_errors if not (allowed and any(a in text for a in allowed))]


# axe-core, from npm beside the CLI (the README's test command installs both), checks a page as
# it stands in Chromium against WCAG 2.x A and AA and axe's best practices.
AXE_CORE_VERSION = "4.14.1"
AXE_JS = os.path.join(HERE, ".cli", "node_modules", "axe-core", "axe.min.js")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def serious_accessibility_violations(page):
    """What axe-core finds on a Playwright page whose impact is serious or critical, one dict a
    rule: its id, impact, help and the selectors of the elements that break it. axe-core goes in
    as the browser's own evaluation: the app's CSP refuses an inline <script> (add_script_tag),
    and a context that bypasses CSP would render the pages differently from a user's."""
    with open(AXE_JS) as axe_js:
        page.evaluate(axe_js.read())
    return page.evaluate("""async tags => {
        const found = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                               resultTypes: ["violations"]});
        return found.violations
            .filter(rule => rule.impact === "serious" || rule.impact === "critical")
            .map(rule => ({id: rule.id, impact: rule.impact, help: rule.help,
                           targets: rule.nodes.map(node => node.target.join(" ") + "  "
                               + node.any.concat(node.all, node.none).map(check => check.message)
                                   .join("; "))}));
    }""", AXE_TAGS)


def describe_violations(violations):
    return "\n".join(f"{rule['id']} ({rule['impact']}): {rule['help']}\n    "
                     + "\n    ".join(rule["targets"]) for rule in violations)


# The genuine Claude Code CLI ######################################################################
# Installed from npm at a pinned version; it talks to MessagesAPI on loopback, never further.

CLAUDE_CLI_VERSION = "2.1.331"
# The npm half of the README's test command: the CLI and axe-core, pinned.
NPM_TEST_INSTALL = ("npm install --prefix .cli --no-audit --no-fund "
                    f"@anthropic-ai/claude-code@{CLAUDE_CLI_VERSION} axe-core@{AXE_CORE_VERSION}")
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
