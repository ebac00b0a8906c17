#!/usr/bin/env python3
"""Checks `reprise load`: a trace's recorded inbound traffic driven into live servers, their answers compared.

Usage: load_test.py REPRISE_TOOL REPRISE_KV

Records reprise-kv (digests only, and --record-full) under redis-cli commands (one command per
connection, and a session of several commands on one connection, which needs turn-taking) and a
short redis-benchmark; then loads each trace into
  - a fresh reprise-kv: no difference, exit 0 (also at --speed=1 and --speed=5, and --json);
  - Debian's redis-server: differences only at the commands where the servers differ (INFO, TIME,
    CONFIG), named; none once they are --ignore'd;
  - a reprise-kv whose key `a` is preloaded with another value: the difference found at GET a;
  - a closed port: exit 3; bad command lines: exit 2; a truncated trace: no crash.
Exits 77 (a skip) when redis-cli, redis-benchmark or redis-server is missing. Every child runs
under a timeout.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Server, check, free_port, report, run  # noqa: E402

TIMEOUT_S = 60

# One command per redis-cli run (a new connection each).
SINGLE = [
    ["SET", "a", "1"],
    ["GET", "a"],
    ["INCR", "n"],
    ["INFO", "server"],
    ["TIME"],
    ["GET", "missing"],
    ["DEL", "a"],
]
# A session on one connection (redis-cli reads commands from stdin, each after the previous reply).
SESSION = "SET a 1\nMSET k1 v1 k2 v2\nGET a\nINFO\nMGET k1 k2 a\nTIME\nINCRBY n 5\nGET a\nEXISTS k1 nope\n"


def cli(port, *args, stdin=None):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args), input=stdin,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    return p.returncode, p.stdout


def record(kv, tmp, name, full):
    """Records reprise-kv under the client traffic; the trace's path."""
    path = os.path.join(tmp, name)
    argv = [kv, "--port", "0", f"--record={path}"] + (["--record-full"] if full else [])
    with Server(argv) as s:
        for args in SINGLE:
            rc, _ = cli(s.port, *args)
            check(rc == 0, f"{name}: redis-cli {' '.join(args)} while recording")
        rc, out = cli(s.port, stdin=SESSION)
        check(rc == 0 and out.count("\n") >= 9, f"{name}: a redis-cli session while recording", out)
        p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(s.port), "-t", "set,get", "-n", "200",
                            "-c", "4", "-P", "1", "-q"], capture_output=True, text=True, timeout=TIMEOUT_S)
        check(p.returncode == 0, f"{name}: redis-benchmark while recording", p.stderr[-500:])
        status = s.stop()
        check(status == 0, f"{name}: reprise-kv exits 0 on SIGTERM", s.err()[-1000:])
    return path


def load(tool, trace, port, *extra):
    return run([tool, "load", trace, "--to", f"127.0.0.1:{port}", *extra], TIMEOUT_S)


