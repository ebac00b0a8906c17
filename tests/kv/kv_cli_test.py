#!/usr/bin/env python3
"""Drives the built reprise-kv with redis-cli and redis-benchmark: live, recording, and the recording replayed.

Usage: kv_cli_test.py REPRISE_KV [REPRISE_TOOL]

Starts reprise-kv on 127.0.0.1 port 0 (it prints "listening P"), runs redis-cli over
every command family and checks each output, checks inline commands and a protocol
error on a raw socket, runs `redis-benchmark -t ping,set,get,incr,mset -n 20000 -q`
with -P 16 and -P 1 and checks it reports no error, then stops the server with
SIGTERM and checks it exits 0. Then the same with --record=FILE, and the trace is
replayed (`reprise-kv --replay=FILE`, arguments from the trace), which must end with
status 0 and say "no divergence". Then SHUTDOWN: a recorded server (flags given as
`--port 0`) is stopped by `redis-cli SHUTDOWN NOSAVE` (no output, exit 0), exits 0 on its
own with every client closed, its trace passes `reprise verify` (with REPRISE_TOOL) and
replays to exit 0 with the same output. A mistyped flag is refused with exit 2 naming the
closest flag. Exits 77 (a skip for meson) only when redis-cli or
redis-benchmark is missing. Every child runs under a timeout.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Server, check, replay, report  # noqa: E402

CMD_TIMEOUT_S = 30
BENCH_TIMEOUT_S = 120
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 20


def start_server(exe, extra, port_args=("--port=0",)):
    """reprise-kv as a child process, up once it printed "listening P"."""
    return Server([exe] + extra + list(port_args), ready_timeout_s=START_TIMEOUT_S)


def cli(port, *args):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args), capture_output=True, text=True,
                       errors="replace", timeout=CMD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    return p.stdout


# redis-cli's output (not a tty: raw) for each command, in order. A regex where the value varies.
SCRIPT = [
    (["PING"], "PONG\n"),
    (["PING", "hello"], "hello\n"),
    (["ECHO", "two words"], "two words\n"),
    (["SET", "k", "v"], "OK\n"),
    (["GET", "k"], "v\n"),
    (["SET", "k", "w", "NX"], "\n"),
    (["SET", "k", "w", "XX", "GET"], "v\n"),
    (["SET", "fresh", "x", "XX"], "\n"),
    (["GET", "missing"], "\n"),
    (["SET", "k", "v", "EX", "0"], "ERR invalid expire time in 'set' command\n"),
    (["SET", "k", "v", "EX", "soon"], "ERR value is not an integer or out of range\n"),
    (["SET", "k", "v", "NX", "XX"], "ERR syntax error\n"),
    (["GET"], "ERR wrong number of arguments for 'get' command\n"),
    (["FOO", "bar"], "ERR unknown command 'FOO', with args beginning with: 'bar' \n"),
    (["DEL", "k", "missing"], "1\n"),
    (["MSET", "a", "1", "b", "2"], "OK\n"),
    (["MGET", "a", "nope", "b"], "1\n\n2\n"),
    (["EXISTS", "a", "b", "nope"], "2\n"),
    (["INCR", "a"], "2\n"),
    (["DECR", "a"], "1\n"),
    (["INCRBY", "a", "10"], "11\n"),
    (["DECRBY", "a", "5"], "6\n"),
    (["INCR", "k2"], "1\n"),
    (["SET", "s", "text"], "OK\n"),
    (["INCR", "s"], "ERR value is not an integer or out of range\n"),
    (["TTL", "a"], "-1\n"),
    (["TTL", "nope"], "-2\n"),
    (["EXPIRE", "a", "100"], "1\n"),
    (["TTL", "a"], re.compile(r"99|100")),
    (["PEXPIRE", "a", "100000"], "1\n"),
    (["PTTL", "a"], re.compile(r"9\d{4}|100000")),
    (["SET", "later", "v", "PX", "600000"], "OK\n"),
    (["DBSIZE"], "5\n"),
    (["CLIENT", "SETNAME", "cli"], "OK\n"),
    (["CLIENT", "GETNAME"], "\n"),  # each redis-cli run is a new client
    (["COMMAND"], ""),
    (["COMMAND", "DOCS"], ""),
    (["INFO", "keyspace"], re.compile(r"# Keyspace\ndb0:keys=5,expires=2,avg_ttl=0")),
    (["FLUSHALL"], "OK\n"),
    (["DBSIZE"], "0\n"),
    (["QUIT"], "OK\n"),
]


def run_script(port, label):
    for args, want in SCRIPT:
        # redis-cli adds a blank line after some errors and prints bulk strings raw: compare
        # without the trailing newlines and with CRLF as LF.
        got = cli(port, *args).replace("\r\n", "\n").rstrip("\n")
        if isinstance(want, re.Pattern):
            ok = want.fullmatch(got) is not None
        else:
            ok = got == want.rstrip("\n")
        check(ok, f"{label}: redis-cli {' '.join(args)}", f"  want {want!r}\n  got  {got!r}")
    # Expiry on loop time: a key with PX 150 is gone 400 ms later.
    check(cli(port, "SET", "brief", "v", "PX", "150") == "OK\n", f"{label}: SET PX 150")
    time.sleep(0.4)
    check(cli(port, "EXISTS", "brief") == "0\n", f"{label}: a key with PX 150 is gone after 400 ms")
    # The server counts a client gone once it reads the end of its connection: the redis-cli
    # before this one may still be counted for a moment.
    deadline = time.monotonic() + 10
    info = cli(port, "INFO")
    while "connected_clients:1\r\n" not in info and "connected_clients:1\n" not in info and time.monotonic() < deadline:
        time.sleep(0.05)
        info = cli(port, "INFO")
    for section in ("# Server", "# Clients", "# Stats", "# Keyspace", "connected_clients:1", "expired_keys:"):
        check(section in info, f"{label}: INFO has {section!r}", info)
    # A session on one connection: CLIENT SETNAME then GETNAME (redis-cli reads commands from stdin).
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)], input="CLIENT SETNAME me\nCLIENT GETNAME\n",
                       capture_output=True, text=True, timeout=CMD_TIMEOUT_S)
    check(p.stdout == "OK\nme\n", f"{label}: CLIENT SETNAME/GETNAME on one connection", repr(p.stdout))


def raw_exchange(port, payload, want_bytes):
    """Sends raw bytes, reads until the peer closes or `want_bytes` arrived (bounded by a timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=CMD_TIMEOUT_S) as s:
        s.sendall(payload)
        got = b""
        deadline = time.monotonic() + CMD_TIMEOUT_S
        while len(got) < want_bytes and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return got, True
            got += chunk
        closed = False
        s.settimeout(2)
        try:
            closed = s.recv(1) == b""
        except socket.timeout:
            pass
        return got, closed


