"""reprise_test: what the Python tests share -- checks and their report, bounded waits, free ports,
a RESP client, a server process with its 'listening' handshake, and replay-and-compare.

The trace layout and CRC-32C are reprise_trace's (beside this file). Scripts find this folder by a
path relative to their own file:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
Every wait here is bounded in time, every loop in count.
"""
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time

# Bounds, in one place.
START_TIMEOUT_S = 20      # a server prints its ready line within this
STOP_TIMEOUT_S = 20       # a server exits this long after SIGTERM, or is killed
KILL_TIMEOUT_S = 10       # a process is reaped this long after SIGKILL
REPLAY_TIMEOUT_S = 120    # one replay
REPLY_TIMEOUT_S = 10.0    # one RESP reply
REPLY_LINE_BYTES_MAX = 64 * 1024
REPLY_BULK_BYTES_MAX = 64 * 1024 * 1024
REPLY_DEPTH_MAX = 8
READY_POLL_S = 0.01

# What a replay says when it matched its trace to the end (replay/replayer.cpp, Replayer::end).
NO_DIVERGENCE = "no divergence: every input was fed and every output matched the trace"
# The sanitizers' and the always-on assertion's reports in a child's stderr.
CRASH_REPORT = re.compile(r"(AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:|assertion failed).*")


# --- checks and their report ------------------------------------------------------------------

class Failure(Exception):
    """A check that ends the scenario (or trial) it is in."""


_failures = []


def check(condition, what, detail=""):
    """Records one check and goes on: prints 'ok      what' or 'FAILED  what' (and the detail on
    failure). Returns the condition, so that a caller can skip what depends on it."""
    print(("ok      " if condition else "FAILED  ") + what, flush=True)
    if not condition:
        _failures.append(what)
        if detail:
            print("\n".join("        " + line for line in str(detail).rstrip().splitlines()), flush=True)
    return bool(condition)


def require(condition, what):
    """A check that stops the scenario: raises Failure(what) when the condition is false."""
    if not condition:
        raise Failure(what)


def failed_checks():
    return list(_failures)


def report(name, note=""):
    """The last line of a test that used check(): its exit code, 1 when any check failed."""
    suffix = f" ({note})" if note else ""
    if _failures:
        print(f"{name}: {len(_failures)} check(s) failed{suffix}", flush=True)
        return 1
    print(f"{name}: all checks passed{suffix}", flush=True)
    return 0


def wait_for(what, predicate, timeout_s=10.0, step_s=0.05):
    """Polls predicate() for at most timeout_s; returns its first truthy value, or raises Failure
    naming what it waited for and the last value (an OSError or Failure counts as not yet)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, Failure) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(step_s)
    raise Failure(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def run_scenarios(names, start, run):
    """Runs each named scenario: start(name) makes its fixture (with a cleanup(ok) method),
    run(name, fixture) plays it. Prints each outcome; returns the exit code."""
    failed = []
    for name in names:
        fixture = start(name)
        ok = False
        started = time.monotonic()
        try:
            run(name, fixture)
            ok = True
            print(f"  ok in {time.monotonic() - started:.1f} s", flush=True)
        except (Failure, OSError, subprocess.TimeoutExpired) as e:
            print(f"  FAILED: {e}", flush=True)
            failed.append(name)
        finally:
            fixture.cleanup(ok)
    print(f"{len(names) - len(failed)} of {len(names)} scenarios passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


def crash_report(text):
    """The first sanitizer or assertion report in a child's stderr, or None."""
    m = CRASH_REPORT.search(text)
    return m.group(0) if m else None


# --- ports ------------------------------------------------------------------------------------

def free_port():
    """A loopback port the system calls free now (bound and released; the server binds it next)."""
    return free_ports(1)[0]


