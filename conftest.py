"""Fixtures of the claude-ops tests: a fake `claude` per test, apps built in this process or run as
a program, a session held open, Debian's Chromium and axe-core, and the genuine Claude Code CLI.
What they stand on is in harness.py and fake_claude.py."""

# As in claude_ops.py: gevent patches the standard library before anything else imports it.
from gevent import monkey

monkey.patch_all()

import dataclasses
import functools
import os
import signal
import subprocess

import pytest

import claude_ops
from fake_claude import FakeClaude
from harness import (AXE_JS, CHROMIUM, CHROMIUM_ARGS, CLAUDE_CLI_VERSION, IN_CI, NPM_TEST_INSTALL,
                     REAL_CLAUDE, AppProcess, BrowserPage, finished, hold_session,
                     serious_accessibility_violations, wait_for)


def skip_or_fail(reason):
    """A missing browser, CLI or axe-core skips its tests on a developer's machine and fails them
    in CI."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


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
    """make_app(start=True, serve=False, environ=None, **settings): a ClaudeOps with its state in
    tmp_path and the fake first on PATH; started (its scheduler), or served on a loopback port
    (`app.port`), or neither. Stopped at the end of the test."""
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


@pytest.fixture
def held_session(make_app, fake):
    """held_session(steps=None, prompt="held", scheduled=False, **settings): a context manager
    around one session held open by the fake CLI; see harness.hold_session and HeldSession."""
    return functools.partial(hold_session, make_app, fake)


@pytest.fixture
def run_session(make_app, fake):
    """run_session(steps, prompt="check", plan_options=None, **settings): an app that has run one
    ad-hoc session of the fake following `steps` to its end; returns (app, its final row)."""

    def run(steps, prompt="check", plan_options=None, **settings):
        fake.plan(steps, **(plan_options or {}))
        app = make_app(**settings)
        app.scheduler.trigger_adhoc(prompt)
        return app, wait_for(lambda: finished(app, 1),
                             timeout=settings.get("session_timeout_s", 20) + 20,
                             message="the session to end")

    return run


@pytest.fixture
def app_process(tmp_path, fake):
    """app_process(cwd=None, **environ): claude_ops.py started as a program with the fake, in
    the working folder cwd; killed at the end of the test."""
    processes = []

    def start(cwd=None, **settings):
        processes.append(AppProcess(tmp_path, fake, cwd, **settings).start())
        return processes[-1]

    yield start
    for process in processes:
        process.stop()


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        skip_or_fail("browser tests need Debian's chromium (apt-get install chromium)"
                     " and playwright")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True, timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """open_page(viewport): a BrowserPage in a fresh context, closed at the end."""
    pages = []

    def open_at(viewport):
        pages.append(BrowserPage(browser, viewport))
        return pages[-1]

    yield open_at
    for page in pages:
        page.close()


@pytest.fixture
def accessibility_violations():
    """accessibility_violations(page): axe-core's serious and critical findings on a Playwright
    page (see harness.serious_accessibility_violations)."""
    if not os.path.exists(AXE_JS):
        skip_or_fail(f"axe-core is not installed: {NPM_TEST_INSTALL}")
    return serious_accessibility_violations


@pytest.fixture
def real_cli():
    if not os.path.exists(REAL_CLAUDE):
        skip_or_fail(f"the genuine CLI is not installed: {NPM_TEST_INSTALL}")
    version = subprocess.run([REAL_CLAUDE, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith(CLAUDE_CLI_VERSION), version.stdout + version.stderr
    return REAL_CLAUDE


@pytest.fixture
def run_real(make_app, real_cli, tmp_path):
    """run_real(api, prompt, **environ): one ad-hoc session through claude-ops with the genuine
    CLI against `api` (a MessagesAPI); returns the app and the session's final row."""

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
