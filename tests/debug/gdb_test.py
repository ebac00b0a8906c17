#!/usr/bin/env python3
"""The gdb extension (tools/gdb/reprise_gdb.py) driven in batch mode on reprise-kv's traces.

Usage: gdb_test.py REPRISE_KV REPRISE_GDB_PY

Records a kv trace (a client that stays connected, so that its task is parked reading; a GET of
a value the test knows; a PING), then replays it under `gdb -batch -nx -x reprise_gdb.py` through
info, until-output of the GET's reply, tasks (names, states, waits), a parked task's backtrace
(its kv connection handler; backtraces end at make_fcontext), info's node state, a checkpoint (one
format everywhere), goto forward, back, goto backward across checkpoints, next bytes_read,
bookmarks, checkpoints past the cap (thinned; none outlives the session), user mistakes (clear errors, no Python traceback), a goto past the trace's end and
forward commands refused there (the process stays stopped), and a core file (gcore at a stop, then `gdb PROGRAM CORE`: tasks, a task's backtrace). A
trace recorded with a password replayed with another one diverges: the replay stops in the task
that reads it. The extension's Boost.Context table must know this build's Boost version.
Exits 77 (skipped) when gdb is missing or cannot run a program (ptrace denied).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import RespClient, Server, call, check, report  # noqa: E402

GDB_TIMEOUT_S = 60
VALUE = "hello-gdb-value"
PASSWORD = "the-recorded-password"


def gdb_batch(argv_tail, commands, cwd, env=None):
    """gdb -batch on `argv_tail` (--args PROGRAM ... or PROGRAM CORE) with the extension: its
    output split into {step name: text} by `echo @@NAME` markers, and the whole text."""
    argv = ["gdb", "-batch", "-nx", "-x", EXTENSION]
    for name, cmds in commands:
        argv += ["-ex", "echo @@%s\\n" % name]
        for c in ([cmds] if isinstance(cmds, str) else cmds):
            argv += ["-ex", c]
    argv += ["-ex", "echo @@end\\n"] + argv_tail
    p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=GDB_TIMEOUT_S)
    text = p.stdout.decode(errors="replace")
    steps, name = {}, "start"
    for line in text.splitlines():
        if line.startswith("@@"):
            name = line[2:]
            steps.setdefault(name, "")
            continue
        steps[name] = steps.get(name, "") + line + "\n"
    return steps, text


def ptrace_works(d):
    """None when gdb can run a program here, else why not."""
    if shutil.which("gdb") is None:
        return "gdb is not installed"
    try:
        p = subprocess.run(["gdb", "-batch", "-nx", "-ex", "run", "--args", "/bin/true"], cwd=d,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except subprocess.TimeoutExpired:
        return "gdb did not run /bin/true within 60 s"
    out = p.stdout.decode(errors="replace")
    if "exited normally" not in out:
        return "gdb cannot run a program here (ptrace denied?): " + out.strip()[-300:]
    return None


def record_kv(kv, d):
    trace = os.path.join(d, "kv.trace")
    with Server([kv, "--record=" + trace, "--port", "0"]) as s:
        parked = RespClient(s.port)                  # kv-client-1: stays connected, parked reading
        check(parked.call("SET", "k", VALUE) == "OK", "record: SET on the client that stays")
        check(call(s.port, "GET", "k") == VALUE, "record: GET on a second client")
        check(call(s.port, "PING") == "PONG", "record: PING on a third")
        status = s.stop()
        parked.close()
    check(status == 0, "record: reprise-kv stops gracefully on SIGTERM", s.err()[-800:])
    return trace


def record_kv_with_password(kv, d):
    pw = os.path.join(d, "pw")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    trace = os.path.join(d, "auth.trace")
    with Server([kv, "--record=" + trace, "--port", "0", "--requirepass-file", pw]) as s:
        with RespClient(s.port) as c:
            check(c.call("AUTH", PASSWORD) == "OK", "record: AUTH with the password")
        s.stop()
    other = os.path.join(d, "other-pw")
    with open(other, "w") as f:
        f.write("not-" + PASSWORD + "\n")
    return trace, other


TASK_NAMED = ('python import re; m = re.search(r"^\\s+\\*?\\s+(\\d+)\\s+%s\\s", gdb.execute("reprise tasks", '
              'to_string=True), re.M); gdb.execute("reprise task " + m.group(1))')


def main():
    global EXTENSION
    kv, EXTENSION = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])  # then RAFT SIM (optional)
    global ASAN
    with open(kv, "rb") as f:
        ASAN = b"__asan_init" in f.read()
    d = tempfile.mkdtemp(prefix="gdb-test-")
    rc = 1
    try:
        rc = session(kv, d)
    finally:
        # A passing (or skipped) run leaves nothing behind: the folder holds core files. A failing
        # one keeps it to look at, and says where.
        if rc in (0, 77):
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"gdb_test: kept {d} for a look")
    return rc


def session(kv, d):
    why = ptrace_works(d)
    if why:
        print("skipped: " + why)
        return 77
    trace = record_kv(kv, d)
    core = os.path.join(d, "kv.core")
    program = ["--args", kv, "--replay=" + trace]

    steps, whole = gdb_batch(program, [
        ("run", "run"),
        ("info", "reprise info"),
        ("interval", "reprise checkpoint-interval 3"),
        ("until", ["reprise until-output " + VALUE, "bt"]),
        ("e0", 'python E0 = int(gdb.parse_and_eval("reprise_debug.stopped_event")); print("E0=%d" % E0)'),
        ("tasks", "reprise tasks"),
        ("task", [TASK_NAMED % "kv-client-1", "bt"]),
        ("off", ["reprise task off", "bt 1"]),
        ("gcore", "gcore " + core if not ASAN else "echo (no core under ASan)\\n"),
        ("event", "reprise event"),
        ("info-now", "reprise info"),
        ("take", "reprise checkpoint"),
        ("take-again", "reprise checkpoint"),
        ("bookmark", "reprise bookmark reply"),
        ("forward", 'python gdb.execute("reprise goto %d" % (E0 + 6))'),
        ("back", "reprise back"),
        ("backward", 'python gdb.execute("reprise goto %d" % (E0 - 4))'),
        ("checkpoints", "reprise checkpoints"),
        ("to-bookmark", "reprise goto reply"),
        ("bookmarks", "reprise bookmarks"),
        ("next", "reprise next bytes_read"),
        ("bad-kind", "reprise next no_such_kind"),
        ("bad-task", "reprise task 999999"),
        ("bad-goto", "reprise goto nowhere"),
        ("bad-back", ["reprise back -1", "reprise back abc", "reprise next bytes_read abc",
                      "reprise checkpoint-interval 9223372036854775808", "reprise checkpoint-interval -5"]),
        ("bad-names", ["reprise bookmark 12", "reprise bookmark node:3", "reprise until-output \\x"]),
        ("past-end", "reprise goto 100000000"),
        ("last", [LAST_EVENT % ("0", "0"), "reprise info"]),
        ("into-end", "reprise next tick"),
        ("end-goto", "reprise goto 100000001"),
        ("end-next", "reprise next tick"),
        ("end-until", "reprise until-output no-such-output"),
        ("end-event", "reprise event"),
        ("end-info", "reprise info"),
        ("timer-check", ["set var reprise_debug.timer.deadline_ns = 1", "reprise info"]),
        ("version", ["run", "set var reprise_debug.version = 99", "reprise info"]),
    ], cwd=d)
    print(whole[-6000:] if os.environ.get("REPRISE_TEST_VERBOSE") else "", end="")
    check("Traceback" not in whole and "Python Exception" not in whole, "no Python traceback anywhere", whole[-3000:])
    check("the replay starts" in steps.get("run", ""), "run: the replay stops at its start, with the stop line",
          steps.get("run"))
    info = steps.get("info", "")
    check("table version 2 (extension: 2)" in info and "nodes: 1" in info, "info: table version and nodes", info)
    check("fcontext layout known" in info, "info: this build's Boost version is in the extension's fcontext table", info)
    until = steps.get("until", "")
    check(re.search(r"\[reprise\] node \S+ event \d+, virtual time [\d.]+ s: .*%s" % VALUE, until),
          "until-output: stops with the stop line naming the bytes", until)
    m = re.search(r"E0=(\d+)", steps.get("e0", ""))
    e0 = int(m.group(1)) if m else -1
    check(e0 > 4, "the until-output stop's event number is known", steps.get("e0"))
    check(re.search(r"^#\d+ +0x[0-9a-f]+ in make_fcontext \(\)\n(?!#)", until, re.M) and " in ?? ()" not in until,
          "bt of the running task ends at the fiber's entry (make_fcontext), no garbage frame past it", until)
    check(re.search(r"^  0 \S+ \(replaying\): event %d, virtual time [\d.]+ s, stopped here \(output\)$" % e0,
                    steps.get("info-now", ""), re.M), "info: each node's current state, read now", steps.get("info-now"))
    # The run forward with an interval of 3 may have left a periodic checkpoint at this very event:
    # then the first `reprise checkpoint` already names it.
    m = re.search(r"^checkpoint (\d+): node \S+ event %d (taken|already holds this event \(none taken\))$" % e0,
                  steps.get("take", ""), re.M)
    check(m, "checkpoint: said in the format `reprise checkpoints` lists", steps.get("take"))
    check(m and re.search(r"^checkpoint %s: node \S+ event %d already holds this event \(none taken\)$"
                          % (m.group(1), e0), steps.get("take-again", ""), re.M),
          "checkpoint twice at one event: the second names the first, takes none", steps.get("take-again"))
    tasks = steps.get("tasks", "")
    check(re.search(r"\s1\s+main\s+parked\s+accept on listener #\d+", tasks), "tasks: main is parked in accept", tasks)
    check(re.search(r"kv-client-1\s+parked\s+read on connection #\d+", tasks),
          "tasks: the connected client's task is parked reading its connection", tasks)
    check(re.search(r"\*\s+\d+\s+kv-client-2\s+running", tasks), "tasks: the writer of the reply is marked running", tasks)
    check(re.search(r"kv-expiry\s+parked", tasks), "tasks: the expiry task is listed, parked", tasks)
    task = steps.get("task", "")
    check("frame #0 is still the thread's" in task and "serve_client" in task and "read_some" in task,
          "task ID + bt: the parked task's stack (its kv connection handler reading)", task)
    check(re.search(r"in make_fcontext \(\)\n$", task) and " in ?? ()" not in task,
          "a task's bt ends at the fiber's entry, no garbage frame past make_fcontext", task)
    check("serve_client" not in steps.get("off", "x") and "#0" in steps.get("off", ""),
          "task off: the thread's own frames again", steps.get("off"))
    check(ASAN or os.path.exists(core), "gcore wrote a core file at the stop", steps.get("gcore"))
    check(re.search(r"event %d\b" % e0, steps.get("event", "")) and "stopped: output" in steps.get("event", ""),
          "event: number, stop reason", steps.get("event"))
    check(re.search(r"event %d, virtual time" % (e0 + 6), steps.get("forward", "")), "goto forward: E+6",
          steps.get("forward"))
    check(re.search(r"event %d, virtual time" % (e0 + 5), steps.get("back", "")), "back: one event back",
          steps.get("back"))
    check(re.search(r"event %d, virtual time" % (e0 - 4), steps.get("backward", "")),
          "goto backward across checkpoints: E-4", steps.get("backward"))
    check(re.search(r"^\[reprise\] back to checkpoint \d+: node \S+ event \d+ \(kept as checkpoint \d+\)$",
                    steps.get("backward", ""), re.M), "goto backward: says which checkpoint it starts from, in the "
          "same format", steps.get("backward"))
    check(re.search(r"^checkpoint \d+: node \S+ event \d+$", steps.get("checkpoints", ""), re.M) and
          re.search(r"^checkpoint \d+: node \S+ event %d$" % e0, steps.get("checkpoints", ""), re.M),
          "checkpoints: the going-forward runs left some, and the one taken by hand; one format",
          steps.get("checkpoints"))
    check(re.search(r"event %d, virtual time" % e0, steps.get("to-bookmark", "")), "goto BOOKMARK",
          steps.get("to-bookmark"))
    check(re.search(r"reply -> \S+:%d" % e0, steps.get("bookmarks", "")), "bookmarks: name -> node:event",
          steps.get("bookmarks"))
    check(re.search(r"event \d+, virtual time [\d.]+ s: wake bytes_read", steps.get("next", "")),
          "next bytes_read: stops at the next bytes read", steps.get("next"))
    check("unknown kind 'no_such_kind'" in steps.get("bad-kind", "") and "bytes_read" in steps.get("bad-kind", ""),
          "next with an unknown kind: a clear error listing the kinds", steps.get("bad-kind"))
    check("no task 999999" in steps.get("bad-task", ""), "task with an unknown id: a clear error", steps.get("bad-task"))
    check("neither an event number" in steps.get("bad-goto", ""), "goto nowhere: a clear error", steps.get("bad-goto"))
    bad = steps.get("bad-back", "")
    check(bad.count("usage: reprise back [K]") == 2 and "usage: reprise next KIND [HANDLE]" in bad and
          bad.count("usage: reprise checkpoint-interval N") == 2 and "[reprise]" not in bad,
          "back -1 / abc, a handle that is no number, an interval out of range: usage errors, nothing moves", bad)
    names = steps.get("bad-names", "")
    check(names.count("a bookmark's name is not a number and has no ':'") == 2 and
          "has an escape that is not one" in names and "[reprise]" not in names,
          "a bookmark named like an event (12, node:3) and a bad escape in until-output: refused, nothing moves", names)
    m = re.search(r"node 0 \S+ has (\d+) events, #0 to #(\d+): event 100000000 is past its trace's end",
                  steps.get("past-end", ""))
    check(m and int(m.group(2)) == int(m.group(1)) - 1 and "[reprise]" not in steps.get("past-end", ""),
          "goto past the trace's end: refused at once, with the trace's range (the replay counted its events)",
          steps.get("past-end"))
    check(re.search(r"^  0 \S+ \(replaying\): event \d+, virtual time [\d.]+ s, ending \(its exit, the end record, is "
                    r"the next event\), stopped here", steps.get("last", ""), re.M) and "as recorded" not in steps.get("last", ""),
          "info at the last event (the end record): ending, not yet ended as recorded", steps.get("last"))
    m = re.search(r"ran into the trace's end \(event (\d+)\)", steps.get("into-end", ""))
    check(m, "next tick from the last event: runs into the trace's end, and says so", steps.get("into-end"))
    end = m.group(1) if m else "?"
    check("event 100000001 is past its trace's end" in steps.get("end-goto", "") and
          "exited" not in steps.get("end-goto", ""), "end-goto at the trace's end: refused (past the trace), the program "
          "stays stopped there", steps.get("end-goto"))
    for step in ("end-next", "end-until"):
        check("already at the end of the trace (event %s)" % end in steps.get(step, "") and
              "exited" not in steps.get(step, ""),
              "%s at the trace's end: refused, the program stays stopped there" % step, steps.get(step))
    check("stopped: end (event %s)" % end in steps.get("end-event", ""), "after the refusals: still stopped at the end",
          steps.get("end-event"))
    check(re.search(r"^  0 \S+ \(replaying\): event %s, virtual time [\d.]+ s, ended as recorded, at its trace's end$"
                    % end, steps.get("end-info", ""), re.M),
          "info at the trace's end: the node's state (from the table) is ended", steps.get("end-info"))

    check(re.search(r"timer layout and the program's debug information disagree: TimerState::deadline_ns at \d+ "
                    r"\(table: 1\)", steps.get("timer-check", "")),
          "the table's timer layout is checked against the program's debug information", steps.get("timer-check"))
    check("debug table is version 99; this extension knows version 2 only" in steps.get("version", ""),
          "a table of an unknown version is refused with a clear message", steps.get("version"))

    # The core file: everything that only reads memory. (Not under ASan: its shadow memory makes
    # the core huge and slow to write and read.)
    asan = ASAN
    if asan:
        print("note: an ASan build: the core file part is skipped")
    if os.path.exists(core) and not asan:
        steps, whole = gdb_batch([kv, core], [
            ("tasks", "reprise tasks"),
            ("task", [TASK_NAMED % "kv-client-1", "bt"]),
            ("event", "reprise event"),
            ("goto", "reprise goto 1"),
        ], cwd=d)
        check(re.search(r"kv-client-1\s+parked\s+read on connection", steps.get("tasks", "")),
              "core file: tasks", steps.get("tasks", "") + whole[-1500:])
        check("serve_client" in steps.get("task", ""), "core file: a parked task's backtrace", steps.get("task"))
        check(re.search(r"event %d\b" % e0, steps.get("event", "")), "core file: the event", steps.get("event"))
        check("core file cannot run" in steps.get("goto", ""), "core file: goto is a clear error", steps.get("goto"))

    stripped_timer(kv, d)
    thinning(kv, trace, e0, d)
    break_at_once(kv, trace, e0, d)
    auto_interval(kv, trace, e0, d)

    # A divergence: the password file at replay is not the recorded one.
    auth, other = record_kv_with_password(kv, d)
    env = dict(os.environ, REPRISE_SECRET_FILE_REQUIREPASS=other)
    steps, whole = gdb_batch(["--args", kv, "--replay=" + auth], [
        ("run", "run"),
        ("diverge", "continue"),
        ("bt", "bt"),
        ("tasks", "reprise tasks"),
        ("event", "reprise event"),
    ], cwd=d, env=env)
    check(re.search(r"\[reprise\] node \S+ event \d+, virtual time [\d.]+ s: reprise: DIVERGENCE",
                    steps.get("diverge", "")), "divergence: the stop line says so", steps.get("diverge", "") + whole[-1500:])
    check("read_secret" in steps.get("bt", "") and "main_entry" in steps.get("bt", ""),
          "divergence: stopped in the task that differs (kv's main reading its password)", steps.get("bt"))
    check(re.search(r"\*\s+1\s+main\s+running", steps.get("tasks", "")), "divergence: main is the running task",
          steps.get("tasks"))
    check("stopped: divergence" in steps.get("event", ""), "divergence: event shows the reason", steps.get("event"))
    if len(sys.argv) > 4:
        joint_raft(os.path.abspath(sys.argv[3]), os.path.abspath(sys.argv[4]), d)
        joint_raft(os.path.abspath(sys.argv[3]), os.path.abspath(sys.argv[4]), d, scan=True)
        joint_crash(os.path.abspath(sys.argv[3]), os.path.abspath(sys.argv[4]), d)
    return report("gdb_test")


def auto_interval(kv, trace, e0, d):
    """The default checkpoint interval follows the replay's speed: after a run forward that met a
    periodic checkpoint stop, it is about a second of replay (at least 10,000 events), not the few
    events it started from; a number sets it (auto off), `auto` restores it."""
    steps, whole = gdb_batch(["--args", kv, "--replay=" + trace], [
        ("run", ["run", "python S.checkpoint_interval = 5", "reprise checkpoint-interval"]),
        ("goto", "reprise goto %d" % e0),
        ("after", ["reprise checkpoints", "reprise checkpoint-interval"]),
        ("fixed", "reprise checkpoint-interval 7"),
        ("none", "reprise checkpoint-interval 0"),
        ("auto", "reprise checkpoint-interval auto"),
        ("extra", "reprise checkpoint-interval 5 6"),
    ], cwd=d)
    check("checkpoint interval: auto (about 1 s of replay apart: 5 events now)" in steps.get("run", ""),
          "auto interval: the default is auto", steps.get("run", "") + whole[-1500:])
    m = re.search(r"checkpoint interval: auto \(about 1 s of replay apart: (\d+) events now\)", steps.get("after", ""))
    check(m and int(m.group(1)) >= 10000 and re.search(r"^checkpoint \d+: node \S+ event 5$", steps.get("after", ""), re.M),
          "auto interval: a run forward left the first periodic checkpoint, then set the interval from the replay's speed",
          steps.get("after", "") + whole[-1500:])
    check("checkpoint interval: 7 events" in steps.get("fixed", "") and "note: a checkpoint is a fork" in steps.get("fixed", "")
          and "checkpoint interval: 0 (none)" in steps.get("none", "") and
          "checkpoint interval: auto (about 1 s of replay apart: 100000 events now)" in steps.get("auto", ""),
          "auto interval: a number fixes the interval (a small one with a note on its cost), 0 none, auto starts again "
          "from 100000", steps.get("fixed", "") + steps.get("none", "") + steps.get("auto", ""))
    check("usage: reprise checkpoint-interval N|auto" in steps.get("extra", ""),
          "auto interval: a second argument is refused", steps.get("extra", ""))


def break_at_once(kv, trace, e0, d):
    """--break-at is the session's first stop only: a goto back (a restart from the start or from a
    checkpoint taken before it) and a goto past it do not stop there again, and `next KIND` from that
    stop finds the next such event, not the one stopped at."""
    b = e0 - 2
    steps, whole = gdb_batch(["--args", kv, "--replay=" + trace, "--break-at=%d" % b], [
        ("run", ["run", "continue"]),
        ("next", "reprise next output"),
        ("back", ["reprise goto 1", "python gdb.execute('reprise goto %d' % " + str(e0) + ")"]),
        ("event", "reprise event"),
    ], cwd=d)
    check(re.search(r"event %d, virtual time" % b, steps.get("run", "")), "break-at: the first stop is --break-at's",
          steps.get("run", "") + whole[-1500:])
    m = re.search(r"event (\d+), virtual time [\d.]+ s: output", steps.get("next", ""))
    check(m and int(m.group(1)) > b, "break-at: next KIND from the --break-at stop moves on", steps.get("next"))
    check(re.search(r"stopped: event \(event %d\)" % e0, steps.get("event", "")),
          "break-at: a goto back then past --break-at's event does not stop there again",
          steps.get("back", "") + steps.get("event", "") + whole[-1500:])


def thinning(kv, trace, e0, d):
    """Checkpoints past the cap (here 6, the 2 most recently taken kept), then a goto back to the
    start and forward again through the thinned stretch, where each new checkpoint lies behind the
    latest ones: it must stay (a goto once took and lost one there forever). Checkpoints are parked
    processes, not gdb inferiors, and none outlives the session; a replay gone back to one runs to
    the end without divergence."""
    steps, whole = gdb_batch(["--args", kv, "--replay=" + trace], [
        ("run", ["run", "python S.checkpoint_max = 6", "python S.checkpoint_keep_newest = 2",
                 "reprise checkpoint-interval 1"]),
        ("far", "python gdb.execute('reprise goto %d' % " + str(e0) + ")"),
        ("count", "python print('N=%d' % len(S.checkpoints))"),
        ("start", "reprise goto 2"),
        ("again", "python gdb.execute('reprise goto %d' % " + str(e0 - 1) + ")"),
        ("pids", ["python print('PIDS=' + ','.join(str(p.pid) for p in S.parked.values()))",
                  "python print('HELD=%d' % sum(p.held is not None for p in S.parked.values()))"]),
        ("inferiors", "info inferiors"),
        ("back", "reprise back 2"),
        ("end", ["python print('LIVE=%d' % gdb.selected_inferior().pid)", "reprise checkpoint-interval 0", "continue"]),
    ], cwd=d)
    check("Traceback" not in whole and "Python Exception" not in whole, "thinning: no Python traceback", whole[-3000:])
    check("N=6" in steps.get("count", ""), "thinning: at most checkpoint_max checkpoints", steps.get("count"))
    check(re.search(r"event %d, virtual time" % (e0 - 1), steps.get("again", "")),
          "thinning: forward again through a thinned stretch reaches its target", steps.get("again", "") + whole[-1500:])
    check(re.search(r"event %d, virtual time" % (e0 - 3), steps.get("back", "")), "thinning: back 2 from a restarted one",
          steps.get("back"))
    held = re.search(r"HELD=(\d+)", steps.get("pids", ""))
    check(held and len(re.findall(r"^\*?\s+\d+\s+process ", steps.get("inferiors", ""), re.M)) == 1 + int(held.group(1))
          and int(held.group(1)) <= 4,
          "thinning: gdb holds only the few most recent checkpoints as inferiors, the others are parked",
          steps.get("inferiors", "") + steps.get("pids", ""))
    check("no divergence" in steps.get("end", ""), "thinning: a replay gone back to a checkpoint runs to its end, "
          "without divergence", steps.get("end", "") + whole[-1500:])
    m = re.search(r"PIDS=([\d,]*)", steps.get("pids", ""))
    pids = [int(x) for x in m.group(1).split(",") if x] if m else []
    check(len(pids) >= 2, "thinning: the checkpoints' processes are known", steps.get("pids"))
    m = re.search(r"LIVE=(\d+)", steps.get("end", ""))
    pids += [int(m.group(1))] if m else []

    def alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    # Killed as gdb exits; an exit takes a moment (longer under ASan, with its shadow memory).
    left = [p for p in pids if alive(p)]
    for _ in range(100):
        left = [p for p in left if alive(p)]
        if not left:
            break
        time.sleep(0.1)
    check(not left, "thinning: no checkpoint process, nor the replay restored from one, outlives the gdb session",
          left)


def stripped_timer(kv, d):
    """A copy of reprise-kv without debug information (objcopy --strip-debug) replays a trace whose
    expiry task waits on its timer (a key with a TTL): `reprise tasks` shows that timer's deadline
    from the debug table alone (its timer layout), live and on a core file of the stripped copy."""
    if shutil.which("objcopy") is None:
        print("note: no objcopy: the stripped-binary part is skipped")
        return
    trace = os.path.join(d, "ttl.trace")
    with Server([kv, "--record=" + trace, "--port", "0"]) as s:
        check(call(s.port, "SET", "t", VALUE) == "OK", "record (ttl): SET")
        check(call(s.port, "EXPIRE", "t", "1000") == 1, "record (ttl): EXPIRE t 1000: the expiry task arms its timer")
        check(call(s.port, "PING") == "PONG", "record (ttl): PING")
        status = s.stop()
    check(status == 0, "record (ttl): reprise-kv stops gracefully on SIGTERM", s.err()[-800:])
    stripped = os.path.join(d, "reprise-kv-stripped")
    p = subprocess.run(["objcopy", "--strip-debug", kv, stripped], capture_output=True, text=True)
    check(p.returncode == 0, "objcopy --strip-debug makes a copy without debug information", p.stderr)
    if p.returncode != 0:
        return
    core = os.path.join(d, "stripped.core")
    timer_line = r"kv-expiry\s+parked\s+timer on timer #\d+ until \+(9\d\d|1000)\.\d+ s\s+[\d.]+ s$"
    steps, whole = gdb_batch(["--args", stripped, "--replay=" + trace], [
        ("run", "run"),
        ("ptype", "ptype reprise::detail::TimerState"),
        ("until", "reprise until-output PONG"),
        ("tasks", "reprise tasks"),
        ("gcore", "gcore " + core if not ASAN else "echo (no core under ASan)\\n"),
    ], cwd=d)
    check("No symbol" in steps.get("ptype", ""), "stripped: the copy has no debug information for TimerState",
          steps.get("ptype", "") + whole[-1500:])
    check(re.search(timer_line, steps.get("tasks", ""), re.M) and "no timer layout" not in whole,
          "stripped: a task waiting on a timer shows the timer's deadline from the table alone",
          steps.get("tasks", "") + whole[-1500:])
    check("Traceback" not in whole and "Python Exception" not in whole, "stripped: no Python traceback", whole[-3000:])
    if ASAN or not os.path.exists(core):
        check(ASAN, "stripped: gcore wrote a core file", steps.get("gcore"))
        return
    steps, whole = gdb_batch([stripped, core], [("tasks", "reprise tasks")], cwd=d)
    check(re.search(timer_line, steps.get("tasks", ""), re.M),
          "stripped core file: the timer's deadline from the table alone", steps.get("tasks", "") + whole[-1500:])


# A goto to a node's last event (its count, from `reprise nodes`' "event E/N", minus one).
LAST_EVENT = ('python import re; m = re.search(r"^[ >] %s \\S+\\s+event \\d+/(\\d+)", gdb.execute("reprise nodes", '
              'to_string=True), re.M); gdb.execute("reprise goto %s:%%d" %% (int(m.group(1)) - 1))')


def joint_crash(raft, sim, d):
    """A simulated cluster whose nodes crash and restart, replayed jointly in the simulation's run
    order (sim.order): a crashed run freezes where it crashed, with the other nodes where the run
    had them then, not at their ends."""
    folder = os.path.join(d, "sim-crash")
    run = subprocess.run([sim, "--seed", "3", "--time", "20s", "--nemesis", "crash,disk,partition", "--nemesis-interval",
                          "1s", "--faults", "on", "--trace-dir", folder, "--failure-dir", "none"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=GDB_TIMEOUT_S)
    check(run.returncode == 0 and os.path.isfile(os.path.join(folder, "sim.order")),
          "joint crash: reprise-raft-sim seed 3 with crashes passes and leaves sim.order",
          (run.stdout + run.stderr)[-1500:])
    nodes = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith("n") and f.endswith(".trace"))
    # A crashed run: its outcome file says it was cut off, and its node ran again (label NODE/1).
    crashed = None
    for t in nodes:
        with open(t + ".outcome") as f:
            cut = "ended cut_off" in f.read()
        name, run_no = os.path.basename(t).split(".")[:2]
        if cut and run_no == "1" and os.path.exists(os.path.join(folder, name + ".2.trace")):
            crashed = name + "/1"
            break
    check(crashed is not None, "joint crash: a node crashed and ran again", " ".join(nodes))
    if crashed is None:
        return
    steps, whole = gdb_batch(["--args", raft] + ["--replay=" + t for t in nodes], [
        ("run", "run"),
        ("goto", "reprise goto %s:1" % crashed),
        ("crash", "continue"),
        ("nodes", "reprise nodes"),
    ], cwd=d)
    check(re.search(r"node '%s' ends here" % re.escape(crashed), steps.get("crash", "")) and
          "in the order the simulation ran them" not in steps.get("crash", ""),
          "joint crash: continue stops at %s's crash, before the replay's end" % crashed, steps.get("crash", "") + whole[-1500:])
    # Every other started node short of its end (event E/N with E < N) at least once: not all at
    # their ends, as they were when a crashed run was only finished at the end of the order.
    listed = re.findall(r"^[ >] \d+ (\S+)\s+event (\d+)/(\d+)", steps.get("nodes", ""), re.M)
    check(any(name != crashed and int(e) < int(n) for name, e, n in listed),
          "joint crash: the other nodes stand where the run had them at the crash, not at their ends",
          steps.get("nodes", "") + whole[-1500:])


def joint_raft(raft, sim, d, scan=False):
    """A simulated reprise-raft cluster's node traces, replayed jointly under gdb: the nodes, a goto in
    one node while another is selected (the goto selects its node; the others placed where
    happens-before puts them), info's current node states, its tasks (a timer's deadline), a parked
    task's stack, back in that node, a node that has not started yet, and forward refused at a
    node's end. With `scan`, the same traces linked into a folder without sim.order: the order
    comes from a scan of the traces (as for traces of separate processes), not the run order."""
    J = "joint (scan)" if scan else "joint"
    folder = os.path.join(d, "sim")
    if not os.path.isdir(folder):
        run = subprocess.run([sim, "--seed", "5", "--time", "20s", "--trace-dir", folder, "--failure-dir", "none"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=GDB_TIMEOUT_S)
        check(run.returncode == 0, "joint: reprise-raft-sim seed 5 passes", (run.stdout + run.stderr)[-1500:])
    nodes = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith("n") and f.endswith(".trace"))
    if scan:
        os.makedirs(os.path.join(d, "sim-scan"), exist_ok=True)
        linked = []
        for t in nodes:
            linked.append(os.path.join(d, "sim-scan", os.path.basename(t)))
            if not os.path.exists(linked[-1]):
                os.link(t, linked[-1])
        nodes = linked
    steps, whole = gdb_batch(["--args", raft] + ["--replay=" + t for t in nodes], [
        ("run", "run"),
        ("nodes0", "reprise nodes"),
        ("select0", "reprise node 0"),
        ("goto", "reprise goto n2:300"),
        ("nodes", "reprise nodes"),
        ("info", "reprise info"),
        ("tasks", "reprise tasks"),
        ("task", [TASK_NAMED % "raft-in", "bt"]),
        ("back", ["reprise task off", "reprise back"]),
        ("unstarted", 'python import re; m = re.search(r"^[ >] (\\d+) .*\\(not started yet\\)$", '
                      'gdb.execute("reprise nodes", to_string=True), re.M); gdb.execute("reprise node " + m.group(1)); '
                      'gdb.execute("reprise tasks")'),
        # Past a node's events: refused at once, from the event count the plan put in the table.
        ("past", ["reprise goto 0:1000000", "reprise nodes"]),
        ("end-last", LAST_EVENT % ("0", "0")),
        ("end", "reprise next tick"),
        ("end-next", "reprise next tick"),
        ("end-nodes", "reprise nodes"),
        # n2 still ran when the simulation's time was over: its trace ends without an exit.
        ("frozen-past", "reprise goto n2:100000000"),
        ("frozen-last", LAST_EVENT % ("1", "n2")),
        ("frozen", "reprise next tick"),
        ("frozen-nodes", "reprise nodes"),
        ("frozen-info", "reprise info"),
        # The whole cluster's end: the session stays (the process does not exit).
        ("joint-end", ["disable", "continue", "reprise event"]),
        ("after-end", "reprise back"),
    ], cwd=d)
    check(re.search(r"stopped: end \(event \d+\): the joint replay's end: every node is done", steps.get("joint-end", "")),
          J + ": the replay's end stops the session (it does not exit)", steps.get("joint-end", "") + whole[-1500:])
    check(("reads of connections between the nodes ordered after their writes" if scan
           else "in the order the simulation ran them") in whole,
          J + ": the replay took its order from %s" % ("a scan of the traces" if scan else "sim.order"), whole[-1500:])
    check(re.search(r"\[reprise\] node \S+ event \d+, virtual time", steps.get("after-end", "")),
          J + ": back from the joint replay's end", steps.get("after-end", "") + whole[-1500:])
    listed = re.findall(r"^[ >] (\d+) (\S+)\s+event (\d+)", steps.get("nodes", ""), re.M)
    check(len(listed) == len(nodes) and len(nodes) >= 3, J + ": reprise nodes lists every run (%d traces)" % len(nodes),
          steps.get("nodes", "") + whole[-1500:])
    check(re.search(r"\[reprise\] node n2 event 300, virtual time", steps.get("goto", "")),
          J + ": goto NODE:N stops that node at that event", steps.get("goto", "") + whole[-1500:])
    check(re.search(r"^> \d+ n2\s+event 300\b", steps.get("nodes", ""), re.M) and
          any(int(e) > 0 for _, name, e in listed if name != "n2"),
          J + ": the stopped node is selected, and the others have moved on with it", steps.get("nodes"))
    check(re.search(r"raft-in\s+parked\s+read on connection #\d+", steps.get("tasks", "")),
          J + ": the stopped node's tasks (a peer reader parked on its connection)", steps.get("tasks"))
    check("raft::" in steps.get("task", ""), J + ": a parked raft task's stack shows reprise-raft's frames",
          steps.get("task"))
    check(re.search(r"^node 1 n2 selected$", steps.get("goto", ""), re.M),
          J + ": goto NODE:N selects NODE (another node was selected) and says so", steps.get("goto"))
    check(re.search(r"node n2 event 299, virtual time", steps.get("back", "")),
          J + ": back one event in the node the goto named (not the one selected before)",
          steps.get("back", "") + whole[-1500:])
    check(re.search(r"^  1 n2 \(replaying\): event 300, virtual time [\d.]+ s, stopped here", steps.get("info", ""), re.M)
          and re.search(r"^  0 \S+ \(replaying\): event [1-9]\d*,", steps.get("info", ""), re.M),
          J + ": info reads each node's current state (after the goto)", steps.get("info"))
    check(re.search(r"election\s+parked\s+timer on timer #\d+ until \+[\d.]+ s\s+[\d.]+ s$", steps.get("tasks", ""),
                    re.M), J + ": a task waiting on a timer shows the timer's deadline (virtual time)",
          steps.get("tasks"))
    check(re.search(r"node \d+ \S+ has not started yet: no event of its trace replayed; its first tick comes at wall "
                    r"time \d{4}-\d\d-\d\d ", steps.get("unstarted", "")),
          J + ": an unstarted node's tasks: says it has not started, and when it will", steps.get("unstarted"))
    info = steps.get("info", "")
    check(re.search(r"^  \d+ \S+ \(replaying\): not started yet, first tick at wall time \d{4}-\d\d-\d\d [\d:.]+ UTC$",
                    info, re.M), J + ": info shows an unstarted node's state and first tick time (from the table)", info)
    past = steps.get("past", "")
    m = re.search(r"reprise: node 0 \S+ has (\d+) events, #0 to #(\d+): event 1000000 is past its trace's end", past)
    check(m and int(m.group(2)) == int(m.group(1)) - 1 and "ran into" not in past and "[reprise]" not in past,
          J + ": goto NODE:N past the node's events is refused at once, saying its range (no replay to its end)",
          past + whole[-1500:])
    m = re.search(r"ran into the trace's end \(event (\d+)\)", steps.get("end", ""))
    check(m and "already at the end of the trace (event %s)" % m.group(1) in steps.get("end-next", "") and
          re.search(r"^> 0 \S+\s+event %s\b" % m.group(1), steps.get("end-nodes", ""), re.M),
          J + ": at a node's end, going forward in it is refused and the nodes stay where they are",
          steps.get("end", "") + steps.get("end-next", "") + steps.get("end-nodes", "") + whole[-1500:])
    check("node 'n2' ends here, after its last event #" in steps.get("frozen", "") and
          re.search(r"^> 1 n2\s+event \d+", steps.get("frozen-nodes", ""), re.M),
          J + ": a goto past the end of a node whose recording stopped while it ran stops at that end (the process "
          "stays, the cluster does not run to its exit)", steps.get("frozen", "") + steps.get("frozen-nodes", "") +
          whole[-1500:])
    check(re.search(r"reprise: node 1 n2 has \d+ events, #0 to #\d+: event 100000000 is past its trace's end",
                    steps.get("frozen-past", "")) and "ends here" not in steps.get("frozen-past", ""),
          J + ": goto past a frozen node's events is refused at once too", steps.get("frozen-past"))
    finfo = steps.get("frozen-info", "")
    check(re.search(r"^  1 n2 \(replaying\): event \d+, virtual time [\d.]+ s, frozen \(its trace ends "
                    r"without an exit", finfo, re.M) and
          re.search(r"^  0 \S+ \(replaying\): event \d+, virtual time [\d.]+ s, ended as recorded$",
                    finfo, re.M),
          J + ": info shows each node's state from the table: n2 frozen at its trace's end, node 0 ended", finfo)
    if scan:
        return
    # --break-at past a node's end, under gdb: said as an error where that node ends, and the
    # session stops there (as without gdb, where the replay exits 3).
    steps, whole = gdb_batch(["--args", raft] + ["--replay=" + t for t in nodes] + ["--break-at=n2:100000000"], [
        ("run", "run"),
        ("past", "continue"),
        ("event", "reprise event"),
    ], cwd=d)
    check("reprise: error: --break-at n2:100000000 is past that node's end" in whole and
          "(the --break-at was past it)" in steps.get("event", "") and "stopped: end" in steps.get("event", ""),
          J + ": --break-at NODE:N past that node's end: an error, and the session stops at the node's end",
          steps.get("past", "") + steps.get("event", "") + whole[-1500:])


if __name__ == "__main__":
    sys.exit(main())
