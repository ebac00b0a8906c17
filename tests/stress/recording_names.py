#!/usr/bin/env python3
"""Recording in production: what a --record path may name, and what a new trace may not inherit.

Usage: recording_names.py --build BUILD_DIR

Against reprise-kv on 127.0.0.1:
- a stale outcome file: a clean run's trace removed by hand leaves its .outcome; the next run of
  the pattern takes the same name, is killed (SIGKILL), and must read as cut off with no outcome
  (not as the old run's "exit code 0"), and retention must keep it; the same for a segmented trace
  (its outcome file is NAME.outcome, beside NAME.0);
- a later segment left over (NAME.1 without NAME.0) takes the name: a plain --record=NAME is refused
  rather than start a trace a reader would join to that segment;
- %c in a folder's name is refused at the first start, saying %c goes in the file name;
- %t: a second run in the same second is refused saying why (the same second names the same file)
  and how (add %c);
- --record-keep with %p or %t in a folder's name is refused at start (retention lists one folder);
- --record-max-bytes under its minimum is said in the project's words, not CLI11's;
- --record=DIR/ (a trailing slash) is refused up front, and creates nothing;
- reprise info says nothing contradictory: a trace with its end record copied without its outcome
  file is not "killed"; NAME.0 opens the whole segmented trace; a live run past its budget reads as
  stopped at its budget with its process still running, not as "cut off".
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import KvTool, RespClient, check, report  # noqa: E402


def clean_run(k, *flags):
    with k.server(*flags) as s:
        with RespClient(s.port) as c:
            check(c.call("SET", "k", "v") == "OK", "a SET is answered")
        check(s.stop() == 0, "a clean run exits 0")


def killed_run(k, *flags):
    with k.server(*flags) as s:
        with RespClient(s.port) as c:
            check(c.call("SET", "precious", "data") == "OK", "a SET is answered")
        s.kill()


def stale_outcome(k, tmp, segmented):
    folder = os.path.join(tmp, "stale-seg" if segmented else "stale")
    pattern = os.path.join(folder, "kv.%c.trace")
    extra = ["--record-segment=1m"] if segmented else []
    first = os.path.join(folder, "kv.1.trace")
    what = "segmented " if segmented else ""
    clean_run(k, f"--record={pattern}", *extra)
    check(os.path.exists(first + ".outcome"), f"a clean {what}run leaves its outcome file", os.listdir(folder))
    os.remove(first + ".0" if segmented else first)   # the trace removed by hand; its outcome stays
    killed_run(k, f"--record={pattern}", *extra)
    check(os.path.exists(first + ".0" if segmented else first),
          f"the killed {what}run took the free name kv.1.trace again", sorted(os.listdir(folder)))
    check(not os.path.exists(first + ".outcome"),
          f"the new {what}trace did not inherit the stale outcome file", sorted(os.listdir(folder)))
    text = k.info(first)
    check("exit code 0" not in text and "none recorded" in text,
          f"reprise info: the killed {what}run has no outcome (not the old run's exit code 0)", text[-700:])
    clean_run(k, f"--record={pattern}", "--record-keep=1", *extra)
    check(os.path.exists(first + ".0" if segmented else first),
          f"--record-keep=1 keeps the killed {what}run's trace (cut off), not removed as a clean run",
          sorted(os.listdir(folder)))


def leftover_segment(k, tmp):
    folder = os.path.join(tmp, "leftover")
    os.makedirs(folder)
    trace = os.path.join(folder, "kv.trace")
    with open(trace + ".1", "wb") as f:
        f.write(b"an old trace's second segment")
    rc, err = k.refused(f"--record={trace}", "--record-segment=1m")
    check(rc == 2 and "exists (as" in err and "kv.trace.1" in err,
          f"a trace whose name has a segment left over is refused (exit {rc})", err[-500:])
    check(sorted(os.listdir(folder)) == ["kv.trace.1"], "and nothing is created", sorted(os.listdir(folder)))


def counter_in_folder(k, tmp):
    pattern = os.path.join(tmp, "kvt", "%c", "kv.trace")
    rc, err = k.refused(f"--record={pattern}")
    check(rc == 2 and "%c must be in the trace's file name" in err,
          f"%c in a folder's name is refused at the first start (exit {rc})", err[-500:])
    check(not os.path.exists(os.path.join(tmp, "kvt")), "and nothing is created")


def same_second(k, tmp):
    folder = os.path.join(tmp, "tt")
    os.makedirs(folder)
    # The names of this second and the next few are taken, as a run started a moment ago took one.
    now = int(time.time())
    for t in range(now - 1, now + 30):
        name = time.strftime("kv.%Y%m%dT%H%M%SZ.trace", time.gmtime(t))
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"an earlier run's trace")
    rc, err = k.refused(f"--record={os.path.join(folder, 'kv.%t.trace')}")
    check(rc == 2 and "same second" in err and "add %c" in err,
          f"a %t name taken in the same second: refused, saying why and to add %c (exit {rc})", err[-600:])


def retention_folder(k, tmp):
    for pattern in ("pf/%p/kv.%c.trace", "tf/%t/kv.%c.trace"):
        for flag in ("--record-keep=1", "--record-keep-bytes=10m"):
            rc, err = k.refused(f"--record={os.path.join(tmp, pattern)}", flag)
            check(rc == 2 and "in a folder's name" in err and "retention" in err,
                  f"{flag} with {pattern}: refused at start (exit {rc})", err[-500:])
    check(not os.path.exists(os.path.join(tmp, "pf")) and not os.path.exists(os.path.join(tmp, "tf")),
          "and nothing is created")


def flag_words(k, tmp):
    rc, err = k.refused(f"--record={os.path.join(tmp, 'mb.%c.trace')}", "--record-max-bytes=1000")
    check(rc == 2 and "--record-max-bytes needs a size of at least 65536 bytes" in err and "not in range" not in err,
          f"--record-max-bytes=1000: said in the project's words (exit {rc})", err[-400:])
    empty = os.path.join(tmp, "emptydir")
    rc, err = k.refused(f"--record={empty}/")
    check(rc == 2 and "a trace is a file" in err, f"--record=DIR/ is refused up front (exit {rc})", err[-400:])
    check(not os.path.exists(empty), "and the folder is not created")


def info_words(k, tmp):
    folder = os.path.join(tmp, "info")
    os.makedirs(folder)
    trace = os.path.join(folder, "a.trace")
    clean_run(k, f"--record={trace}")
    copy = os.path.join(folder, "copy.trace")
    with open(trace, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    text = k.info(copy)
    check("closed cleanly" in text and "killed" not in text and "cut off" not in text
          and "no outcome file beside the trace, though the trace has its end record (exit code 0)" in text,
          "reprise info: a clean trace copied without its outcome file is not called killed or cut off", text[-900:])
    seg = os.path.join(folder, "s.trace")
    clean_run(k, f"--record={seg}", "--record-segment=1m")
    text = k.info(seg + ".0")
    check(f"trace            {seg}\n" in text and f"segments         1 ({seg}.0)" in text
          and "outcome          exit code 0" in text and "a single file" not in text,
          "reprise info NAME.0: the whole segmented trace, with its outcome file", text[-1500:])
    budget = os.path.join(folder, "m.trace")
    with k.server(f"--record={budget}", "--record-max-bytes=64k") as s:
        with RespClient(s.port) as c:
            for i in range(40):
                c.call("SET", f"k{i}", os.urandom(3000).hex())
                if "RECORDING STOPPED" in s.err():
                    break
        # The recorder's writer thread seals and writes chunks on its own time: the last SETs'
        # chunk may reach the budget only after the last answer. Wait for it, bounded.
        deadline = time.monotonic() + 10
        while "RECORDING STOPPED" not in s.err() and time.monotonic() < deadline:
            time.sleep(0.05)
        check("RECORDING STOPPED" in s.err(), "the recording stopped at its budget", s.err()[-500:])
        # The writer prints that line first, then writes the outcome file (with an fsync) that
        # `reprise info` reads "stopped at its budget" from.
        deadline = time.monotonic() + 10
        while not os.path.exists(budget + ".outcome") and time.monotonic() < deadline:
            time.sleep(0.05)
        text = k.info(budget)
        check("being written    yes" in text and "the program's end is not recorded" not in text
              and "still being written" not in text.split("state", 1)[-1].split("\n", 1)[0]
              and "stopped at its budget of 65536 bytes" in text,
              "reprise info of a live run past its budget: stopped at its budget, its process still runs",
              text[-1200:])
        check(s.stop() == 0, "the server stops cleanly")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    k = KvTool(a.build)
    with tempfile.TemporaryDirectory(prefix="reprise-names-") as tmp:
        stale_outcome(k, tmp, segmented=False)
        stale_outcome(k, tmp, segmented=True)
        leftover_segment(k, tmp)
        counter_in_folder(k, tmp)
        same_second(k, tmp)
        retention_folder(k, tmp)
        flag_words(k, tmp)
        info_words(k, tmp)
    return report("recording-names")


if __name__ == "__main__":
    sys.exit(main())
