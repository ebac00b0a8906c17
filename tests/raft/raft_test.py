#!/usr/bin/env python3
"""Live reprise-raft clusters, recorded node by node, then each node's trace replayed.

usage: raft_test.py PATH/TO/reprise-raft PATH/TO/examples/raft/cluster [SCENARIO...]

Scenarios: election, election-5, replication, leader-crash, follower-restart, persistence,
crash-under-load, pause-leader (with --client-base; also each command's --help), incr,
pause-follower (pre-vote), isolated-leader (check-quorum), leader-forgotten, authenticated
(--cluster-secret-file on every node). Each starts
a cluster with the cluster script (--record), drives it with a RESP client over sockets,
stops it, and then replays every node's trace: a node stopped by SIGTERM must replay to
exit 0 and print exactly its live narrative; a node cut by SIGKILL must replay to its cut,
exit 2 with "the trace ends", and print a prefix of its live narrative.
Every wait is bounded in time; every loop in count.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import (Failure, RespClient, RespError, call, crash_report, free_port_base, info,  # noqa: E402
                          replay, require, run_scenarios, wait_for)

BIN = os.path.abspath(sys.argv[1])
CLUSTER = os.path.abspath(sys.argv[2])
# Bounds on how fast a node reacts (a step-down, forgetting a dead leader) are met with room in a
# plain build; a sanitizer build runs several times slower, so its slack is wider.
with open(BIN, "rb") as _f:
    _image = _f.read()
SANITIZED = b"__asan_init" in _image or b"__tsan_init" in _image
del _image
SLACK_S = 1.5 if SANITIZED else 0.0
ROOT = os.environ.get("REPRISE_TEST_BUILD_ROOT", "/tmp")


# --- a cluster driven through the cluster script ---------------------------------------------

class Cluster:
    def __init__(self, name, nodes=3, client_offset=100, node_flags=()):
        """Node n's raft port is base+n, its client port base+client_offset+n (the script's
        default is base+100; another offset is passed as --client-base). node_flags go to
        every node (after the script's --)."""
        self.name = name
        self.nodes = nodes
        self.client_offset = client_offset
        self.node_flags = list(node_flags)
        self.dir = os.path.join(ROOT, f"raft-test-{name}-{os.getpid()}")
        shutil.rmtree(self.dir, ignore_errors=True)
        rng = random.Random(os.getpid() * 31 + len(name))
        self.base = free_port_base([n for n in range(1, nodes + 1)] +
                                   [client_offset + n for n in range(1, nodes + 1)], rng)
        # Each incarnation of a node: (node, stem, how it ended: None while running, 'stopped', 'killed').
        self.incarnations = []
        self.restarts = {n: 0 for n in range(1, nodes + 1)}

    def script(self, *args, timeout_s=60):
        args = list(args)
        cut = args.index("--") if "--" in args else len(args)  # node flags stay last
        args[cut:cut] = ["--dir", self.dir]
        p = subprocess.run([CLUSTER, *args], capture_output=True, text=True, timeout=timeout_s)
        if p.returncode != 0:
            raise Failure(f"cluster {' '.join(args)} exited {p.returncode}: {p.stderr.strip()} {p.stdout.strip()}")
        return p.stdout

    def port(self, n):
        return self.base + self.client_offset + n

    def _end(self, n, how):
        for i, (node, stem, ended) in enumerate(self.incarnations):
            if node == n and ended is None:
                self.incarnations[i] = (node, stem, how)

    def start(self):
        more = [] if self.client_offset == 100 else ["--client-base", str(self.base + self.client_offset)]
        out = self.script("start", "--nodes", str(self.nodes), "--base-port", str(self.base), *more, "--record",
                          "--bin", BIN, *(["--", *self.node_flags] if self.node_flags else []))
        for n in range(1, self.nodes + 1):
            # A start again in this folder: the earlier start's run is node-N.start-K now (the script
            # renames its logs and its entry in cluster.json).
            starts = sum(1 for _, stem, _ in self.incarnations if stem.startswith(f"node-{n}.start-"))
            for i, (node, stem, ended) in enumerate(self.incarnations):
                if stem == f"node-{n}":
                    self.incarnations[i] = (node, f"node-{n}.start-{starts + 1}", ended)
            self.incarnations.append((n, f"node-{n}", None))
        return out

    def stop(self):
        self.script("stop")
        for n in range(1, self.nodes + 1):
            self._end(n, "stopped")

    def kill(self, n):
        self.script("kill", str(n))
        self._end(n, "killed")

    def restart(self, n):
        self.script("restart", str(n))
        self._end(n, "stopped")
        self.restarts[n] += 1
        self.incarnations.append((n, f"node-{n}.restart-{self.restarts[n]}", None))

    def leader(self, timeout_s=10.0, exclude=()):
        def one():
            leaders = []
            for n in range(1, self.nodes + 1):
                if n in exclude:
                    continue
                try:
                    i = info(self.port(n))
                except OSError:
                    continue
                if i["role"] == "leader":
                    leaders.append((int(i["term"]), n))
            return max(leaders)[1] if leaders else None
        return wait_for("a leader", one, timeout_s)

    def write(self, key, value, timeout_s=10.0, via=1):
        """SET through node `via` first, following MOVED and retrying TRYAGAIN (bounded)."""
        deadline = time.monotonic() + timeout_s
        port = self.port(via)
        last = None
        for _ in range(1000):
            if time.monotonic() > deadline:
                break
            try:
                r = call(port, "SET", key, value)
            except OSError as e:
                last = e
                port = self.port((port - self.base - self.client_offset) % self.nodes + 1)
                time.sleep(0.05)
                continue
            if r == "OK":
                return
            last = r
            if isinstance(r, RespError) and str(r).startswith("MOVED "):
                port = int(str(r).rsplit(":", 1)[1])
                continue
            time.sleep(0.05)
        raise Failure(f"SET {key} did not succeed in {timeout_s} s (last: {last!r})")

    def wait_replicated(self, nodes, keys, timeout_s=10.0):
        """Every node in `nodes` answers RAFT.GET k == v for every (k, v) in keys."""
        for n in nodes:
            def has_all(n=n):
                with RespClient(self.port(n), timeout_s=5.0) as c:
                    return all(c.call("RAFT.GET", k) == v for k, v in keys.items())
            wait_for(f"node {n} to hold {len(keys)} keys", has_all, timeout_s)

    def path(self, stem, ext):
        return os.path.join(self.dir, f"{stem}.{ext}")

    def trace_of(self, stem):
        """The trace the runtime named for one run (node-N.K.trace), as cluster.json maps it."""
        with open(os.path.join(self.dir, "cluster.json")) as f:
            name = json.load(f).get("traces", {}).get(stem)
        require(name is not None, f"cluster.json names no trace for {stem}")
        return os.path.join(self.dir, name)

    def verify_replays(self):
        """Replays every incarnation's trace and compares it with its live run."""
        require(self.incarnations, "no incarnations recorded")
        for node, stem, ended in self.incarnations:
            require(ended is not None, f"{stem} still running at the replay check")
            trace = self.trace_of(stem)
            with open(self.path(stem, "log"), "rb") as f:
                live = f.read()
            require(b" listening raft " in live, f"{stem}: the live log lacks its listening line")
            with open(self.path(stem, "err"), "rb") as f:
                err = f.read()
            found = crash_report(err.decode(errors="replace"))
            require(found is None, f"{stem}: its live stderr holds a report: {found}")
            # The cluster script names each node's trace: the header holds the node name as a
            # msgpack string of its own ("node-N" alone, not inside the --data path).
            with open(trace, "rb") as f:
                head = f.read(4096)
            name = f"node-{node}".encode()
            require(bytes([0xA0 | len(name)]) + name in head, f"{stem}: the trace header does not name {name!r}")
            r = replay(BIN, trace)
            problem = r.narrative_problem(live, cut=(ended == "killed"))
            require(problem is None, f"{stem} ({ended}): {problem}")
            if ended == "killed":
                require(b" listening raft " in r.stdout, f"{stem} (killed): the replay did not reach its listening line")
            lines = r.stdout.count(b"\n")
            print(f"  replayed {stem} ({ended}): exit {r.returncode}, {lines} narrative lines match")

    def cleanup(self, ok):
        try:
            self.script("stop", timeout_s=60)
        except Exception as e:  # noqa: BLE001 — best effort after a failure
            print(f"  (stop after failure: {e})")
        if ok:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"  kept {self.dir} for inspection")


