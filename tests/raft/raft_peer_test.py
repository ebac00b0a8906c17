#!/usr/bin/env python3
"""One live reprise-raft node against peers this script plays, byte for byte on the wire.

usage: raft_peer_test.py PATH/TO/reprise-raft [SCENARIO...]

Scenarios: del-too-long, read-after-election, vote-storm, pre-vote, hostile-peer, client-cap, leader-loss,
authenticated. The real node
records its trace; after each scenario it is stopped with SIGTERM and its trace must
replay to exit 0 printing exactly its live narrative. Every wait is bounded.
"""
import hashlib
import hmac
import os
import random
import shutil
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import (LISTENING_RAFT, Failure, RespError, Server, call, free_ports, info,  # noqa: E402
                          replay, require, run_scenarios, wait_for)
from reprise_test import RespClient, run  # noqa: E402
from reprise_trace import crc32c  # noqa: E402

BIN = os.path.abspath(sys.argv[1])
ROOT = os.environ.get("REPRISE_TEST_BUILD_ROOT", "/tmp")
SEED = int(os.environ.get("RAFT_TEST_SEED", str(random.randrange(1 << 30))))


# --- the disk format and the wire format (docs/raft.md) -------------------------------------

def cmd_noop():
    return b"\x00"


def cmd_set(key, value):
    return b"\x01" + struct.pack("<I", len(key)) + key + struct.pack("<I", len(value)) + value


def write_data(d, term, vote, entries):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "state"), "w") as f:
        f.write(f"reprise-raft state 1\nterm {term}\nvote {vote}\n")
    with open(os.path.join(d, "log"), "wb") as f:
        f.write(b"RRAFTLG1")
        for t, command in entries:
            payload = struct.pack("<Q", t) + command
            f.write(struct.pack("<II", len(payload), crc32c(payload)) + payload)


def frame(body):
    return struct.pack(">I", len(body)) + body


def request_vote(term, candidate, last_index, last_term):
    return frame(struct.pack("<BQIQQ", 1, term, candidate, last_index, last_term))


def vote_reply(term, sender, granted):
    return frame(struct.pack("<BQIB", 2, term, sender, 1 if granted else 0))


def pre_vote(term, candidate, last_index, last_term):
    return frame(struct.pack("<BQIQQ", 5, term, candidate, last_index, last_term))


def pre_vote_reply(term, sender, granted):
    return frame(struct.pack("<BQIB", 6, term, sender, 1 if granted else 0))


def append_entries(term, leader, prev_index, prev_term, commit, entries):
    body = struct.pack("<BQIQQQI", 3, term, leader, prev_index, prev_term, commit, len(entries))
    for t, command in entries:
        body += struct.pack("<QI", t, len(command)) + command
    return frame(body)


def append_reply(term, sender, success, match, conflict=0):
    return frame(struct.pack("<BQIBQQ", 4, term, sender, 1 if success else 0, match, conflict))


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("peer closed")
        out += chunk
    return out


def recv_until_closed(sock, chunk_bytes=4096):
    """Everything `sock` receives until the other end closes it."""
    got = b""
    while True:
        chunk = sock.recv(chunk_bytes)
        if not chunk:
            return got
        got += chunk


def read_message(sock):
    """(type, fields dict) of one frame from the node."""
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    body = recv_exact(sock, length)
    kind = body[0]
    if kind in (1, 5):
        term, cand, li, lt = struct.unpack_from("<QIQQ", body, 1)
        return ("request-vote" if kind == 1 else "pre-vote"), {"term": term, "candidate": cand, "last_index": li,
                                                               "last_term": lt}
    if kind in (2, 6):
        term, sender, granted = struct.unpack_from("<QIB", body, 1)
        return ("vote-reply" if kind == 2 else "pre-vote-reply"), {"term": term, "from": sender,
                                                                   "granted": bool(granted)}
    if kind == 3:
        term, leader, pi, pt, commit, count = struct.unpack_from("<QIQQQI", body, 1)
        return "append", {"term": term, "leader": leader, "prev_index": pi, "prev_term": pt, "commit": commit,
                          "count": count}
    if kind == 4:
        term, sender, ok, match, conflict = struct.unpack_from("<QIBQQ", body, 1)
        return "append-reply", {"term": term, "from": sender, "success": bool(ok), "match": match}
    raise Failure(f"unknown message type {kind}")


