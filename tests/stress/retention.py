#!/usr/bin/env python3
"""Recording in production: the lock on a trace being written, retention, and the recording budget.

Usage: retention.py --build BUILD_DIR

Against reprise-kv on 127.0.0.1, every run a few hundred milliseconds:
- lock: while a recording server runs, `reprise info` says its trace is being written and
  `reprise verify` says it is not finished for that reason; once it stopped, neither does, and the
  outcome file says exit code 0;
- --record-keep: runs that exited 0 go oldest first; runs killed by SIGKILL (no outcome), crashed
  (SIGABRT), exited non-zero, or still being written stay, and `reprise info` says why; another
  node's runs in the same folder (%n) are not touched; a segmented run goes with all its segments;
- --record-keep-bytes: the pattern's traces stay within the budget, the oldest clean runs going;
  when the kept runs alone fill it, the server records nothing, says so once, and serves;
- one run's share of --record-keep-bytes: a run killed past half of it stops at half, and when the
  kept runs leave under the 64 KiB minimum, the next run says NOT RECORDING instead of a tiny trace;
- a crash: a run killed by SIGSEGV within a seal interval of its last request (the crash path writes
  the last chunk) reads as crashed with its recording complete, not as a failed recording;
- a full disk (a small tmpfs; skipped, saying why, when it cannot be mounted): retention frees room
  before the header is written; with no room still, the server says NOT RECORDING once, serves, and
  leaves no empty trace;
- an unknown % escape (%q, %C) is refused (exit 2, naming the valid escapes) and creates nothing;
  retention says on stderr which run it removed;
- --record-max-bytes: the recording stops at its budget, says so once, the server keeps serving,
  the trace is no larger than the budget, `reprise verify` reads it back (OK, stopped at its
  budget) and a replay ends where it stops, saying why; killed after its budget stopped the recording,
  the run still reads as stopped at its budget, not as cut off with no outcome.
"""
import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Failure, KvTool, RespClient, check, replay, report, run, wait_for  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


def set_values(port, count, value_bytes, prefix="k"):
    """SETs `count` keys of `value_bytes` random bytes (random: they do not compress); True when all
    answered +OK."""
    with RespClient(port) as c:
        return all(c.call("SET", f"{prefix}{i}", os.urandom(value_bytes).hex()[:value_bytes]) == "OK"
                   for i in range(count))


def names(folder):
    return sorted(n for n in os.listdir(folder) if not n.endswith(".outcome"))


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))


def written_before_kill(folder, before, want):
    """Waits (bounded) until the folder holds `want` more bytes than `before`: the recorder's writer
    thread writes chunks on its own time, and a SIGKILL loses what it has not written yet."""
    try:
        wait_for(f"{want} bytes of trace written", lambda: folder_bytes(folder) >= before + want, 15)
    except Failure as e:
        check(False, "the trace reached its size before the kill", str(e))


def lock_is_visible(k, tmp):
    trace = os.path.join(tmp, "live.trace")
    with k.server(f"--record={trace}") as s:
        set_values(s.port, 3, 100)
        text = k.info(trace)
        check("being written    yes" in text and "still being written" in text,
              "reprise info: the trace of a running recorder is being written (its lock)", text[-900:])
        rc, text = k.verify(trace)
        check(rc == 1 and "still being written" in text, "reprise verify: not finished, still being written", text)
        check(not os.path.exists(trace + ".outcome"), "no outcome file while the run goes on")
        check(s.stop() == 0, "the server stops cleanly")
    text = k.info(trace)
    check("being written    no" in text and "outcome          exit code 0" in text and "may be removed" in text,
          "after the run: not being written, the outcome says exit code 0, retention may remove it", text[-900:])
    rc, text = k.verify(trace)
    check(rc == 0 and text.startswith("OK"), "reprise verify: intact and complete", text)
    mode = os.stat(trace + ".outcome").st_mode & 0o777
    check(mode == 0o600, f"the outcome file is the owner's only (mode {oct(mode)})")