# --- scenarios ------------------------------------------------------------------------------

def roles(c):
    out = {}
    for n in range(1, c.nodes + 1):
        i = info(c.port(n))
        out[n] = (i["role"], int(i["term"]), int(i["leader_id"]))
    return out


def scenario_election(c):
    c.start()
    leader = c.leader()

    def agreed():
        r = roles(c)
        leaders = [n for n, (role, _, _) in r.items() if role == "leader"]
        terms = {term for (_, term, _) in r.values()}
        ids = {lid for (_, _, lid) in r.values()}
        return r if len(leaders) == 1 and len(terms) == 1 and ids == {leaders[0]} else None
    r = wait_for("all nodes to agree on one leader and term", agreed)
    require(r[leader][0] == "leader", f"leader {leader} is not leader in {r}")
    # An idle cluster keeps its leader: heartbeats arrive well inside the election timeout.
    time.sleep(1.5)
    r2 = roles(c)
    require(r2 == r, f"an idle cluster changed roles or terms: {r} -> {r2}")
    print(f"  leader {leader}, term {r[leader][1]}, stable over 1.5 s idle")
    c.stop()


def scenario_replication(c):
    c.start()
    leader = c.leader()
    follower = next(n for n in range(1, c.nodes + 1) if n != leader)
    # A follower redirects writes and reads to the leader, Redis Cluster style.
    r = call(c.port(follower), "SET", "x", "1")
    require(isinstance(r, RespError) and str(r) == f"MOVED 0 127.0.0.1:{c.port(leader)}", f"follower SET -> {r!r}")
    r = call(c.port(follower), "GET", "x")
    require(isinstance(r, RespError) and str(r).startswith("MOVED 0 "), f"follower GET -> {r!r}")
    keys = {f"key{i}": f"value-{i}-" + "v" * i for i in range(30)}
    for k, v in keys.items():
        c.write(k, v)
    for k, v in keys.items():
        require(call(c.port(leader), "GET", k) == v, f"leader GET {k}")
    c.wait_replicated(range(1, c.nodes + 1), keys)
    require(call(c.port(leader), "DEL", "key0", "nokey") == 1, "DEL counts the keys it removed")
    require(call(c.port(leader), "DEL", "key0") == 0, "a second DEL removes nothing")
    require(call(c.port(leader), "GET", "key0") is None, "GET of a deleted key is null")
    del keys["key0"]

    def converged():
        infos = [info(c.port(n)) for n in range(1, c.nodes + 1)]
        commits = {i["commit_index"] for i in infos} | {i["last_applied"] for i in infos}
        return infos if len(commits) == 1 and all(i["keys"] == str(len(keys)) for i in infos) else None
    infos = wait_for("commit and apply to converge", converged)
    # 1 no-op + 30 SETs + 2 DELs.
    require(int(infos[0]["commit_index"]) == 33, f"commit index {infos[0]['commit_index']} (want 33)")
    require(call(c.port(follower), "RAFT.GET", "key0") is None, "a follower applied the DEL")
    require(call(c.port(follower), "PING") == "PONG", "PING")
    require(call(c.port(follower), "COMMAND") == [], "COMMAND")
    print(f"  30 SETs and 2 DELs via MOVED to leader {leader}; every node at commit index 33")
    c.stop()


