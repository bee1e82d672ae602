"""The benchmark's no-freeze probe, in its own process so that it never takes the app's time.

  python bench/health_probe.py --port P [--interval-ms 5]

Asks GET /api/v1/health over one keep-alive connection, then waits the interval, again and again,
timing each answer from the request's first byte sent to the response's last byte read. The app
serves everything on one event loop, so an answer is slow exactly when something else holds the
loop: the slowest answer is the longest freeze the probe ran into (less at most one interval).
Prints "ready" after the first answer; a line on stdin stops it, after the answer in flight, and
it prints a JSON summary: answers, failures, and the slowest, p99 and median answer in ms.
"""

import argparse
import http.client
import json
import math
import select
import sys
import time

REQUEST_TIMEOUT_S = 60


def percentile(ordered, fraction):
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else None


def ask(connection):
    """Seconds one health request took, or None when it failed."""
    started = time.perf_counter()
    try:
        connection.request("GET", "/api/v1/health")
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        connection.close()  # http.client reconnects on the next request
        return None
    return time.perf_counter() - started if response.status == 200 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-ms", type=float, default=5)
    args = parser.parse_args()
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=REQUEST_TIMEOUT_S)
    answers, failures, started = [], 0, time.monotonic()
    while True:
        took = ask(connection)
        if took is None:
            failures += 1
        else:
            if not answers:
                print("ready", flush=True)
            answers.append(took)
        if select.select([sys.stdin], [], [], args.interval_ms / 1000)[0]:
            break
    ordered = sorted(answers)
    print(json.dumps({
        "answers": len(answers), "failures": failures,
        "seconds": round(time.monotonic() - started, 2),
        **{name: round(percentile(ordered, fraction) * 1000, 2) if ordered else None
           for name, fraction in (("p50_ms", 0.5), ("p99_ms", 0.99), ("max_ms", 1.0))},
    }), flush=True)


if __name__ == "__main__":
    main()
