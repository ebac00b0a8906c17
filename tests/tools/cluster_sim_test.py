#!/usr/bin/env python3
"""`reprise cluster` on the traces of simulated reprise-raft clusters under a nemesis.

Usage: cluster_sim_test.py REPRISE REPRISE_RAFT_SIM REPRISE_RAFT [SEEDS]

For each seed (default 1..4), reprise-raft-sim runs 3 nodes and 5 clients for 30 s of virtual
time with partitions, crashes and restarts, pauses, clock skew, disk faults and delays, and
records every node's and client's trace (--trace-dir). Then:
- `cluster check` pairs the connections between them and finds them consistent (exit 0);
- `cluster log` places every event, never has to force the order, and puts each read after
  the write it names (`read cN <- NODE #E`): a happens-before order, checked line by line;
- each node's runs (a crashed node restarts with a new trace) come one after the other;
- the production reprise-raft replays every node's runs jointly (one process, --replay given once
  per trace): no divergence, every run accounted for, no read placed before its write. It follows
  the simulation's run order (sim.order), and the order is checked against the plan a scan of the
  traces makes (REPRISE_JOINT_VERIFY_ORDER=1); without the file, and with a damaged one, the
  traces are scanned for the order instead.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, report  # noqa: E402

REPRISE, SIM, RAFT = sys.argv[1], sys.argv[2], sys.argv[3]
SEEDS = range(1, 5)
if len(sys.argv) > 4:
    a, b = sys.argv[4].split("..")
    SEEDS = range(int(a), int(b) + 1)




def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


LINE = re.compile(r"^\s*-?\d+\.\d+ (\S+)\s+#(\d+)\s+(.*)$")
READ = re.compile(r"^read c\d+ <- (\S+) #(\d+) ")

for seed in SEEDS:
    work = tempfile.mkdtemp(prefix=f"reprise-cluster-sim-{seed}-")
    try:
        sim = subprocess.run([SIM, "--seed", str(seed), "--time", "30s", "--trace-dir", work, "--failure-dir", "none"],
                             capture_output=True, text=True, timeout=300)
        check(sim.returncode == 0, f"seed {seed}: the simulation passes", (sim.stdout + sim.stderr)[-3000:])
        traces = [f for f in os.listdir(work) if f.endswith(".trace")]
        checked = subprocess.run([REPRISE, "cluster", "check", work], capture_output=True, text=True, timeout=300)
        paired = re.search(r"(\d+) connection\(s\) between them", checked.stdout)
        check(checked.returncode == 0 and "CONSISTENT" in checked.stdout and paired and int(paired[1]) > 0,
              f"seed {seed}: {len(traces)} traces, {paired[1] if paired else '?'} connections paired, consistent",
              (checked.stdout + checked.stderr)[-3000:])
        log = subprocess.run([REPRISE, "cluster", "log", work], capture_output=True, text=True, timeout=300)
        check(log.returncode == 0 and "order forced" not in log.stdout + log.stderr,
               f"seed {seed}: log places every event without forcing the order", log.stderr[-3000:])
        ends = dict(re.findall(r"^\s+[\d.]+ (\S+)\s+#(\d+)\s+end exit_code=-1 ", log.stdout, re.M))
        counted = {m[0]: (m[1], m[2]) for m in re.findall(
            r"^# (\S+)\s+\S+ \((\d+) events; end record #(\d+): the recording stopped while it ran\)", log.stdout, re.M)}
        check(ends and all(counted.get(label) == (n, n) for label, n in ends.items()),
              f"seed {seed}: a trace the simulation's time stopped counts its events as the replay does (its end record "
              f"#N not one of them)", f"ends {ends}; counted {counted}")
        placed = set()
        bad = []
        runs_seen = {}
        out_of_order_runs = []
        for line in log.stdout.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            label, event, text = m[1], int(m[2]), m[3]
            r = READ.match(text)
            if r and (r[1], int(r[2])) not in placed:
                bad.append(line)
            placed.add((label, event))
            node, _, run = label.partition("/")
            if run:
                if int(run) < runs_seen.get(node, 0):
                    out_of_order_runs.append(line)
                runs_seen[node] = max(runs_seen.get(node, 0), int(run))
        check(placed and not bad, f"seed {seed}: every read comes after the write it names ({len(placed)} events)",
               "\n".join(bad[:20]))
        check(not out_of_order_runs, f"seed {seed}: a node's runs in order ({sum(runs_seen.values())} runs of restarted nodes)",
               "\n".join(out_of_order_runs[:20]))
        # Joint replay of the raft nodes' runs (the clients are another program).
        nodes = sorted(os.path.join(work, f) for f in traces if f.startswith("n"))
        def joint_replay(what, expect, env=None):
            joint = subprocess.run([RAFT] + [f"--replay={t}" for t in nodes], capture_output=True, text=True,
                                   timeout=300, env=dict(os.environ, **(env or {})))
            reported = [t for t in nodes if f"({t}): " in joint.stderr]
            check(joint.returncode == 0 and "joint replay done" in joint.stderr and "DIVERGENCE" not in joint.stderr
                  and "contradict" not in joint.stderr and "disagree" not in joint.stderr
                  and "CHECKED AGAINST" not in joint.stderr and expect in joint.stderr and len(reported) == len(nodes),
                  f"seed {seed}: the {len(nodes)} runs of the raft nodes replay jointly, {what}", joint.stderr[-3000:])

        order = os.path.join(work, "sim.order")
        check(os.path.isfile(order), f"seed {seed}: the simulation wrote its run order (sim.order)")
        joint_replay("in the simulation's run order, checked against a scan",
                     "in the order the simulation ran them", {"REPRISE_JOINT_VERIFY_ORDER": "1"})
        joint_replay("in the simulation's run order", "in the order the simulation ran them")
        # The folder named two ways (a relative path through a symlink, an absolute one): one folder.
        link = work + "-link"
        os.symlink(work, link)
        try:
            spelled = subprocess.run([RAFT] + [f"--replay={t}" for t in nodes[:-1]]
                                     + ["--replay=" + os.path.relpath(os.path.join(link, os.path.basename(nodes[-1])))],
                                     capture_output=True, text=True, timeout=300)
            check(spelled.returncode == 0 and "in the order the simulation ran them" in spelled.stderr,
                  f"seed {seed}: the order is followed with the folder named two ways", spelled.stderr[-3000:])
        finally:
            os.unlink(link)
        os.rename(order, order + ".away")
        joint_replay("without sim.order: reads ordered after their writes by a scan",
                     "reads of connections between the nodes ordered after their writes")
        with open(order + ".away", "rb") as f:
            data = f.read()
        with open(order, "wb") as f:
            f.write(data[:-3])  # the last run cut
        joint_replay("with a damaged sim.order: scanned instead, saying why", "the traces are scanned for an order instead")
        # A well-formed order that is wrong (every run of a node whole, one node after another): the
        # check against the scan finds ticks that read before the write.
        head = data[:data.index(b"\nruns ") + 1].decode()
        ticks = [int(line.split()[3]) for line in head.splitlines()[2:]]
        runs = b"".join(varint(i) + varint(t) for i, t in enumerate(ticks))
        with open(order, "wb") as f:
            f.write(head.encode() + f"runs {len(ticks)}\n".encode() + runs)
        wrong = subprocess.run([RAFT] + [f"--replay={t}" for t in nodes], capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, REPRISE_JOINT_VERIFY_ORDER="1"))
        check(wrong.returncode == 4 and "CHECKED AGAINST A SCAN OF THE TRACES" in wrong.stderr
              and re.search(r"before they were written \(the first: node \S+ before its event #\d+\)", wrong.stderr),
              f"seed {seed}: an order that takes each node whole is found wrong by the check (exit 4, the first named)",
              f"exit {wrong.returncode}\n" + wrong.stderr[-3000:])
        twice = subprocess.run([RAFT, f"--replay={nodes[0]}",
                                "--replay=" + os.path.join(work, ".", os.path.basename(nodes[0]))],
                               capture_output=True, text=True, timeout=300)
        check(twice.returncode == 2 and "is given twice" in twice.stderr,
              f"seed {seed}: one trace given twice (two spellings) is refused", twice.stderr[-3000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)

sys.exit(report("cluster_sim_test"))
