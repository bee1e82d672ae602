"""The fake Claude Code CLI of the benchmark. bench.py runs it through a bash wrapper that first
notes the moment the process started; this script then reads its prompt from stdin as the real
CLI does, notes when it wrote its init line, and prints stream-json the way the plan in
$BENCH_FAKE_PLAN says:

  {"kind": "hold", "hold_s": 0.3}                  init, a pause, a result
  {"kind": "flood", "gate": PATH, "lines_per_s": 2000, "seconds": 10, "report": PATH}
      init, waits for the gate file, then assistant lines "t=<emit time> n=<seq>" at a steady
      rate, then a result; writes what it managed (count, first and last emit time) to report
  {"kind": "ordinary", "lines": 100000}
      init, then ordinary lines of about 1 KB as fast as the pipe takes them, shaped like the real
      CLI's (an assistant's text, a Bash tool call, its output, in turn), then a result
"""

import json
import os
import sys
import time

GATE_WAIT_LIMIT_S = 60
INIT = {"type": "system", "subtype": "init", "session_id": "bench", "model": "bench-fake",
        "cwd": "/srv", "tools": ["Bash", "Read", "Grep"], "claude_code_version": "bench-fake"}
RESULT = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 1000,
          "num_turns": 1, "result": "All services are healthy.", "total_cost_usd": 0.001,
          "session_id": "bench"}


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def flood(plan):
    deadline = time.monotonic() + GATE_WAIT_LIMIT_S
    while not os.path.exists(plan["gate"]) and time.monotonic() < deadline:
        time.sleep(0.005)
    total = int(plan["lines_per_s"] * plan["seconds"])
    interval_s = 1 / plan["lines_per_s"]
    start = time.monotonic()
    first_emit = last_emit = None
    for number in range(total):
        delay = start + number * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        last_emit = time.time()
        first_emit = first_emit or last_emit
        text = f"t={last_emit:.6f} n={number}"
        sys.stdout.write('{"type":"assistant","message":{"role":"assistant","content":'
                         '[{"type":"text","text":"' + text + '"}]}}\n')
        sys.stdout.flush()
    with open(plan["report"], "w") as report:
        json.dump({"lines": total, "first_emit": first_emit, "last_emit": last_emit}, report)


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


def ordinary(plan):
    shapes = ordinary_lines()
    batch = []
    for number in range(plan["lines"]):
        batch.append(shapes[number % len(shapes)].format(n=number))
        if len(batch) == 256:
            sys.stdout.write("".join(batch))
            batch.clear()
    sys.stdout.write("".join(batch))
    sys.stdout.flush()


def main():
    sys.stdin.read()
    with open(os.environ["BENCH_FAKE_PLAN"]) as plan_file:
        plan = json.load(plan_file)
    init_emitted = time.time()
    emit(INIT)
    with open(os.environ["BENCH_CLI_EVENTS"], "a") as events:
        events.write(f"init {init_emitted:.6f}\n")
    if plan["kind"] == "hold":
        time.sleep(plan["hold_s"])
    elif plan["kind"] == "flood":
        flood(plan)
    elif plan["kind"] == "ordinary":
        ordinary(plan)
    emit(RESULT)


if __name__ == "__main__":
    main()
