#!/usr/bin/env python3
"""bad_clients: hostile and broken clients against reprise-kv and reprise-raft.

Each server runs recording (--record), on 127.0.0.1 only. While a well-behaved client
(the probe: SET then GET of a fresh key, every 20 ms, on one connection) checks that
it is served, the script throws at the server, in turn:

  idle       1000 connections opened and left idle until the end
  garbage    50 connections sending 64 KiB of seeded random bytes each
  lengths    huge or negative declared lengths (*99999999999, $4294967296, *-5, ...),
             one connection each; and 50 connections that declare a bulk of the
             largest size the server takes (kv 8 MiB, raft 512 KiB) and send 10 bytes
  abandon    200 connections that stop mid-command: half close (FIN), half reset (RST)
  halfclose  complete commands then shutdown(SHUT_WR): the replies still arrive;
             and an incomplete command then SHUT_WR
  noread     a big value (kv 1 MiB, raft 512 KiB), then 20 clients that pipeline
             2000 GETs of it each and never read a reply (the server must not buffer
             2000 values per client)
  peerport   (raft) the same garbage and huge lengths on the RAFT peer port

Checks, all of which can fail:
  - the probe gets every reply right, each within the latency bound (default 2 s:
    generous, it only catches a server that stops serving, not a slow one);
  - memory: VmHWM (peak resident set, /proc/PID/status) stays under the bound
    (default 256 MiB; pass a larger --memory-mib for sanitizer builds); VmRSS is
    printed before and after each step;
  - no sanitizer report (AddressSanitizer, LeakSanitizer, UBSan's "runtime error:")
    and no crash: on SIGTERM the server exits 0 within 20 s;
  - the recorded session replays to its end: `--replay=T` exits 0 with "no divergence".

Usage: bad_clients.py --build DIR [--server kv|raft|both] [--seed S]
                      [--latency-s 2] [--memory-mib 256]
"""
import argparse
import os
import random
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import (RespClient, Server, check, crash_report, encode_command as resp,  # noqa: E402
                          free_port, free_ports, replay, report)

READY_TIMEOUT_S = 20


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) // 1024  # MiB
    except FileNotFoundError:
        pass
    return out


def connect(port, timeout=5):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_reply(port, args, timeout_s):
    """The reply to one command on a fresh connection (bulk strings as bytes), or None when it does
    not come within timeout_s or the connection fails."""
    try:
        with RespClient(port, timeout_s, binary=True) as c:
            return c.call(*args)
    except OSError:
        return None


class Probe(threading.Thread):
    """The well-behaved client: SET probe:N then GET probe:N every 20 ms."""

    def __init__(self, port, latency_s):
        super().__init__(daemon=True)
        self.port = port
        self.latency_s = latency_s
        self.stop = threading.Event()
        self.rounds = 0
        self.errors = []
        self.worst_s = 0.0
        # A reply later than 30 s is an error of its own; the latency bound is checked on top.
        self.client = RespClient(port, timeout_s=30, binary=True)

    def run(self):
        i = 0
        while not self.stop.is_set() and len(self.errors) < 5:
            i += 1
            key, value = f"probe:{i}", f"value-{i}".encode()
            start = time.monotonic()
            try:
                r1 = self.client.call("SET", key, value)
                r2 = self.client.call("GET", key)
            except OSError as e:
                self.errors.append(f"round {i}: {e}")
                break
            took = time.monotonic() - start
            self.worst_s = max(self.worst_s, took)
            if r1 != "OK" or r2 != value:
                self.errors.append(f"round {i}: SET -> {r1!r}, GET -> {r2!r}")
            elif took > self.latency_s:
                self.errors.append(f"round {i}: {took:.3f} s for SET + GET")
            self.rounds += 1
            time.sleep(0.02)


def drain_close(socks, rst=False):
    for s in socks:
        try:
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        except OSError:
            pass


def send_quietly(sock, data, timeout=2.0):
    """Sends what the server takes within `timeout`; a reset or close is fine."""
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    except OSError:
        pass


def step_garbage(port, rng, n=50, size=64 * 1024):
    socks = []
    for _ in range(n):
        s = connect(port)
        send_quietly(s, rng.randbytes(size))
        socks.append(s)
    drain_close(socks)


