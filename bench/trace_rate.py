#!/usr/bin/env python3
"""trace_rate: how fast traces grow, for docs/production.md's hours per GB (127.0.0.1 only).

  bench/trace_rate.py [--build build] [--seconds 30] [--out DIR] kv|raft LOAD[,LOAD...]

Records reprise-kv (one server) or reprise-raft (examples/raft/cluster, 3 nodes) twice per load,
compressed (the default) and with --record-compress=off, and prints one JSON line per run: the
trace bytes (each node's, for raft), the load's requests and seconds, bytes per second, and hours
per GB (10^9 bytes) at that rate. Loads:
  bench         redis-benchmark -n 200000 (kv; raft: 20000) -c 10 -t set,get -d 64 -r 100000
                (its values are 64 'x' bytes: they compress well)
  paced         100 requests/s (SET and GET in turn, 64 'x' bytes) for --seconds
  paced-random  the same with random values (64 hex digits of os.urandom)
  idle          no request for --seconds (kv: nothing to do; raft: heartbeats every 100 ms)
Every wait is bounded; the cluster and servers are stopped at the end of each run.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KV_PORT = 6480
RAFT_BASE = 7400  # peers 7401..7403, clients 7501..7503


def port_free(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return
    sys.exit(f"trace_rate: port {port} is taken: another server would get the load")


def wait_port(port, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"trace_rate: port {port} did not open within {timeout_s} s")


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def paced(port, rate, seconds, random_values):
    """`rate` requests a second (SET, GET in turn) for `seconds`; each reply read (bounded)."""
    n = int(rate * seconds)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        start = time.monotonic()
        for i in range(n):
            key = b"key:%012d" % (i % 1000)
            value = os.urandom(32).hex().encode() if random_values else b"x" * 64
            c.sendall(resp(b"SET", key, value) if i % 2 == 0 else resp(b"GET", key))
            c.recv(4096)
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return n, time.monotonic() - start


def benchmark(port, n):
    began = time.monotonic()
    subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(n), "-c", "10", "-t", "set,get", "-d", "64",
                    "-r", "100000", "-q"], check=True, timeout=600, capture_output=True)
    return 2 * n, time.monotonic() - began


def load(kind, port, seconds):
    if kind == "bench":
        return benchmark(port, 200000 if port == KV_PORT else 20000)
    if kind in ("paced", "paced-random"):
        return paced(port, 100, seconds, kind == "paced-random")
    time.sleep(seconds)
    return 0, float(seconds)


def hours_per_gb(bytes_per_s):
    return round(1e9 / bytes_per_s / 3600, 2) if bytes_per_s else None


def kv_run(a, kind, compress):
    name = f"kv-{kind}-{'z' if compress else 'raw'}"
    pattern = os.path.join(a.out, f"{name}.%c.trace")
    port_free(KV_PORT)
    server = subprocess.Popen([os.path.join(a.build, "examples", "kv", "reprise-kv"), "--port", str(KV_PORT),
                               f"--record={pattern}", f"--record-compress={'on' if compress else 'off'}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(KV_PORT)
        requests, seconds = load(kind, KV_PORT, a.seconds)
    finally:
        server.terminate()
        server.wait(20)
    traces = [n for n in os.listdir(a.out) if n.startswith(name + ".") and n.endswith(".trace")]
    size = sum(os.path.getsize(os.path.join(a.out, n)) for n in traces)
    rate = size / seconds
    return {"program": "reprise-kv", "load": kind, "compress": compress, "requests": requests,
            "seconds": round(seconds, 2), "bytes": size, "bytes_per_s": round(rate),
            "hours_per_gb": hours_per_gb(rate)}


def raft_run(a, kind, compress):
    d = os.path.join(a.out, f"raft-{kind}-{'z' if compress else 'raw'}")
    shutil.rmtree(d, ignore_errors=True)
    for n in (1, 2, 3):
        port_free(RAFT_BASE + n)
        port_free(RAFT_BASE + 100 + n)
    cluster = os.path.join(ROOT, "examples", "raft", "cluster")
    extra = [] if compress else ["--", "--record-compress=off"]
    subprocess.run([cluster, "start", "--nodes", "3", "--dir", d, "--base-port", str(RAFT_BASE), "--record", "--bin",
                    os.path.join(a.build, "examples", "raft", "reprise-raft"), *extra],
                   check=True, timeout=60, capture_output=True)
    try:
        leader = subprocess.run([cluster, "leader", "--dir", d, "--wait", "10"], capture_output=True, text=True,
                                timeout=30, check=True).stdout.strip()
        requests, seconds = load(kind, RAFT_BASE + 100 + int(leader), a.seconds)
    finally:
        subprocess.run([cluster, "stop", "--dir", d], timeout=60, capture_output=True)
    with open(os.path.join(d, "cluster.json")) as f:
        traces = json.load(f)["traces"]
    per_node = {stem: os.path.getsize(os.path.join(d, name)) for stem, name in traces.items()}
    leader_rate = per_node[f"node-{leader}"] / seconds
    cluster_rate = sum(per_node.values()) / seconds
    return {"program": "reprise-raft x3", "load": kind, "compress": compress, "requests": requests,
            "seconds": round(seconds, 2), "bytes_per_node": per_node, "leader": int(leader),
            "leader_bytes_per_s": round(leader_rate), "cluster_bytes_per_s": round(cluster_rate),
            "leader_hours_per_gb": hours_per_gb(leader_rate), "cluster_hours_per_gb": hours_per_gb(cluster_rate)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=30, help="length of the paced and idle loads (1..600)")
    ap.add_argument("--out", default=None, help="where the traces go (default: a fresh temporary folder)")
    ap.add_argument("program", choices=["kv", "raft"])
    ap.add_argument("loads")
    a = ap.parse_args()
    if not 1 <= a.seconds <= 600:
        ap.error("--seconds is 1..600")
    kinds = a.loads.split(",")
    for k in kinds:
        if k not in ("bench", "paced", "paced-random", "idle"):
            ap.error(f"unknown load {k}")
    a.out = a.out or os.path.join(os.environ.get("TMPDIR", "/tmp"), f"reprise-trace-rate-{os.getpid()}")
    os.makedirs(a.out, exist_ok=True)
    for kind in kinds:
        for compress in (True, False):
            r = (kv_run if a.program == "kv" else raft_run)(a, kind, compress)
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
