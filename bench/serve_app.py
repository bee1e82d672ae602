"""claude_ops.py served for the benchmark's uncached dashboard measure.

  python bench/serve_app.py APP_DIR SESSION_ID

Builds the app from its public surface only (load_config, ClaudeOps, listen), from the same
CLAUDEOPS_* environment `python claude_ops.py` reads, and serves it the same way. One thing is
added: before each GET /, the response of session SESSION_ID (the latest) changes through the
app's own store (its update_session), so the dashboard shows something new on every request and
is rendered for each one, never served from a cache. The update is timed on its own before
serving (printed on stderr as "row update: N us"), so that the report can say what share of a
request it is.
"""

import sys

from gevent import monkey

monkey.patch_all()

import gc
import itertools
import os
import signal
import time

import gevent
import gevent.event

UPDATE_TIMING_ROUNDS = 500
RESPONSE = ("Checked 12 services: all healthy but pihole, which answered DNS slowly (420 ms) but "
            "within limits. Disk on /srv is at 71 %. Nothing needs a human. Check {}.")


def changing_dashboard(wsgi_app, change):
    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/" and environ.get("REQUEST_METHOD") == "GET":
            change()
        return wsgi_app(environ, start_response)
    return app


def main():
    app_dir, session_id = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    sys.path.insert(0, app_dir)
    import claude_ops
    config = claude_ops.load_config([], os.environ)
    listener = claude_ops.listen(config.host, config.port)
    app = claude_ops.ClaudeOps(config, dict(os.environ))
    counter = itertools.count()

    def change():
        app.store.update_session(session_id, response=RESPONSE.format(next(counter)))

    started = time.perf_counter()
    for _ in range(UPDATE_TIMING_ROUNDS):
        change()
    update_us = (time.perf_counter() - started) * 1e6 / UPDATE_TIMING_ROUNDS
    print(f"row update: {update_us:.1f} us", file=sys.stderr, flush=True)
    app.web = changing_dashboard(app.web, change)
    app.start(listener)
    gc.collect()  # as main() does once the app has started
    gc.freeze()
    stopped = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopped.set)
    stopped.wait()
    app.stop()


if __name__ == "__main__":
    main()
