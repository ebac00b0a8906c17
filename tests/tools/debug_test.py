#!/usr/bin/env python3
"""Checks `reprise debug`: the program found for a trace, the gdb command it builds, its errors, and a real gdb run.

Usage: debug_test.py REPRISE_TOOL REPRISE_KV

Records reprise-kv (short client sessions) and checks, with --print-command:
  - the program found from the header (the recorded executable), traces made absolute, the
    extension loaded with its folder in gdb's auto-load safe path, `--` arguments passed to gdb,
    --break-at passed to the program (a malformed one refused; a joint session's needs NODE:N, and
    NODE is checked against the traces' labels: an unknown or ambiguous one refused with the labels);
  - argv[0] resolved against the recorded working directory once the recorded executable is gone;
    neither left: exit 3 naming where it looked and --program; --program then works, and another
    build (another binary) gets a note;
  - a trace recorded inside a host of the program (a simulator's): the program found near it;
  - a folder as a joint session (one --replay per trace, a segmented trace once), and traces of
    different programs refused;
  - a missing trace, a damaged header, a sealed trace without its key (exit 2), with its key;
  - a missing gdb (exit 3, naming the package), a missing extension file (exit 3);
  - the default extension: the source tree's tools/gdb/reprise_gdb.py for a tool in a build tree.
Then, where gdb runs and may trace (else exit 77 with the reason, after the checks above), one real
session in batch mode through `reprise debug TRACE -- -batch ...` with a placeholder extension:
gdb's own commands (info breakpoints), --break-at's stop at the right event, the debug table
read at the replay's first stop under REPRISE_DEBUGGER=1, and the folder's joint session stopped
by --break-at=NODE:N.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Server, call, check, failed_checks, report  # noqa: E402

TIMEOUT_S = 120
SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SKIP = 77


def run(argv, cwd=None, env=None):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd, env=env)
    return p.returncode, p.stdout, p.stderr


def record(argv, path, cwd, clients=3):
    """Records reprise-kv (argv: how it is started) into path under a few requests; the trace's path."""
    with Server(list(argv) + ["--port", "0", f"--record={path}"], cwd=cwd) as s:
        for i in range(clients):
            call(s.port, "SET", f"k{i}", str(i))
            call(s.port, "GET", f"k{i}")
        status = s.stop()
        check(status == 0, f"reprise-kv recording {os.path.basename(path)} exits 0 on SIGTERM", s.err()[-800:])
    return path


def debug(tool, *args, cwd=None):
    return run([tool, "debug", *args], cwd=cwd)


def ptrace_problem(gdb):
    """Why gdb cannot run a program here (None when it can)."""
    rc, out, err = run([gdb, "-q", "-batch", "-ex", "run", "--args", "/bin/true"])
    text = out + err
    if "exited normally" in text:
        return None
    return f"gdb cannot run a program here (ptrace denied?): {text.strip()[-300:]}"


