"""A fake `claude` for the tests and the benchmark.

Run as a program (through the launcher FakeClaude writes), it reads its prompt from stdin as the
real CLI does, notes what it was given, and follows a plan: a JSON list of steps, one kind each,
that print stream-json, wait, misbehave or exit. Imported, it gives FakeClaude, which sets the
fake up in a folder, and the records a plan is made of. Standard library only: the launcher runs
it with `python -S`, so that it starts quickly (the benchmark times a trigger to its first line).

Steps:
  {"print": event or text}    a line on stdout (an event is dumped as JSON)
  {"stderr": text}            a line on stderr
  {"hold": name}              notes that it got there, then waits until the file `name` exists
                              (relative to the plan's folder); FakeClaude.release(name) makes it
  {"mark": name}              notes the time under `name`
  {"sleep": seconds}
  {"flood_stdout": n}         n assistant lines "line 0" ... "line n-1", as fast as the pipe takes
  {"paced_stdout": {"per_s": r, "seconds": s, "report": path}}
                              r assistant lines a second for s seconds, "t=<emit time> n=<seq>"
                              each; then writes what it managed to `report` as JSON
  {"tool_output": {"lines": n, "line_bytes": b}}
                              n tool_result lines of b bytes of realistic text each
  {"big_line": n}             one tool_result line whose content is n "x"
  {"flood_stderr": n}         about n bytes of stderr in 1 KiB lines
  {"raw_stdout": text}        bytes (latin-1) straight to stdout, newlines and all
  {"child_holds_stdout": s}   starts a child that keeps stdout open for s seconds
  {"ignore_sigterm": true}
  {"hang": true}              starts a child that sleeps, and sleeps too, for ten minutes
  {"exit": code}
A plan with "skip_stdin": true exits or goes on without reading its prompt.
"""

import json
import os
import signal
import sys
import time

# The records a plan prints ######################################################################

INIT = {"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-haiku-4-5",
        "cwd": "/srv", "tools": ["Bash", "Read"], "claude_code_version": "fake"}


def assistant_text(text):
    return {"type": "assistant", "message": {"role": "assistant",
                                             "content": [{"type": "text", "text": text}]}}


def result(text="All services are healthy.", is_error=False, subtype="success", turns=2, cost=0.0187):
    return {"subtype": subtype, "is_error": is_error, "duration_ms": 6120, "num_turns": turns,
            "result": text, "total_cost_usd": cost, "type": "result", "session_id": "s1"}


def hold(name="go"):
    return {"hold": name}


