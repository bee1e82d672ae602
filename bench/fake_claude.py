"""The fake Claude Code CLI of the benchmark. bench.py runs it through a bash wrapper that first
notes the moment the process started; this script then reads its prompt from stdin as the real
CLI does, notes when it wrote its init line, and prints stream-json the way the plan in
$BENCH_FAKE_PLAN says:

  {"kind": "hold", "hold_s": 0.3}                  init, a pause, a result
  {"kind": "flood", "gate": PATH, "lines_per_s": 2000, "seconds": 10, "report": PATH}
      init, waits for the gate file, then assistant lines "t=<emit time> n=<seq>" at a steady
      rate, then a result; writes what it managed (count, first and last emit time) to report
  {"kind": "bulk", "lines": 400, "line_bytes": 262144}
      init, then large tool_result lines as fast as the pipe takes them, then a result
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


def bulk(plan):
    # Realistic tool output: many short lines of text (escaped newlines inside the JSON string).
    text_line = "drwxr-xr-x 2 root root 4096 Nov 24 10:03 /var/lib/docker/volumes/jellyfin_config\n"
    content = (text_line * (plan["line_bytes"] // len(text_line) + 1))[:plan["line_bytes"]]
    for number in range(plan["lines"]):
        emit({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{number}", "content": content}]}})


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
    elif plan["kind"] == "bulk":
        bulk(plan)
    emit(RESULT)


if __name__ == "__main__":
    main()