def scenario_leader_crash(c):
    c.start()
    old = c.leader()
    old_term = int(info(c.port(old))["term"])
    keys = {f"a{i}": str(i) for i in range(10)}
    for k, v in keys.items():
        c.write(k, v)
    c.kill(old)
    new = c.leader(exclude=(old,))
    require(new != old, "a new leader")
    new_term = int(info(c.port(new))["term"])
    require(new_term > old_term, f"the new leader's term {new_term} is above {old_term}")
    more = {f"b{i}": str(i) for i in range(10)}
    for k, v in more.items():
        c.write(k, v)
    keys.update(more)
    survivors = [n for n in range(1, c.nodes + 1) if n != old]
    c.wait_replicated(survivors, keys)
    c.restart(old)
    c.wait_replicated([old], keys)
    i = info(c.port(old))
    require(i["role"] == "follower" and int(i["term"]) >= new_term, f"the old leader rejoined as follower: {i}")
    print(f"  leader {old} (term {old_term}) killed; {new} leads term {new_term}; writes continued; {old} caught up")
    # The script with a node already dead: kill refuses, stop stops the others.
    c.kill(old)
    p = subprocess.run([CLUSTER, "kill", str(old), "--dir", c.dir], capture_output=True, text=True, timeout=60)
    require(p.returncode == 1 and "not running" in p.stderr, f"kill of a dead node: {p.returncode} {p.stderr!r}")
    out = c.script("stop")
    require(f"node {old}: stopped" not in out and out.count(": stopped") == c.nodes - 1, f"stop with node {old} dead: {out!r}")
    for n in range(1, c.nodes + 1):
        c._end(n, "stopped")