def keep_runs(k, tmp):
    folder = os.path.join(tmp, "keep")
    pattern = os.path.join(folder, "kv.%c.trace")
    flags = [f"--record={pattern}", "--record-keep=3"]

    def clean_run():
        with k.server(*flags) as s:
            set_values(s.port, 2, 50)
            check(s.stop() == 0, "a clean run exits 0")

    clean_run()                                  # 1: exit 0
    clean_run()                                  # 2: exit 0
    with k.server(*flags) as s:                  # 3: SIGKILL, no outcome
        s.kill()
    with k.server(*flags) as s:                  # 4: crashed (SIGABRT)
        os.kill(s.pid, signal.SIGABRT)
        check(s.wait(60) is not None, "a recording reprise-kv sent SIGABRT dies of it")
    busy = socket.socket()                       # 5: exit code 1 (its port is taken)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    rc, out, err = run([k.kv, "--port", str(busy.getsockname()[1]), *flags], timeout_s=30)
    busy.close()
    check(rc == 1, f"a run whose port is taken exits 1 (got {rc})", err[-500:])
    check(names(folder) == ["kv.3.trace", "kv.4.trace", "kv.5.trace"],
          "--record-keep=3: the clean runs went oldest first (two old runs beside the new one)", names(folder))
    clean_run()                                  # 6: the three kept runs stay: four remain
    clean_run()                                  # 7: run 6 goes, the kept ones stay
    check(names(folder) == ["kv.3.trace", "kv.4.trace", "kv.5.trace", "kv.7.trace"],
          "runs that were killed, crashed or exited non-zero are kept past the count", names(folder))
    expected = {"kv.3.trace": "cut off: no outcome recorded", "kv.4.trace": "run crashed with SIGABRT",
                "kv.5.trace": "exit code 1", "kv.7.trace": "may be removed"}
    for name, why in expected.items():
        text = k.info(os.path.join(folder, name))
        check(why in text, f"reprise info {name}: {why}", text[-600:])
    # A run still being written is kept too, even with --record-keep=1.
    with k.server(f"--record={pattern}") as live:
        with k.server(f"--record={pattern}", "--record-keep=1") as s:
            check(s.stop() == 0, "a run with --record-keep=1 stops cleanly")
        live_trace = os.path.join(folder, "kv.8.trace")
        check(os.path.exists(live_trace), "--record-keep=1 keeps the trace another server still writes",
              names(folder))
        check("kept whatever the budget: still being written" in k.info(live_trace),
              "reprise info says a live trace is kept because it is still being written")
        check(live.stop() == 0, "the live server stops cleanly")
    check(names(folder) == ["kv.3.trace", "kv.4.trace", "kv.5.trace", "kv.8.trace", "kv.9.trace"],
          "--record-keep=1 removed the clean run 7 only", names(folder))


def nodes_share_a_folder(k, tmp):
    """%n is the node's own name, not a wildcard: one node's retention never removes another's traces."""
    folder = os.path.join(tmp, "nodes")
    pattern = os.path.join(folder, "%n.%c.trace")
    for node in ("alpha", "beta", "beta", "beta"):
        with k.server(f"--record={pattern}", f"--node={node}", "--record-keep=1") as s:
            check(s.stop() == 0, f"node {node} stops cleanly")
    check(names(folder) == ["alpha.1.trace", "beta.3.trace"],
          "--record-keep=1 of node beta kept node alpha's run; each node counts its own runs", names(folder))