class FakePeer:
    """Listens on a peer's raft port and answers the real node's link to it.

    grant_votes: grant every PreVote and RequestVote (True) or refuse them (False). acking: answer AppendEntries
    with success (set it to False to hold the node's commits: appends are then read and
    left unanswered)."""

    def __init__(self, peer_id, port, grant_votes=True, acking=True):
        self.id = peer_id
        self.grant_votes = grant_votes
        self.acking = acking
        self.received = []  # (kind, fields)
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    def _serve(self, conn):
        conn.settimeout(0.5)
        with conn:
            while not self.stopping:
                try:
                    kind, m = read_message(conn)
                except socket.timeout:
                    continue
                except (OSError, ConnectionError, struct.error):
                    return
                with self.lock:
                    self.received.append((kind, m))
                if kind == "request-vote":
                    conn.sendall(vote_reply(m["term"], self.id, self.grant_votes))
                elif kind == "pre-vote":  # this peer's term: the one below the term asked for
                    conn.sendall(pre_vote_reply(m["term"] - 1, self.id, self.grant_votes))
                elif kind == "append" and self.acking:
                    conn.sendall(append_reply(m["term"], self.id, True, m["prev_index"] + m["count"]))

    def count(self, kind):
        with self.lock:
            return sum(1 for k, _ in self.received if k == kind)

    def close(self):
        self.stopping = True
        self.listener.close()


# --- authenticated links (docs/raft.md, "Authentication") ------------------------------------

AUTH_MAGIC = b"RPRSAUTH"


def link_mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class AuthLink:
    """One end of an authenticated peer link over `sock`: the handshake, then frames with their MACs."""

    def __init__(self, sock, secret, accepting):
        self.sock = sock
        if accepting:  # this end accepted the link: it challenges
            ns = os.urandom(32)
            sock.sendall(AUTH_MAGIC + ns)
            answer = recv_exact(sock, 64)
            nc, proof = answer[:32], answer[32:]
            if not hmac.compare_digest(proof, link_mac(secret, b"reprise-raft client", ns, nc)):
                raise Failure("the node's answer to the challenge does not prove the secret")
            sock.sendall(link_mac(secret, b"reprise-raft server", nc, ns))
            self.send_dir, self.recv_dir = b"s", b"c"
        else:
            challenge = recv_exact(sock, 40)
            if challenge[:8] != AUTH_MAGIC:
                raise Failure(f"no challenge from the node: {challenge!r}")
            ns, nc = challenge[8:], os.urandom(32)
            sock.sendall(nc + link_mac(secret, b"reprise-raft client", ns, nc))
            proof = recv_exact(sock, 32)
            if not hmac.compare_digest(proof, link_mac(secret, b"reprise-raft server", nc, ns)):
                raise Failure("the node's proof does not check")
            self.send_dir, self.recv_dir = b"c", b"s"
        self.key = link_mac(secret, b"reprise-raft link", ns, nc)
        self.sent = self.received = 0

    def tag(self, direction, counter, data):
        return link_mac(self.key, direction, struct.pack("<Q", counter), data)

    def sealed(self, data):
        """`data` (a frame) followed by its MAC, counted."""
        out = data + self.tag(self.send_dir, self.sent, data)
        self.sent += 1
        return out

    def read(self):
        """(kind, fields) of the node's next frame, its MAC checked."""
        header = recv_exact(self.sock, 4)
        (length,) = struct.unpack(">I", header)
        data = header + recv_exact(self.sock, length)
        tag = recv_exact(self.sock, 32)
        if not hmac.compare_digest(tag, self.tag(self.recv_dir, self.received, data)):
            raise Failure(f"frame {self.received} from the node: its MAC does not check")
        self.received += 1
        return read_message(BytesSock(data))