def scenario_follower_restart(c):
    c.start()
    leader = c.leader()
    follower = next(n for n in range(1, c.nodes + 1) if n != leader)
    keys = {f"f{i}": str(i) for i in range(5)}
    for k, v in keys.items():
        c.write(k, v)
    c.kill(follower)  # writes go on while it is down...
    for i in range(5, 25):
        keys[f"f{i}"] = str(i)
        c.write(f"f{i}", str(i))
    c.restart(follower)  # ...and it catches up from the leader
    c.wait_replicated([follower], keys)
    c.restart(follower)  # a graceful restart too
    keys["after"] = "graceful"
    c.write("after", "graceful")
    c.wait_replicated(range(1, c.nodes + 1), keys)
    print(f"  follower {follower} killed, 20 writes, restarted: caught up; restarted gracefully: caught up")
    c.stop()


def scenario_persistence(c):
    c.start()
    c.leader()
    keys = {f"p{i}": f"persist-{i}" for i in range(15)}
    for k, v in keys.items():
        c.write(k, v)
    c.wait_replicated(range(1, c.nodes + 1), keys)
    c.stop()
    # A crash mid-append on node 1: half a record at its log's end.
    with open(os.path.join(c.dir, "node-1", "log"), "ab") as f:
        f.write(b"\x20\x00\x00\x00\x01\x02\x03")
    for n in range(1, c.nodes + 1):
        c.restart(n)
    leader = c.leader()
    for k, v in keys.items():
        require(call(c.port(leader), "GET", k) == v, f"after a full restart, GET {k}")
    c.wait_replicated(range(1, c.nodes + 1), keys)
    with open(c.path("node-1.restart-1", "log"), "rb") as f:
        first = f.readline().decode()
    require("16 log entries (cut a torn last record of 7 bytes)" in first, f"node 1 recovered: {first!r}")
    print(f"  15 keys survived a stop of every node; node 1 cut a torn record; {first.strip()}")
    c.stop()
    # A second `cluster start` in the same folder keeps the first start's logs as node-N.start-1.*.
    with open(c.path("node-1", "log"), "rb") as f:
        first_log = f.read()
    c.start()
    leader = c.leader()
    require(call(c.port(leader), "GET", "p3") == "persist-3", "after a second cluster start, GET p3")
    with open(c.path("node-1.start-1", "log"), "rb") as f:
        require(f.read() == first_log, "a second cluster start keeps the first start's log as node-1.start-1.log")
    with open(c.path("node-1", "log"), "rb") as f:
        require(f.read().count(b" listening raft ") == 1, "node-1.log holds the second start's run alone")
    c.stop()


