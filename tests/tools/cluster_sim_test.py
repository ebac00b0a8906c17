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
  per trace): no divergence, every run accounted for, no read placed before its write.
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
        joint = subprocess.run([RAFT] + [f"--replay={t}" for t in nodes], capture_output=True, text=True, timeout=300)
        reported = [t for t in nodes if f"({t}): " in joint.stderr]
        check(joint.returncode == 0 and "joint replay done" in joint.stderr and "DIVERGENCE" not in joint.stderr
              and "contradict" not in joint.stderr and len(reported) == len(nodes),
              f"seed {seed}: the {len(nodes)} runs of the raft nodes replay jointly, reads after their writes",
              joint.stderr[-3000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)

sys.exit(report("cluster_sim_test"))
