"""Profiles of the benchmark's two heaviest requests, made in-process with cProfile: the page of a
finished session of 1,000,000 ordinary lines, and its stream of a 100,000-line session replayed
from line 0.

  .venv/bin/python bench/profile_pages.py --data DIR [--app PATH] [--top 25]

DIR is a data folder of `bench.py --data DIR`; the sessions are built there first if it has none.
The app is built from its public surface (load_config, ClaudeOps) on that data, and each request
goes straight to its WSGI application (no server, no socket), once without the profiler for its
time and once under it. Prints, for each request, the functions with the most cumulative time
and with the most time of their own.
"""

from gevent import monkey

monkey.patch_all()

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
import wsgiref.util

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_APP = os.path.join(os.path.dirname(BENCH_DIR), "claude_ops.py")
BIG_LOG_LINES, REPLAY_LOG_LINES = 1_000_000, 100_000


def long_logs(data_dir, app_script):
    """(state folder, {lines: session id}) of bench.py's long-log sessions, built if missing."""
    folder = os.path.join(data_dir, "long-logs")
    if not os.path.exists(os.path.join(folder, "sessions.json")):
        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "bench.py"), "--runs", "0",
                        "--only", "long_page", "--data", data_dir, "--app", app_script],
                       check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(folder, "sessions.json")) as index:
        sessions = {int(lines): session_id for lines, session_id in json.load(index).items()}
    return os.path.join(folder, "state"), sessions


def get(web, path):
    """GET `path` from a WSGI application; returns the status and the body's size in bytes."""
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="GET", PATH_INFO=path, QUERY_STRING="",
                   HTTP_HOST="127.0.0.1", HTTP_ACCEPT="text/event-stream, text/html")
    statuses = []
    body = web(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        size = sum(len(chunk) for chunk in body)
    finally:
        getattr(body, "close", lambda: None)()
    return statuses[0], size


def profile(web, path, top):
    started = time.perf_counter()
    status, size = get(web, path)
    plain_s = time.perf_counter() - started
    profiler = cProfile.Profile()
    profiler.enable()
    get(web, path)
    profiler.disable()
    out = io.StringIO()
    print(f"GET {path}: {status}, {size / 1024:,.0f} KiB, {plain_s * 1000:,.0f} ms without the"
          " profiler", file=out)
    for order in ("cumulative", "tottime"):
        print(f"\n-- the {top} functions with the most {order} time --", file=out)
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", required=True)
    parser.add_argument("--app", metavar="PATH", default=DEFAULT_APP)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    app_script = os.path.abspath(args.app)
    state_dir, sessions = long_logs(os.path.abspath(args.data), app_script)
    sys.path.insert(0, os.path.dirname(app_script))
    import claude_ops
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"),
               "ANTHROPIC_API_KEY": "sk-ant-bench-dummy-0000000000000000",
               "CLAUDEOPS_STATE_DIR": state_dir,
               "CLAUDEOPS_RESULTS_DIR": os.path.join(os.path.dirname(state_dir), "results"),
               "CLAUDEOPS_RUN_ON_START": "false", "CLAUDEOPS_RETENTION_DAYS": "30"}
    app = claude_ops.ClaudeOps(claude_ops.load_config([], environ), environ)
    for path in (f"/sessions/{sessions[BIG_LOG_LINES]}",
                 f"/sessions/{sessions[REPLAY_LOG_LINES]}/stream"):
        print(profile(app.web, path, args.top), flush=True)


if __name__ == "__main__":
    main()