def free_ports(count):
    """`count` distinct free loopback ports, all held at once while they are chosen."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ports_free(ports):
    """Whether every port in `ports` can be bound on loopback now."""
    for p in ports:
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True


def ephemeral_port_range():
    """The kernel's range for outgoing connections' ports (another test's client may take any of
    these between our check and the server's bind)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port_base(offsets, rng=None, low=10000, high=65000, step=200, tries=200):
    """A base port P with P+o free for every o in offsets (a block for a cluster whose node N
    listens on P+N): a random base from [low, high) in steps of `step`, whose block lies outside
    the ephemeral range; at most `tries` tried."""
    rng = rng or random.Random()
    eph_low, eph_high = ephemeral_port_range()
    span = max(offsets)
    bases = [b for b in range(low, high - span, step)
             if b + span < eph_low or b + min(offsets) > eph_high]
    if not bases:
        bases = list(range(low, high - span, step))
    for _ in range(tries):
        base = rng.choice(bases)
        if ports_free([base + o for o in offsets]):
            return base
    raise Failure(f"no free port block for offsets {min(offsets)}..{span} in {tries} tries")


# --- a RESP client ----------------------------------------------------------------------------

class RespError(Exception):
    """An error reply (-ERR ...), returned (not raised) by the client. Equal to another with the
    same text: `reply == RespError("TRYAGAIN ...")`."""

    def __eq__(self, other):
        return isinstance(other, RespError) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __repr__(self):
        return f"RespError({str(self)!r})"


def encode_command(*args):
    """One command as a RESP array of bulk strings (str, bytes or numbers)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespClient:
    """One connection to a RESP server on 127.0.0.1. A reply: simple string -> str, error ->
    RespError, integer -> int, bulk -> str (bytes when binary), null -> None, array -> list.
    Each reply is read within timeout_s; a timeout, a closed connection or a malformed reply
    raises (OSError: socket.timeout, ConnectionError; or Failure)."""

    def __init__(self, port, timeout_s=REPLY_TIMEOUT_S, binary=False):
        self.port = port
        self.timeout_s = timeout_s
        self.binary = binary
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def send(self, *args):
        self.sock.sendall(encode_command(*args))

    def call(self, *args):
        """Sends one command and reads its reply."""
        self.send(*args)
        return self.reply()

    def reply(self):
        """Reads one reply of any type, bounded by timeout_s."""
        return self._reply(time.monotonic() + self.timeout_s, 0)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"no complete reply within {self.timeout_s} s")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > REPLY_LINE_BYTES_MAX:
                raise Failure(f"a reply line longer than {REPLY_LINE_BYTES_MAX} bytes: {self.buf[:40]!r}")
            self._fill(deadline)

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _reply(self, deadline, depth):
        line = self._line(deadline)
        kind, rest = line[:1], line[1:].decode(errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            if n > REPLY_BULK_BYTES_MAX:
                raise Failure(f"a bulk reply of {n} bytes (at most {REPLY_BULK_BYTES_MAX})")
            data = self._exact(n + 2, deadline)[:-2]
            return data if self.binary else data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            if depth >= REPLY_DEPTH_MAX:
                raise Failure(f"arrays nested deeper than {REPLY_DEPTH_MAX}")
            return [self._reply(deadline, depth + 1) for _ in range(n)]
        raise Failure(f"bad reply line {line[:80]!r}")


def call(port, *args, timeout_s=REPLY_TIMEOUT_S):
    """One command on a fresh connection; its reply."""
    with RespClient(port, timeout_s) as c:
        return c.call(*args)


def info(port, timeout_s=REPLY_TIMEOUT_S):
    """INFO of a server as a dict of its 'key:value' lines."""
    text = call(port, "INFO", timeout_s=timeout_s)
    require(isinstance(text, str), f"INFO answered {text!r}")
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


# --- a server process -------------------------------------------------------------------------

# kv prints "listening P" (its port) on stdout; reprise-raft's narrative says "... listening raft ...".
LISTENING_PORT = rb"^listening (\d+)$"
LISTENING_RAFT = rb" listening raft "


class Server:
    """A program run as a server: its stdout and stderr go to files (named, or temporary), and it
    is up once its stdout holds the `ready` pattern (a regex; a first group is the port).
    Usage: `with Server([exe, ...]) as s: ... s.port ...; status = s.stop()`; leaving the
    `with` kills it if it still runs."""

    def __init__(self, argv, ready=LISTENING_PORT, ready_timeout_s=START_TIMEOUT_S, stdout_path=None,
                 stderr_path=None, preexec_fn=None, cwd=None, env=None):
        self.argv = [str(a) for a in argv]
        self.stdout_path, self.stderr_path = stdout_path, stderr_path
        self._out = open(stdout_path, "w+b") if stdout_path else tempfile.TemporaryFile()
        self._err = open(stderr_path, "w+b") if stderr_path else tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     preexec_fn=preexec_fn, cwd=cwd, env=env)
        self.pid = self.proc.pid
        self.port = None
        self.killed = False
        if ready is not None:
            self.match = self._wait_ready(re.compile(ready, re.M), ready_timeout_s)
            if self.match.groups():
                self.port = int(self.match.group(1))

    def _wait_ready(self, pattern, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            m = pattern.search(self.out())
            if m:
                return m
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                why = (f"exited with {self.proc.returncode}" if self.proc.poll() is not None
                       else f"still silent after {timeout_s} s")
                self.kill()
                raise Failure(f"{self.argv} {why} before printing {pattern.pattern!r} "
                              f"(stdout {self.out()[-300:]!r}); stderr: {self.err()[-1500:]}")
            time.sleep(READY_POLL_S)

    def out(self):
        """Everything the server wrote on stdout so far (bytes)."""
        return _read_all(self._out)

    def err(self):
        """Everything the server wrote on stderr so far (text)."""
        return _read_all(self._err).decode(errors="replace")

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout_s=STOP_TIMEOUT_S):
        """The exit status once it exits by itself, or None when it still runs after timeout_s."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL when it still runs timeout_s later; the exit status (negative:
        the signal that ended it; `killed` says whether this stop had to kill)."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout_s) is None:
                self.kill()
        return self.proc.returncode

    def kill(self):
        """SIGKILL (if it still runs), then reap it."""
        if self.running():
            self.proc.kill()
            self.killed = True
        self.proc.wait(timeout=KILL_TIMEOUT_S)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.kill()