def segments_go_with_their_run(k, tmp):
    """A segmented run is locked through PATH.0 while it runs, and retention removes all its segments."""
    folder = os.path.join(tmp, "segments")
    pattern = os.path.join(folder, "kv.%c.trace")
    flags = [f"--record={pattern}", "--record-segment=1M", "--record-compress=off", "--record-keep=1"]
    for run_number in (1, 2):
        with k.server(*flags) as s:
            set_values(s.port, 50, 50 * KIB)   # about 2.5 MB: three segments
            if run_number == 2:
                text = k.info(os.path.join(folder, "kv.2.trace"))
                check("being written    yes" in text, "a segmented trace is being written while its server runs",
                      text[-600:])
            check(s.stop() == 0, "a segmented run stops cleanly")
        segments = [n for n in names(folder) if n.startswith(f"kv.{run_number}.trace.")]
        check(len(segments) >= 3, f"run {run_number} wrote segments", names(folder))
    check(all(n.startswith("kv.2.trace.") for n in os.listdir(folder)),
          "--record-keep=1 removed the first run's segments and outcome file", names(folder))
    rc, text = k.verify(os.path.join(folder, "kv.2.trace"))
    check(rc == 0, "the second run's segments verify", text)


def keep_bytes(k, tmp):
    folder = os.path.join(tmp, "bytes")
    pattern = os.path.join(folder, "kv.%c.trace")
    budget = 1 * MIB
    flags = [f"--record={pattern}", f"--record-keep-bytes={budget // KIB}KiB", "--record-max-bytes=300K",
             "--record-compress=off"]
    worst = 0
    for _ in range(6):
        with k.server(*flags) as s:
            set_values(s.port, 4, 50 * KIB)     # about 200 KiB of trace, uncompressed
            check(s.stop() == 0, "a run within the byte budget exits 0")
        worst = max(worst, folder_bytes(folder))
    check(worst <= budget, f"the pattern's traces stay within --record-keep-bytes (at most {worst} bytes)")
    left = names(folder)
    check("kv.1.trace" not in left and "kv.6.trace" in left and len(left) >= 3,
          "the oldest clean runs went, the newest stayed", left)
    # A crashed run larger than the budget (recorded without retention): kept; nothing new is recorded.
    start = folder_bytes(folder)
    with k.server(f"--record={pattern}", "--record-compress=off") as s:
        set_values(s.port, 24, 50 * KIB, prefix="big")
        written_before_kill(folder, start, 1100 * KIB)
        s.kill()
    before = names(folder)
    with k.server(*flags) as s:
        with RespClient(s.port) as c:
            served = set_values(s.port, 2, 100) and c.call("GET", "k1") is not None
        check(served, "with the kept runs over the budget, the server serves")
        check(s.stop() == 0, "and stops cleanly")
        err = s.err()
    check(err.count("NOT RECORDING") == 1 and "take" in err, "it says once that it records nothing", err[-800:])
    check(names(folder) == before, "no trace was created, none removed", (before, names(folder)))