def plan_ok(text="All services are healthy."):
    """A short healthy session: init, a word, a Bash call and its output, a result."""
    return [{"print": INIT}, {"print": assistant_text("Checking Jellyfin.")},
            {"print": {"type": "assistant", "message": {"content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                 "input": {"command": "curl -sI http://jellyfin:8096/health"}}]}}},
            {"print": {"type": "user", "message": {"content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "HTTP/1.1 200 OK"}]}}},
            {"print": result(text)}]


# Setting it up ##################################################################################

LAUNCHER = """#!{python} -S
import sys
sys.path.insert(0, {folder!r})
import fake_claude
fake_claude.main()
"""


class FakeClaude:
    """The fake in `folder`: bin/claude, the plan it follows, and the record of what it did."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.bin_dir = os.path.join(self.folder, "bin")
        os.mkdir(self.bin_dir)
        self.path = os.path.join(self.bin_dir, "claude")
        with open(self.path, "w") as launcher:
            launcher.write(LAUNCHER.format(python=sys.executable,
                                           folder=os.path.dirname(os.path.abspath(__file__))))
        os.chmod(self.path, 0o755)
        self.plan_path = os.path.join(self.folder, "plan.json")
        self.record_path = os.path.join(self.folder, "record.jsonl")
        open(self.record_path, "w").close()
        self.plan(plan_ok())

    def plan(self, steps, **options):
        with open(self.plan_path, "w") as plan_file:
            json.dump(dict(options, steps=steps), plan_file)

    def records(self):
        with open(self.record_path) as record:
            return [json.loads(line) for line in record]

    def runs(self):
        """What each run was given: argv, pid, pgid, the time it started, its environment (names
        and values) and its stdin."""
        return [record for record in self.records() if "argv" in record]

    def children(self):
        return [record["child"] for record in self.records() if "child" in record]

    def marks(self, name):
        return [record["t"] for record in self.records() if record.get("mark") == name]

    def reached(self, name="go"):
        return any(record.get("holding") == name for record in self.records())

    def gate(self, name):
        return os.path.join(self.folder, name)

    def release(self, name="go"):
        open(self.gate(name), "w").close()

    def plan_environ(self):
        return {"FAKE_CLAUDE_PLAN": self.plan_path, "FAKE_CLAUDE_RECORD": self.record_path}

    def environ(self, **extra):
        """A whole environment for the app to run the fake with: it is first on PATH."""
        return dict(PATH=f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}", HOME=self.folder,
                    **self.plan_environ(), **extra)


# Running it #####################################################################################

def emit(event):
    line = event if isinstance(event, str) else json.dumps(event)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def note(record):
    with open(os.environ["FAKE_CLAUDE_RECORD"], "a") as out:
        out.write(json.dumps(record) + "\n")


def wait_for_file(path):
    while not os.path.exists(path):
        time.sleep(0.005)


def paced_stdout(per_s, seconds, report):
    total = int(per_s * seconds)
    start = time.monotonic()
    first_emit = last_emit = None
    for number in range(total):
        delay = start + number / per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        last_emit = time.time()
        first_emit = first_emit or last_emit
        # Written by hand: json.dumps would cost more than the rate leaves.
        sys.stdout.write('{"type":"assistant","message":{"role":"assistant","content":'
                         '[{"type":"text","text":"t=%.6f n=%d"}]}}\n' % (last_emit, number))
        sys.stdout.flush()
    with open(report, "w") as report_file:
        json.dump({"lines": total, "first_emit": first_emit, "last_emit": last_emit}, report_file)


def tool_output(lines, line_bytes):
    # Tool output as it usually is: many short lines of text, as escaped newlines in the JSON.
    text_line = "drwxr-xr-x 2 root root 4096 Nov 24 10:03 /var/lib/docker/volumes/jellyfin_config\n"
    content = (text_line * (line_bytes // len(text_line) + 1))[:line_bytes]
    for number in range(lines):
        emit({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{number}", "content": content}]}})


# The envelope the real CLI puts around each assistant message (ids, model, token usage).
USAGE = {"input_tokens": 4, "cache_creation_input_tokens": 1342, "cache_read_input_tokens": 15871,
         "cache_creation": {"ephemeral_5m_input_tokens": 1342, "ephemeral_1h_input_tokens": 0},
         "output_tokens": 1, "service_tier": "standard"}
ASSISTANT_TEXT = (
    "The jellyfin container answers on :8096 but its health endpoint took {n} ms, and the last "
    "hour of its log shows the library scan restarting after a transcoder timeout. Before "
    "touching anything I will compare the volume's free space with yesterday's figure in the "
    "cooldown file, check whether sonarr or radarr are hammering the same disk, and look at the "
    "container's restart count, so that a restart is only proposed if it is within the limits.")
COMMAND = ("docker ps --format '{{.Names}} {{.Status}}' && df -h /srv /var/lib/docker && "
           "docker logs --since 1h --tail 40 jellyfin 2>&1 | grep -iE 'error|warn|timeout'  # {n}")
OUTPUT = ("jellyfin Up 3 days (healthy)\nsonarr Up 3 days\nradarr Up 3 days\nprowlarr Up 3 days\n"
          "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 1.8T 1.3T 472G 74% /srv\n"
          "[{n}] [WRN] Transcoder: ffmpeg exited with code 1 after 301 s (timeout)\n"
          "[ERR] LibraryMonitor: scan of /srv/media/tv aborted, retrying in 60 s\n")


def ordinary_lines():
    """The three shapes of ordinary line in turn, each a template for str.format(n=<seq>)."""
    envelope = {"parent_tool_use_id": None, "session_id": "9d2c41f7-5e0b-4a8e-b1c3-7f64e2a9d0b5",
                "uuid": "4b1e7c52-{n:08d}-4f0a-9c2d-1e5b7a3f8c60"}

    def assistant(block):
        return dict({"type": "assistant", "message": {
            "id": "msg_01Hc7QmZ{n:08d}bXyKp2Lw", "type": "message", "role": "assistant",
            "model": "claude-haiku-4-5-20251001", "content": [block], "stop_reason": None,
            "stop_sequence": None, "usage": USAGE}}, **envelope)

    tool_id = "toolu_01Rk8sWq{n:08d}VnEe4J"
    shapes = [
        assistant({"type": "text", "text": ASSISTANT_TEXT}),
        assistant({"type": "tool_use", "id": tool_id, "name": "Bash",
                   "input": {"command": COMMAND, "description": "Container status, disk, errors"}}),
        dict({"type": "user", "message": {"role": "user", "content": [
            {"tool_use_id": tool_id, "type": "tool_result", "content": OUTPUT, "is_error": False}]},
            "tool_use_result": {"stdout": OUTPUT, "stderr": "", "interrupted": False,
                                "isImage": False}}, **envelope),
    ]
    # Braces of the JSON itself are doubled so that only {n} and {n:08d} are fields.
    return [json.dumps(shape, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
            .replace("{{n}}", "{n}").replace("{{n:08d}}", "{n:08d}") + "\n" for shape in shapes]


def ordinary_stdout(lines):
    shapes = ordinary_lines()
    batch = []
    for number in range(lines):
        batch.append(shapes[number % len(shapes)].format(n=number))
        if len(batch) == 256:
            sys.stdout.write("".join(batch))
            batch.clear()
    sys.stdout.write("".join(batch))
    sys.stdout.flush()


def start_child(seconds):
    # Imported here: it would add to every run's start-up, which the benchmark measures.
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])
    note({"child": child.pid})


def run_step(kind, value, plan_folder):
    if kind == "print":
        emit(value)
    elif kind == "stderr":
        sys.stderr.write(value + "\n")
        sys.stderr.flush()
    elif kind == "hold":
        note({"holding": value})
        wait_for_file(os.path.join(plan_folder, value))
    elif kind == "wait_for_file":  # a gate by its whole path
        wait_for_file(value)
    elif kind == "mark":
        note({"mark": value, "t": time.time()})
    elif kind == "sleep":
        time.sleep(value)
    elif kind == "flood_stdout":
        for number in range(value):
            emit(assistant_text(f"line {number}"))
    elif kind == "paced_stdout":
        paced_stdout(**value)
    elif kind == "ordinary_stdout":
        ordinary_stdout(value)
    elif kind == "tool_output":
        tool_output(**value)
    elif kind == "big_line":
        emit({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "x" * value}]}})
    elif kind == "flood_stderr":
        chunk = ("e" * 1023 + "\n") * 64
        for _ in range(value // len(chunk)):
            sys.stderr.write(chunk)
        sys.stderr.flush()
    elif kind == "raw_stdout":
        sys.stdout.buffer.write(value.encode("latin-1"))
        sys.stdout.flush()
    elif kind == "child_holds_stdout":
        start_child(value)
    elif kind == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif kind == "hang":
        start_child(600)
        time.sleep(600)
    elif kind == "exit":
        sys.exit(value)
    else:
        raise ValueError(f"the fake claude has no step {kind!r}")


def main():
    record = {"argv": sys.argv[1:], "pid": os.getpid(), "pgid": os.getpgid(0),
              "started": time.time(), "environ": dict(os.environ)}
    plan_path = os.environ["FAKE_CLAUDE_PLAN"]
    with open(plan_path) as plan_file:
        plan = json.load(plan_file)
    if not plan.get("skip_stdin"):
        record["stdin"] = sys.stdin.read()
    note(record)
    for step in plan["steps"]:
        kind, value = next(iter(step.items()))
        run_step(kind, value, os.path.dirname(plan_path))
