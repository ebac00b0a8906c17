#!/usr/bin/env python3
"""Checks the `reprise` tool (info, dump, verify, diff) on traces the echo example records.

Usage: tool_test.py REPRISE_TOOL REPRISE_ECHO REPRISE_RAFT

Records two traces with `reprise-echo demo` into a temporary directory, then checks
each command on them, on damaged copies (truncated, a flipped byte) and on garbage.
The trace layout (header, chunk framing, CRC-32C) is parsed here independently of the
C++ reader, as docs/trace-format.md describes it, to place the damage precisely.
Every child runs under a timeout; a child killed by a signal fails the test.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

import xxhash  # Debian python3-xxhash (./dev installs it)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import reprise_trace  # noqa: E402
from reprise_test import check, free_ports, replay, report, run as run_bounded  # noqa: E402

TIMEOUT_S = 60


def run(argv, cwd=None):
    """(exit code, stdout, stderr) of one child, bounded by TIMEOUT_S."""
    return run_bounded(argv, TIMEOUT_S, cwd=cwd)


def layout(data, format_version):
    """Returns (header_end, [Chunk]) and checks every checksum."""
    check(data[:8] == reprise_trace.MAGIC, "the trace starts with the magic")
    version, header_end = reprise_trace.read_header(data)
    check(version == format_version, "the trace has the format version the tool reads",
          f"version {version}, the tool reads {format_version}")
    check(reprise_trace.header_crc_matches(data), "the header's crc32c matches")
    _, chunks, end = reprise_trace.walk_chunks(data)
    for c in chunks:
        check(c.crc_matches(data), f"the crc32c of the chunk at {c.offset} matches")
    check(end == len(data), "the chunks end exactly at the end of the file")
    return header_end, chunks


def record_traces(echo, tmp):
    """Records two traces of `reprise-echo demo` (two runs differ); (a, b), or None when the demo fails."""
    paths = (os.path.join(tmp, "a.trace"), os.path.join(tmp, "b.trace"))
    for path in paths:
        rc, out, err = run([echo, "--node=tooltest", f"--record={path}", "demo"], cwd=tmp)
        if rc != 0:
            print(f"reprise-echo demo failed ({rc}):\n{out}\n{err}", file=sys.stderr)
            return None
    return paths


def check_replay_end(echo, tmp, a):
    """What a replay says at its end: a match, a --break-at past the end, a bad flag, other arguments."""
    r = replay(echo, a, timeout_s=TIMEOUT_S, cwd=tmp)
    check(r.matched(), "a replay that matched says so", r.stderr)
    rc, _, err = run([echo, f"--replay={a}", "--break-at", "99999999"], cwd=tmp)
    check(rc == 2 and "error: --break-at 99999999 is past the trace's end: it has" in err,
          "a --break-at past the trace's end is an error (exit 2), not a run that looks fine", err)
    rc, _, err = run([echo, f"--replay={a}", "--seed", "abc"], cwd=tmp)
    check(rc == 2 and "--seed needs a number from 0 to 18446744073709551615, got 'abc'" in err,
          "a runtime flag's bad number says what the flag takes", err)
    rc, _, err = run([echo, f"--replay={a}", "other"], cwd=tmp)
    check(rc == 2 and "the arguments given (other) differ from the recorded ones (demo)" in err,
          "replay names given and recorded arguments without stray spaces", err)


def check_command_line(tool, a):
    """Help and command-line errors; returns the trace format version `reprise --version` names (-1 if none)."""
    rc, out, _ = run([tool, "--version"])
    m = re.search(r"reads trace format version (\d+)", out)
    check(rc == 0 and m is not None, "reprise --version names the format version it reads", out)
    format_version = int(m.group(1)) if m else -1
    rc, out, _ = run([tool, "--help"])
    check(rc == 0 and "Usage: reprise" in out, "reprise --help prints the usage and exits 0", out)
    for cmd in ("info", "dump", "verify", "diff"):
        rc, out, _ = run([tool, cmd, "--help"])
        check(rc == 0 and f"Usage: reprise {cmd}" in out, f"reprise {cmd} --help prints its usage", out)
    rc, _, err = run([tool, "frobnicate", a])
    check(rc == 2 and "unknown command" in err, "an unknown command exits 2 with a message", err)
    rc, _, err = run([tool, "dump", a, "--frobnicate"])
    check(rc == 2 and "unknown option" in err, "an unknown option exits 2 with a message", err)
    rc, _, err = run([tool, "dump", a, "--kind", "nonsense"])
    check(rc == 2 and "unknown kind" in err, "an unknown --kind exits 2 with a message", err)
    known = re.search(r"known kinds: (.*)", err)
    _, help_text, _ = run([tool, "dump", "--help"])
    kind_help = help_text.split("\n  --kind K", 1)[-1].split("\n  --handle", 1)[0]
    # Each kind as an item of the help's lists "(a, b, c)": not a word of its prose ("a wake-up kind").
    missing = [k for k in (known.group(1).split(", ") if known else [])
               if not re.search(r"[(\s]%s[,)]" % k, kind_help)]
    check(known and not missing, "dump --help lists every kind --kind accepts", f"missing: {missing}")
    rc, _, err = run([tool, "dmup", a])
    check(rc == 2 and "did you mean dump?" in err, "a mistyped command names the closest one", err)
    rc, _, err = run([tool, "dump", a, "--jsno"])
    check(rc == 2 and "did you mean --json?" in err, "a mistyped option names the closest one", err)
    rc, _, err = run([tool, "dump", a, "--to"])
    check(rc == 2 and "--to" in err, "an option without its value exits 2 naming it", err)
    rc, out_space, _ = run([tool, "dump", a, "--from", "1", "--to", "2", "--kind", "spawn,tick"])
    rc2, out_equals, _ = run([tool, "dump", a, "--from=1", "--to=2", "--kind=spawn", "--kind=tick"])
    check(rc == 0 and rc2 == 0 and out_space == out_equals and out_space.count("\n") >= 1,
          "options take their value after a space or '=', and --kind repeats", out_space + out_equals)
    rc, _, err = run([tool])
    check(rc == 2, "no command exits 2", err)
    return format_version


def check_info(tool, a):
    """`reprise info` on a good trace; returns (record count by kind, total records)."""
    rc, info, err = run([tool, "info", a])
    check(rc == 0, "info exits 0 on a good trace", err)
    check(re.search(r"^node\s+tooltest$", info, re.M) is not None, "info shows the node name", info)
    check(re.search(r"^argv\s+.*demo$", info, re.M) is not None, "info shows the program's arguments", info)
    check(re.search(r"^started\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", info, re.M) is not None,
          "info shows the start as ISO-8601", info)
    check("closed cleanly" in info and "exit code 0" in info, "info says the trace closed cleanly", info)
    kinds = ("tick", "wake", "input", "output", "spawn", "end", "accepted", "connected", "annotation")
    counts = {k: int(n) for k, n in re.findall(r"^  (%s)\s+(\d+)" % "|".join(kinds), info, re.M)}
    check(len(counts) == len(kinds), "info counts every record kind", info)
    check(counts.get("accepted", 0) >= 1, "the echo demo's accepted connection has its own record", info)
    total = int(re.search(r"^records\s+(\d+)$", info, re.M).group(1)) if "records" in info else -1
    check(total == sum(counts.values()) and total > 0, "the record counts add up to the total", info)
    check(counts.get("end") == 1 and counts.get("tick", 0) > 0 and counts.get("wake", 0) > 0,
          "one end record, some ticks and wake-ups", info)
    check(re.search(r"^  wake\s+\d+\s+\(.*bytes_read \d+", info, re.M) is not None,
          "info counts wake-ups by kind", info)
    check(re.search(r"^ticks\s+%d$" % counts.get("tick", -1), info, re.M) is not None, "info counts ticks", info)
    check(re.search(r"^virtual time\s+\d+\.\d{9} s", info, re.M) is not None, "info shows the time span", info)
    return counts, total


def check_dump(tool, a, counts, total):
    """`reprise dump`, as text and as JSON, agrees with info; --kind, --from and --to select."""
    rc, out, err = run([tool, "dump", a])
    lines = out.splitlines()
    check(rc == 0, "dump exits 0 on a good trace", err)
    check(len(lines) == total, "dump prints one line per record", f"{len(lines)} lines, {total} records")
    check(all(re.match(r"#%d\s+\d+\.\d{9}\s+\S" % i, line) for i, line in enumerate(lines)),
          "each dump line starts with its index and virtual time", "\n".join(lines[:5]))
    check(lines and lines[-1].split()[2] == "end", "the last line is the end record", lines[-1] if lines else "")

    rc, out, err = run([tool, "dump", a, "--json"])
    check(rc == 0, "dump --json exits 0", err)
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError as e:
            check(False, "each dump --json line is JSON", f"{e}: {line}")
    check([e.get("index") for e in events] == list(range(total)), "JSON events carry their index in order")
    check(all(isinstance(e.get("vt_ns"), int) for e in events), "JSON events carry vt_ns")
    vts = [e["vt_ns"] for e in events if isinstance(e.get("vt_ns"), int)]
    check(vts == sorted(vts), "virtual time never goes back")
    kinds = [e.get("kind") for e in events]
    for k, n in counts.items():
        check(kinds.count(k) == n, f"JSON has as many {k} records as info counts")
    reads = [e for e in events if e.get("wake") == "bytes_read"]
    check(reads and all(bytes.fromhex(e["data_hex"]).startswith(b"hello ") for e in reads),
          "bytes_read wake-ups carry the bytes the clients sent")

    rc, out, err = run([tool, "dump", a, "--kind", "tick"])
    ticks = out.splitlines()
    check(rc == 0 and len(ticks) == counts.get("tick") and all(" tick " in t for t in ticks),
          "--kind tick prints the ticks only", out[:500] + err)
    rc, out, err = run([tool, "dump", a, "--kind=bytes_read", "--json"])
    sel = [json.loads(line) for line in out.splitlines()]
    check(rc == 0 and len(sel) == len(reads) and all(e["wake"] == "bytes_read" for e in sel),
          "--kind bytes_read selects wake-ups by their kind", out[:500] + err)
    rc, out, err = run([tool, "dump", a, "--kind", "end,spawn"])
    check(rc == 0 and len(out.splitlines()) == 1 + counts.get("spawn", 0),
          "--kind takes a comma-separated list", out + err)
    rc, out, err = run([tool, "dump", a, "--from", "3", "--to", "5"])
    check(rc == 0 and [line.split()[0] for line in out.splitlines()] == ["#3", "#4", "#5"],
          "--from and --to select an inclusive range", out + err)


def check_dump_selection(tool, a):
    """`reprise dump --handle`, `--node`, several traces, and shortened payloads that say so."""
    rc, out, err = run([tool, "dump", a, "--json"])
    events = [json.loads(line) for line in out.splitlines()]
    accepted = [e for e in events if e.get("kind") == "accepted"]
    check(rc == 0 and accepted, "the echo demo accepts connections", out[:500] + err)
    if not accepted:
        return
    conn = accepted[0]["connection"]
    mine = [e["index"] for e in events
            if conn in (e.get("handle"), e.get("connection"), e.get("listener"))
            and not (e.get("kind") == "output" and e.get("output") != "conn_write")]
    rc, out, err = run([tool, "dump", a, "--handle", str(conn)])
    got = [int(line.split()[0][1:]) for line in out.splitlines()]
    check(rc == 0 and got == mine and got[0] == accepted[0]["index"],
          "--handle H prints exactly the events on H, starting with the accepted record that created it",
          f"got {got}, want {mine}\n{err}")
    check(any(" bytes_read " in line for line in out.splitlines()) and any(" conn_write " in line for line in out.splitlines()),
          "--handle H keeps H's reads and writes", out)
    other = accepted[-1]["connection"]
    rc, out, err = run([tool, "dump", a, f"--handle={conn},{other}", "--kind", "eof"])
    check(rc == 0 and len(out.splitlines()) == (2 if other != conn else 1),
          "--handle takes a comma-separated list and --kind narrows it", out + err)
    rc, _, err = run([tool, "dump", a, "--handle", "x"])
    check(rc == 2 and "--handle needs handle ids" in err, "a bad --handle exits 2 with a message", err)

    rc, out, err = run([tool, "dump", a, "--node", "tooltest", "--kind", "end"])
    check(rc == 0 and len(out.splitlines()) == 1, "--node with the trace's node prints its events", out + err)
    rc, out, err = run([tool, "dump", a, "--node", "elsewhere"])
    check(rc == 0 and out == "" and "is node tooltest, not elsewhere: nothing printed" in err,
          "--node with another node prints nothing and says so", out + err)
    rc, out, err = run([tool, "dump", a, a, "--kind", "end"])
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 2 and all(line.startswith("tooltest #") for line in lines),
          "several traces are dumped in turn, each line naming its node", out + err)
    rc, out, err = run([tool, "dump", a, a, "--kind", "end", "--json"])
    check(rc == 0 and [json.loads(line).get("node") for line in out.splitlines()] == ["tooltest", "tooltest"],
          "with several traces each JSON line carries \"node\"", out + err)

    reads = [e for e in events if e.get("wake") == "bytes_read"]
    first = reads[0]
    data = bytes.fromhex(first["data_hex"])
    rc, out, err = run([tool, "dump", a, "--from", str(first["index"]), "--to", str(first["index"]), "--bytes", "5"])
    left = len(data) - 5
    check(rc == 0 and f'"{data[:5].decode()}"[{left} more bytes not shown: --full or --bytes {len(data)} shows them]' in out,
          "a shortened payload says where it is cut and how many bytes were left out", out)
    check("1 payload(s) shortened to their first 5 bytes" in err and "--full prints every byte" in err,
          "dump says on stderr that it shortened payloads and how to see all", err)
    rc, out, err = run([tool, "dump", a, "--from", str(first["index"]), "--to", str(first["index"]), "--full"])
    check(rc == 0 and data.decode().rstrip("\n") in out and "not shown" not in out and err == "",
          "--full prints a payload whole and notes nothing", out + err)
    rc, out, err = run([tool, "dump", a])
    check(rc == 0 and "not shown" not in out and "shortened" not in err,
          "the echo demo's payloads fit the default --bytes: nothing is shortened", err)
    rc, _, err = run([tool, "dump", a, "--full", "--bytes", "3"])
    check(rc == 2 and "give one of them" in err, "--full and --bytes together are refused", err)


def check_dump_errno(tool, raft, tmp):
    """A connect refused (a RAFT node whose peers are not running): dump names ECONNREFUSED."""
    trace = os.path.join(tmp, "raft.trace")
    ports = free_ports(6)  # node 1 listens on two; nothing listens on its peers' four
    peers = ",".join(f"{i}=127.0.0.1:{ports[2 * i - 2]}:{ports[2 * i - 1]}" for i in (1, 2, 3))
    try:
        p = subprocess.Popen([raft, "--node=r1", f"--record={trace}", "--id", "1", "--peers", peers,
                              "--data", os.path.join(tmp, "raft-data")], cwd=tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        # The node tries its peers at once and again every few hundred ms: wait (bounded) until a
        # refused connect is in the trace on disk (a chunk is sealed within 50 ms), however slow
        # the start (ASan on a loaded machine).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            if "error=ECONNREFUSED" in run([tool, "dump", trace, "--kind", "connected"])[1]:
                break
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        check(False, "reprise-raft records a node whose peers are down", str(e))
        return
    rc, out, err = run([tool, "dump", trace, "--kind", "connected"])
    refused = [line for line in out.splitlines() if "error=" in line]
    check(rc == 0 and refused and all(line.endswith("error=ECONNREFUSED") for line in refused),
          "dump names a refused connect's errno ECONNREFUSED, not 111", out + err)
    rc, out, err = run([tool, "dump", trace, "--kind", "connected", "--json"])
    failed = [json.loads(line) for line in out.splitlines() if '"error":0' not in line]
    check(rc == 0 and failed and all(e.get("error") == 111 and e.get("error_name") == "ECONNREFUSED" for e in failed),
          "dump --json keeps the errno's number and names it in error_name", out + err)
    rc, out, err = run([tool, "dump", trace, "--kind", "listen"])
    check(rc == 0 and out and all(" result=ok bound=127.0.0.1:" in line for line in out.splitlines()),
          "dump decodes a listen input's outcome", out + err)


def check_mark_stdio(echo, tool, tmp, a, cut):
    """Replay with --mark-stdio: every line of the plain replay, marked with node, event and virtual time."""
    plain = replay(echo, a, timeout_s=TIMEOUT_S, cwd=tmp)
    marked = replay(echo, a, "--mark-stdio", timeout_s=TIMEOUT_S, cwd=tmp)
    check(marked.matched(), "a replay with --mark-stdio matches", marked.tail())
    mark = re.compile(r"^\[tooltest #(\d+) \+(\d+)\.(\d{3})s\] (.*)$")
    lines = marked.stdout.decode(errors="replace").splitlines()
    found = [mark.match(line) for line in lines]
    check(lines and all(found), "every stdout line of a --mark-stdio replay is marked", "\n".join(lines[:5]))
    found = [m for m in found if m]
    check([m.group(4) for m in found] == plain.stdout.decode(errors="replace").splitlines(),
          "the marked lines are the plain replay's lines, in order, none lost", marked.stdout.decode(errors="replace"))
    rc, out, _ = run([tool, "dump", a, "--json"])
    events = [json.loads(line) for line in out.splitlines()]
    numbers = [int(m.group(1)) for m in found]
    times = [int(m.group(2)) * 1000 + int(m.group(3)) for m in found]
    check(numbers == sorted(numbers) and numbers[-1] > numbers[0] and numbers[-1] < len(events),
          "marked event numbers never go back, advance, and name events of the trace", str(numbers))
    check(times == sorted(times), "marked virtual times never go back", str(times))
    for m in found:
        e = events[int(m.group(1))] if int(m.group(1)) < len(events) else {}
        if e.get("vt_ns", -1) // 1_000_000 != int(m.group(2)) * 1000 + int(m.group(3)):
            check(False, "a marked line's virtual time is its event's, as dump prints it", f"{m.group(0)} vs {e}")
            break
    listen = next((e["index"] for e in events if e.get("input") == "listen"), None)
    first = found[0] if found else None
    check(first is not None and "listening" in first.group(4) and listen is not None and int(first.group(1)) >= listen,
          "the server's 'listening' line belongs to an event at or after its listen input", str(first and first.group(0)))
    check(all(not line.startswith("[") for line in marked.stderr.splitlines() if line.startswith("reprise: ")) and
          "reprise: no divergence" in marked.stderr,
          "the replay's own messages are not marked", marked.stderr)
    # --break-at=N stops with every line of the events before N written out, and says so unmarked.
    if len(numbers) >= 2:
        stop = numbers[len(numbers) // 2] + 1
        rc, out, err = run([echo, f"--replay={a}", "--mark-stdio", f"--break-at={stop}"], cwd=tmp)
        want = [line for line, n in zip(lines, numbers) if n < stop]
        check(rc == -signal.SIGTRAP and out.splitlines() == want and
              re.search(r"^reprise: break at event %d " % stop, err, re.M) is not None,
              "--mark-stdio with --break-at=N writes out the lines of events before N, and the break message",
              f"exit {rc}\n{out}\n{err}")
    rc, _, err = run([echo, "--mark-stdio"], cwd=tmp)
    check(rc == 2 and "--mark-stdio applies to a replay" in err, "--mark-stdio without --replay is refused", err)
    # A damaged trace ends the replay with exit 2 (_Exit): what the program printed until then is not
    # lost, marked or not (stdout to a pipe is fully buffered, and _Exit flushes nothing).
    cut_plain = replay(echo, cut, timeout_s=TIMEOUT_S, cwd=tmp)
    cut_marked = replay(echo, cut, "--mark-stdio", timeout_s=TIMEOUT_S, cwd=tmp)
    texts = [m.group(4) for m in (mark.match(line) for line in cut_marked.stdout.decode(errors="replace").splitlines()) if m]
    check(cut_marked.returncode == cut_plain.returncode == 2 and texts and
          texts == cut_plain.stdout.decode(errors="replace").splitlines(),
          "a replay that stops at damage prints every line of the plain replay, marked",
          cut_marked.stdout.decode(errors="replace") + cut_marked.stderr)


def check_full_record_digests(tool, echo, tmp):
    """A trace recorded with --record-full holds each output's bytes, and its digest is their XXH3-64."""
    # Digests are XXH3-64 (seed 0): any xxhash package checks a trace recorded in full.
    full = os.path.join(tmp, "full.trace")
    rc, out, err = run([echo, "--node=tooltest", f"--record={full}", "--record-full", "demo"], cwd=tmp)
    check(rc == 0, "the echo demo records with --record-full", out + err)
    rc, out, err = run([tool, "dump", full, "--json", "--kind", "output"])
    outputs = [json.loads(line) for line in out.splitlines()]
    check(rc == 0 and outputs and all("data_hex" in o for o in outputs),
          "outputs recorded in full carry their bytes", out[:500] + err)
    check(all(xxhash.xxh3_64_intdigest(bytes.fromhex(o["data_hex"])) == int(o["digest"], 16) for o in outputs),
          "every output's digest is the XXH3-64 of its bytes, as Python's xxhash computes it", out[:500])


