#!/usr/bin/env python3
"""reprise-kv under the simulator: the runner's lines, determinism, traces the production binary replays.

Usage: kv_sim_test.py REPRISE_KV_SIM REPRISE_KV REPRISE_TOOL

1. A run with faults passes and prints its one line; the same seed prints the same hash.
2. --check-determinism over several seeds with faults (the seed twice, and once recording).
3. --trace-dir: every node's trace; `reprise-kv --replay` replays the server's (the production
   binary, not the simulator) to exit 0, through a crash and restart (the crashed incarnation's
   trace is cut off like a killed process's: exit 2, "the trace ends"); `reprise info` and
   `reprise dump` read them; a second run into the same folder is refused (nothing overwritten).
4. A sabotaged run (a client that lies to its checker) fails, prints what failed and a
   reproduce line, and saves every node's trace in --failure-dir; running that line gives the
   same failure and hash.
5. Bad flags exit 2 with a message.
"""
import os
import re
import shlex
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, replay, report, run  # noqa: E402

LINE = re.compile(r"^seed=(\d+) (ok|FAILED) events=(\d+) wakeups=(\d+) virtual=([\d.]+)s .* hash=([0-9a-f]{16})$", re.M)


def lines(out):
    return LINE.findall(out)


def runs_pass_and_repeat(sim):
    rc, out, err = run([sim, "--seed", "41", "--time", "8s", "--faults", "on", "--fault-interval", "700ms"])
    found = lines(out)
    check(rc == 0 and len(found) == 1 and found[0][1] == "ok", "a run with faults passes", out + err)
    rc2, out2, _ = run([sim, "--seed", "41", "--time", "8s", "--faults", "on", "--fault-interval", "700ms"])
    again = lines(out2)
    check(rc2 == 0 and again and found and again[0][5] == found[0][5] and again[0][2] == found[0][2],
          "the same seed gives the same events and hash", out + out2)
    rc3, out3, _ = run([sim, "--seed", "42", "--time", "8s", "--faults", "on", "--fault-interval", "700ms"])
    other = lines(out3)
    check(other and found and other[0][5] != found[0][5], "another seed gives another run", out3)


def determinism_self_check(sim):
    rc, out, err = run([sim, "--seed", "500", "--seeds", "4", "--time", "6s", "--faults", "on",
                        "--fault-interval", "500ms", "--check-determinism"], timeout_s=300)
    check(rc == 0 and "4 of 4 seeds passed" in out, "--check-determinism passes over 4 seeds with faults", out + err)


def traces_replay_with_the_production_binary(sim, kv, tool, tmp):
    folder = os.path.join(tmp, "traces")
    # Network faults only: the server's one trace holds all the traffic.
    whole = os.path.join(folder, "whole")
    rc, out, err = run([sim, "--seed", "5", "--time", "5s", "--faults", "on", "--no-crash", "--trace-dir", whole])
    check(rc == 0, "a run with network faults and traces passes", out + err)
    server = os.path.join(whole, "kv.1.trace")
    full = replay(kv, server)
    check(full.returncode == 0 and "while the program still ran" in full.stderr,
          "reprise-kv --replay replays the simulated server to the end of the simulated time", full.tail())
    rc, info, err = run([tool, "info", server])
    check(rc == 0 and re.search(r"^program\s+reprise-kv$", info, re.M) and re.search(r"^node\s+kv$", info, re.M)
          and "--bind 0.0.0.0 --port 6379" in info, "reprise info names the node, program and argv", info + err)
    rc, dump, err = run([tool, "dump", server])
    check(rc == 0 and "bytes_read" in dump and "conn_write" in dump and "accepted" in dump,
          "reprise dump prints the records", (dump + err)[:2000])
    # Crashes on: a seed whose server crashed and restarted.
    chosen = None
    for seed in range(7, 40):
        d = os.path.join(folder, str(seed))
        rc, out, err = run([sim, "--seed", seed, "--time", "10s", "--faults", "on", "--fault-interval", "400ms",
                            "--trace-dir", d, "-v"])
        if rc != 0:
            check(False, f"seed {seed} with traces passes", out + err)
            return
        if os.path.exists(os.path.join(d, "kv.2.trace")):
            chosen = (seed, d, out)
            break
    if not check(chosen is not None, "a seed in 7..39 crashes and restarts the server"):
        return
    seed, d, out = chosen
    names = sorted(os.listdir(d))
    check({"kv.1.trace", "kv.2.trace", "client1.1.trace"} <= set(names), "every node and incarnation has a trace",
          names)
    crashed = "crash kv" in out
    first = replay(kv, os.path.join(d, "kv.1.trace"))
    if crashed:
        check(first.returncode == 2 and "the trace ends" in first.stderr,
              "the crashed server's trace replays to its cut, like a killed process's", first.tail())
    last = sorted(n for n in names if n.startswith("kv.") and n.endswith(".trace"))[-1]
    final = replay(kv, os.path.join(d, last))
    check(final.returncode == 0 and "while the program still ran" in final.stderr,
          f"reprise-kv --replay={last} replays the restarted server to the end of the simulated time",
          final.tail())
    client = replay(kv, os.path.join(d, "client1.1.trace"))
    check(client.returncode != 0 and "was recorded by program 'kv-client'" in client.stderr,
          "reprise-kv refuses a client's trace, naming the program that recorded it", client.tail())
    rc, out2, err2 = run([sim, "--seed", seed, "--time", "1s", "--trace-dir", d])
    check(rc == 2 and "never overwritten" in err2, "a second run into the same folder is refused", out2 + err2)


