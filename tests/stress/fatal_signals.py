#!/usr/bin/env python3
"""A recording server that gets a fatal signal dies of it, and its trace holds its last events.

Usage: fatal_signals.py --build BUILD_DIR [--sanitized]

For each of SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL, sent by another process (kill(2)) to a
recording reprise-kv that has just answered a SET: the server must end with that signal (under a
sanitizer, whose own SEGV/BUS handler reports and exits, with any failure status), its trace must
hold the SET it served (`reprise dump`), and the trace replays to its cut (`the trace ends`, exit 2),
as a killed process's does. Before the fix, SEGV and BUS sent this way were swallowed and the
server went on serving. Then a recording server killed and restarted with the same command line
(`--record=DIR/kv.%c.trace`) leaves two traces, both replayable, created 0600; a plain path that
exists is refused and the incident's trace kept.
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


def restart_keeps_both_traces(build, tmp):
    """A recording server killed and restarted with the same command line (as systemd's
    Restart=on-failure does) keeps the crashed run's trace: the pattern's %c gives each run its own."""
    kv = os.path.join(build, "examples", "kv", "reprise-kv")
    folder = os.path.join(tmp, "restart")
    os.mkdir(folder)
    command = [kv, "--port", "0", f"--record={os.path.join(folder, 'kv.%c.trace')}"]
    for run_number, key in ((1, "before-crash"), (2, "after-restart")):
        with Server(command) as s:
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
                c.sendall(encode_command("SET", key, "v"))
                c.recv(64)
            if run_number == 1:
                s.kill()
            else:
                check(s.stop() == 0, "the restarted server stops cleanly")
    names = sorted(os.listdir(folder))
    check(names == ["kv.1.trace", "kv.2.trace", "kv.2.trace.outcome"],
          "the same command line twice leaves two traces; only the run that ended wrote its outcome file", names)
    first = replay(kv, os.path.join(folder, "kv.1.trace"))
    check(first.returncode == 2 and "the trace ends" in first.stderr, "the killed run's trace replays to its cut",
          first.tail())
    second = replay(kv, os.path.join(folder, "kv.2.trace"))
    check(second.matched(), "the restarted run's trace replays to its end", second.tail())
    mode = os.stat(os.path.join(folder, "kv.1.trace")).st_mode & 0o777
    check(mode == 0o600, f"traces are readable by their owner only (mode {oct(mode)})")
    plain = [kv, "--port", "0", f"--record={os.path.join(folder, 'kv.1.trace')}"]
    rc, out, err = run(plain, timeout_s=10)
    check(rc != 0 and "never overwrites a trace" in err, "a plain path that exists is refused", err[-800:])
    check(os.path.getsize(os.path.join(folder, "kv.1.trace")) > 0, "and the incident's trace is kept")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--sanitized", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprise-fatal-") as tmp:
        for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL):
            one_signal(a.build, sig, a.sanitized, tmp)
        restart_keeps_both_traces(a.build, tmp)
    return report("fatal_signals")


if __name__ == "__main__":
    sys.exit(main())