def check_verify(tool, tmp, a, format_version):
    """`reprise verify` on the good trace and on copies cut and flipped where the layout says;
    returns (the trace's bytes, its header end, the path of the copy cut inside its last chunk)."""
    rc, out, err = run([tool, "verify", a])
    check(rc == 0 and out.startswith("OK ") and len(out.splitlines()) == 1,
          "verify passes a good trace with one OK line", out + err)

    data = open(a, "rb").read()
    header_end, chunks = layout(data, format_version)
    check(len(chunks) >= 1, "the trace has chunks")

    cut = os.path.join(tmp, "cut.trace")  # cut inside the last chunk
    last_off, last_len = chunks[-1].offset, chunks[-1].stored
    open(cut, "wb").write(data[:last_off + reprise_trace.FRAME_BYTES + last_len // 2])
    rc, out, err = run([tool, "verify", cut])
    check(rc == 1 and f"byte offset {last_off} " in out and "truncated" in out,
          "verify fails a truncated trace at the offset of its cut chunk", out + err)
    check("last good event: #" in out or len(chunks) == 1, "verify names the last good event", out)

    short = os.path.join(tmp, "short.trace")  # cut at a chunk boundary: intact but no end record
    open(short, "wb").write(data[:last_off])
    rc, out, err = run([tool, "verify", short])
    check(rc == 1 and "incomplete" in out, "verify calls a trace without an end record incomplete", out + err)
    rc, out, err = run([tool, "info", short])
    check(rc == 0 and "incomplete" in out, "info says a trace without an end record is incomplete", out + err)

    flipped = os.path.join(tmp, "flipped.trace")
    first_off, first_len = chunks[0].offset, chunks[0].stored
    damaged = bytearray(data)
    damaged[first_off + reprise_trace.FRAME_BYTES + first_len // 2] ^= 0x40
    open(flipped, "wb").write(bytes(damaged))
    rc, out, err = run([tool, "verify", flipped])
    check(rc == 1 and f"byte offset {first_off} " in out and "checksum" in out,
          "verify fails a trace with a flipped byte at its chunk's offset", out + err)
    rc, out, err = run([tool, "dump", flipped])
    check(rc == 1 and "byte offset" in err, "dump reports the damage and exits 1", out + err)
    return data, header_end, cut


def check_diff(tool, tmp, a, b, data, cut):
    """`reprise diff`: a trace against itself, its copy, another recording and its cut copy."""
    rc, out, err = run([tool, "diff", a, a])
    check(rc == 0 and "identical" in out, "a trace is identical to itself", out + err)
    copy = os.path.join(tmp, "copy.trace")
    open(copy, "wb").write(data)
    rc, out, err = run([tool, "diff", a, copy])
    check(rc == 0 and "identical" in out, "a trace is identical to its copy", out + err)
    rc, out, err = run([tool, "diff", a, b])
    m = re.search(r"differ at event #(\d+)", out)
    check(rc == 1 and m is not None, "two recordings differ at a named event", out + err)
    if m:
        check(re.search(r"^  A #%s " % m.group(1), out, re.M) and re.search(r"^  B #%s " % m.group(1), out, re.M),
              "diff shows both sides of the difference", out)
    rc, out, err = run([tool, "diff", a, cut])
    check(rc == 1 and "differ at event #" in out, "a trace differs from its truncated copy", out + err)


def check_garbage(tool, tmp, a, data, header_end):
    """Every command on garbage, an empty file, a good header then noise, a folder and a missing file:
    exit 1 or 2 (not a signal), and a reason."""
    rng = random.Random(20240611)
    garbage = os.path.join(tmp, "garbage.trace")
    open(garbage, "wb").write(bytes(rng.randrange(256) for _ in range(4096)))
    empty = os.path.join(tmp, "empty.trace")
    open(empty, "wb").close()
    bad_chunks = os.path.join(tmp, "bad-chunks.trace")  # a good header, then noise
    open(bad_chunks, "wb").write(data[:header_end] + bytes(rng.randrange(256) for _ in range(4096)))
    for path in (garbage, empty, bad_chunks, tmp, os.path.join(tmp, "missing.trace")):
        for argv in (["info", path], ["dump", path], ["dump", path, "--json"], ["verify", path],
                     ["diff", path, a], ["diff", a, path]):
            rc, out, err = run([tool] + argv)
            name = os.path.basename(path) or path
            # info reports on any trace whose header reads, damaged or not.
            allowed = (0,) if path == bad_chunks and argv[0] == "info" else (1, 2)
            check(rc in allowed, f"reprise {' '.join(argv)} exits {allowed}, not by a signal ({rc})", out + err)
            if path == bad_chunks:
                check("byte offset" in out + err, f"reprise {argv[0]} on {name} says where the damage is",
                      out + err)
            check((out + err).strip() != "", f"reprise {argv[0]} on {name} says why", out + err)
            if path == garbage:
                check("not a reprise trace" in out + err, f"reprise {argv[0]} calls garbage what it is",
                      out + err)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    tool, echo, raft = (os.path.abspath(p) for p in sys.argv[1:4])
    assert reprise_trace.crc32c(b"123456789") == 0xE3069283, "the CRC-32C check value"

    with tempfile.TemporaryDirectory(prefix="reprise-tool-test-") as tmp:
        traces = record_traces(echo, tmp)
        if traces is None:
            return 1
        a, b = traces
        check_replay_end(echo, tmp, a)
        format_version = check_command_line(tool, a)
        counts, total = check_info(tool, a)
        check_dump(tool, a, counts, total)
        check_dump_selection(tool, a)
        check_dump_errno(tool, raft, tmp)
        check_full_record_digests(tool, echo, tmp)
        data, header_end, cut = check_verify(tool, tmp, a, format_version)
        check_diff(tool, tmp, a, b, data, cut)
        check_mark_stdio(echo, tool, tmp, a, cut)
        check_garbage(tool, tmp, a, data, header_end)
    return report("tool_test")


if __name__ == "__main__":
    sys.exit(main())