def step_lengths(port, declared_bulk):
    headers = [b"*99999999999\r\n", b"$4294967296\r\n", b"*1\r\n$4294967296\r\n", b"*2147483648\r\n",
               b"*-5\r\n", b"*1\r\n$-2\r\n", b"*1\r\n$99999999999999999999999\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9223372036854775807\r\n",
               b"*1\r\n$" + b"9" * 70000 + b"\r\n", b"*" + b"1" * 70000]
    answered = 0
    silent = []
    for h in headers:
        s = connect(port)
        send_quietly(s, h)
        s.settimeout(10)  # an error reply comes at once; a slow (sanitizer) build gets room
        try:
            got = s.recv(4096)
        except OSError:
            got = b""
        if got.startswith(b"-"):
            answered += 1
        else:
            silent.append(h[:40])
        s.close()
    # Declared big but inside the limit, and never sent: must not reserve the declared size.
    held = []
    for _ in range(50):
        s = connect(port)
        send_quietly(s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n0123456789" % declared_bulk)
        held.append(s)
    return answered, silent, held


def step_abandon(port):
    socks = []
    for i in range(200):
        s = connect(port)
        send_quietly(s, b"*3\r\n$3\r\nSET\r\n$5\r\nhalf" if i % 2 else resp("SET", "abandoned", "x" * 100)[:37])
        socks.append(s)
    drain_close(socks[0::2], rst=True)
    drain_close(socks[1::2])


def step_halfclose(port):
    ok = 0
    for _ in range(20):
        with RespClient(port, timeout_s=30, binary=True) as c:  # a watchdog, not a latency bound
            c.sock.sendall(resp("SET", "hc", "v") + resp("GET", "hc") + b"PING\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            try:
                r = [c.reply() for _ in range(3)]
            except OSError:
                r = None
        if r == ["OK", b"v", "PONG"]:
            ok += 1
    s = connect(port)
    s.sendall(b"*2\r\n$3\r\nGET\r\n$2\r\nh")
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    try:
        closed = s.recv(4096) == b""  # the server closes its side, nothing to answer
    except OSError:
        closed = True
    s.close()
    return ok, closed


def step_noread(port, value_bytes, clients=20, gets=2000):
    big_ok = read_reply(port, ("SET", "big", b"v" * value_bytes), 10) == "OK"
    socks = []
    pipeline = resp("GET", "big") * gets
    for _ in range(clients):
        c = connect(port)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        send_quietly(c, pipeline, timeout=1.0)
        socks.append(c)
    return big_ok, socks


def wait_ready(server, port):
    """Ready when a SET succeeds (a RAFT node first elects itself), within READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and server.running():
        if read_reply(port, ("SET", "ready", "1"), 2) == "OK":
            return True
        time.sleep(0.1)
    return False


def run_steps(name, server, port, args, rng, declared_bytes, value_bytes, held):
    """Throws every step at the server while the probe runs; the connections to hold open go to `held`."""
    probe = Probe(port, args.latency_s)
    probe.start()
    try:
        def mem(label):
            m = proc_status(server.pid)
            print(f"        {name}: after {label}: VmRSS {m.get('VmRSS')} MiB, VmHWM {m.get('VmHWM')} MiB", flush=True)
            return m

        mem("start")
        idle = []
        for _ in range(1000):
            idle.append(connect(port))
        held += idle
        mem("1000 idle connections")
        step_garbage(port, rng)
        mem("garbage")
        answered, silent, declared = step_lengths(port, declared_bytes)
        held += declared
        check(answered >= 8, f"{name}: {answered} of 10 huge or negative declared lengths answered with an error "
                             f"(no error for {silent})")
        mem(f"huge declared lengths (50 held with a {declared_bytes}-byte bulk declared, 10 bytes sent)")
        step_abandon(port)
        mem("abandoned commands")
        ok, closed = step_halfclose(port)
        check(ok == 20, f"{name}: {ok} of 20 half-closed clients got all 3 replies")
        check(closed, f"{name}: an incomplete command then SHUT_WR: the server closes its side")
        big_ok, noread = step_noread(port, value_bytes)
        held += noread
        check(big_ok, f"{name}: SET of a {value_bytes}-byte value")
        time.sleep(1.0)
        mem(f"20 clients that never read 2000 GETs of {value_bytes} bytes")
        if args.peer_port:
            step_garbage(args.peer_port, rng, n=20)
            _, _, declared_peer = step_lengths(args.peer_port, declared_bytes)
            held += declared_peer
            mem("garbage and huge lengths on the RAFT peer port")
        # A new connection is still served while all of that is held open.
        check(read_reply(port, ("PING",), args.latency_s) == "PONG",
              f"{name}: a new client gets PONG with {len(held)} bad connections held open")
        time.sleep(0.5)
        probe.stop.set()
        probe.join(60)
        check(not probe.errors and probe.rounds > 10,
              f"{name}: the probe did {probe.rounds} SET+GET rounds, worst {probe.worst_s * 1000:.0f} ms "
              f"(bound {args.latency_s} s), errors: {probe.errors[:3]}")
        m = mem("everything")
        check(m.get("VmHWM", 1 << 30) <= args.memory_mib,
              f"{name}: peak resident memory VmHWM {m.get('VmHWM')} MiB <= {args.memory_mib} MiB")
    finally:
        probe.stop.set()


def run_server(name, cmd, port, args, rng, trace, program, declared_bytes, value_bytes):
    """Runs the steps against one server, then checks its exit, its stderr and the replay of
    `trace` with `program`. `declared_bytes` is the largest bulk it takes (what the held
    connections declare); `value_bytes` the size of the value the never-reading clients ask for."""
    print(f"--- {name}: {' '.join(cmd)}", flush=True)
    held = []
    with Server(cmd, ready=None) as server:
        try:
            if not check(wait_ready(server, port), f"{name}: serves a SET within {READY_TIMEOUT_S} s of starting"):
                return
            run_steps(name, server, port, args, rng, declared_bytes, value_bytes, held)
        finally:
            drain_close(held, rst=False)
            status = server.stop()
    err = server.err()
    check(status == 0, f"{name}: exits 0 on SIGTERM (got {status})")
    report_line = crash_report(err)
    check(report_line is None, f"{name}: no sanitizer report" + (f": {report_line}" if report_line else ""))
    check("RECORDING STOPPED" not in err, f"{name}: the recording went on to the end")
    r = replay(program, trace, timeout_s=300)
    check(r.matched(), f"{name}: the recorded session replays to its end (exit {r.returncode}): {r.tail(300)!r}")
    report_line = crash_report(r.stderr)
    check(report_line is None, f"{name}: no sanitizer report in the replay" + (f": {report_line}" if report_line else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--server", choices=["kv", "raft", "both"], default="both")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--latency-s", type=float, default=2.0)
    ap.add_argument("--memory-mib", type=int, default=256)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"bad_clients: seed {seed} (rerun with --seed {seed})", flush=True)
    # 1000 idle connections and more, on both ends: the server inherits this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 3000:
        print(f"bad_clients: only {want} file descriptors allowed; skipping")
        return 77
    work = tempfile.mkdtemp(prefix="reprise-bad-clients-")
    try:
        if args.server in ("kv", "both"):
            kv = os.path.join(args.build, "examples", "kv", "reprise-kv")
            port = free_port()
            trace = os.path.join(work, "kv.trace")
            args.peer_port = None
            run_server("reprise-kv", [kv, f"--port={port}", f"--record={trace}"], port, args,
                       random.Random(seed), trace, kv, 8 * 1024 * 1024, 1024 * 1024)
        if args.server in ("raft", "both"):
            raft = os.path.join(args.build, "examples", "raft", "reprise-raft")
            raft_port, client_port = free_ports(2)
            trace = os.path.join(work, "raft.trace")
            args.peer_port = raft_port
            run_server("reprise-raft", [raft, f"--record={trace}", "--id", "1", "--peers",
                                        f"1=127.0.0.1:{raft_port}:{client_port}", "--data",
                                        os.path.join(work, "raft-data")],
                       client_port, args, random.Random(seed + 1), trace, raft, 512 * 1024, 512 * 1024)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report("bad_clients", f"seed {seed}")


if __name__ == "__main__":
    sys.exit(main())