def failures_print_a_reproduce_line(sim, tmp):
    failures = os.path.join(tmp, "failures")
    rc, out, err = run([sim, "--seed", "3", "--time", "5s", "--sabotage", "1", "--failure-dir", failures])
    check(rc == 1 and "FAILED" in out and "what failed:" in out and "wrong replies" in out,
          "a sabotaged run fails and says what failed", out + err)
    saved = os.path.join(failures, "seed-3")
    check(f"saved: {saved}" in out and os.path.exists(os.path.join(saved, "kv.1.trace"))
          and os.path.exists(os.path.join(saved, "client1.1.trace")),
          "the failed seed is run again recording every node's trace into --failure-dir/seed-N", out)
    m = re.search(r"^  reproduce: (.*)$", out, re.M)
    if not check(m is not None and "--seed 3" in m.group(1) and "--sabotage 1" in m.group(1),
                 "the failure prints the line that reproduces it", out):
        return
    argv = shlex.split(m.group(1))
    argv[0] = sim
    rc2, out2, _ = run(argv + ["--failure-dir", "none"])
    a, b = lines(out), lines(out2)
    check(rc2 == 1 and a and b and a[0][5] == b[0][5], "the reproduce line gives the same failing run", out2)
    check(re.search(r"^  run: seed=3 .*commit=\S+ build=\S+ compiler='[^']+'", out, re.M) is not None,
          "the failure names every option, the commit, build type and compiler", out)


def bad_flags(sim):
    rc1, out1, _ = run([sim, "--seed", "2", "--time", "2s", "--clients", "1", "--ops", "20"])
    rc6, out6, _ = run([sim, "--seed", "2", "--time", "2s", "--clients", "6", "--ops", "20"])
    one, six = lines(out1), lines(out6)
    check(rc1 == 0 and rc6 == 0 and one and six and int(six[0][3]) > 4 * int(one[0][3]),
          "the simulation's own flags take effect (6 clients deliver far more wake-ups than 1)", out1 + out6)
    for argv, what in [(["--clients", "0"], "--clients"), (["--time", "soon"], "--time"), (["--faults", "maybe"], "--faults"),
                       (["--latency", "5ms..1ms"], "--latency"), (["--frobnicate"], "frobnicate")]:
        rc, out, err = run([sim, *argv])
        check(rc == 2 and what in err, f"{' '.join(argv)} is refused with exit 2", out + err)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    sim, kv, tool = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="reprise-sim-test-") as tmp:
        runs_pass_and_repeat(sim)
        determinism_self_check(sim)
        traces_replay_with_the_production_binary(sim, kv, tool, tmp)
        failures_print_a_reproduce_line(sim, tmp)
        bad_flags(sim)
    return report("kv_sim_test")


if __name__ == "__main__":
    sys.exit(main())
