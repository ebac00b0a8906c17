#!/usr/bin/env python3
"""Enforces DESIGN.md's determinism rules over reprise's own tree: `check_sources.py [ROOT]`.

The rules live once, in tools/reprise_check.py (installed as `reprise-check` for users' trees);
this is its --self mode, where each rule has its homes (the clock in clock/, I/O in io/ and
record/, the PRNG, the offload pool and the recorder's writer thread, env() in io/input.cpp), and
where the layering rule holds: no folder includes a later one of runtime, clock, io, record, replay, sim.
"""
import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve()
sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
spec = importlib.util.spec_from_file_location("reprise_check", HERE.parents[2] / "tools" / "reprise_check.py")
reprise_check = importlib.util.module_from_spec(spec)
sys.modules["reprise_check"] = reprise_check
spec.loader.exec_module(reprise_check)

if __name__ == "__main__":
    root = sys.argv[1:] or [str(HERE.parents[2])]
    sys.exit(reprise_check.main(["--self", *root], prog="check_sources"))