def run_raw(port, label):
    got, _ = raw_exchange(port, b"PING\r\nset greeting \"hello world\"\r\nget greeting\r\n", 30)
    check(got == b"+PONG\r\n+OK\r\n$11\r\nhello world\r\n", f"{label}: inline commands (as from nc)", repr(got))
    got, closed = raw_exchange(port, b"*1\r\n$-3\r\n", 100)
    check(got == b"-ERR Protocol error: invalid bulk length\r\n", f"{label}: protocol error text", repr(got))
    check(closed, f"{label}: the connection is closed after a protocol error")
    check(cli(port, "PING") == "PONG\n", f"{label}: others are still served after a protocol error")


def run_benchmark(port, label):
    for pipeline in ("16", "1"):
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "ping,set,get,incr,mset", "-n", "20000",
                "-P", pipeline, "-q"]
        p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=BENCH_TIMEOUT_S,
                           stdin=subprocess.DEVNULL)
        text = (p.stdout + p.stderr).replace("\r", "\n")
        finals = [line for line in text.splitlines() if "requests per second" in line]
        names = {line.split(":")[0].strip() for line in finals}
        check(p.returncode == 0, f"{label}: redis-benchmark -P {pipeline} exit status", text[-2000:])
        check("error" not in text.lower(), f"{label}: redis-benchmark -P {pipeline} reports no error", text[-2000:])
        check({"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"} <= names,
              f"{label}: redis-benchmark -P {pipeline} ran every test", "\n".join(finals))
        print(f"{label} -P {pipeline}: " + "; ".join(f.strip() for f in finals))


def session(exe, extra, label):
    server = start_server(exe, extra)
    held = []
    try:
        run_script(server.port, label)
        run_raw(server.port, label)
        run_benchmark(server.port, label)
        # Clients still connected at the stop, one of them mid-request.
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=CMD_TIMEOUT_S)
            s.sendall(b"SET held v EX 100\r\n")
            check(s.recv(100) == b"+OK\r\n", f"{label}: SET from a client held across the stop")
            held.append(s)
        held[0].sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")
    finally:
        status = server.stop(STOP_TIMEOUT_S)
    check(status == 0, f"{label}: SIGTERM stops reprise-kv with status 0 (got {status})", server.err()[-2000:])
    for s in held:
        try:
            check(s.recv(100) == b"", f"{label}: a client connected at the stop sees the connection closed")
        except OSError as e:
            check(False, f"{label}: a client connected at the stop sees the connection closed ({e})")
        s.close()
    return server