def one_run_share(k, tmp):
    """A killed run takes at most half of --record-keep-bytes (no --record-max-bytes), so it cannot starve
    the runs after it; a run left less than the minimum records nothing rather than a tiny trace."""
    folder = os.path.join(tmp, "share")
    pattern = os.path.join(folder, "kv.%c.trace")
    budget = 1 * MIB
    flags = [f"--record={pattern}", f"--record-keep-bytes={budget // KIB}KiB", "--record-compress=off"]
    with k.server(*flags) as s:
        set_values(s.port, 16, 50 * KIB)       # about 800 KiB of trace, uncompressed
        written_before_kill(folder, 0, 400 * KIB)  # it stops at 512 KiB, half the budget
        s.kill()
    size = os.path.getsize(os.path.join(folder, "kv.1.trace"))
    check(0 < size <= budget // 2, f"a killed run stops at half of --record-keep-bytes ({size} bytes)")
    # A second killed run recorded without retention, then a budget (at least 1 MiB) that the two kept
    # (cut off) runs fill but for 32 KiB: under the minimum, nothing is recorded.
    start = folder_bytes(folder)
    with k.server(f"--record={pattern}", "--record-compress=off") as s:
        set_values(s.port, 16, 50 * KIB, prefix="big")
        written_before_kill(folder, start, 750 * KIB)
        s.kill()
    tight = folder_bytes(folder) + 32 * KIB
    check(tight >= MIB, f"the two killed runs take over 1 MiB ({tight} bytes with the 32 KiB of room)")
    before = names(folder)
    with k.server(f"--record={pattern}", f"--record-keep-bytes={tight}", "--record-compress=off") as s:
        check(set_values(s.port, 2, 100), "with 32 KiB of room left, the server serves")
        check(s.stop() == 0, "and stops cleanly")
        err = s.err()
    check(err.count("NOT RECORDING") == 1 and "65536" in err, "it says once that it records nothing, and why",
          err[-800:])
    check(names(folder) == before, "no tiny trace was written", (before, names(folder)))


def crash_flush_is_complete(k, tmp):
    """The crash path flushes the records since the last chunk: the outcome is the signal, the recording
    complete up to it (not "failed", which would say the program went on unrecorded)."""
    folder = os.path.join(tmp, "crash")
    trace = os.path.join(folder, "kv.1.trace")
    with k.server(f"--record={os.path.join(folder, 'kv.%c.trace')}") as s:
        with RespClient(s.port) as c:
            check(c.call("SET", "a", "b") == "OK", "a crashing run answers its SET first")
        os.kill(s.pid, signal.SIGSEGV)      # well within the 50 ms seal interval: the crash path writes
        check(s.wait(60) is not None, "a recording reprise-kv sent SIGSEGV dies of it")
    try:
        with open(trace + ".outcome") as f:
            outcome = f.read()
    except OSError as e:
        outcome = f"(no outcome file: {e})"
    check("ended crashed" in outcome and "recording complete" in outcome,
          "the outcome file: crashed, recording complete", outcome)
    text = k.info(trace)
    check("SIGSEGV" in text and "write failed" not in text, "reprise info: crashed with SIGSEGV, no write failed",
          text[-600:])
    rc, text = k.verify(trace)
    check("went on unrecorded" not in text and "SIGSEGV" in text,
          "reprise verify: the recording went up to the crash", text)


def fill(path):
    """Writes `path` until the filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(64 * 1024):            # bounded: at most 64 MiB in 1 KiB blocks
            os.write(fd, b"x" * 1024)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def full_disk(k, tmp):
    """A full disk never stops the service: retention frees room first, and with none the server serves
    unrecorded, leaving no empty trace."""
    folder = os.path.join(tmp, "full")
    os.makedirs(folder)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", folder],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        print(f"SKIP full disk: cannot mount a tmpfs ({(mount.stderr or mount.stdout).strip()})")
        return
    try:
        pattern = os.path.join(folder, "kv.%c.trace")
        with k.server(f"--record={pattern}") as s:          # run 1: a clean run, retention's to remove
            set_values(s.port, 2, 50)
            check(s.stop() == 0, "a clean run on the small disk exits 0")
        fill(os.path.join(folder, "filler"))
        with k.server(f"--record={pattern}", "--record-keep=1") as s:
            check(set_values(s.port, 2, 50), "on a full disk with a clean run to remove, the server serves")
            check(s.stop() == 0, "and stops cleanly")
            err = s.err()
        check("NOT RECORDING" not in err and not os.path.exists(os.path.join(folder, "kv.1.trace")),
              "retention removed the clean run before writing the header, and the run recorded", err[-800:])
        check(os.path.getsize(os.path.join(folder, "kv.2.trace")) > 0, "its trace holds a header")
        os.unlink(os.path.join(folder, "filler"))
        fill(os.path.join(folder, "filler"))              # full again, nothing left to remove but run 2
        for flags in ([], ["--record-keep=2"]):
            before = names(folder)
            with k.server(f"--record={pattern}", *flags) as s:
                check(set_values(s.port, 2, 50), f"on a full disk ({flags}), the server serves unrecorded")
                check(s.stop() == 0, "and stops cleanly")
                err = s.err()
            check(err.count("NOT RECORDING") == 1 and "serving unrecorded" in err and "No space" in err,
                  "it says once that it records nothing, and why", err[-800:])
            check(names(folder) == before, "no empty trace is left behind", (before, names(folder)))
    finally:
        subprocess.run(["umount", folder], check=False)


def budget_stop(k, tmp):
    trace = os.path.join(tmp, "budget.trace")
    budget = 128 * KIB
    with k.server(f"--record={trace}", f"--record-max-bytes={budget}", "--record-compress=off") as s:
        set_values(s.port, 20, 20 * KIB)
        with RespClient(s.port) as c:
            check(c.call("SET", "after", "the-budget") == "OK" and c.call("GET", "after") == "the-budget",
                  "past its recording budget, the server keeps serving")
        check(s.stop() == 0, "and stops cleanly")
        err = s.err()
    check(err.count("RECORDING STOPPED") == 1 and "budget" in err, "it says once that the recording stopped",
          err[-800:])
    size = os.path.getsize(trace)
    check(0 < size <= budget, f"the trace is within its budget ({size} bytes)")
    rc, text = k.verify(trace)
    check(rc == 0 and "stopped at its budget" in text, "reprise verify reads it back: intact, stopped at its budget",
          text)
    r = replay(k.kv, trace)
    check(r.returncode == 2 and "the trace ends" in r.stderr and "budget" in r.stderr,
          "its replay ends where the recording stopped and says why", r.tail())


def budget_then_killed(k, tmp):
    trace = os.path.join(tmp, "budget-killed.trace")
    with k.server(f"--record={trace}", f"--record-max-bytes={128 * KIB}", "--record-compress=off") as s:
        set_values(s.port, 20, 20 * KIB)
        try:
            wait_for("the outcome file written at the budget", lambda: os.path.exists(trace + ".outcome"))
        except Failure as e:
            check(False, "the outcome file is written when the budget stops the recording", e)
        s.kill()
    text = k.info(trace)
    check("stopped at its budget" in text and "no outcome recorded" not in text,
          "reprise info: a run killed after its budget stopped the recording still says it stopped at its budget",
          text[-900:])
    rc, text = k.verify(trace)
    check("stopped at its budget" in text, "reprise verify: stopped at its budget", text)


def escapes_and_removals(k, tmp):
    folder = os.path.join(tmp, "escapes")
    os.makedirs(folder)
    for bad in ("x.%q.trace", "x.%C.trace", "x.trace%"):
        rc, out, err = run([k.kv, "--port", "0", f"--record={os.path.join(folder, bad)}"], timeout_s=30)
        check(rc == 2 and "unknown escape" in err and "%c" in err and "%p" in err,
              f"--record=...{bad}: refused, naming the valid escapes (exit {rc})", err[-500:])
    check(os.listdir(folder) == [], "an unknown escape creates no file", os.listdir(folder))
    pattern = os.path.join(folder, "kv.%c.trace")
    for _ in range(2):
        with k.server(f"--record={pattern}", "--record-keep=1") as s:
            check(s.stop() == 0, "a clean run exits 0")
            err = s.err()
    check(err.count("retention: removed") == 1 and "removed kv.1.trace (clean run, " in err,
          "retention says which trace it removed", err[-500:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    k = KvTool(a.build)
    with tempfile.TemporaryDirectory(prefix="reprise-retention-") as tmp:
        lock_is_visible(k, tmp)
        keep_runs(k, tmp)
        nodes_share_a_folder(k, tmp)
        segments_go_with_their_run(k, tmp)
        keep_bytes(k, tmp)
        budget_stop(k, tmp)
        budget_then_killed(k, tmp)
        escapes_and_removals(k, tmp)
        one_run_share(k, tmp)
        crash_flush_is_complete(k, tmp)
        full_disk(k, tmp)
    return report("retention")


if __name__ == "__main__":
    sys.exit(main())
