#!/usr/bin/env python3
"""A recording server that gets a fatal signal dies of it, and its trace holds its last events.

Usage: fatal_signals.py --build BUILD_DIR [--sanitized]

For each of SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL, sent by another process (kill(2)) to a
recording reprise-kv that has just answered a SET: the server must end with that signal (under a
sanitizer, whose own SEGV/BUS handler reports and exits, with any failure status), its trace must
hold the SET it served (`reprise dump`), and the trace replays to its cut (`the trace ends`, exit 2),
as a killed process's does. Before the fix, SEGV and BUS sent this way were swallowed and the
server went on serving.
"""
import argparse
import os
import signal
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Server, check, encode_command, replay, report, run  # noqa: E402


def one_signal(build, sig, sanitized, tmp):
    name = signal.Signals(sig).name
    trace = os.path.join(tmp, f"{name}.trace")
    kv = os.path.join(build, "examples", "kv", "reprise-kv")
    tool = os.path.join(build, "tools", "reprise")
    with Server([kv, "--port", "0", f"--record={trace}"]) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(encode_command("SET", f"key-{name}", "value"))
            reply = c.recv(64)
        check(reply == b"+OK\r\n", f"{name}: the recording server answered a SET", reply)
        os.kill(s.pid, sig)
        status = s.wait(15)
        ok_status = status == -sig or (sanitized and sig in (signal.SIGSEGV, signal.SIGBUS) and status not in (None, 0))
        check(ok_status, f"{name}: the server died of the signal (status {status})", s.err()[-1500:])
    rc, dump, err = run([tool, "dump", trace])
    check(f"key-{name}" in dump,
          f"{name}: the trace holds the SET it served", (dump + err)[-1500:])
    r = replay(kv, trace)
    check(r.returncode == 2 and "the trace ends" in r.stderr, f"{name}: the trace replays to its cut", r.tail())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--sanitized", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprise-fatal-") as tmp:
        for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL):
            one_signal(a.build, sig, a.sanitized, tmp)
    return report("fatal_signals")


if __name__ == "__main__":
    sys.exit(main())