def scenario_crash_under_load(c):
    """Four clients write while the leader is SIGKILLed: every acknowledged write survives on every node."""
    import threading
    c.start()
    old = c.leader()
    acked = {}
    errors = []
    lock = threading.Lock()

    def writer(t):
        for i in range(30):
            k, v = f"t{t}-{i}", f"{t}:{i}"
            try:
                c.write(k, v, timeout_s=15)
            except Failure as e:
                with lock:
                    errors.append(str(e))
                return
            with lock:
                acked[k] = v

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    wait_for("the first writes", lambda: len(acked) >= 20, 10)
    c.kill(old)
    for t in threads:
        t.join(timeout=60)
    require(not any(t.is_alive() for t in threads), "writers finished")
    require(not errors, f"writes failed: {errors[:3]}")
    require(len(acked) == 120, f"{len(acked)} of 120 writes acknowledged")
    new = c.leader(exclude=(old,))
    c.restart(old)
    c.wait_replicated(range(1, c.nodes + 1), acked, timeout_s=20)
    print(f"  4 clients x 30 writes, leader {old} killed after 20+ acknowledged; {new} took over; all 120 acknowledged writes on every node")
    c.stop()


def scenario_pause_leader(c):
    """Client ports from --client-base; the leader paused (SIGSTOP) as if partitioned away: the
    others elect a new leader and keep writing; resumed, the old leader steps down and catches up."""
    for cmd in ("start", "stop", "kill", "pause", "resume", "restart", "status", "leader"):
        p = subprocess.run([CLUSTER, cmd, "--help"], capture_output=True, text=True, timeout=60)
        require(p.returncode == 0 and p.stdout.startswith(f"usage: cluster {cmd}"),
              f"cluster {cmd} --help: exit {p.returncode}, {p.stdout[:200]!r} {p.stderr[:200]!r}")
    p = subprocess.run([CLUSTER, "start", "--help"], capture_output=True, text=True, timeout=60)
    require("--client-base C" in p.stdout, f"start --help names --client-base: {p.stdout!r}")
    out = c.start()
    for n in range(1, c.nodes + 1):
        want = f"node {n}: pid "
        line = next((l for l in out.splitlines() if l.startswith(want)), "")
        require(line.endswith(f"raft 127.0.0.1:{c.base + n}, client 127.0.0.1:{c.port(n)}, trace node-{n}.1.trace"),
                f"start printed {line!r}")
        require(info(c.port(n))["node_id"] == str(n), f"node {n} answers INFO on its --client-base port {c.port(n)}")
    old = c.leader()
    old_term = int(info(c.port(old))["term"])
    others = [n for n in range(1, c.nodes + 1) if n != old]
    # A follower's MOVED names the leader's --client-base port.
    r = call(c.port(others[0]), "SET", "x", "1")
    require(isinstance(r, RespError) and str(r) == f"MOVED 0 127.0.0.1:{c.port(old)}", f"follower SET -> {r!r}")
    keys = {f"before{i}": str(i) for i in range(5)}
    for k, v in keys.items():
        c.write(k, v, via=old)
    c.wait_replicated(range(1, c.nodes + 1), keys)

    out = c.script("pause", str(old))
    require(f"node {old}: paused" in out, f"pause printed {out!r}")
    status = c.script("status")
    require(f"node {old}: paused" in status, f"status shows node {old} paused: {status!r}")
    new = c.leader(timeout_s=15, exclude=(old,))
    new_term = int(info(c.port(new))["term"])
    require(new != old and new_term > old_term, f"new leader {new} term {new_term} (old {old} term {old_term})")
    require(c.script("leader").strip() == str(new), "cluster leader skips the paused node")
    more = {f"during{i}": str(i) for i in range(5)}
    for k, v in more.items():
        c.write(k, v, via=new)
    keys.update(more)
    c.wait_replicated(others, keys)

    out = c.script("resume", str(old))
    require(f"node {old}: resumed" in out, f"resume printed {out!r}")

    def stepped_down():
        i = info(c.port(old))
        return i if i["role"] == "follower" and int(i["term"]) >= new_term and i["leader_id"] == str(new) else None
    i = wait_for(f"node {old} to step down and follow {new}", stepped_down, 15)
    c.wait_replicated([old], keys)
    status = c.script("status")
    require("paused" not in status, f"status after resume: {status!r}")
    print(f"  client ports {c.port(1)}..; leader {old} (term {old_term}) paused; {new} leads term {new_term}; "
          f"resumed, {old} follows at term {i['term']} and caught up")
    c.stop()