class BytesSock:
    def __init__(self, data):
        self.data = data

    def recv(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


class AuthFakePeer(FakePeer):
    """A FakePeer that holds the cluster secret: it challenges the node's link and MACs its frames."""

    def __init__(self, peer_id, port, secret, **kw):
        self.secret = secret
        self.links = 0
        super().__init__(peer_id, port, **kw)

    def _serve(self, conn):
        conn.settimeout(5)
        with conn:
            try:
                link = AuthLink(conn, self.secret, accepting=True)
            except (OSError, ConnectionError, Failure) as e:
                print(f"  peer {self.id}: link refused: {e}")
                return
            with self.lock:
                self.links += 1
            while not self.stopping:
                try:
                    kind, m = link.read()
                except socket.timeout:
                    continue
                except (OSError, ConnectionError, struct.error, Failure):
                    return
                with self.lock:
                    self.received.append((kind, m))
                if kind == "request-vote":
                    conn.sendall(link.sealed(vote_reply(m["term"], self.id, self.grant_votes)))
                elif kind == "pre-vote":
                    conn.sendall(link.sealed(pre_vote_reply(m["term"] - 1, self.id, self.grant_votes)))
                elif kind == "append" and self.acking:
                    conn.sendall(link.sealed(append_reply(m["term"], self.id, True, m["prev_index"] + m["count"])))


class RealNode:
    """Node 1, recorded, in a cluster of `members` whose other members the test plays."""

    def __init__(self, name, members, extra=()):
        self.dir = os.path.join(ROOT, f"raft-peer-{name}-{os.getpid()}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        ports = free_ports(2 * members)
        self.raft_ports = {n: ports[n - 1] for n in range(1, members + 1)}
        self.client_ports = {n: ports[members + n - 1] for n in range(1, members + 1)}
        self.data = os.path.join(self.dir, "node-1")
        self.trace = os.path.join(self.dir, "node-1.trace")
        self.log = os.path.join(self.dir, "node-1.log")
        peers = ",".join(f"{n}=127.0.0.1:{self.raft_ports[n]}:{self.client_ports[n]}" for n in range(1, members + 1))
        self.argv = [BIN, f"--record={self.trace}", f"--seed={SEED}", "--node=node-1", "--id", "1", "--peers", peers,
                     "--data", self.data, *extra]
        self.proc = None

    def start(self):
        self.server = Server(self.argv, ready=LISTENING_RAFT, ready_timeout_s=10, stdout_path=self.log,
                             stderr_path=os.path.join(self.dir, "node-1.err"))
        self.proc = self.server.proc

    def stderr(self):
        return self.server.err()[-800:]

    def narrative(self):
        return self.server.out()

    def port(self):
        return self.client_ports[1]

    def call(self, *args, timeout_s=10.0):
        return call(self.port(), *args, timeout_s=timeout_s)

    def info(self):
        return info(self.port())

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS")

    def stop_and_replay(self):
        require(self.server.running(), f"the node died: exit {self.proc.returncode}: {self.stderr()}")
        code = self.server.stop(timeout_s=30)
        require(not self.server.killed, "the node did not stop within 30 s of SIGTERM")
        require(code == 0, f"the node exited {code}: {self.stderr()}")
        r = replay(BIN, self.trace)
        problem = r.narrative_problem(self.narrative())
        require(problem is None, problem)
        lines = r.stdout.count(b"\n")
        print(f"  replayed: exit 0, {lines} narrative lines match")

    def cleanup(self, ok):
        if self.proc:
            self.server.kill()
        if ok:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"  kept {self.dir}")


# --- scenarios ------------------------------------------------------------------------------

def scenario_del_too_long(node):
    """A DEL whose keys together do not fit one log entry is refused; it used to abort the leader."""
    node.start()
    wait_for("a one-node leader", lambda: node.info()["role"] == "leader")
    keys = [bytes([65 + i]) * (64 * 1024) for i in range(17)]  # 17 x 64 KiB > 1 MiB
    r = node.call("DEL", *keys)
    require(isinstance(r, RespError) and str(r).startswith("ERR DEL keys too long together"), f"DEL of 17 x 64 KiB keys -> {r!r}")
    require(node.call("SET", "a", "1") == "OK", "SET after the refused DEL")
    require(node.call("GET", "a") == "1", "GET after the refused DEL")
    r = node.call("DEL", *keys[:15])  # 15 x 64 KiB fits: replicated as one entry
    require(r == 0, f"DEL of 15 long keys -> {r!r}")
    print("  DEL of 17 x 64 KiB keys refused with an error; the leader kept serving")
    node.stop_and_replay()


def scenario_read_after_election(node):
    """A new leader does not serve GET before it has committed an entry of its term.

    Node 1's log holds SET x 1 of term 1, committed by the old cluster; on restart its
    commit index is 0. It wins term 2 with peer 2's vote, but peer 2 holds its appends, so
    the no-op of term 2 cannot commit: a GET must not answer null (it used to)."""
    write_data(node.data, 1, 0, [(1, cmd_noop()), (1, cmd_set(b"x", b"1"))])
    peer2 = FakePeer(2, node.raft_ports[2], grant_votes=True, acking=False)
    try:
        node.start()
        first = node.narrative().split(b"\n", 1)[0]
        require(b"recovered term 1, vote 0, 2 log entries" in first and b"cut" not in first, f"recovery: {first!r}")
        wait_for("node 1 to lead", lambda: node.info()["role"] == "leader")
        require(node.info()["commit_index"] == "0", "nothing committed while peer 2 holds its appends")
        r = node.call("GET", "x")
        require(r == RespError("TRYAGAIN the leader has not committed an entry of its term yet"),
              f"GET on a leader that has not committed in its term -> {r!r}")
        peer2.acking = True
        v = wait_for("GET x once the no-op commits", lambda: node.call("GET", "x") == "1", 15)
        require(v, "GET x")
        require(int(node.info()["commit_index"]) == 3, "noop, SET x and the term-2 no-op committed")
        print("  a new leader answered TRYAGAIN until its no-op committed, then the old write")
    finally:
        peer2.close()
    node.stop_and_replay()


def scenario_vote_storm(node):
    """A candidate with a stale log asking with ever higher terms does not keep node 1 from
    its own election (a refused vote used to reset node 1's election timer)."""
    write_data(node.data, 1, 0, [(1, cmd_noop()), (1, cmd_set(b"k", b"v"))])
    peer2 = FakePeer(2, node.raft_ports[2], grant_votes=False, acking=True)
    replies = []
    stop = threading.Event()

    def stale_candidate():
        # The node may still be opening its peer port when this thread starts: retry, bounded.
        s = None
        for _ in range(100):
            try:
                s = socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        if s is None:
            return
        with s:
            term = 2
            while not stop.is_set():
                s.sendall(request_vote(term, 3, 0, 0))
                replies.append(read_message(s))
                term += 1
                time.sleep(0.15)  # well inside the election timeout (400..800 ms)

    try:
        node.start()
        t = threading.Thread(target=stale_candidate, daemon=True)
        t.start()
        wait_for("the stale candidate's first request to be answered", lambda: len(replies) > 0, 20)
        # Peer 2 refuses pre-votes too, so node 1 asks for pre-votes again and again and never
        # reaches a RequestVote: what counts is that it asks at all.
        wait_for("node 1 to ask peer 2 for a pre-vote", lambda: peer2.count("pre-vote") > 0, 20)
        stop.set()
        t.join(timeout=10)
        require(replies and all(k == "vote-reply" and not m["granted"] for k, m in replies),
              f"every stale candidate's request refused: {replies[:3]}")
        print(f"  {len(replies)} stale vote requests refused; node 1 still started its own election")
    finally:
        stop.set()
        peer2.close()
    node.stop_and_replay()


def scenario_pre_vote(node):
    """PreVote changes nobody's term or vote. Node 1 (log: one entry of term 1) refuses a pre-vote
    while it hears from leader 2, grants one once leader 2 has been silent for the minimum election
    timeout (1 s here), refuses a candidate whose log is behind its own or whose term is below
    its own, and its own pre-votes,
    refused by peers 2 and 3, never move its term."""
    write_data(node.data, 1, 0, [(1, cmd_noop())])
    peer2 = FakePeer(2, node.raft_ports[2], grant_votes=False)
    peer3 = FakePeer(3, node.raft_ports[3], grant_votes=False)
    try:
        node.start()
        with socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=10) as leader, \
                socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=10) as candidate:
            leader.sendall(append_entries(1, 2, 1, 1, 1, []))
            kind, m = read_message(leader)
            require(kind == "append-reply" and m["success"] and m["term"] == 1, f"heartbeat of leader 2: {kind} {m}")
            heard = time.monotonic()

            def ask(term, last_index, last_term):
                candidate.sendall(pre_vote(term, 3, last_index, last_term))
                kind, m = read_message(candidate)
                require(kind == "pre-vote-reply" and m["from"] == 1, f"pre-vote answered with {kind} {m}")
                return m
            m = ask(2, 1, 1)
            require(not m["granted"] and m["term"] == 1, f"a pre-vote while leader 2 speaks: {m}")
            i = node.info()
            require(i["term"] == "1" and i["voted_for"] == "0" and i["leader_id"] == "2", f"after a refused pre-vote: {i}")
            # Leader 2 goes silent; past 1 s node 1 forgets it and grants a pre-vote (the asker's
            # log is as up to date as its own), still without changing its term or vote.
            wait_for("node 1 to forget leader 2", lambda: node.info()["leader_id"] == "0", 5)
            require(time.monotonic() - heard >= 0.9, f"leader 2 forgotten {time.monotonic() - heard:.2f} s after it spoke")
            m = ask(2, 1, 1)
            require(m["granted"] and m["term"] == 1, f"a pre-vote once leader 2 is silent: {m}")
            m = ask(2, 0, 0)
            require(not m["granted"], f"a pre-vote from a candidate whose log is behind: {m}")
            m = ask(1, 1, 1)
            require(m["granted"], f"a pre-vote for its own term, in which it cast no vote: {m}")
            m = ask(0, 1, 1)
            require(not m["granted"] and m["term"] == 1, f"a pre-vote for a term below its own: {m}")
            # Node 1's own pre-votes (peers 2 and 3 refuse them) ask for term 2 and never move its term.
            wait_for("node 1 to ask for pre-votes twice", lambda: peer2.count("pre-vote") >= 2, 10)
            i = node.info()
            require(i["term"] == "1" and i["voted_for"] == "0" and i["role"] == "pre-candidate",
                    f"node 1 after its refused pre-votes: {i}")
            with peer2.lock:
                asked = {m["term"] for k, m in peer2.received if k == "pre-vote"}
            require(asked == {2}, f"node 1 asked for pre-votes in terms {asked} (want {{2}})")
            require(peer2.count("request-vote") == 0 and peer3.count("request-vote") == 0,
                    "node 1 asked for a vote without a majority of pre-votes")
        print("  refused while leader 2 spoke; granted once it was silent 1 s; refused a stale log; "
              "node 1's own refused pre-votes left its term at 1")
    finally:
        peer2.close()
        peer3.close()
    node.stop_and_replay()


