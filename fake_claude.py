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
        """What each run was given: argv, pid, pgid, the time it started, its environment's
        names and its stdin."""
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
              "started": time.time(), "environ": sorted(os.environ)}
    plan_path = os.environ["FAKE_CLAUDE_PLAN"]
    with open(plan_path) as plan_file:
        plan = json.load(plan_file)
    if not plan.get("skip_stdin"):
        record["stdin"] = sys.stdin.read()
    note(record)
    for step in plan["steps"]:
        kind, value = next(iter(step.items()))
        run_step(kind, value, os.path.dirname(plan_path))
