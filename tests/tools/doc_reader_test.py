#!/usr/bin/env python3
"""The Python reader printed in docs/trace-format.md ("A whole trace in Python") reads the traces
reprise writes today: plain, compressed and encrypted, with `--record-full` outputs whose XXH3
digests it checks. The code block is taken from the page as it stands, so the page cannot drift
from the format (a format bump that leaves its `assert version == N` behind fails here).

Each trace's record count and kinds must match `reprise dump --json`, and its header's program
and node what the recording was given. The tool takes an encrypted trace's key from
REPRISE_RECORD_KEY too, as the programs do. Skipped (77) where the Python packages the page names
are not installed.

usage: doc_reader_test.py REPRISE_TOOL REPRISE_ECHO
"""

import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import check, report, run as run_bounded  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TIMEOUT_S = 120


def doc_reader():
    """The code block after "A whole trace in Python" in docs/trace-format.md, as a namespace."""
    with open(os.path.join(ROOT, "docs", "trace-format.md")) as f:
        page = f.read()
    at = page.find("**A whole trace in Python**")
    m = re.compile(r"```python\n(.*?)```", re.S).search(page, at) if at >= 0 else None
    if m is None:
        check(False, "docs/trace-format.md has its Python reader")
        return None
    namespace = {}
    exec(compile(m.group(1), "docs/trace-format.md (A whole trace in Python)", "exec"), namespace)
    return namespace["read_trace"]


def info_compressed(tool, trace, key):
    """Whether `reprise info` counts compressed chunks in the trace."""
    rc, out, _ = run_bounded([tool, "info", trace, "--record-key", key], TIMEOUT_S)
    m = re.search(r"^chunks\s+(\d+) compressed", out, re.M)
    return rc == 0 and m is not None and int(m.group(1)) > 0


def main():
    tool, echo = sys.argv[1], sys.argv[2]
    try:
        import msgpack, nacl.bindings, xxhash, zstandard  # noqa: F401,E401
    except ImportError as e:
        print(f"skipped: {e} (Debian: python3-msgpack python3-xxhash python3-zstandard python3-nacl)")
        return 77
    read_trace = doc_reader()
    if read_trace is None:
        return report("doc_reader_test")
    with tempfile.TemporaryDirectory(prefix="reprise-doc-reader-") as tmp:
        key = os.path.join(tmp, "trace.key")
        rc, _, err = run_bounded([tool, "keygen", key], TIMEOUT_S)
        check(rc == 0, "reprise keygen makes a key", err)
        kinds = {
            "plain": ["--record-compress=off"],
            "compressed": [],
            "encrypted": [f"--record-key={key}"],
        }
        for name, flags in kinds.items():
            trace = os.path.join(tmp, f"{name}.trace")
            clean_env = {k: v for k, v in os.environ.items() if k != "REPRISE_RECORD_KEY"}
            rc, _, err = run_bounded([echo, "--node=docnode", f"--record={trace}", "--record-full", *flags, "demo"],
                                     TIMEOUT_S, cwd=tmp, env=clean_env)
            if not check(rc == 0, f"{name}: reprise-echo demo records", err[-1500:]):
                continue
            dump_argv = [tool, "dump", trace, "--json"] + (["--record-key", key] if name == "encrypted" else [])
            rc, out, err = run_bounded(dump_argv, TIMEOUT_S)
            events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            check(rc == 0 and events, f"{name}: reprise dump --json reads it", err[-800:])
            try:
                with open(key) as f:
                    secret = bytes.fromhex(f.read().strip())
                header, records = read_trace(trace, secret if name == "encrypted" else None)
            except Exception as e:  # the page's reader failing is the finding, whatever it raised
                check(False, f"{name}: the page's reader reads the trace", f"{type(e).__name__}: {e}")
                continue
            if name != "plain":
                check(info_compressed(tool, trace, key), f"{name}: its chunks are compressed, as the recording asked")
            check(header.get("program") == "reprise-echo" and header.get("node") == "docnode",
                  f"{name}: the header names the program and the node", str(header)[:600])
            outputs = [r for r in records if r[0] == 4 and len(r) == 6]
            check(len(records) == len(events) and outputs,
                  f"{name}: the page's reader finds every record ({len(records)}), outputs in full among them "
                  f"({len(outputs)}, each digest checked)", f"dump has {len(events)}")
            ticks = sum(1 for r in records if r[0] == 1)
            check(ticks == sum(1 for e in events if e.get("kind") == "tick"),
                  f"{name}: its ticks are dump's ticks ({ticks})")
            if name == "encrypted":
                # The tool takes the key as the programs do: --record-key, else REPRISE_RECORD_KEY.
                env = dict(os.environ)
                env.pop("REPRISE_RECORD_KEY", None)
                rc, out, err = run_bounded([tool, "verify", trace], TIMEOUT_S, env=env)
                check(rc == 2 and "give its key" in err, "encrypted: verify without a key: exit 2, asks for it", err)
                rc, out, err = run_bounded([tool, "verify", trace], TIMEOUT_S, env={**env, "REPRISE_RECORD_KEY": key})
                check(rc == 0 and out.startswith("OK "), "encrypted: verify takes REPRISE_RECORD_KEY", out + err)
                rc, out, err = run_bounded([tool, "verify", trace], TIMEOUT_S,
                                           env={**env, "REPRISE_RECORD_KEY": key + ".missing"})
                check(rc == 2 and "note: REPRISE_RECORD_KEY: trace key" in err and "give its key" in err,
                      "encrypted: a REPRISE_RECORD_KEY naming no file: a note naming the variable, then exit 2 "
                      "asking for the key", err)
                plain = os.path.join(tmp, "plain.trace")
                rc, out, err = run_bounded([tool, "verify", plain], TIMEOUT_S,
                                           env={**env, "REPRISE_RECORD_KEY": key + ".missing"})
                check(rc == 0 and out.startswith("OK ") and "note: REPRISE_RECORD_KEY" in err,
                      "a trace in the clear still verifies with a broken REPRISE_RECORD_KEY (a note says so)", out + err)
    return report("doc_reader_test")


if __name__ == "__main__":
    sys.exit(main())