def scenario_leader_loss(node):
    """A client waiting for its write when a new leader overwrites the entry gets an error at
    once: not +OK, and not only at its commit deadline."""
    peer2 = FakePeer(2, node.raft_ports[2], grant_votes=True, acking=False)
    result = {}
    try:
        node.start()
        wait_for("node 1 to lead", lambda: node.info()["role"] == "leader")

        def writer():
            try:
                result["reply"] = node.call("SET", "y", "2", timeout_s=60)
            except OSError as e:
                result["reply"] = e
            result["at"] = time.monotonic()
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        wait_for("the SET to be appended", lambda: node.info()["log_length"] == "2")
        require("reply" not in result, f"the SET answered before it could commit: {result}")
        # Leader 3 of term 5 replaces node 1's uncommitted entries with its own.
        sent = time.monotonic()
        with socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=10) as s:
            s.sendall(append_entries(5, 3, 0, 0, 0, [(5, cmd_noop())]))
            kind, m = read_message(s)
        require(kind == "append-reply" and m["success"] and m["match"] == 1 and m["term"] == 5, f"reply {kind} {m}")
        t.join(timeout=30)
        require(not t.is_alive(), "the waiting client got no answer within 30 s")
        r = result["reply"]
        require(r == RespError("TRYAGAIN outcome unknown: leadership changed before the write committed "
                               "(it may still commit)"), f"the waiting SET got {r!r}")
        waited = result["at"] - sent
        require(waited < 10, f"the waiting SET was answered {waited:.2f} s after its entry was replaced "
                           "(its commit deadline is 20 s)")
        r = node.call("SET", "y", "3")
        require(r == RespError(f"MOVED 0 127.0.0.1:{node.client_ports[3]}"), f"SET on the deposed leader -> {r!r}")
        print(f"  the waiting SET answered TRYAGAIN {waited:.2f} s after leader 3 replaced its entry")
    finally:
        peer2.close()
    node.stop_and_replay()


