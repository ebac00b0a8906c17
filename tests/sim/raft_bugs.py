#!/usr/bin/env python3
"""Classic RAFT mistakes, planted one at a time in a copy of reprise-raft's sources, must be found by
reprise-raft-sim: the checkers are worth only the bugs they find. Product code carries no planted bug:
each one is a text replacement applied here to a copy, compiled with the build's own compile command
and linked with the build's own objects into a separate reprise-raft-sim.

Usage: raft_bugs.py BUILD_DIR SOURCE_ROOT [--bugs NAME,...] [--max-seeds N] [--time T] [--table]

For each bug: runs seeds 1, 2, ... (in batches) until a run fails, or --max-seeds (default 60) pass.
It checks that the failure names the checker expected to catch that bug (any checker counts as found,
the expected one is reported), that the failed seed's traces and history were saved, and (for the first
bug) that the printed reproduce line gives the same failing run. --table prints the results as the
markdown table of docs/simulation.md. Exit 0 when every bug was found, 1 when one was not (or a
replacement no longer applies to the sources: the bug list must follow the code).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, report, run  # noqa: E402

# name, file, what the mistake is, the checker expected to see it, [(old, new)] exact replacements.
# Safety bugs are hunted with needless elections allowed (a liveness matter); the pre-vote bug is not.
BUGS = [
    ("vote-without-log-check", "node.cpp",
     "a vote (and a pre-vote) is granted without the candidate's-log-is-up-to-date check (§5.4.1)",
     "raft safety",
     [("                         log_up_to_date(m.last_log_index, m.last_log_term) && m.candidate != config_.id;",
       "                         (log_up_to_date(m.last_log_index, m.last_log_term) || true) && m.candidate != config_.id;"),
      ("    const bool granted = term_ok && log_up_to_date(m.last_log_index, m.last_log_term) && !leader_heard_recently() &&",
       "    const bool granted = term_ok && !leader_heard_recently() &&")]),
    # (hunted with 5 nodes and frequent crashes, partitions and pauses: see HUNT_FLAGS)
    ("vote-not-persisted", "node.cpp",
     "the vote is not persisted before the reply (a restarted node votes again in the same term)",
     "raft safety",
     [("    if (granted)\n        reset_election_timer();\n    if (!persist_hard_state())\n",
       "    if (granted)\n        reset_election_timer();\n    if (!granted && !persist_hard_state())\n")]),
    ("vote-twice-in-a-term", "node.cpp",
     "a node votes for whoever asks, though it voted for another candidate in this term",
     "raft safety",
     [("    const bool granted = m.term == term_ && (voted_for_ == 0 || voted_for_ == m.candidate) &&",
       "    const bool granted = m.term == term_ &&")]),
    ("commit-by-next-index", "node.cpp",
     "the leader counts a replica by its next index (what it will send) instead of its match index (what it holds)",
     "raft safety",
     [("            holders += p.match_index >= n ? 1 : 0;", "            holders += p.next_index > n ? 1 : 0;")]),
    ("commit-old-term-by-counting", "node.cpp",
     "the leader commits an entry of an older term by counting its replicas (Figure 8, §5.4.2)",
     "raft safety",
     [("for (std::uint64_t n = storage_.last_index(); n > commit_index_ && storage_.term_at(n) == term_; --n) {",
       "for (std::uint64_t n = storage_.last_index(); n > commit_index_; --n) {")]),
    ("append-from-stale-term", "node.cpp",
     "AppendEntries of a stale term is accepted (and its leader followed)",
     "raft safety",
     [("    AppendReply r{term_, config_.id, false, 0, 0};\n    if (m.term < term_)\n        return r;\n",
       "    AppendReply r{term_, config_.id, false, 0, 0};\n"),
      ("    if (m.term > term_ || role_ != Role::follower)\n        step_down(m.term);",
       "    if (m.term > term_ || role_ != Role::follower)\n        step_down(std::max(m.term, term_));")]),
    ("apply-before-commit", "node.cpp",
     "a follower applies entries as soon as it holds them, before the leader says they committed",
     "raft safety",
     [("const std::uint64_t c = std::min(m.leader_commit, r.match_index);",
       "const std::uint64_t c = r.match_index;")]),
    ("read-without-leadership-check", "frontend.cpp",
     "GET is served from the leader's applied state without confirming it is still leader",
     "linearizability",
     [("            switch (read_barrier()) {", "            switch (role_ == Role::leader ? ReadStatus::ok : ReadStatus::not_leader) {")]),
    ("election-without-pre-vote", "node.cpp",
     "a node whose election timer fires starts an election at once, without asking for pre-votes (§9.6)",
     "needless elections",
     [("    if (has_majority(pre_votes_.size())) {\n        start_election();",
       "    if (true) {\n        start_election();")]),
]

# Extra reprise-raft-sim flags per bug (the defaults otherwise): a harsher nemesis where the mistake
# needs several nodes down and up again to show.
HARSH = ["--nodes", "5", "--nemesis", "crash,partition,pause,disk", "--nemesis-interval", "700ms",
         "--nemesis-duration", "1500ms", "--latency", "1ms..20ms"]
HUNT_FLAGS = {"vote-without-log-check": HARSH, "vote-not-persisted": HARSH, "vote-twice-in-a-term": HARSH,
              "commit-by-next-index": HARSH, "commit-old-term-by-counting": HARSH, "append-from-stale-term": HARSH,
              "apply-before-commit": HARSH}

LINE = re.compile(r"^seed=(\d+) (ok|FAILED) .* hash=([0-9a-f]{16})", re.M)


def core_sources(build):
    """The sources of the raft_core library, as the build compiles them (so a new file is never left out)."""
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    return sorted({os.path.basename(e["file"]) for e in entries
                   if "/examples/raft/" in e["file"] and "raft_core" in e["command"]})


def compile_command(build, source_name):
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    for e in entries:
        if e["file"].endswith(f"examples/raft/{source_name}") and "raft_core" in e["command"]:
            return e["directory"], shlex.split(e["command"])
    raise SystemExit(f"raft_bugs: no compile command for examples/raft/{source_name} in {build}")


def link_command(build):
    out = subprocess.run(["ninja", "-C", build, "-t", "commands", "examples/sim/reprise-raft-sim"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    return shlex.split(out[-1])


def build_with_bug(build, source_root, bug, work):
    name, source, _, _, replacements = bug
    folder = os.path.join(work, name)
    os.makedirs(folder)
    raft_dir = os.path.join(source_root, "examples", "raft")
    for f in os.listdir(raft_dir):
        if f.endswith((".cpp", ".hpp")):
            shutil.copy(os.path.join(raft_dir, f), folder)
    path = os.path.join(folder, source)
    text = open(path).read()
    for old, new in replacements:
        if text.count(old) != 1:
            return None, f"the replacement for {name} no longer applies to examples/raft/{source} ({text.count(old)} matches)"
        text = text.replace(old, new)
    open(path, "w").write(text)
    directory, cmd = compile_command(build, source)
    obj = os.path.join(folder, source + ".o")
    out = []
    skip = 0
    for i, arg in enumerate(cmd):
        if skip:
            skip -= 1
            continue
        if arg in ("-MD",):
            continue
        if arg in ("-MQ", "-MF", "-o", "-c"):
            skip = 1
            continue
        if arg == "-Werror":
            continue  # a planted mistake may leave a variable unused
        out.append(arg)
    out += ["-o", obj, "-c", path]
    r = subprocess.run(out, cwd=directory, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"{name} does not compile:\n{r.stderr[-3000:]}"
    link = link_command(build)
    objects_dir = os.path.join(build, "examples", "raft", "libraft_core.a.p")
    core = [os.path.join(objects_dir, s + ".o") for s in core_sources(build) if s != source] + [obj]
    exe = os.path.join(folder, "reprise-raft-sim")
    linked = []
    skip = 0
    for arg in link:
        if skip:
            skip -= 1
            continue
        if arg == "-o":
            skip = 1
            continue
        if arg.endswith("libraft_core.a"):
            linked += core
        else:
            linked.append(arg)
    linked += ["-o", exe]
    r = subprocess.run(linked, cwd=build, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"{name} does not link:\n{r.stderr[-3000:]}"
    return exe, ""


def hunt(exe, bug, work, max_seeds, sim_time, extra):
    """Runs seeds 1.. in batches until one fails: (seed, what failed, output) or (None, "", output)."""
    name = bug[0]
    strict = [] if bug[3] == "needless elections" else ["--max-needless-elections", "1000000"]
    strict += HUNT_FLAGS.get(name, [])
    failures = os.path.join(work, f"{name}-failures")
    first = 1
    batch = 10
    while first <= max_seeds:
        last = min(first + batch - 1, max_seeds)
        rc, out, err = run([exe, "--seeds", f"{first}..{last}", "--time", sim_time, "--failure-dir", failures, *strict, *extra],
                           timeout_s=900)
        m = re.search(r"^seed=(\d+) FAILED.*\n  what failed: (.*)\n(.*)$", out, re.M)
        if m:
            # The kind and the first thing it found ("raft safety: 1 violation: at 3.2s: ...").
            detail = m.group(3).strip() if m.group(3).startswith("    ") or m.group(3).startswith("key ") else ""
            return int(m.group(1)), f"{m.group(2)} {detail}".strip(), out, failures
        if rc not in (0, 1):
            return None, f"the run ended with exit {rc}: {err[-500:]}", out, failures
        first = last + 1
    return None, "", "", failures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build")
    p.add_argument("source_root")
    p.add_argument("--bugs", default="", help="comma-separated, of: " + ", ".join(b[0] for b in BUGS) + " (default: all)")
    p.add_argument("--max-seeds", type=int, default=60)
    p.add_argument("--time", default="30s")
    p.add_argument("--table", action="store_true")
    p.add_argument("--sim-flags", default="", help="more reprise-raft-sim flags for every hunt (quoted)")
    a = p.parse_args()
    build = os.path.abspath(a.build)
    source_root = os.path.abspath(a.source_root)
    chosen = [b for b in BUGS if not a.bugs or b[0] in a.bugs.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="reprise-raft-bugs-") as work:
        for i, bug in enumerate(chosen):
            name, source, what, expected = bug[0], bug[1], bug[2], bug[3]
            started = time.monotonic()
            exe, problem = build_with_bug(build, source_root, bug, work)
            if not check(exe is not None, f"{name}: planted in a copy of examples/raft/{source} and built", problem):
                rows.append((name, what, "-", "not built: " + problem.splitlines()[0], expected))
                continue
            seed, failure, out, failures = hunt(exe, bug, work, a.max_seeds, a.time, shlex.split(a.sim_flags))
            found = seed is not None
            check(found, f"{name}: found within {a.max_seeds} seeds", failure or out[-2000:])
            if not found:
                rows.append((name, what, f"not in {a.max_seeds}", "-", expected))
                continue
            kind = failure.split(":")[0]
            check(kind == expected or expected == "any",
                  f"{name}: caught by the {expected} checker (got: {kind})", failure)
            saved = re.search(rf"^  saved: (\S+) ", out, re.M)
            check(saved is not None and os.path.exists(os.path.join(saved.group(1), "history.txt"))
                  and os.path.exists(os.path.join(saved.group(1), "n1.1.trace")),
                  f"{name}: the failed seed's traces and history are saved", out[-3000:])
            if saved is not None and os.path.exists(os.path.join(saved.group(1), "findings.txt")):
                with open(os.path.join(saved.group(1), "findings.txt")) as f:
                    findings = f.read()
                check(re.search(r"^reproduce: \S+ --seed \d+ ", findings, re.M) and re.search(r"^run: .*seed=", findings, re.M),
                      f"{name}: findings.txt holds the reproduce and run lines", findings[:1500])
            mode = os.stat(failures).st_mode & 0o777 if os.path.isdir(failures) else None
            check(mode == 0o700, f"{name}: the --failure-dir folder the runner created is 0700 (got {oct(mode or 0)})")
            if i == 0:
                m = re.search(rf"^  reproduce: (.*)$", out[out.find(f"seed={seed} FAILED"):], re.M)
                argv = shlex.split(m.group(1)) if m else []
                if check(m is not None, f"{name}: the failure prints its reproduce line", out[-2000:]):
                    argv[0] = exe
                    rc2, out2, _ = run(argv + ["--failure-dir", "none"], timeout_s=300)
                    h1 = re.search(rf"^seed={seed} FAILED .*hash=([0-9a-f]{{16}})", out, re.M)
                    h2 = re.search(rf"^seed={seed} FAILED .*hash=([0-9a-f]{{16}})", out2, re.M)
                    check(rc2 == 1 and h1 and h2 and h1.group(1) == h2.group(1),
                          f"{name}: the reproduce line gives the same failing run", out2[-2000:])
            rows.append((name, what, str(seed), failure[:300], expected))
            print(f"{name}: seed {seed} ({time.monotonic() - started:.0f}s): {failure[:160]}", flush=True)
    if a.table:
        print("\n| planted mistake | nemesis | first failing seed | what the checker printed |")
        print("|---|---|---|---|")
        for name, what, seeds, failure, _ in rows:
            nemesis = "harsh" if name in HUNT_FLAGS else "default"
            shown = f"`{failure.replace('|', '/')}`" if failure != "-" else "-"
            print(f"| `{name}`: {what} | {nemesis} | {seeds} | {shown} |")
    return report("raft_bugs")


if __name__ == "__main__":
    sys.exit(main())
