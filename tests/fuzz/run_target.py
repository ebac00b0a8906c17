#!/usr/bin/env python3
"""Runs one libFuzzer target for a bounded time and reports executions and findings.

Usage: run_target.py --target NAME --exe FUZZER --seconds S --max-len N
                     --seeds DIR --work DIR --artifacts DIR

The committed seeds are read only: libFuzzer writes the inputs it finds into --work
(kept across runs, so longer runs build on shorter ones) and a crashing input into
--artifacts. Exit 0 when the target ran its time without a finding, 1 otherwise.
One line on stdout sums the run up:
  fuzz NAME: EXECS executions in S s (EXECS/s), coverage C, corpus K inputs, findings F
"""
import argparse
import os
import re
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--exe", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--seeds", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--log", help="keep libFuzzer's output in this file")
    a = ap.parse_args()

    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.artifacts, exist_ok=True)
    prefix = os.path.join(a.artifacts, a.target + "-")
    # Only this target's files: other targets may run at the same time into the same folder.
    mine = lambda: {f for f in os.listdir(a.artifacts) if f.startswith(a.target + "-")}  # noqa: E731
    before = mine()
    argv = [a.exe, f"-max_total_time={a.seconds}", f"-max_len={a.max_len}", "-timeout=10", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={prefix}", a.work, a.seeds]
    start = time.monotonic()
    # The fuzzer stops itself at -max_total_time; the margin covers loading the corpus.
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                       timeout=a.seconds * 3 + 60)
    elapsed = time.monotonic() - start
    out = p.stdout
    if a.log:
        with open(a.log, "w") as f:
            f.write(out)

    def stat(name):
        m = re.search(rf"stat::{name}:\s+(\d+)", out)
        return int(m.group(1)) if m else 0

    execs = stat("number_of_executed_units")
    cov = re.findall(r"\bcov: (\d+)", out)
    corpus = len(os.listdir(a.work))
    found = sorted(mine() - before)
    crashed = p.returncode != 0
    findings = len(found) if found else (1 if crashed else 0)
    print(f"fuzz {a.target}: {execs} executions in {elapsed:.0f} s ({execs / max(elapsed, 1e-9):.0f}/s), "
          f"coverage {cov[-1] if cov else '?'}, corpus {corpus} inputs, findings {findings}")
    if crashed or found:
        # What libFuzzer said about the finding, and where the input is.
        tail = out[out.find("==ERROR") if "==ERROR" in out else max(0, len(out) - 6000):]
        print(tail[:12000], file=sys.stderr)
        for f in found:
            print(f"finding: {os.path.join(a.artifacts, f)}", file=sys.stderr)
        print(f"fuzz {a.target}: exit code {p.returncode}; reproduce with: {a.exe} <input>", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