def scenario_hostile_peer(node):
    """Frames that declare 8 MiB and stall cost what they sent; idle inbound connections are
    bounded; garbage drops the connection; the node keeps committing."""
    node.start()
    wait_for("a one-node leader", lambda: node.info()["role"] == "leader")
    before = node.rss_kib()
    stalled = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=5)
        s.sendall(struct.pack(">I", 8 * 1024 * 1024) + b"\x03" + b"\x00" * 999)
        stalled.append(s)
    require(node.call("PING") == "PONG", "PING with 40 stalled frames")
    grown = node.rss_kib() - before
    require(grown < 64 * 1024, f"40 stalled 8 MiB frames grew the node by {grown} KiB")
    for s in stalled:
        s.close()
    # Garbage: a length above the limit, an unknown type. Each connection is dropped.
    for junk in (b"\xff\xff\xff\xff", frame(b"\x09hello")):
        s = socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=5)
        s.sendall(junk)
        require(s.recv(16) == b"", f"{junk!r}: the node closes the connection")
        s.close()
    # Idle connections: past 64 the least recently active one is closed. Connections closed
    # above may still be counted until the node has seen their end, so open more one at a
    # time (bounded) until the first idle one is closed, rather than trusting a sleep.
    idle = [socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=5) for _ in range(64)]
    idle[0].settimeout(0.3)
    closed = False
    for _ in range(64):
        idle.append(socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=5))
        try:
            closed = idle[0].recv(16) == b""
        except socket.timeout:
            continue
        break
    if not closed:
        idle[0].settimeout(10)
        closed = idle[0].recv(16) == b""
    require(closed, f"the oldest idle inbound connection is closed once more than 64 are open ({len(idle)} opened)")
    opened = len(idle)
    for s in idle:
        s.close()
    require(node.call("SET", "after", "hostile") == "OK", "SET after the hostile peers")
    print(f"  40 stalled 8 MiB frames grew RSS by {grown} KiB; garbage dropped; idle link {opened} evicted the oldest")
    node.stop_and_replay()