def _read_all(f):
    # As many bytes as the file holds: pread allocates its whole size first, and under meson's
    # MALLOC_PERTURB_ a 1 GiB buffer was filled byte by byte at every read (a server's output is
    # read while waiting for it: retention took 140 s instead of 1.4 s).
    return os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0)


# --- replay and compare -----------------------------------------------------------------------

class Replay:
    """What `program --replay=TRACE` did: exit code, stdout (bytes), stderr (text)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def matched(self):
        """Exit 0 and the replayer's 'no divergence' line: every input fed, every output matched."""
        return self.returncode == 0 and NO_DIVERGENCE in self.stderr

    def tail(self, chars=2000):
        return self.stderr.strip()[-chars:]

    def narrative_problem(self, live, cut=False):
        """None when this replay tells the live run's narrative (its stdout `live`, bytes): a run that
        ended gracefully replays to exit 0 with 'no divergence' and exactly its narrative; a run cut
        by SIGKILL (`cut`) replays to its cut, exit 2 with 'the trace ends', and a prefix of it.
        Otherwise what differs."""
        where = f"replay exit {self.returncode}, stderr: {self.tail(600)}"
        if not cut:
            if not self.matched():
                return f"{where} (want exit 0 and '{NO_DIVERGENCE}')"
            if self.stdout != live:
                return (f"{where}\n--- replay stdout ---\n{self.stdout.decode(errors='replace')}"
                        f"\n--- live ---\n{live.decode(errors='replace')}")
            return None
        if self.returncode != 2 or "the trace ends" not in self.stderr:
            return f"{where} (want exit 2 and 'the trace ends')"
        if not live.startswith(self.stdout):
            return (f"{where}\n--- replay stdout is not a prefix of the live narrative ---\n"
                    f"{self.stdout.decode(errors='replace')}")
        return None


def replay(program, trace, *args, timeout_s=REPLAY_TIMEOUT_S, cwd=None):
    """Replays `trace` with `program --replay=trace [args]` (bounded by timeout_s)."""
    p = subprocess.run([str(program), f"--replay={trace}", *map(str, args)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout_s, cwd=cwd)
    return Replay(p.returncode, p.stdout, p.stderr.decode(errors="replace"))


def run(argv, timeout_s=60, cwd=None, env=None):
    """(exit code, stdout, stderr) of a command run to its end (text, bounded by timeout_s)."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, errors="replace",
                       timeout=timeout_s, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


class KvTool:
    """reprise-kv and the reprise tool of one build, for the recording tests (tests/stress)."""

    def __init__(self, build):
        self.kv = os.path.join(build, "examples", "kv", "reprise-kv")
        self.tool = os.path.join(build, "tools", "reprise")

    def server(self, *flags):
        """A reprise-kv on a free port with these runtime flags (a Server: use it in a with)."""
        return Server([self.kv, "--port", "0", *flags])

    def refused(self, *flags):
        """(exit code, stderr) of a start that should not get as far as serving."""
        rc, out, err = run([self.kv, "--port", "0", *flags], timeout_s=30)
        return rc, err

    def info(self, trace):
        """`reprise info TRACE`'s output (stdout and stderr)."""
        rc, out, err = run([self.tool, "info", trace], timeout_s=30)
        return out + err

    def verify(self, trace):
        """(exit code, output) of `reprise verify TRACE`."""
        rc, out, err = run([self.tool, "verify", trace], timeout_s=30)
        return rc, out + err
