#!/usr/bin/env python3
"""disk_full: reprise-kv recording onto a disk that is or becomes full.

The behaviour checked (docs/reliability.md, "Disk full"):
  - a trace whose header cannot be written (--record=/dev/full): the server serves
    unrecorded and says once "NOT RECORDING: ... No space left on device; serving unrecorded";
  - a disk that fills while the server runs (RLIMIT_FSIZE with SIGXFSZ ignored: EFBIG
    after N bytes; and, when this process may mount, a 1 MiB tmpfs: real ENOSPC):
    the server keeps serving (redis-benchmark sees no error, redis-cli reads back what
    it wrote), says once on stderr "RECORDING STOPPED ... the trace ends before record
    N", and the trace on disk is cut back to its last complete chunk: `reprise verify`
    calls it incomplete (not damaged) after exactly N events, and `reprise-kv
    --replay` replays those N events and stops with "the trace ends at event N" (exit 2).

Usage: disk_full.py --build DIR
"""
import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Failure, Server, check, replay, report  # noqa: E402


def full_device(kv):
    """A trace whose header cannot be written: the server serves unrecorded, saying so once."""
    with Server([kv, "--port=0", "--record=/dev/full"]) as s:
        check(s.port is not None, "--record=/dev/full: the server starts and listens")
        check(s.stop() == 0, "--record=/dev/full: and stops cleanly")
        err = s.err()
    check(err.count("NOT RECORDING") == 1 and
          "cannot write the header of trace /dev/full: No space left on device; serving unrecorded" in err,
          f"--record=/dev/full: the reason is given once: {err.strip()!r}")


def filling_disk(kv, reprise, trace, label, file_limit=None):
    """Records reprise-kv under redis-benchmark load into `trace`, on a disk that fills
    (a file size limit, or a small file system), and checks the server, the message,
    the trace and its replay."""
    def limit():
        if file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    try:
        # Uncompressed: the load must fill the limit whatever zstd makes of it on a given run.
        server = Server([kv, "--port=0", f"--record={trace}", "--record-compress=off"], ready_timeout_s=10,
                        preexec_fn=limit)
    except Failure as e:
        check(False, f"{label}: the server listens", str(e))
        return
    check(True, f"{label}: the server listens")
    with server:
        port = server.port
        # About 4 MB of requests: several times what the disk takes.
        bench = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "4", "-n", "20000",
                                "-d", "200", "-r", "1000", "-t", "set,get", "--csv"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        bout = bench.stdout.decode(errors="replace") + bench.stderr.decode(errors="replace")
        check(bench.returncode == 0 and '"SET"' in bout and '"GET"' in bout and "rror" not in bout,
              f"{label}: redis-benchmark's 20000 SET and 20000 GET all succeed")
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        setr = subprocess.run(cli + ["SET", "after-the-disk-filled", "still-serving"], stdout=subprocess.PIPE,
                              timeout=30)
        getr = subprocess.run(cli + ["GET", "after-the-disk-filled"], stdout=subprocess.PIPE, timeout=30)
        check(setr.stdout.strip() == b"OK" and getr.stdout.strip() == b"still-serving",
              f"{label}: after the failure, a client still sets and gets a key")
        status = server.stop(timeout_s=30)
    err = server.err()
    check(status == 0, f"{label}: the server stops on SIGTERM with exit 0 (got {status})")
    check(err.count("RECORDING STOPPED") == 1, f"{label}: one 'RECORDING STOPPED' message: {err.strip()!r}")
    m = re.search(r"the trace ends before record (\d+)", err)
    if not check(m is not None, f"{label}: the message says where the trace ends"):
        return
    n = int(m.group(1))
    check(n > 0, f"{label}: the trace holds records ({n})")
    check("in complete chunks" in err, f"{label}: the trace was cut back to its last complete chunk")

    v = subprocess.run([reprise, "verify", trace], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    vout = v.stdout.decode(errors="replace")
    check(v.returncode == 1 and f"incomplete: no end record after {n} event(s)" in vout and "damaged" not in vout,
          f"{label}: reprise verify: incomplete after exactly {n} events, not damaged: {vout.strip()!r}")
    stop = re.search(r"the trace stops at byte offset (\d+)", vout)
    size = os.path.getsize(trace)
    check(stop is not None and int(stop.group(1)) == size,
          f"{label}: the file ends where its last complete chunk ends ({size} bytes)")

    r = replay(kv, trace)
    check(r.returncode == 2 and f"the trace ends at event {n} without an end record" in r.stderr
          and "DIVERGENCE" not in r.stderr,
          f"{label}: replay reproduces the {n} events and stops at event {n} (exit {r.returncode}): "
          f"{r.tail(300)!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    for tool in ("redis-benchmark", "redis-cli"):
        if shutil.which(tool) is None:
            print(f"disk_full: {tool} is not installed (./dev installs it); skipping")
            return 77
    kv = os.path.join(args.build, "examples", "kv", "reprise-kv")
    reprise = os.path.join(args.build, "tools", "reprise")
    work = tempfile.mkdtemp(prefix="reprise-disk-full-")
    try:
        full_device(kv)
        filling_disk(kv, reprise, os.path.join(work, "fsize.trace"), "file size limit (EFBIG at 300000 bytes)",
                     file_limit=300000)
        mnt = os.path.join(work, "small-disk")
        os.mkdir(mnt)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE).returncode == 0
        if mounted:
            try:
                filling_disk(kv, reprise, os.path.join(mnt, "trace"), "a full 1 MiB tmpfs (ENOSPC)")
            finally:
                subprocess.run(["umount", mnt])
        else:
            print("skipped a full 1 MiB tmpfs (ENOSPC): this process may not mount one")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report("disk_full")


if __name__ == "__main__":
    sys.exit(main())
