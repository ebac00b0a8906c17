#!/usr/bin/env python3
"""Checks the gdb pretty-printers (tools/gdb/reprise_printers.py) on one value of each public type.

Usage: printers_test.py PRINTERS_PROGRAM REPRISE_PRINTERS_PY

Runs printers_program under gdb in batch mode, the printers loaded alone with `source`, stops in
printers_here(), goes up to the frame that holds the values and prints each: Result (ok, error,
void), Error with an errno, Address (IPv4, IPv6, empty), Duration, Instant, Deadline, a live
Connection and an empty one, a Listener, a finished Task with its value, a parked one and an
empty one. Exits 77 (a skip) when gdb is missing or may not trace (ptrace denied), saying why.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, report  # noqa: E402

TIMEOUT_S = 60
SKIP = 77

# (expression, what its line must hold after "$N = ", what the check says)
EXPECTED = [
    ("ok_int", "ok = {value = 42}", "Result<int> ok shows its value"),
    ("timed_out", "error = {error = timed_out}", "Result<int> error shows its Error"),
    ("ok_text", 'ok = {value = "hello"}', "Result<std::string> ok shows the string"),
    ("ok_void", "ok", "Result<void> ok"),
    ("reset", "error = {error = reset (ECONNRESET 104)}", "Result<void> error, its errno by name"),
    ("denied", "io (EACCES 13)", "Error with its errno"),
    ("v4", "127.0.0.1:6379", "Address IPv4"),
    ("v6", "[::1]:80", "Address IPv6 in brackets"),
    ("nowhere", "(empty)", "an empty Address"),
    ("short_wait", "1.5 s (1500000000 ns)", "Duration in seconds and ns"),
    ("tiny", "250 ns", "a Duration under a microsecond"),
    ("never", "never", "Deadline never"),
    ("none", "(none)", "an empty Connection"),
    ("empty_task", "(none)", "an empty Task"),
]


def main():
    program, printers = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    gdb = shutil.which("gdb")
    if gdb is None:
        print("skip: gdb is not installed (./dev installs it)")
        return SKIP
    probe = subprocess.run([gdb, "-q", "-batch", "-ex", "run", "--args", "/bin/true"], capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    if "exited normally" not in probe.stdout + probe.stderr:
        print(f"skip: gdb cannot run a program here (ptrace denied?): {(probe.stdout + probe.stderr).strip()[-300:]}")
        return SKIP
    commands = ["source " + printers, "break printers_here", "run", "up"]
    names = [e for e, _, _ in EXPECTED] + ["started", "soon", "server_side", "listener", "answer", "sleeper"]
    # str() of a value is what `print` shows, printers applied; one marked line each.
    commands += [f"python print('@{n} = ' + str(gdb.parse_and_eval('{n}')))" for n in names]
    commands += ["print/r ok_int", "info locals"]
    argv = [gdb, "-q", "-batch", "-nx"]
    for c in commands:
        argv += ["-ex", c]
    p = subprocess.run(argv + ["--args", program], capture_output=True, text=True, timeout=TIMEOUT_S)
    out = p.stdout
    printed = {}
    for line in out.splitlines():
        if line.startswith("@") and " = " in line:
            name, value = line[1:].split(" = ", 1)
            printed[name] = value
    check(all(n in printed for n in names), "gdb printed every value asked for", out + p.stderr[-2000:])
    for name, want, what in EXPECTED:
        check(printed.get(name) == want, f"{what}: {name} = {want}", f"got: {printed.get(name)!r}")
    check(printed.get("started", "").startswith("loop time ") and printed.get("started", "").endswith(" s"),
          "Instant as loop time in seconds", printed.get("started"))
    check(printed.get("soon", "").startswith("at loop time "), "Deadline at a loop time", printed.get("soon"))
    conn = printed.get("server_side", "")
    check(conn.startswith("connection ") and " 127.0.0.1:" in conn and " <- 127.0.0.1:" in conn,
          "a live Connection: its id and both addresses", conn)
    check(printed.get("listener", "").startswith("ok = {value = listener ") and "127.0.0.1:" in printed.get("listener", ""),
          "a Listener (in a Result): its id and address", printed.get("listener"))
    check(printed.get("answer", "").startswith("task ") and printed["answer"].endswith("'answer' finished = {value = 7}"),
          "a finished Task<int>: id, name and value", printed.get("answer"))
    check(printed.get("sleeper", "").startswith("task ") and "'sleeper' not finished" in printed.get("sleeper", ""),
          "a parked Task<void>: id, name, not finished", printed.get("sleeper"))
    check("v_ = " in out, "print/r still shows the raw fields", out[-1500:])
    check("short_wait = 1.5 s (1500000000 ns)" in out and "v4 = 127.0.0.1:6379" in out,
          "info locals uses the printers", out[-3000:])
    return report("printers_test")


if __name__ == "__main__":
    sys.exit(main())