def follow(port, *args, timeout_s=10.0):
    """Sends a command, following MOVED and retrying `TRYAGAIN no leader` (both say the command
    was not done), bounded; returns the first other reply. A `TRYAGAIN outcome unknown` is
    returned, never retried: the command may have been done."""
    deadline = time.monotonic() + timeout_s
    last = None
    for _ in range(1000):
        if time.monotonic() > deadline:
            break
        try:
            r = call(port, *args)
        except OSError as e:
            last = e
            time.sleep(0.05)
            continue
        last = r
        if isinstance(r, RespError) and str(r).startswith("MOVED "):
            port = int(str(r).rsplit(":", 1)[1])
            continue
        if isinstance(r, RespError) and str(r) == "TRYAGAIN no leader":
            time.sleep(0.05)
            continue
        return r
    raise Failure(f"{' '.join(args)} got no answer in {timeout_s} s (last: {last!r})")


def scenario_incr(c):
    """INCR and its kin answer :N from the replicated counter, refuse what is not an
    integer, and keep counting from the committed value after the leader is killed."""
    c.start()
    old = c.leader()
    for want in range(1, 6):
        r = follow(c.port(old), "INCR", "n")
        require(r == want, f"INCR n -> {r!r} (want {want})")
    require(follow(c.port(old), "INCRBY", "n", "10") == 15, "INCRBY n 10")
    require(follow(c.port(old), "DECRBY", "n", "3") == 12, "DECRBY n 3")
    require(follow(c.port(old), "DECR", "n") == 11, "DECR n")
    require(follow(c.port(old), "DECR", "fresh") == -1, "DECR of a missing key counts from 0")
    c.write("s", "abc", via=old)
    for args in (("INCR", "s"), ("INCRBY", "n", "x"), ("INCRBY", "n", "1.5")):
        r = follow(c.port(old), *args)
        require(r == RespError("ERR value is not an integer or out of range"), f"{' '.join(args)} -> {r!r}")
    c.write("max", "9223372036854775807", via=old)
    r = follow(c.port(old), "INCR", "max")
    require(r == RespError("ERR increment or decrement would overflow"), f"INCR of the largest integer -> {r!r}")
    require(call(c.port(old), "GET", "s") == "abc" and call(c.port(old), "GET", "n") == "11",
            "refused INCRs changed nothing")
    r = call(c.port(old), "INCR")
    require(isinstance(r, RespError) and "wrong number of arguments for 'incr'" in str(r), f"INCR alone -> {r!r}")
    follower = next(n for n in range(1, c.nodes + 1) if n != old)
    r = call(c.port(follower), "INCR", "n")
    require(r == RespError(f"MOVED 0 127.0.0.1:{c.port(old)}"), f"INCR on a follower -> {r!r}")
    c.wait_replicated(range(1, c.nodes + 1), {"n": "11", "fresh": "-1", "s": "abc"})
    c.kill(old)
    new = c.leader(exclude=(old,))
    survivors = [n for n in range(1, c.nodes + 1) if n != old]
    r = follow(c.port(survivors[0]), "INCR", "n", timeout_s=15)
    require(r == 12, f"INCR n after the leader change -> {r!r} (want 12)")
    c.wait_replicated(survivors, {"n": "12"})
    c.restart(old)
    c.wait_replicated([old], {"n": "12", "fresh": "-1"})
    print(f"  INCR/INCRBY/DECR/DECRBY on leader {old}; errors for non-integers and overflow; "
          f"leader killed, {new} continued the count at 12; {old} caught up")
    c.stop()


