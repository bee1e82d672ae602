"""Page loads for the benchmark, in their own process so that they never take the app's time.

  python bench/page_load.py --port P --path /sessions/2 [--clients 10] [--each 1]

Each client (a thread of its own: they only wait on sockets) opens one keep-alive connection and
GETs the path `each` times, reading every body to its end. Prints a JSON summary: every load's
time in ms, the bytes of one body, and the statuses seen.
"""

import argparse
import http.client
import json
import threading
import time

REQUEST_TIMEOUT_S = 300


def load(port, path, each, times, statuses, sizes):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        for _ in range(each):
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            statuses.append(response.status)
            sizes.append(len(body))
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--each", type=int, default=1)
    args = parser.parse_args()
    times, statuses, sizes = [], [], []
    clients = [threading.Thread(target=load, args=(args.port, args.path, args.each, times,
                                                   statuses, sizes))
               for _ in range(args.clients)]
    started = time.monotonic()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    print(json.dumps({"ms": [round(ms, 2) for ms in times], "statuses": sorted(set(statuses)),
                      "loads": len(times), "body_bytes": max(sizes, default=0),
                      "wall_s": round(time.monotonic() - started, 2)}), flush=True)


if __name__ == "__main__":
    main()
