#!/usr/bin/env python3
"""Checks `reprise load`: a trace's recorded inbound traffic driven into live servers, their answers compared.

Usage: load_test.py REPRISE_TOOL REPRISE_KV REPRISE_ECHO

Records reprise-kv (digests only, and --record-full) under redis-cli commands (one command per
connection, and a session of several commands on one connection, which needs turn-taking) and a
short redis-benchmark; then loads each trace into
  - a fresh reprise-kv: no difference, exit 0 (also at --speed=1 and --speed=5, and --json);
  - Debian's redis-server: differences only at the commands where the servers differ (INFO, TIME,
    CONFIG), named; none once they are --ignore'd;
  - a reprise-kv whose key `a` is preloaded with another value: the difference found at GET a;
  - a slow RESP server (in this test) that notes any request sent before the answer the recording
    shows its client waited for: turn-taking holds, and the latency figures include its delay;
  - reprise-echo's trace (not RESP: turn-taking by bytes) into a fresh reprise-echo (identical) and
    into an echo that upper-cases (the difference at the first write);
  - a closed port: one line, exit 3; bad command lines: exit 2; a truncated trace: no crash.
Exits 77 (a skip) when redis-cli, redis-benchmark or redis-server is missing. Every child runs
under a timeout.
"""
import json
import os
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

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


REPLY_DELAY_S = 0.02


def resp_commands(buf):
    """(complete commands in buf as arrays of bulk strings, bytes they take); stops at the first incomplete one."""
    commands, pos = [], 0
    while True:
        end = buf.find(b"\r\n", pos)
        if end < 0 or buf[pos:pos + 1] != b"*":
            return commands, pos
        n, p, words = int(buf[pos + 1:end]), end + 2, []
        for _ in range(n):
            e = buf.find(b"\r\n", p)
            if e < 0:
                return commands, pos
            size = int(buf[p + 1:e])
            if len(buf) < e + 2 + size + 2:
                return commands, pos
            words.append(buf[e + 2:e + 2 + size])
            p = e + 2 + size + 2
        commands.append(words)
        pos = p


class SlowServer(socketserver.ThreadingTCPServer):
    """A RESP server that answers every command +OK after REPLY_DELAY_S and notes when a client sent its next
    command before it had the answer (what turn-taking forbids where the recording shows a turn)."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.early = []      # (first word of the command answered, bytes that came before its answer)
        self.commands = 0
        super().__init__(("127.0.0.1", 0), SlowHandler)


class SlowHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock, buf = self.request, b""
        sock.settimeout(10)
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            commands, used = resp_commands(buf)
            buf = buf[used:]
            for words in commands:
                time.sleep(REPLY_DELAY_S)
                sock.setblocking(False)
                try:
                    early = sock.recv(65536, socket.MSG_PEEK)
                except BlockingIOError:
                    early = b""
                finally:
                    sock.settimeout(10)
                if early or (buf and words is commands[-1]):
                    self.server.early.append((words[0] if words else b"", early or buf))
                self.server.commands += 1
                sock.sendall(b"+OK\r\n")


def check_turn_taking(tool, trace):
    """The session connection's commands each wait for the answer to the one before (as recorded)."""
    server = SlowServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rc, out, err = run([tool, "load", trace, "--to", f"127.0.0.1:{server.server_address[1]}", "--speed=max",
                            "--json", "--timeout", "20"], TIMEOUT_S)
    finally:
        server.shutdown()
        server.server_close()
    try:
        summary = json.loads(out)
    except ValueError:
        summary = {}
    check(rc == 1 and summary.get("failed") == 0 and server.commands == summary.get("requests"),
          "a slow server gets every request and answers them all (differently: exit 1)", f"{server.commands}\n{out}{err}")
    check(not server.early, "no request is sent before the answer the recording shows it waited for",
          f"{server.early[:5]}")
    lat = summary.get("latency_target", {})
    check(lat.get("count", 0) >= summary.get("requests", 1) - 1 and lat.get("p50_ns", 0) >= REPLY_DELAY_S * 1e9,
          "every turn's latency includes the server's delay", json.dumps(lat))


class UpperEcho(socketserver.ThreadingTCPServer):
    """Echoes every byte, upper-cased: an echo server that answers differently on purpose."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), UpperEchoHandler)


class UpperEchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(10)
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data.upper())


def check_byte_stream(tool, echo, tmp):
    """A protocol that is not RESP: turn-taking by bytes, the answers cut at the recorded write lengths."""
    trace = os.path.join(tmp, "echo.trace")
    messages = [b"hello\n", b"second message\n", b"MIXED case\n", b"last\n"]
    with Server([echo, f"--record={trace}", "serve", "--port=0"]) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            for m in messages:
                c.sendall(m)
                got = b""
                while len(got) < len(m):
                    got += c.recv(65536)
        # The server sees the close before it stops: wait (bounded) until it has closed its side,
        # no socket on its port left established or half-closed (/proc/net/tcp: 01, 08).
        def server_side_open():
            with open("/proc/net/tcp") as f:
                rows = [line.split() for line in f.read().splitlines()[1:]]
            return any(r[1].endswith(":%04X" % s.port) and r[3] in ("01", "08") for r in rows)
        deadline = time.monotonic() + 10
        while server_side_open() and time.monotonic() < deadline:
            time.sleep(0.02)
        check(s.stop() == 0, "reprise-echo exits 0 on SIGTERM")
    with Server([echo, "serve", "--port=0"]) as s:
        rc, out, err = load(tool, trace, s.port, "--speed=max")
    check(rc == 0 and "1 identical, 0 differing, 0 failed" in out, "an echo trace loads into a fresh echo server: identical",
          out + err)
    server = UpperEcho()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rc, out, err = load(tool, trace, server.server_address[1], "--speed=max")
    finally:
        server.shutdown()
        server.server_close()
    check(rc == 1 and "first difference: write #0 of the recorded server (bytes 0..6 of its answer): recorded 6 bytes" in out
          and "HELLO" in out, "an upper-casing echo differs at the first write, shown", out + err)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    tool, kv, echo = sys.argv[1], sys.argv[2], sys.argv[3]
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
            if label == "digests":
                # At --speed=2 the traffic takes at least half its recorded span (the first connection to the last chunk).
                with Server([kv, "--port", "0"]) as s:
                    rc, out, err = load(tool, trace, s.port, "--speed=2", "--json", "--ignore", "INFO,TIME")
                try:
                    paced = json.loads(out)
                except ValueError:
                    paced = {}
                span = paced.get("recorded_traffic_ns", 0)
                check(rc == 0 and span > 0 and paced.get("elapsed_ns", 0) >= span / 2,
                      "--speed=2 paces the traffic over at least half its recorded span", out + err)

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
        check_turn_taking(tool, trace)
        check_byte_stream(tool, echo, tmp)
        # Nothing listens: the target failed, exit 3.
        rc, out, err = load(tool, trace, free_port(), "--speed=max", "--timeout", "5")
        check(rc == 3 and "cannot connect to the target" in err and "nothing was sent" in err and out.strip() == "",
              "a closed port: one line, nothing sent (exit 3)", out + err)
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