def scenario_pause_follower(c):
    """Pre-vote: a follower paused past the election timeout and resumed does not depose the
    healthy leader (its pre-vote is refused: the others hear from the leader). Without pre-vote
    it starts an election at once and the leader's term moves."""
    c.start()
    leader = c.leader()
    c.write("k", "v", via=leader)
    term = int(info(c.port(leader))["term"])
    follower = next(n for n in range(1, c.nodes + 1) if n != leader)
    for attempt in range(2):
        c.script("pause", str(follower))
        time.sleep(1.2)  # past the election timeout (400..800 ms)
        c.script("resume", str(follower))

        def follows():
            i = info(c.port(follower))
            return i if i["role"] == "follower" and i["leader_id"] == str(leader) else None
        wait_for(f"node {follower} to follow {leader} again", follows, 5)
        time.sleep(0.5)
        i = info(c.port(leader))
        require(i["role"] == "leader" and int(i["term"]) == term,
                f"resume {attempt + 1}: leader {leader} of term {term} is now {i['role']} of term {i['term']}")
    c.write("after", "pauses", via=leader)
    c.wait_replicated(range(1, c.nodes + 1), {"k": "v", "after": "pauses"})
    print(f"  follower {follower} paused 1.2 s and resumed twice; leader {leader} kept term {term}")
    c.stop()


def scenario_isolated_leader(c):
    """Check-quorum and ReadIndex: a leader whose followers are both paused serves no GET (it cannot
    confirm its leadership), steps down within about an election timeout, and then answers
    TRYAGAIN no leader; resumed, the cluster elects a leader and serves again."""
    c.start()
    leader = c.leader()
    c.write("k", "v", via=leader)
    require(call(c.port(leader), "GET", "k") == "v", "GET on the leader")
    others = [n for n in range(1, c.nodes + 1) if n != leader]
    for n in others:
        c.script("pause", str(n))
    paused = time.monotonic()
    r = call(c.port(leader), "GET", "k")
    require(r == RespError("TRYAGAIN no leader"), f"GET on a leader cut off from the majority -> {r!r}")

    def stepped_down():
        i = info(c.port(leader))
        return i if i["role"] != "leader" else None
    i = wait_for(f"leader {leader} to step down", stepped_down, 5)
    took = time.monotonic() - paused
    require(took < 1.6 + SLACK_S, f"leader {leader} stepped down {took:.2f} s after losing the majority "
            f"(want < 2 x 800 ms{' + %.1f s of a sanitizer build' % SLACK_S if SLACK_S else ''})")
    require(i["leader_id"] == "0", f"a stepped-down leader knows no leader: {i}")
    for args in (("GET", "k"), ("SET", "k", "w")):
        r = call(c.port(leader), *args)
        require(r == RespError("TRYAGAIN no leader"), f"{args[0]} on the stepped-down leader -> {r!r}")
    for n in others:
        c.script("resume", str(n))
    new = c.leader(timeout_s=15)
    c.write("k", "after", via=new)
    c.wait_replicated(range(1, c.nodes + 1), {"k": "after"})
    print(f"  leader {leader} cut off: GET refused, stepped down after {took:.2f} s; resumed, {new} leads")
    c.stop()


def scenario_leader_forgotten(c):
    """Followers forget a dead leader after the minimum election timeout (400 ms here; elections
    wait up to 3 s): from then until a new leader is elected they answer TRYAGAIN no leader, never
    a MOVED to the dead node."""
    c.start()
    old = c.leader()
    c.write("k", "v", via=old)
    survivors = [n for n in range(1, c.nodes + 1) if n != old]
    dead = f"MOVED 0 127.0.0.1:{c.port(old)}"
    c.kill(old)
    killed = time.monotonic()
    # A follower heard the leader at most a heartbeat (100 ms) before the kill, and forgets it
    # 400 ms after that; 250 ms of slack for scheduling (more in a sanitizer build). A reply's time
    # is taken when it was asked for: its way back does not count.
    forget_by = killed + 0.4 + 0.25 + SLACK_S
    seen = []  # (seconds after the kill, node, reply)
    for _ in range(400):
        if time.monotonic() - killed > 8:
            break
        for n in survivors:
            asked = time.monotonic()
            r = call(c.port(n), "GET", "k")
            seen.append((asked - killed, n, str(r) if isinstance(r, RespError) else r))
        if any(r == "v" for _, _, r in seen):
            break  # a new leader answered
        time.sleep(0.03)
    late = [(round(t, 3), n, r) for t, n, r in seen if r == dead and killed + t > forget_by]
    require(not late, f"MOVED to the dead leader after {forget_by - killed:.2f} s: {late[:3]}")
    elected = next((t for t, _, r in seen if r == "v" or (isinstance(r, str) and r.startswith("MOVED") and r != dead)),
                   None)
    require(elected is not None, f"no new leader within 8 s: {seen[-3:]}")
    no_leader = [t for t, _, r in seen if r == "TRYAGAIN no leader"]
    if elected > forget_by - killed + 0.1:
        require(no_leader, f"no TRYAGAIN no leader between {forget_by - killed:.2f} s and the election at {elected:.2f} s")
    c.leader(exclude=(old,))
    print(f"  leader {old} killed: MOVED to it until {max([t for t, _, r in seen if r == dead], default=0):.2f} s, "
          f"TRYAGAIN no leader {len(no_leader)} times, a new leader answered at {elected:.2f} s")
    c.stop()


