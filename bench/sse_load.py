"""SSE clients for the benchmark, in their own process so that they never take the app's time.

  python bench/sse_load.py --port P --path /sessions/N/stream --clients 200 --lines 20000

Opens the clients on one epoll loop (HTTP/1.1, chunked bodies decoded), prints "ready" once every
client has the CLI's init line, then reads until each has `event: done`. Every flood line carries
"t=<emit time> n=<seq>": a client must see n = 0, 1, 2, ... with no gap, duplicate or reordering,
and each line's latency is its arrival time minus its emit time. The last line printed is a JSON
summary. bench.py also uses `EventStream` on its own for single streams.
"""

import argparse
import json
import math
import re
import resource
import selectors
import socket
import time
from array import array

RECV_BYTES = 256 * 1024
# What the fake CLI prints, wherever the app's HTML puts it.
FLOOD_LINE = re.compile(rb"t=([0-9]+\.[0-9]+) n=([0-9]+)")
DONE_EVENT = re.compile(rb"event: done\ndata: ([a-z]+)\n")
INIT_MARKER = b"bench-fake"  # the fake's model and version in its init line


class EventStream:
    """One GET of an event stream on a raw socket: feed it what the socket gives, and it hands
    back the event-stream text, complete events only, with the HTTP framing taken off."""

    def __init__(self, port, path, timeout_s=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.status = None
        self.raw = bytearray()
        self.chunk_left = 0      # bytes of the current chunk's data still to come
        self.body_ended = False
        self.events = bytearray()  # decoded text not yet ending on an event boundary

    def feed(self, data):
        """Complete events decoded from `data` and what came before it (bytes, maybe empty)."""
        self.raw += data
        if self.status is None:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return b""
            head = bytes(self.raw[:end]).lower()
            self.status = int(head.split(None, 2)[1])
            if b"transfer-encoding: chunked" not in head:
                raise ValueError(f"expected a chunked event stream, got status {self.status}")
            del self.raw[:end + 4]
        self.unchunk()
        cut = self.events.rfind(b"\n\n")
        if cut < 0:
            return b""
        complete = bytes(self.events[:cut + 2])
        del self.events[:cut + 2]
        return complete

    def unchunk(self):
        position = 0
        while position < len(self.raw):
            if self.chunk_left == 0:
                line_end = self.raw.find(b"\r\n", position)
                if line_end < 0:
                    break
                if line_end == position:  # the CRLF that closes the previous chunk's data
                    position += 2
                    continue
                size = int(bytes(self.raw[position:line_end]).split(b";")[0], 16)
                position = line_end + 2
                if size == 0:
                    self.body_ended = True
                    break
                self.chunk_left = size
            taken = min(self.chunk_left, len(self.raw) - position)
            self.events += self.raw[position:position + taken]
            self.chunk_left -= taken
            position += taken
        del self.raw[:position]

    def read_until(self, pattern, deadline):
        """Reads (blocking) until `pattern` is in the decoded events; returns the arrival time and
        the events so far, or (None, events) at the end of the stream or the deadline."""
        seen = bytearray()
        while time.monotonic() < deadline and not self.body_ended:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.sock.recv(RECV_BYTES)
            except socket.timeout:
                break
            arrived = time.time()
            if not data:
                break
            seen += self.feed(data)
            if pattern.search(seen):
                return arrived, bytes(seen)
        return None, bytes(seen)

    def close(self):
        self.sock.close()


class FloodClient:
    """One of the many followers of the flooded session, and what it has seen so far."""

    def __init__(self, port, path):
        self.stream = EventStream(port, path)
        self.stream.sock.setblocking(False)
        self.has_init = False
        self.next_number = 0
        self.problem = None
        self.done_status = None
        self.ended = False

    def take(self, data, arrived, latencies):
        try:
            events = self.stream.feed(data)
        except ValueError as exc:
            self.problem, self.ended = str(exc), True
            return
        if not events:
            return
        if not self.has_init and INIT_MARKER in events:
            self.has_init = True
        found = FLOOD_LINE.findall(events)
        if found:
            numbers = [int(number) for _, number in found]
            expected = range(self.next_number, self.next_number + len(numbers))
            if self.problem is None and numbers != list(expected):
                wrong = next(at for at, number in enumerate(numbers) if number != expected[at])
                self.problem = f"expected line {expected[wrong]}, got {numbers[wrong]}"
            self.next_number = numbers[-1] + 1
            latencies.extend([arrived - float(emitted) for emitted, _ in found])
        done = DONE_EVENT.search(events)
        if done:
            self.done_status = done.group(1).decode()
            self.ended = True


def percentile(ordered, fraction):
    """Nearest-rank percentile of a sorted sequence."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def run(port, path, client_count, expected_lines, ready_timeout_s, timeout_s):
    latencies = array("d")
    selector = selectors.DefaultSelector()
    clients = []
    for _ in range(client_count):
        client = FloodClient(port, path)
        selector.register(client.stream.sock, selectors.EVENT_READ, client)
        clients.append(client)
    started = time.monotonic()
    ready_deadline = started + ready_timeout_s
    deadline = started + timeout_s
    announced = False
    open_count = client_count
    while open_count and time.monotonic() < deadline:
        if not announced and (all(c.has_init or c.ended for c in clients)
                              or time.monotonic() > ready_deadline):
            print("ready" if all(c.has_init for c in clients) else "not-ready", flush=True)
            announced = True
        for key, _ in selector.select(timeout=0.05):
            client = key.data
            try:
                data = client.stream.sock.recv(RECV_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                data, client.problem = b"", client.problem or f"socket error: {exc}"
            arrived = time.time()
            if data:
                client.take(data, arrived, latencies)
            if not data or client.ended:
                client.ended = True
                selector.unregister(client.stream.sock)
                client.stream.close()
                open_count -= 1
    reading_cpu_s, reading_wall_s = time.process_time(), time.monotonic() - started
    if not announced:
        print("not-ready", flush=True)
    for client in clients:
        if not client.ended:
            client.problem = client.problem or "still open at the time limit"
            client.stream.close()
    ordered = sorted(latencies)
    complete = [c for c in clients if c.problem is None and c.done_status is not None
                and c.next_number == expected_lines]
    problems = sorted({c.problem or (f"got {c.next_number} lines, done={c.done_status}")
                       for c in clients if c not in complete})
    return {
        "clients": client_count,
        "complete_clients": len(complete),
        "lines_received": len(ordered),
        "lines_expected": expected_lines * client_count,
        "fewest_lines": min(c.next_number for c in clients),
        "problems": problems[:5],
        "latency_ms": {name: round(percentile(ordered, fraction) * 1000, 1) if ordered else None
                       for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                              ("max", 1.0))},
        "client_cpu_s": round(reading_cpu_s, 2),
        "wall_s": round(reading_wall_s, 2),
    }


def raise_descriptor_limit():
    """A thousand clients need more sockets than the usual soft limit of 1,024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    raise_descriptor_limit()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--lines", type=int, required=True, help="flood lines each client expects")
    parser.add_argument("--ready-timeout", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    summary = run(args.port, args.path, args.clients, args.lines, args.ready_timeout, args.timeout)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
