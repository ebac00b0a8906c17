#!/usr/bin/env python3
"""reprise-raft under the simulator (reprise-raft-sim): a fixed set of seeds with every fault kind,
the determinism self-check, traces the production binary replays, failures that are saved and
reproduce, and bad flags.

Usage: raft_sim_test.py REPRISE_RAFT_SIM REPRISE_RAFT [SEEDS]

1. The fixed seeds (default 1..12; 1..4 under the sanitizers) pass with the nemesis on:
   every key's history linearizable, RAFT safety held on every node, a write committed after the
   heal, no healthy leader deposed. Each line says what the run did (operations, faults, leaders).
2. --check-determinism: each seed twice, and once recording, give the same events.
3. --trace-dir: `reprise-raft --replay` (the production binary) replays a simulated node's trace.
4. A checker out of budget answers "unknown" honestly and does not fail the run, and a sweep's
   summary counts such runs apart. (Failures, their
   saved traces and reproduce lines are tested on planted RAFT bugs: tests/sim/raft_bugs.py.)
5. --faults on (the runner's own random faults): the needless-election checker sees them, faults=
   counts them, they stop at --settle, and with the nemesis a majority stays up.
6. The knobs line gives every knob (the runner's too); --help gives --time's default.
7. Bad flags exit 2 with a message.
"""
import os
import re
import shlex
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, replay, report, run  # noqa: E402

LINE = re.compile(r"^seed=(\d+) (ok|FAILED) events=(\d+) .* hash=([0-9a-f]{16}) ops=(\d+) unknown=(\d+) "
                  r"refused=(\d+) faults=(\d+) leaders=(\d+) needless-elections=(\d+) linearizable=(\w+)", re.M)


def fixed_seeds_pass(sim, seeds):
    rc, out, err = run([sim, "--seeds", seeds, "--time", "30s", "--failure-dir", "none"], timeout_s=600)
    found = LINE.findall(out)
    first, last = (int(x) for x in seeds.split(".."))
    check(rc == 0 and len(found) == last - first + 1 and all(f[1] == "ok" for f in found),
          f"seeds {seeds} pass with every fault kind", out + err)
    check(all(int(f[4]) > 200 and f[10] == "ok" for f in found),
          "every run checked hundreds of operations and found them linearizable", out)
    check(sum(int(f[7]) for f in found) >= 3 * len(found), "the nemesis struck several times a run", out)
    check(re.search(r"^knobs: nodes=3 clients=5 .*nemesis-kinds=partition,one-way,crash,pause,skew,disk,delay", out, re.M),
          "the run prints every knob it used", out)
    check("summary: seeds" in out and "failures none" in out, "a sweep ends with its summary", out)
    check(re.search(r"of \d+ seeds run", err) is not None, "a sweep prints its progress on stderr", err)


def determinism(sim):
    rc, out, err = run([sim, "--seeds", "3", "--seed", "21", "--time", "15s", "--check-determinism",
                        "--failure-dir", "none"], timeout_s=600)
    check(rc == 0 and out.count("deterministic (twice, and recording)") == 3,
          "--check-determinism: three seeds ran twice and once recording, the same events each time", out + err)
    rc1, out1, _ = run([sim, "--seed", "5", "--time", "10s", "--failure-dir", "none"])
    rc2, out2, _ = run([sim, "--seed", "5", "--time", "10s", "--failure-dir", "none"])
    a, b = LINE.findall(out1), LINE.findall(out2)
    check(rc1 == 0 and rc2 == 0 and a and b and a[0][3] == b[0][3], "the same seed gives the same run", out1 + out2)


def traces_replay(sim, raft, tmp):
    folder = os.path.join(tmp, "traces")
    rc, out, err = run([sim, "--seed", "8", "--time", "10s", "--nemesis", "partition,delay", "--settle", "9s",
                        "--trace-dir", folder])
    check(rc == 0 and os.path.exists(os.path.join(folder, "n1.1.trace")), "a run records every node's trace", out + err)
    for node in ("n1", "n2", "n3"):
        r = replay(raft, os.path.join(folder, f"{node}.1.trace"))
        check(r.returncode == 0, f"reprise-raft --replay replays the simulated {node} (the production binary)", r.tail())


def checker_budget_is_honest(sim):
    rc, out, err = run([sim, "--seed", "4", "--time", "12s", "--checker-steps", "1", "--failure-dir", "none"])
    found = LINE.findall(out)
    check(rc == 0 and found and found[0][10] == "unknown",
          "a checker out of budget says unknown (and does not fail the run)", out + err)


