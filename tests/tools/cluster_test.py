#!/usr/bin/env python3
"""`reprise cluster check|log|timeline` on the scenarios make_cluster_traces writes.

Usage: cluster_test.py REPRISE MAKE_CLUSTER_TRACES [--html-only]

Each scenario is two nodes' traces with known bytes on a connection between them (see
tests/tools/make_cluster_traces.cpp): consistent, a mismatched byte, extra bytes, bytes never
read, a NAT'd address, a skewed clock, a restarted node. With --html-only it checks the HTML
timeline in headless Chromium instead (exit 77, a skip, when Chromium is not installed).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, report  # noqa: E402

REPRISE, MAKE = sys.argv[1], sys.argv[2]


def run(*args, timeout=60):
    p = subprocess.run([REPRISE, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr




def check_scenarios(work):
    d = lambda name: os.path.join(work, name)

    rc, out, err = run("cluster", "check", d("consistent"))
    check(rc == 0 and "CONSISTENT" in out, "consistent: exit 0, CONSISTENT", out + err)
    check("b c9 10.0.0.2:7000 <- a c5 10.0.0.1:40000" in out, "consistent: the connection is paired both ways", out)
    check("10.0.0.9:50000 (not recorded)" in out, "consistent: the unrecorded client is listed as such", out)
    check("checked 16 bytes in 3 writes" in out, "consistent: every write checked (11 bytes a->b, 5 b->a)", out)

    rc, out, err = run("cluster", "check", os.path.join(d("mismatch"), "a.trace"), os.path.join(d("mismatch"), "b.trace"))
    check(rc == 1 and "INCONSISTENT" in out, "mismatch: exit 1", out + err)
    check(re.search(r"MISMATCH a c5 -> b c9: bytes 0\.\.5 of the stream, written at a #2 \(5 bytes\), differ from "
                     r"what b read at #6\.\.#6: hellp", out) is not None,
           "mismatch: names both sides, the writer's and the reader's events and the bytes read", out)

    rc, out, err = run("cluster", "check", d("consistent"), os.path.join(d("consistent"), "a.trace"))
    check(rc == 0 and "2 trace(s)" in out, "a trace named twice (file and folder) is read once", out + err)

    rc, out, err = run("cluster", "check", d("extra"))
    check(rc == 1 and "EXTRA b c9 read 2 byte(s) from #9 that a c5 never wrote (it wrote 11)" in out,
           "extra: exit 1, the extra bytes and the event they arrive in", out + err)

    rc, out, err = run("cluster", "check", d("unread"))
    check(rc == 0 and "unread: 6 byte(s) a c5 wrote from #4 on were never read by b c9 (b ended without reading them)"
           in out, "unread: reported with the writer's event, not a failure", out + err)

    rc, out, err = run("cluster", "check", d("nat"))
    check(rc == 3 and "no connection joins" in out, "nat: without --map, exit 3 (cannot tell)", out + err)
    rc, out, err = run("cluster", "check", "--map", "192.168.0.2:7000=10.0.0.2:7000", d("nat"))
    check(rc == 0 and "CONSISTENT" in out, "nat: with --map HOST:PORT=HOST:PORT, paired and consistent", out + err)
    rc, out, err = run("cluster", "check", "--map=192.168.0.2=10.0.0.2", d("nat"))
    check(rc == 0 and "CONSISTENT" in out, "nat: with --map HOST=HOST (every port), paired and consistent", out + err)

    rc, out, err = run("cluster", "check", os.path.join(d("consistent"), "a.trace"))
    check(rc == 3 and "one trace alone" in out, "check of one trace alone: exit 3 (cannot tell)", out + err)
    rc, out, err = run("cluster", "log", "--nodes", "a, c", d("consistent"))
    check(rc == 2 and "no trace is of node c; these traces are of: a, b" in err,
           "log --nodes with an unknown node: exit 2, naming the known ones", out + err)

    # A damaged trace: the check covers what can be read and cannot tell.
    damaged = d("damaged")
    shutil.copytree(d("consistent"), damaged)
    with open(os.path.join(damaged, "b.trace"), "r+b") as f:
        size = os.path.getsize(f.name)
        f.truncate(size - 7)
    rc, out, err = run("cluster", "check", damaged)
    check(rc == 3 and "DAMAGED" in out and "CANNOT TELL" in out, "damaged: exit 3, the damage named", out + err)

    # log: happens-before order even when b's clock is 5 s ahead.
    rc, out, err = run("cluster", "log", d("skew"))
    lines = [l for l in out.splitlines() if not l.startswith("#")]
    check(rc == 0, "log skew: exit 0", err)
    check(re.search(r"# b\s+\S+ \(\d+ events\): clock offset -4\.99\d+ s \(from \d+ message\(s\) each way with a\)",
                     out) is not None, "log skew: b's clock offset estimated near -5 s from message delays", out)
    pos = {}
    for i, l in enumerate(lines):
        m = re.match(r"\s*(-?\d+\.\d+) (\S+)\s+#(\d+)\s+(.*)", l)
        if m:
            pos[(m.group(2), int(m.group(3)))] = (i, float(m.group(1)), m.group(4))
    check(("a", 2) in pos and ("b", 6) in pos and pos[("a", 2)][0] < pos[("b", 6)][0],
           "log skew: b's read comes after a's write it reads", out)
    check(("b", 6) in pos and pos[("b", 6)][2] == "read c9 <- a #2 (5 B)", "log: a read names the write it reads", out)
    check(("b", 2) in pos and pos[("b", 2)][2].endswith(": PING"), "log: RESP commands are decoded", out)
    check(("a", 6) in pos and pos[("a", 6)][2].endswith(": +OK"), "log: RESP replies are decoded", out)
    times = [t for (_, t, _) in sorted(pos.values())]
    check(times == sorted(times), "log skew: cluster times never go back in the merged order", out)
    check(any("** got_reply" in l for l in lines), "log: annotations are shown", out)

    rc, out, err = run("cluster", "log", "--json", d("consistent"))
    objs = [json.loads(l) for l in out.splitlines()]
    reads = [o for o in objs if o["text"].startswith("read c9")]
    check(rc == 0 and reads and reads[0]["from"]["node"] == "a" and reads[0]["from"]["event"] == 2,
           "log --json: one object per event, a read's source", out)
    rc, out, err = run("cluster", "log", "--nodes", "a", "--from", "0.002", d("consistent"))
    body = [l for l in out.splitlines() if not l.startswith("#")]
    check(rc == 0 and body and all(" a " in l for l in body) and not any("#2 " in l for l in body),
           "log --nodes/--from: only a's events from 2 ms on", out)

    # A restarted node: its runs are ordered, the second after the first.
    rc, out, err = run("cluster", "check", d("restart"))
    check(rc == 0 and "b/1 c9" in out and "b/2 c3" in out and "CONSISTENT as far as the traces go" in out,
           "restart: a node's two runs, each connection paired with its own run", out + err)
    check("beyond the writer's trace: a c5 read 7 byte(s) from #4 that b/1 c9's trace does not hold (it is cut off"
           in out, "restart: bytes past the end of a killed node's trace are reported, not failed", out)
    rc, out, err = run("cluster", "log", "--nodes", "b/2", d("restart"))
    body = [l for l in out.splitlines() if not l.startswith("#")]
    check(rc == 0 and body and all(l.split()[1] == "b/2" for l in body),
           "log --nodes b/2: one run of a node, as log labels it", out + err)
    rc, out, err = run("cluster", "log", d("restart"))
    labels = [l.split()[1] for l in out.splitlines() if not l.startswith("#") and l.split()[1].startswith("b/")]
    check(labels and labels == sorted(labels), "restart: every event of b's first run before its second run's", out)

    # A read that held a secret is masked in the reader's trace: not compared, said so; the rest is.
    rc, out, err = run("cluster", "check", d("secret"))
    check(rc == 0 and "note: 1 write(s) reached a read the recorder masked" in out and "checked 14 bytes in 1 writes" in out
           and "CONSISTENT" in out, "check: a write holding a masked secret is not compared, the next one is", out + err)
    rc, out, err = run("cluster", "log", d("secret"))
    check(rc == 0 and "(27 B): AUTH *******" in out and "hunter2" not in out,
           "log: a redacted read shows its masked bytes, without its trailer", out + err)

    # An authenticated reprise-raft link: the handshake named (never its bytes), the tag skipped.
    rc, out, err = run("cluster", "log", d("auth"))
    check(rc == 0 and "read c5 <- b #2 (40 B): auth: challenge (nonce)" in out
           and "read c9 <- a #4 (64 B): auth: answer (nonce and proof of the cluster secret)" in out
           and "read c5 <- b #5 (32 B): auth: proof of the cluster secret (accepting node)" in out
           and "(65 B): RequestVote(term 7, candidate 1, last log 3/2)" in out and "stopped decoding" not in out,
           "log: an authenticated raft link's handshake and tagged frames are decoded", out + err)

    # timeline: Chrome JSON with matched arrows.
    tl = os.path.join(work, "t.json")
    rc, out, err = run("cluster", "timeline", d("consistent"), "--output", tl)
    check(rc == 0 and os.path.exists(tl), "timeline: written", err)
    doc = json.load(open(tl))
    ev = doc["traceEvents"]
    outs = {e["bind_id"] for e in ev if e.get("flow_out")}
    ins = {e["bind_id"] for e in ev if e.get("flow_in")}
    check(len(outs) == 3 and outs == ins, "timeline: an arrow per write read (3), each with both ends", json.dumps(ev)[:2000])
    check("displayTimeUnit" not in doc, "timeline: no displayTimeUnit")
    check(any(e["ph"] == "i" and e["name"] == "got_reply" for e in ev), "timeline: annotations are instants")
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    check(any(n.startswith("a ") for n in names) and any(n.startswith("b ") for n in names), "timeline: a track per node")
    for pid in {e["pid"] for e in ev}:
        for tid in (1, 2):
            xs = sorted((float(e["ts"]), float(e["dur"])) for e in ev if e["ph"] == "X" and e["pid"] == pid and e["tid"] == tid)
            overl = [(a, b) for a, b in zip(xs, xs[1:]) if a[0] + a[1] > b[0] + 1e-9]
            check(not overl, f"timeline: slices of track {pid}/{tid} do not overlap", str(overl))
    rc, out, err = run("cluster", "timeline", d("consistent"), "--nodes", "a", "--output", tl)
    ev = json.load(open(tl))["traceEvents"]
    check(rc == 0 and {e["pid"] for e in ev} == {1} and not any(e.get("bind_id") for e in ev),
           "timeline --nodes: only a's track, no arrow to a node left out")
    small = os.path.join(work, "small.json")
    rc, out, err = run("cluster", "timeline", d("consistent"), "--max-bytes", "300", "--output", small)
    check(rc == 2 and "--max-bytes" in err and not os.path.exists(small),
           "timeline --max-bytes: refused with a clear message, nothing left behind", err)

    # Command line errors.
    for args, what in ((["cluster"], "no action"), (["cluster", "bogus", work], "unknown action"),
                       (["cluster", "check"], "no trace"), (["cluster", "check", "--html", d("consistent")], "--html on check"),
                       (["cluster", "log", "--map", "nonsense", d("consistent")], "a --map without ="),
                       (["cluster", "log", "--from", "x", d("consistent")], "--from not a number"),
                       (["cluster", "check", os.path.join(work, "missing")], "a trace that does not exist")):
        rc, out, err = run(*args)
        check(rc == 2 and err.strip(), f"usage: {what} is exit 2 with a message", out + err)
    rc, out, err = run("cluster", "--help")
    check(rc == 0 and "check|log|timeline" in out, "cluster --help")


def check_html(work):
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if browser is None:
        print("SKIP: chromium-headless-shell is not installed (./dev installs it)")
        sys.exit(77)
    page = os.path.join(work, "t.html")
    rc, out, err = run("cluster", "timeline", "--html", os.path.join(work, "consistent"), "--output", page)
    check(rc == 0, "html: written", err)
    text = open(page).read()
    check("http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text,
           "html: self-contained (no network address)")
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                        "--user-data-dir=" + os.path.join(work, "chromium-profile"), "--dump-dom", "file://" + page],
                       capture_output=True, text=True, timeout=120)
    dom = p.stdout
    check(p.returncode == 0, "html: the browser loaded it", p.stderr[-2000:])
    check(len(re.findall(r'class="lane"', dom)) == 2, "html: a lane per node (2)", dom[:3000])
    check(len(re.findall(r'class="msg"', dom)) == 3, "html: an arrow per message (3)", dom[:3000])
    check("data-errors" not in dom, "html: no script error", dom[:3000])
    console = [l for l in p.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    check(not console, "html: the console is quiet", "\n".join(console))


def main():
    work = tempfile.mkdtemp(prefix="reprise-cluster-test-")
    try:
        subprocess.run([MAKE, work], check=True, timeout=60)
        if "--html-only" in sys.argv:
            check_html(work)
        else:
            check_scenarios(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report("cluster_test")


if __name__ == "__main__":
    sys.exit(main())