def run_shutdown(exe, tool, tmp):
    """Recorded; SHUTDOWN from redis-cli ends the server (exit 0); the trace verifies and replays."""
    trace = os.path.join(tmp, "kv-shutdown.trace")
    server = start_server(exe, [f"--record={trace}"], ("--port", "0"))  # the flag's value after a space
    held = None
    try:
        check(cli(server.port, "SET", "k", "v") == "OK\n", "shutdown: SET before SHUTDOWN")
        got = cli(server.port, "SHUTDOWN", "MAYBE").replace("\r\n", "\n").rstrip("\n")
        check(got == "ERR syntax error", "shutdown: SHUTDOWN with an unknown option is a syntax error", repr(got))
        check(server.running(), "shutdown: a refused SHUTDOWN leaves the server running")
        held = socket.create_connection(("127.0.0.1", server.port), timeout=CMD_TIMEOUT_S)
        held.sendall(b"PING\r\n")
        check(held.recv(100) == b"+PONG\r\n", "shutdown: a client connected across the SHUTDOWN")
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "SHUTDOWN", "NOSAVE"],
                           capture_output=True, text=True, errors="replace", timeout=CMD_TIMEOUT_S,
                           stdin=subprocess.DEVNULL)
        check(p.returncode == 0 and p.stdout == "", "shutdown: redis-cli SHUTDOWN NOSAVE prints nothing, exits 0",
              f"exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")
        status = server.wait(STOP_TIMEOUT_S)
        check(status == 0, f"shutdown: reprise-kv exits 0 on its own after SHUTDOWN (got {status})", server.err()[-2000:])
        held.settimeout(STOP_TIMEOUT_S)
        try:
            check(held.recv(100) == b"", "shutdown: a client connected at the SHUTDOWN sees the connection closed")
        except OSError as e:
            check(False, f"shutdown: a client connected at the SHUTDOWN sees the connection closed ({e})")
    finally:
        if held is not None:
            held.close()
        server.stop(STOP_TIMEOUT_S)
    live_out = server.out().decode(errors="replace")
    check("stopping: SHUTDOWN from client" in live_out, "shutdown: the server says why it stops", live_out)
    if tool:
        v = subprocess.run([tool, "verify", trace], capture_output=True, text=True, errors="replace",
                           timeout=CMD_TIMEOUT_S, stdin=subprocess.DEVNULL)
        check(v.returncode == 0, f"shutdown: reprise verify passes the trace (exit {v.returncode})", v.stdout + v.stderr)
    r = replay(exe, trace, timeout_s=BENCH_TIMEOUT_S)
    check(r.returncode == 0, f"shutdown: the replay exits 0 (got {r.returncode})", r.tail(3000))
    problem = r.narrative_problem(live_out.encode())
    check(problem is None, "shutdown: the replay prints what the live run printed and matches its trace", problem)
    print(f"shutdown: exit 0 live and in replay; {r.tail(200)}")


def run_flag_typo(exe):
    p = subprocess.run([exe, "--prot", "7000"], capture_output=True, text=True, errors="replace",
                       timeout=CMD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    check(p.returncode == 2 and "unknown flag --prot; did you mean --port?" in p.stderr,
          "a mistyped flag exits 2 naming the closest one", f"exit {p.returncode}, stderr {p.stderr!r}")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    exe = sys.argv[1]
    reprise_tool = sys.argv[2] if len(sys.argv) == 3 else None
    for tool in ("redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (./dev installs redis-tools)")
            return 77

    session(exe, [], "live")

    with tempfile.TemporaryDirectory(prefix="reprise-kv-cli-") as tmp:
        trace = os.path.join(tmp, "kv.trace")
        recorded = session(exe, [f"--record={trace}"], "recording")
        check(os.path.getsize(trace) > 0, "recording: the trace is written")
        start = time.monotonic()
        r = replay(exe, trace, timeout_s=BENCH_TIMEOUT_S)
        took = time.monotonic() - start
        check(r.returncode == 0, f"replay: exits 0 (got {r.returncode})", r.tail(3000))
        check(r.stdout == f"listening {recorded.port}\n".encode(), "replay: listens on the recorded port",
              repr(r.stdout))
        check(r.matched(), "replay: ends at the trace's end with no divergence", r.tail(3000))
        print(f"replay took {took:.2f} s: {r.tail(300)}")
        run_shutdown(exe, reprise_tool, tmp)
    run_flag_typo(exe)

    return report("kv-cli")


if __name__ == "__main__":
    sys.exit(main())