def differing_commands(out):
    """The command names at the first differences the text output names."""
    return set(re.findall(r"first difference: (?:reply #\d+ to |the replies to #\d+\.\.#\d+ \(|write #\d+ of the "
                          r"recorded server, the answer to #\d+ )([A-Za-z]+)", out))


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    tool, kv = sys.argv[1], sys.argv[2]
    for prog in ("redis-cli", "redis-benchmark", "redis-server"):
        if shutil.which(prog) is None:
            print(f"{prog} is not installed: skipped", file=sys.stderr)
            return 77
    with tempfile.TemporaryDirectory(prefix="reprise-load-") as tmp:
        traces = {"digests": record(kv, tmp, "digests.trace", False), "full": record(kv, tmp, "full.trace", True)}
        for label, trace in traces.items():
            # A fresh reprise-kv answers as recorded, except INFO (uptime) and TIME, which are named.
            with Server([kv, "--port", "0"]) as s:
                rc, out, err = load(tool, trace, s.port, "--speed=max")
            named = differing_commands(out)
            check(rc == 1 and named == {"INFO", "TIME"}, f"{label}: a fresh reprise-kv differs at INFO and TIME alone",
                  f"{named}\n{out}{err}")
            for speed in (["--speed=max"], ["--speed=5"]) if label == "digests" else (["--speed=max"],):
                with Server([kv, "--port", "0"]) as s:
                    rc, out, err = load(tool, trace, s.port, *speed, "--ignore", "INFO,TIME")
                check(rc == 0 and "0 differing, 0 failed" in out,
                      f"{label} {speed[0]}: a fresh reprise-kv answers as recorded once INFO, TIME are ignored (exit 0)",
                      out + err)
                check("p99.9" in out and "throughput: target" in out and "not replayed" in out,
                      f"{label} {speed[0]}: latency, throughput and the note on outbound connections are printed", out)
            with Server([kv, "--port", "0"]) as s:
                rc, out, err = load(tool, trace, s.port, "--speed=max", "--json", "--ignore", "info", "--ignore", "time")
            try:
                summary = json.loads(out)
            except ValueError:
                summary = {}
            check(rc == 0 and summary.get("identical") == summary.get("connections") and summary.get("connections", 0) >= 12
                  and summary.get("replies_compared", 0) > 400 and summary["latency_target"]["count"] > 0,
                  f"{label}: --json summarizes every connection as identical", out + err)

            # Redis differs where the servers differ: INFO, TIME, COMMAND (redis-cli's COMMAND DOCS) and
            # CONFIG (redis-benchmark's CONFIG GET), all named; none once they are ignored.
            for ignore in ([], ["--ignore", "INFO", "--ignore", "time,config,command"]):
                port = free_port()
                with Server(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no"], ready=rb"[Rr]eady to accept connections"):
                    rc, out, err = load(tool, trace, port, "--speed=max", *ignore)
                named = differing_commands(out)
                if not ignore:
                    check(rc == 1 and named and named <= {"INFO", "TIME", "CONFIG", "COMMAND"} and {"INFO", "TIME"} <= named,
                          f"{label}: redis-server differs only at INFO, TIME, CONFIG, COMMAND, and they are named",
                          f"{named}\n{out}{err}")
                else:
                    check(rc == 0 and "0 differing, 0 failed" in out and re.search(r"ignored [1-9]", out),
                          f"{label}: with --ignore INFO,TIME,CONFIG,COMMAND redis-server answers as recorded", out + err)

            # A server that answers differently on purpose: `missing` holds a value before the load.
            with Server([kv, "--port", "0"]) as s:
                cli(s.port, "SET", "missing", "other")
                rc, out, err = load(tool, trace, s.port, "--speed=max", "--ignore", "INFO,TIME")
            check(rc == 1 and "first difference: reply #0 to GET missing" in out and "other" in out,
                  f"{label}: a preloaded key is found at the GET that reads it, with the target's value", out + err)
            check("1 differing" in out, f"{label}: only the connection of that GET differs", out)

        trace = traces["digests"]
        # Nothing listens: the target failed, exit 3.
        rc, out, err = load(tool, trace, free_port(), "--speed=max", "--timeout", "5")
        check(rc == 3 and "failed" in out, "a closed port fails every connection (exit 3)", out + err)
        # Bad command lines: exit 2.
        for argv, what in (([tool, "load", trace], "--to"), ([tool, "load", trace, "--to", "nope"], "--to"),
                           ([tool, "load", trace, "--to", "127.0.0.1:1", "--speed", "fast"], "--speed"),
                           ([tool, "load", os.path.join(tmp, "none"), "--to", "127.0.0.1:1"], "none")):
            rc, out, err = run(argv, TIMEOUT_S)
            check(rc == 2 and what in err, f"usage error {' '.join(argv[2:])} exits 2", out + err)
        rc, out, err = run([tool, "load", "--help"], TIMEOUT_S)
        check(rc == 0 and "Turn-taking" in out and "not replayed" in out, "reprise load --help", out)
        # A truncated trace: what it holds is loaded, the damage is said, nothing crashes.
        data = open(trace, "rb").read()
        cut = os.path.join(tmp, "cut.trace")
        for n in (len(data) // 3, len(data) // 2, len(data) - 7):
            with open(cut, "wb") as f:
                f.write(data[:n])
            with Server([kv, "--port", "0"]) as s:
                rc, out, err = load(tool, cut, s.port, "--speed=max")
            check(rc in (0, 1, 2) and "Traceback" not in err and rc >= 0,
                  f"a trace cut at byte {n} is loaded or refused, with no crash (exit {rc})", out[-800:] + err[-800:])
    return report("load")


if __name__ == "__main__":
    sys.exit(main())