def world_faults_are_seen(sim, seeds):
    """The runner's own random faults (--faults on) are faults of the run: the needless-election
    checker sees the nodes they touch, faults= counts them, they stop at --settle, and together with
    the nemesis they never take a majority down."""
    rc, out, err = run([sim, "--seeds", seeds, "--faults", "on", "--nemesis", "none", "--failure-dir", "none"],
                       timeout_s=600)
    found = LINE.findall(out)
    check(rc == 0 and found and all(f[1] == "ok" for f in found),
          f"--faults on --nemesis none: seeds {seeds} pass (a node a random fault touched is not 'untroubled')",
          out[-3000:] + err[-500:])
    check(found and all(int(f[7]) > 0 for f in found), "faults= counts the world's random faults", out[-2000:])
    for seed in (1, 6):
        rc, out, err = run([sim, "--seed", str(seed), "--faults", "on", "-v", "--failure-dir", "none"], timeout_s=120)
        settle = re.search(r"^  (\d+\.\d+)s random faults stop$", out, re.M)
        check(settle is not None, f"seed {seed}: the world's random faults stop at --settle", out[-2000:])
        if settle is None:
            continue
        after = [line for line in re.findall(r"^  (\d+\.\d+)s (pause|crash|partition|clog) (\S+)", out, re.M)
                 if float(line[0]) >= float(settle.group(1))]
        check(not after, f"seed {seed}: no fault strikes after the settle point", after)
        # Raft nodes down at once (paused, crashed or exited), from the world's log: at most one of three.
        down, worst = set(), 0
        for line in re.findall(r"^  \d+\.\d+s (.*)$", out, re.M):
            m = re.match(r"(pause|crash|resume|start) (n\d)\b", line) or re.match(r"(n\d) (exited)\b", line)
            if m:
                what, node = (m.group(1), m.group(2)) if m.group(1).startswith(("p", "c", "r", "s")) \
                    else (m.group(2), m.group(1))
                (down.add if what in ("pause", "crash", "exited") else down.discard)(node)
                worst = max(worst, len(down))
        check(worst <= 1, f"seed {seed}, --faults on and the nemesis: at most a minority down at once (saw {worst})",
              out[-3000:])


def sweep_counts_unknown(sim):
    rc, out, err = run([sim, "--seeds", "1..3", "--time", "12s", "--checker-steps", "1", "--failure-dir", "none"],
                       timeout_s=300)
    check(rc == 0 and "3 of 3 seeds passed, 3 of them without every verdict (linearizability unknown 3)" in out
          and "inconclusive linearizability unknown 3" in out,
          "a sweep's summary counts the runs whose verdict was unknown", out[-1500:])


def knobs_and_help(sim):
    rc, out, err = run([sim, "--seed", "2", "--time", "10s", "--faults", "on", "--latency", "100us..900us",
                        "--fsync-failure-rate", "0", "--disk-capacity", "1000000000", "--failure-dir", "none"])
    check(re.search(r"^knobs: .* time=10000ms latency=100us\.\.900us faults=on fault-interval=2000ms "
                    r"fault-duration=1000ms no-crash=no fsync-failure-rate=0 disk-capacity=1000000000$", out, re.M),
          "the knobs line gives the runner's knobs too (--time, --latency, --faults, disks)", out[:1200])
    rc, out, err = run([sim, "--help"])
    check(re.search(r"--time.*default 40s", out) is not None, "--help gives --time's default (40s)", out)


def bad_flags(sim):
    for argv, what in [(["--nodes", "4"], "--nodes"), (["--clients", "0"], "--clients"),
                       (["--nemesis", "meteor"], "meteor"), (["--op-interval", "soon"], "--op-interval"),
                       (["--seeds", "9..3"], "--seeds"), (["--seed", "1", "--seeds", "1..3"], "--seed"),
                       (["--seed", "-1"], "--seed: '-1' is not a number"),
                       (["--sed", "3"], "unknown flag '--sed'; did you mean '--seed'?"),
                       (["--seed", "3", "--nemisis=crash"], "did you mean '--nemesis'?")]:
        rc, out, err = run([sim, *argv])
        check(rc == 2 and what in err, f"{' '.join(argv)} is refused with exit 2", out + err)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    sim, raft = sys.argv[1:3]
    # Under the sanitizers (the `sanitize` test setup sets ASAN_OPTIONS) a run is ~10x slower: fewer seeds.
    seeds = sys.argv[3] if len(sys.argv) == 4 else ("1..4" if os.environ.get("ASAN_OPTIONS") else "1..12")
    with tempfile.TemporaryDirectory(prefix="reprise-raft-sim-test-") as tmp:
        fixed_seeds_pass(sim, seeds)
        determinism(sim)
        traces_replay(sim, raft, tmp)
        checker_budget_is_honest(sim)
        world_faults_are_seen(sim, seeds)
        sweep_counts_unknown(sim)
        knobs_and_help(sim)
        bad_flags(sim)
    return report("raft_sim_test")


if __name__ == "__main__":
    sys.exit(main())