def main():
    tool, kv = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="reprise-debug-test-")
    try:
        return scenarios(tool, kv, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def scenarios(tool, kv, tmp):
    ext = os.path.join(tmp, "ext", "reprise_gdb.py")
    os.makedirs(os.path.dirname(ext))
    with open(ext, "w") as f:
        f.write("# a placeholder for the extension: this test runs none of its commands\n")
    trace = record([kv], os.path.join(tmp, "kv.trace"), tmp)

    # The program from the header, the command as gdb gets it.
    rc, out, err = debug(tool, "kv.trace", "--extension", ext, "--print-command", cwd=tmp)
    check(rc == 0 and f"--args {kv} --replay={trace}\n" in out,
          "the program comes from the trace's header; the trace is passed absolute", out + err)
    check("(the executable the trace recorded)" in err and kv in err, "the tool says which binary it runs and why", err)
    check(out.startswith(f"gdb -q -iex 'add-auto-load-safe-path {os.path.dirname(ext)}' -x {ext} --args"),
          "gdb loads the extension, its folder in the auto-load safe path", out)
    check("another build" not in err, "no build note when the binary is the one that recorded", err)
    rc, out, err = debug(tool, trace, "--extension", ext, "--print-command", "--break-at", "node:7", "--",
                         "-batch", "-ex", "reprise tasks")
    check(rc == 0 and out.rstrip().endswith(f"-batch -ex 'reprise tasks' --args {kv} --replay={trace} --break-at=node:7"),
          "what follows -- goes to gdb before --args; --break-at goes to the program", out + err)
    for bad in ("x7", ":7"):
        rc, _, err = debug(tool, trace, "--extension", ext, "--print-command", "--break-at", bad)
        check(rc == 2 and f"--break-at needs an event number N or NODE:N, not {bad}" in err,
              f"a bad --break-at ({bad}) is refused", err)
    rc, _, err = debug(tool, trace, "--extension", ext, "--print-command", "--break-at", "0")
    check(rc == 2 and "event 0 is where every replay under gdb stops anyway" in err and "from 1" in err,
          "--break-at 0 is refused, saying why", err)
    rc, _, err = debug(tool, trace, "--extension", ext, "--print-command", "--bogus")
    check(rc == 2 and "unknown option --bogus" in err, "an unknown option is refused", err)
    rc, _, err = debug(tool, "--extension", ext, "--print-command")
    check(rc == 2 and "expects a trace" in err, "no trace is a usage error", err)

    # argv[0] against the recorded working directory, once the recorded executable is gone: record
    # through a symbolic link (the header's executable is the link's target), then move the target.
    os.makedirs(os.path.join(tmp, "a"))
    os.makedirs(os.path.join(tmp, "b"))
    shutil.copy2(kv, os.path.join(tmp, "a", "reprise-kv"))
    os.symlink(os.path.join("a", "reprise-kv"), os.path.join(tmp, "kv-link"))
    moved = record(["./kv-link"], os.path.join(tmp, "moved.trace"), tmp)
    os.rename(os.path.join(tmp, "a", "reprise-kv"), os.path.join(tmp, "b", "reprise-kv"))
    os.remove(os.path.join(tmp, "kv-link"))
    os.symlink(os.path.join("b", "reprise-kv"), os.path.join(tmp, "kv-link"))
    rc, out, err = debug(tool, moved, "--extension", ext, "--print-command")  # run from elsewhere on purpose
    check(rc == 0 and f"--args {os.path.join(tmp, 'kv-link')} --replay={moved}" in out and
          "argv[0] ./kv-link resolved against the recorded working directory" in err,
          "without the recorded executable, argv[0] is resolved against the recorded working directory", out + err)
    os.remove(os.path.join(tmp, "kv-link"))
    rc, out, err = debug(tool, moved, "--extension", ext, "--print-command")
    check(rc == 3 and "cannot find the program that recorded" in err and os.path.join(tmp, "a", "reprise-kv") in err
          and os.path.join(tmp, "kv-link") in err and "--program PATH" in err and err.count("\n") == 1,
          "no program found: one line naming where it looked and --program (exit 3)", err)
    rc, out, err = debug(tool, moved, "--extension", ext, "--print-command", "--program", kv)
    check(rc == 0 and f"--args {kv} --replay=" in out and "(given with --program)" in err,
          "--program names the binary", out + err)
    rc, out, err = debug(tool, trace, "--extension", ext, "--print-command", "--program", tool)
    check(rc == 0 and "is another build than the one that recorded" in err,
          "another build than the recorded one gets a note", err)
    rc, _, err = debug(tool, trace, "--extension", ext, "--print-command", "--program", os.path.join(tmp, "nope"))
    check(rc == 3 and "--program" in err and "No such file" in err, "a --program that does not exist (exit 3)", err)

    # A trace recorded inside a host of the program (as a simulator records its nodes): the
    # recorded executable's name is not the program's; the program is found in a neighbouring folder.
    for d in ("sim", "kv"):
        os.makedirs(os.path.join(tmp, "host", d))
    host = shutil.copy2(kv, os.path.join(tmp, "host", "sim", "kv-host"))
    neighbour = shutil.copy2(kv, os.path.join(tmp, "host", "kv", "reprise-kv"))
    hosted = record([host], os.path.join(tmp, "hosted.trace"), tmp)
    rc, out, err = debug(tool, hosted, "--extension", ext, "--print-command")
    check(rc == 0 and f"--args {neighbour} --replay={hosted}" in out and "found near" in err
          and "another build" not in err,
          "a host's trace: the program found in a neighbouring folder, no build note", out + err)

    # A folder: a joint session of every trace in it, a segmented one once.
    folder = os.path.join(tmp, "cluster")
    os.makedirs(folder)
    n1 = record([kv, "--node", "n1"], os.path.join(folder, "n1.trace"), tmp)
    n2 = record([kv, "--node", "n2", "--record-segment", "1m"], os.path.join(folder, "n2.trace"), tmp)
    rc, _, err = debug(tool, folder, "--extension", ext, "--print-command", "--break-at", "4")
    check(rc == 2 and "a joint session of 2 traces needs NODE:N" in err, "a joint session's --break-at needs a node",
          err)
    rc, out, err = debug(tool, folder, "--extension", ext, "--print-command", "--break-at", "n2:4")
    # (n2 fits one segment: n2.trace.0 alone, which the folder names as it is.)
    check(rc == 0 and f"--args {kv} --replay={n1} --replay={n2}" in out and out.count("--replay=") == 2
          and out.rstrip().endswith(" --break-at=n2:4"),
          "a folder is a joint session: one --replay per trace, a segmented trace once; NODE:N kept", out + err)
    # A segmented trace of several files (uncompressed, 1 MiB each: 2.5 MB of values) is one
    # trace of a folder too, named without its number (a later segment's header cannot be read alone).
    segs = os.path.join(tmp, "segmented")
    os.makedirs(segs)
    seg = os.path.join(segs, "kv.trace")
    with Server([kv, "--port", "0", f"--record={seg}", "--record-segment=1m", "--record-compress=off"], cwd=tmp) as s:
        for i in range(50):
            call(s.port, "SET", f"big{i}", "v" * (50 * 1024))
        check(s.stop() == 0, "reprise-kv recording a segmented trace exits 0 on SIGTERM", s.err()[-800:])
    check(len(os.listdir(segs)) >= 3, "the segmented recording wrote several segments", os.listdir(segs))
    rc, out, err = debug(tool, segs, "--extension", ext, "--print-command")
    check(rc == 0 and out.count("--replay=") == 1 and f"--replay={seg}" in out.split(),
          "a folder holding a segmented trace of several files: one --replay, by the trace's name", out + err)
    # NODE is checked against the headers before gdb starts, matched as the joint replay matches it:
    # labels in start-time order, NAME/K for a node recorded several times, or an index.
    again = os.path.join(tmp, "cluster-again")
    os.makedirs(again)
    shutil.copy2(n1, os.path.join(again, "n1.trace"))
    record([kv, "--node", "n1"], os.path.join(again, "n1-restarted.trace"), tmp)  # started later: n1/2
    record([kv, "--node", "n3"], os.path.join(again, "n3.trace"), tmp)
    rc, _, err = debug(tool, again, "--extension", ext, "--print-command", "--break-at", "n9:4")
    check(rc == 2 and "--break-at n9:4: no node 'n9' among the traces' nodes: n1/1 (0), n1/2 (1), n3 (2)" in err,
          "an unknown NODE is refused before gdb starts, with the labels (start-time order)", err)
    rc, _, err = debug(tool, again, "--extension", ext, "--print-command", "--break-at", "n1:4")
    check(rc == 2 and "node 'n1' ran 2 times" in err and "(n1/1, n1/2)" in err,
          "a bare NAME of a node with several runs is ambiguous: its NAME/K labels are listed", err)
    for good in ("n1/2:4", "n3:4", "2:4"):
        rc, out, err = debug(tool, again, "--extension", ext, "--print-command", "--break-at", good)
        check(rc == 0 and out.rstrip().endswith(" --break-at=" + good), f"--break-at {good}: a label, a name or an index",
              out + err)
    rc, _, err = debug(tool, again, "--extension", ext, "--print-command", "--break-at", "3:4")
    check(rc == 2 and "no node '3'" in err, "an index past the last node is refused", err)
    rc, _, err = debug(tool, trace, "--extension", ext, "--print-command", "--break-at", "n1:4")
    check(rc == 2 and "no node 'n1' among the traces' nodes: node (0)" in err,
          "one trace: NODE must be its node (or 0)", err)
    shutil.copy2(moved, os.path.join(folder, "other.trace"))
    rc, out, err = debug(tool, folder, n1, "--extension", ext, "--print-command", "--program", kv)
    check(rc == 0 and out.count("--replay=") == 3, "a trace named twice (itself and through its folder) counts once",
          out + err)
    os.remove(os.path.join(folder, "other.trace"))

    # Errors on the traces: each one line, exit 2.
    rc, _, err = debug(tool, os.path.join(tmp, "missing.trace"), "--extension", ext, "--print-command")
    check(rc == 2 and "no trace at" in err and err.count("\n") == 1, "a missing trace: one line, exit 2", err)
    damaged = os.path.join(tmp, "damaged.trace")
    with open(trace, "rb") as f:
        head = f.read(40)
    with open(damaged, "wb") as f:
        f.write(b"XXXXXXXX" + head[8:])
    rc, _, err = debug(tool, damaged, "--extension", ext, "--print-command")
    check(rc == 2 and "cannot read the trace's header" in err and "bad magic" in err and err.count("\n") == 1,
          "a damaged header: one line, exit 2", err)
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    rc, _, err = debug(tool, empty, "--extension", ext, "--print-command")
    check(rc == 2 and "no trace in the folder" in err, "a folder without traces: exit 2", err)
    key = os.path.join(tmp, "key")
    rc, _, err = run([tool, "keygen", key])
    sealed = record([kv, f"--record-key={key}"], os.path.join(tmp, "sealed.trace"), tmp)
    rc, _, err = debug(tool, sealed, "--extension", ext, "--print-command")
    check(rc == 2 and "is sealed: give its key with --record-key FILE" in err, "a sealed trace without its key: exit 2",
          err)
    rc, out, err = debug(tool, sealed, "--extension", ext, "--print-command", "--record-key", key)
    check(rc == 0 and out.rstrip().endswith(f"--replay={sealed} --record-key={key}"),
          "with its key, the key goes to the program too", out + err)

    # What the session needs: gdb, the extension.
    rc, _, err = debug(tool, trace, "--extension", ext, "--gdb", "no-such-gdb-here")
    check(rc == 3 and "no-such-gdb-here is not on PATH: install the package gdb" in err and err.count("\n") == 2,
          "a missing gdb: one line naming the package gdb (exit 3)", err)
    rc, _, err = debug(tool, trace, "--extension", os.path.join(tmp, "nope.py"), "--print-command")
    check(rc == 3 and "--extension" in err, "a missing --extension file (exit 3)", err)
    source_ext = os.path.join(SOURCE_ROOT, "tools", "gdb", "reprise_gdb.py")
    rc, out, err = debug(tool, trace, "--print-command")
    if os.path.isfile(source_ext):
        check(rc == 0 and f"-x {source_ext} " in out, "in a build tree, the source's tools/gdb extension is loaded",
              out + err)
    else:
        check(rc == 3 and source_ext in err and "--extension FILE" in err,
              "in a build tree without tools/gdb/reprise_gdb.py, the error names where it looked", err)

    # A real session, batch mode, gdb's own commands only (the extension's are tested with it).
    gdb = shutil.which("gdb")
    why = "gdb is not installed (./dev installs it)" if gdb is None else ptrace_problem(gdb)
    if why is not None:
        print(f"skip: the gdb sessions: {why}")
        return report("debug_test", "gdb sessions skipped") if failed_checks() else SKIP
    rc, out, err = debug(tool, trace, "--extension", ext, "--", "-batch", "-ex", "break reprise_debug_stop",
                         "-ex", "info breakpoints")
    check(rc == 0 and "in reprise_debug_stop() at" in out, "gdb starts on the program, its symbols loaded", out + err)
    rc, out, err = debug(tool, trace, "--extension", ext, "--break-at", "5", "--", "-batch", "-ex", "run",
                         "-ex", "print reprise_debug.stop_reason", "-ex", "print reprise_debug.stopped_event")
    # (7: reprise_stop_break_at, runtime/internal/debug_table.hpp)
    check("reprise: break at event 5" in err + out and "SIGTRAP" in out and "$1 = 7\n" in out
          and "$2 = 5\n" in out, "--break-at stops the replay under gdb at the event asked for", out + err)
    rc, out, err = debug(tool, trace, "--extension", ext, "--", "-batch", "-ex", "set environment REPRISE_DEBUGGER 1",
                         "-ex", "break reprise_debug_stop", "-ex", "run", "-ex", "print reprise_debug.version",
                         "-ex", "print reprise_debug.stop_text", "-ex", "print reprise_debug.runtime_count")
    check("Breakpoint 1, reprise_debug_stop" in out and '"the replay starts"' in out and "$1 = 2\n" in out
          and "$3 = 1\n" in out,
          "under REPRISE_DEBUGGER the replay stops at reprise_debug_stop at its start; the table is read", out + err)
    rc, out, err = debug(tool, folder, "--extension", ext, "--break-at", "n2:4", "--", "-batch", "-ex", "run",
                         "-ex", "print reprise_debug.runtime_count", "-ex", "print reprise_debug.stopped_node",
                         "-ex", "print reprise_debug.stopped_event")
    check("joint replay of 2 nodes" in out + err and "reprise: node 'n2': break at event 4" in out + err and "SIGTRAP" in out
          and "$1 = 2\n" in out and "$2 = 1\n" in out and "$3 = 4\n" in out,
          "a folder replays as one joint session under gdb; --break-at=NODE:N stops that node at its event",
          out + err)
    if os.path.isfile(source_ext):
        # Once the extension is in the tree: the session `reprise debug` starts loads it cleanly.
        rc, out, err = debug(tool, trace, "--", "-batch", "-ex", "help reprise")
        check(rc == 0 and "reprise goto" in out and "Traceback" not in out + err and "Python Exception" not in out + err,
              "the default extension loads without an error and defines its commands", out + err)
    return report("debug_test")


if __name__ == "__main__":
    sys.exit(main())
