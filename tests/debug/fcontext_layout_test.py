#!/usr/bin/env python3
"""The gdb extension's Boost.Context layout table (FCONTEXT_LAYOUTS in tools/gdb/reprise_gdb.py)
against Boost.Context itself, run: tests/debug/fcontext_probe.cpp finds where jump_fcontext leaves a
suspended context's resume pc, rbp, rbx, r12..r15 and how big its frame is.

Usage: fcontext_layout_test.py PROBE EXTENSION PROBE_SOURCE

PROBE is the probe built against the installed Boost: its layout must be the table's for that
version (a version the table lacks fails too). Then Debian's Boost 1.81 (the other layout, with a
stack-guard slot) is downloaded with `apt-get download` into a temporary folder, the probe compiled
against it and checked the same way; where it cannot be downloaded or compiled (no network, no
apt lists, no g++) that part is skipped, saying why. x86_64 only (the probe's jump is x86_64 asm).
"""
import ast
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, report  # noqa: E402

OTHER_BOOST = ["libboost-context1.81-dev", "libboost-context1.81.0", "libboost1.81-dev"]
REGISTERS = ("rbp", "rbx", "r12", "r13", "r14", "r15")


def layouts(extension):
    """FCONTEXT_LAYOUTS, evaluated from the extension's source alone (it imports gdb)."""
    with open(extension) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FCONTEXT_LAYOUTS" for t in node.targets):
            code = compile(ast.Expression(node.value), extension, "eval")
            return eval(code, {"__builtins__": {}, "dict": dict, "range": range})  # noqa: S307 (our own file)
    raise SystemExit("FCONTEXT_LAYOUTS not found in " + extension)


def compare(table, line, what):
    m = re.match(r"boost=(\d+) pc=(-?\d+) frame=(-?\d+) " + " ".join(r"%s=(-?\d+)" % r for r in REGISTERS) + "$",
                 line.strip())
    check(m is not None, f"{what}: the probe found every slot", line)
    if m is None:
        return
    version, pc, frame = int(m.group(1)), int(m.group(2)), int(m.group(3))
    found = {r: int(m.group(4 + i)) for i, r in enumerate(REGISTERS)}
    rows = [row for row in table if row[0] == "x86_64_sysv" and row[1] <= version <= row[2]]
    check(len(rows) == 1, f"{what}: the extension's table has a layout for Boost {version}", table)
    if len(rows) != 1:
        return
    _, _, _, pc_slot, frame_bytes, regs, _ = rows[0]
    check(pc == pc_slot and frame == frame_bytes,
          f"{what}: resume pc at 0x{pc:x} (table 0x{pc_slot:x}), frame 0x{frame:x} bytes (table 0x{frame_bytes:x})", line)
    for r in REGISTERS:
        check(found[r] == regs[r], f"{what}: {r} at 0x{found[r]:x} (table 0x{regs[r]:x})", line)


def other_boost(table, source):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None or shutil.which("g++") is None:
        print("note: Boost 1.81 part skipped: needs apt-get, dpkg and g++")
        return
    d = tempfile.mkdtemp(prefix="fcontext-boost181-")
    try:
        try:
            got = subprocess.run(["apt-get", "download", *OTHER_BOOST], cwd=d, capture_output=True, text=True,
                                 timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            print("note: Boost 1.81 part skipped: apt-get download did not finish: %s" % e)
            return
        debs = glob.glob(os.path.join(d, "*.deb"))
        if got.returncode != 0 or len(debs) != len(OTHER_BOOST):
            print("note: Boost 1.81 part skipped: apt-get download failed: " + (got.stderr or got.stdout).strip()[-300:])
            return
        root = os.path.join(d, "root")
        for deb in debs:
            subprocess.run(["dpkg", "-x", deb, root], check=True, timeout=120)
        lib = os.path.join(root, "usr", "lib", "x86_64-linux-gnu")
        probe = os.path.join(d, "probe")
        built = subprocess.run(["g++", "-O2", "-std=c++20", "-I", os.path.join(root, "usr", "include"), source, "-L", lib,
                                "-lboost_context", "-Wl,-rpath," + lib, "-o", probe],
                               capture_output=True, text=True, timeout=300)
        check(built.returncode == 0, "Boost 1.81: the probe compiles against it", built.stderr[-1500:])
        if built.returncode != 0:
            return
        run = subprocess.run([probe], capture_output=True, text=True, timeout=60)
        check(run.returncode == 0 and "boost=108100 " in run.stdout, "Boost 1.81: the probe runs", run.stdout + run.stderr)
        compare(table, run.stdout, "Boost 1.81")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if platform.machine() != "x86_64":
        print("skipped: the probe is x86_64 only")
        return 77
    probe, extension, source = sys.argv[1:4]
    table = layouts(extension)
    run = subprocess.run([probe], capture_output=True, text=True, timeout=60)
    check(run.returncode == 0, "the installed Boost: the probe runs and finds every slot", run.stdout + run.stderr)
    compare(table, run.stdout, "the installed Boost")
    other_boost(table, source)
    return report("fcontext_layout_test")


if __name__ == "__main__":
    sys.exit(main())