CLUSTER_SECRET = b"raft-test-Cluster-Secret-4c1b9e"


def secret_file():
    return os.path.join(ROOT, f"raft-test-cluster-secret-{os.getpid()}")


def scenario_authenticated(c):
    """Every node holds the cluster secret: they elect a leader and replicate over authenticated
    links, a follower restarted re-opens its links (a new handshake), and no trace byte holds the
    secret (each trace replays, reading the secret file again)."""
    c.start()
    leader = c.leader()
    keys = {f"a{i}": str(i) for i in range(10)}
    for k, v in keys.items():
        c.write(k, v, via=leader)
    c.wait_replicated(range(1, c.nodes + 1), keys)
    follower = next(n for n in range(1, c.nodes + 1) if n != leader)
    c.restart(follower)
    c.write("after-restart", "1", via=leader)
    keys["after-restart"] = "1"
    c.wait_replicated([follower], keys, timeout_s=20)
    c.stop()
    for name in os.listdir(c.dir):
        if ".trace" in name:
            with open(os.path.join(c.dir, name), "rb") as f:
                data = f.read()
            require(CLUSTER_SECRET not in data and CLUSTER_SECRET[:12] not in data, f"{name} holds the cluster secret")
    for stem in ("node-1", "node-2", "node-3"):
        with open(c.path(stem, "err")) as f:
            err = f.read()
        require("prove the cluster secret" not in err and "MAC does not check" not in err,
                f"{stem}: a link of the cluster's own nodes was refused: {err[-500:]}")
    print(f"  {len(keys)} keys replicated over authenticated links; node {follower} restarted and caught up;"
          " no trace holds the secret")


SCENARIOS = {
    "election": (scenario_election, 3),
    "election-5": (scenario_election, 5),
    "replication": (scenario_replication, 3),
    "leader-crash": (scenario_leader_crash, 3),
    "follower-restart": (scenario_follower_restart, 3),
    "persistence": (scenario_persistence, 3),
    "crash-under-load": (scenario_crash_under_load, 3),
    "pause-leader": (scenario_pause_leader, 3),
    "incr": (scenario_incr, 3),
    "pause-follower": (scenario_pause_follower, 3),
    "isolated-leader": (scenario_isolated_leader, 3),
    "leader-forgotten": (scenario_leader_forgotten, 3),
    "authenticated": (scenario_authenticated, 3),
}

NODE_FLAGS = {"leader-forgotten": ("--election-min-ms", "400", "--election-max-ms", "3000")}


def main():
    def start(name):
        fn, nodes = SCENARIOS[name]
        print(f"scenario {name} ({nodes} nodes)", flush=True)
        flags = NODE_FLAGS.get(name, ())
        if name == "authenticated":
            with open(secret_file(), "wb") as f:
                f.write(CLUSTER_SECRET + b"\n")
            flags = ("--record-compress", "off", f"--cluster-secret-file={secret_file()}")
        return Cluster(name, nodes, client_offset=150 if name == "pause-leader" else 100, node_flags=flags)

    def run(name, c):
        SCENARIOS[name][0](c)
        c.verify_replays()

    return run_scenarios(sys.argv[3:] or list(SCENARIOS), start, run)


if __name__ == "__main__":
    sys.exit(main())