def scenario_client_cap(node):
    """At most 1024 clients are served at once; the next one gets Redis's error and a slot
    frees when a client leaves."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1024 + 200
    if hard != resource.RLIM_INFINITY and hard < want:
        print(f"  skipped: the hard limit of open files is {hard} (< {want})")
        node.start()
        node.stop_and_replay()
        return
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the node inherits it
    node.start()
    wait_for("a one-node leader", lambda: node.info()["role"] == "leader")
    clients = []
    try:
        for i in range(1024):
            c = socket.create_connection(("127.0.0.1", node.port()), timeout=10)
            clients.append(c)
            c.sendall(b"PING\r\n")
        for i, c in enumerate(clients):
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = c.recv(64)
                require(chunk, f"client {i} was closed")
                buf += chunk
            require(buf == b"+PONG\r\n", f"client {i} got {buf!r}")
        # It sends nothing: bytes unread at the close would turn it into a reset.
        extra = socket.create_connection(("127.0.0.1", node.port()), timeout=10)
        got = recv_until_closed(extra, 256)
        extra.close()
        require(got == b"-ERR max number of clients reached\r\n", f"client 1025 got {got!r}")
        clients.pop().close()
        wait_for("a freed slot", lambda: node.call("PING") == "PONG", 10)
    finally:
        for c in clients:
            c.close()
    print("  1024 clients served; the 1025th got the max-clients error; a closed client freed a slot")
    node.stop_and_replay()


CLUSTER_SECRET = b"cluster-Secret-of-the-raft-peer-test-0123"
CLIENT_PASSWORD = b"client-Pa55word-of-the-raft-peer-test"


def scenario_authenticated(node):
    """With --cluster-secret-file and --requirepass-file: peers that prove the secret elect node 1
    and ack its appends over MAC'd frames; the hostile peer's frames, a wrong secret and a replayed
    frame are refused and logged while node 1 keeps serving; clients need AUTH; no byte of the
    trace, of `reprise dump` or `dump --json` holds either secret; the trace replays, and replay
    refuses a wrong cluster secret."""
    files = {}
    for name, value in (("cluster-secret", CLUSTER_SECRET), ("requirepass", CLIENT_PASSWORD)):
        files[name] = os.path.join(node.dir, name)
        with open(files[name], "wb") as f:
            f.write(value + b"\n")
    node.argv += ["--record-compress", "off", f"--cluster-secret-file={files['cluster-secret']}",
                  f"--requirepass-file={files['requirepass']}"]
    password = CLIENT_PASSWORD.decode()

    def acall(*args):
        with RespClient(node.port()) as c:
            require(c.call("AUTH", password) == "OK", "AUTH with the password")
            return c.call(*args)

    peers = [AuthFakePeer(n, node.raft_ports[n], CLUSTER_SECRET) for n in (2, 3)]
    try:
        node.start()
        require(node.call("PING") == RespError("NOAUTH Authentication required."), "PING before AUTH: -NOAUTH")
        with RespClient(node.port()) as c:
            r = c.call("AUTH", "wrong")
            require(r == RespError("WRONGPASS invalid username-password pair or user is disabled."),
                    f"AUTH wrong -> {r!r}")
        wait_for("node 1 to lead, elected over authenticated links",
                 lambda: "role:leader" in acall("INFO"), 20)
        require(acall("SET", "k", "v") == "OK", "SET commits with acks over MAC'd frames")
        require(acall("GET", "k") == "v", "GET after SET")
        # Each fake peer's thread counts its link after its proof: one may lag the SET's reply.
        wait_for("both peers' links authenticated", lambda: all(p.links >= 1 for p in peers), 10)

        # The hostile peer of hostile-peer, now without the secret: refused at the challenge.
        s = socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=10)
        s.sendall(struct.pack(">I", 8 * 1024 * 1024) + b"\x03" + b"\x00" * 999)
        got = recv_until_closed(s)
        s.close()
        require(got[:8] == AUTH_MAGIC and len(got) == 40, f"a peer without the secret got the challenge only: {got!r}")
        # A wrong secret: no proof comes back, the link is closed.
        s = socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=10)
        try:
            AuthLink(s, b"not-the-cluster-secret", accepting=False)
            raise Failure("a link with a wrong secret was accepted")
        except (ConnectionError, Failure) as e:
            require("peer closed" in str(e), f"a wrong secret: the node closes the link ({e})")
        s.close()
        # The right secret, a frame answered, then the same frame and MAC again: refused.
        s = socket.create_connection(("127.0.0.1", node.raft_ports[1]), timeout=10)
        link = AuthLink(s, CLUSTER_SECRET, accepting=False)
        sealed = link.sealed(request_vote(0, 2, 0, 0))
        s.sendall(sealed)
        kind, m = link.read()
        require(kind == "vote-reply" and not m["granted"], f"an authenticated stale RequestVote is answered: {kind} {m}")
        s.sendall(sealed)
        require(s.recv(16) == b"", "a replayed frame (its MAC's counter is spent) closes the link")
        s.close()
        err = node.stderr()
        require("refused a peer link" in err and "did not prove the cluster secret" in err,
                f"refused links are logged: {err}")
        require("refused a frame" in err, f"the replayed frame is logged: {err}")
        require(acall("SET", "after", "hostile") == "OK", "node 1 keeps serving after the refused peers")
    finally:
        for p in peers:
            p.close()
    node.stop_and_replay()
    tool = os.path.join(ROOT, "tools", "reprise")
    secrets = (CLUSTER_SECRET, CLIENT_PASSWORD)
    for name in os.listdir(node.dir):
        if name.startswith("node-1.trace"):
            with open(os.path.join(node.dir, name), "rb") as f:
                data = f.read()
            require(not any(x in data or x[:12] in data for x in secrets), f"{name} holds no byte of a secret")
    require(os.path.exists(tool), f"no reprise tool at {tool} (set REPRISE_TEST_BUILD_ROOT to the build folder)")
    for args in (["dump"], ["dump", "--json"]):
        rc, out, err = run([tool, *args, node.trace], timeout_s=120)
        require(rc == 0 and "secret" in out, f"reprise {' '.join(args)}: {err[-300:]}")
        require(not any(x.decode() in out or x.hex() in out or x[:12].hex() in out for x in secrets),
                f"reprise {' '.join(args)} shows no secret")
    wrong = os.path.join(node.dir, "wrong")
    with open(wrong, "w") as f:
        f.write("not-the-cluster-secret\n")
    rc, out, err = run([BIN, f"--replay={node.trace}"], timeout_s=120,
                       env=dict(os.environ, REPRISE_SECRET_FILE_CLUSTER_SECRET=wrong))
    require(rc == 3 and 'secret "cluster-secret" that does not match' in err and "not-the-cluster" not in err,
            f"replay refuses a wrong cluster secret: exit {rc}: {err[-600:]}")
    print("  elected and committed over authenticated links; no secret, a wrong one, a replayed frame refused;"
          " no secret in the trace or its dumps; replay refuses a wrong secret")


SLOW_ELECTION = ("--election-min-ms", "2000", "--election-max-ms", "4000")

SCENARIOS = {
    "del-too-long": (scenario_del_too_long, 1, ()),
    # Peer 2 leaves appends unanswered for a while there; a long election timeout keeps
    # check-quorum (a leader no majority answers within it steps down) out of the way.
    "read-after-election": (scenario_read_after_election, 3, ("--commit-timeout-ms", "1000", *SLOW_ELECTION)),
    "vote-storm": (scenario_vote_storm, 3, ()),
    "pre-vote": (scenario_pre_vote, 3, ("--election-min-ms", "1000", "--election-max-ms", "1200")),
    "hostile-peer": (scenario_hostile_peer, 1, ()),
    "client-cap": (scenario_client_cap, 1, ("--max-clients", "1024")),
    "leader-loss": (scenario_leader_loss, 3, ("--commit-timeout-ms", "20000", *SLOW_ELECTION)),
    # A long election timeout: check-quorum must not depose node 1 while the test's Python peers
    # (HMAC in every reply) are slowed by a loaded machine.
    "authenticated": (scenario_authenticated, 3, SLOW_ELECTION),
}


def main():
    print(f"seed {SEED} (RAFT_TEST_SEED)")

    def start(name):
        _, members, extra = SCENARIOS[name]
        print(f"scenario {name}", flush=True)
        return RealNode(name, members, extra)

    return run_scenarios(sys.argv[2:] or list(SCENARIOS), start, lambda name, node: SCENARIOS[name][0](node))


if __name__ == "__main__":
    sys.exit(main())
