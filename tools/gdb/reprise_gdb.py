"""reprise_gdb: the gdb extension of reprise (issue 14): tasks, events, virtual time, going back.

Load it with `gdb -x tools/gdb/reprise_gdb.py --args PROGRAM --replay=TRACE` (or `source` it): it sets
REPRISE_DEBUGGER=1 in the inferior's environment (a replay then stops once at its start so that
targets can be armed) and a silent breakpoint on reprise_debug_stop(), where a replay stops. At every
stop of a replay (a target, a divergence, the trace's end, a signal such as a recorded SIGSEGV) it
prints one line:  [reprise] node NAME event E, virtual time T s: WHAT

Commands (everything that only reads memory also works on a core file: `gdb PROGRAM CORE`):
  reprise info                 table version, runtime and Boost versions, arch, each node's state now
                               (its event; ended, frozen at its trace's end, or not started yet
                               and when its first tick comes)
  reprise nodes                the nodes: index, name, trace, next event (E/N when the number of
                               its events N is known), virtual time
  reprise node N|NAME          the node the other commands mean (default: the stopped node, else 0)
  reprise tasks                the node's tasks in spawn order: id, name, state, what each waits on,
                               until when (virtual time; a timer's own deadline for a task in
                               Timer::wait); '*' marks the running one. A node of a joint replay
                               that has not started yet says so, and when its first tick comes
  reprise task ID | off        show a parked task's stack: frame #0 stays the thread's, frames #1..
                               are the task's (bt, frame N, info locals); `off` restores
  reprise event                the current event: number, node, virtual time, stop reason and text, trace
  reprise goto N | NODE:N | BOOKMARK
                               forward: run to just before event N; backward: from the latest
                               checkpoint at or before N (else from the start), then forward;
                               NODE:N (or a bookmark of another node) selects NODE; an N past
                               the node's events is refused at once when the table knows their
                               number (a joint replay, and a single one under the extension)
  reprise back [K]             K events back (default 1)
  reprise next KIND [HANDLE]   forward to the next event of a record kind (tick, wake, input, output,
                               spawn, accepted, connected, annotation...) or wake kind (timer_fired,
                               bytes_read, eof, io_error, drained, signal, offload_done...), optionally
                               of one handle (connection, timer, listener id)
  reprise until-output TEXT [CONN]
                               run until a connection's output contains TEXT (stops in the writer;
                               C escapes such as \r\n are understood)
  reprise bookmark NAME        name the current node:event;  reprise bookmarks: list them
  reprise checkpoint           take a checkpoint here;  reprise checkpoints: list them (one format:
                               `checkpoint ID: node NAME event E`, also when a goto restarts one)
  reprise checkpoint-interval [N|auto]
                               a going-forward run stops at each multiple of N events to leave a
                               checkpoint (0: none, nor the goto's below); auto, the default: N
                               starts at 100000 and follows the replay's speed, about a second of
                               replay apart; a goto leaves one 1000 events before its target; at
                               most 256 are kept, thinned out (the newest 16 stay)
Going forward (goto, next, until-output) from a stop at the node's trace's end is refused: the
program would run to its exit. The replay evaluates the targets itself (the table's break targets):
no gdb conditional breakpoint. A backtrace ends at the fiber's entry (make_fcontext), through a
frame filter. Everything the table describes (tasks, timer deadlines, nodes, events) works
without the program's debug information (a stripped binary, or its core file).

Checkpoints are forks of the replaying process: gdb holds the few most recent as inferiors, the
others are parked outside gdb (see take_checkpoint) and attached again when a goto or back restarts
one; all are killed at gdb's exit (parked ones end by themselves when gdb is gone). gdb's own `checkpoint` is not used: it makes an inferior function
call, which gdb 13 cannot make where the kernel's XSAVE area outgrew it ("Couldn't write extended
state status: Bad address"). The fork is one libc `syscall` instruction run with general registers
only (x86_64); the regular files a checkpoint had open for reading (the traces) are seeked back when
it is restarted, since forks share file offsets.
The table is runtime/internal/debug_table.hpp's `reprise_debug` (version 2).
"""

import atexit
import codecs
import os
import re
import shutil
import signal
import struct
import tempfile
import time

import gdb

try:
    import gdb.unwinder
    from gdb.unwinder import Unwinder
except ImportError:  # very old gdb: no task stacks, the rest works
    Unwinder = object

TABLE_VERSION = 2
MAGIC = b"reprise\0"
UINT64_MAX = (1 << 64) - 1

# reprise_debug_table, version 2, LP64: field -> (offset, struct format). Checked against the
# program's debug information when it has some (a disagreement is an error).
TABLE = {
    "magic": (0, "8s"), "version": (8, "I"), "table_bytes": (12, "I"), "boost_version": (16, "I"),
    "arch": (20, "I"), "runtime_version": (24, "Q"), "fiber": (32, "10I"), "wait_list": (72, "2I"),
    "timer": (80, "4I"), "fiber_state_names": (96, "Q"), "fiber_state_count": (104, "I"),
    "wait_kind_count": (108, "I"), "wait_kind_names": (112, "Q"), "record_kind_names": (120, "Q"),
    "record_kind_count": (128, "I"), "wake_kind_count": (132, "I"), "wake_kind_names": (136, "Q"),
    "runtimes": (144, "Q"), "runtime_count": (152, "I"), "armed": (156, "B"), "attached": (157, "B"),
    "stop_node": (160, "i"), "stop_event": (168, "Q"), "stop_kinds": (176, "I"), "stop_handle": (184, "Q"),
    "checkpoint_every": (192, "Q"), "output_needle_bytes": (200, "I"), "output_needle": (208, "256s"),
    "stop_reason": (464, "I"), "stopped_node": (468, "i"), "stopped_event": (472, "Q"),
    "stopped_virtual_ns": (480, "q"), "stopped_handle": (488, "Q"), "stop_text": (496, "4096s"),
}
TABLE_BYTES = 4592
FIBER_FIELDS = ("size", "id", "name", "state", "context", "all_next", "waiting_on", "park_deadline_ns",
                "stack_base", "stack_mapped_bytes")
TIMER_FIELDS = ("waiters", "deadline_ns", "heap_index")
# reprise_debug_runtime: next, node, fibers_head, current_fiber, now_ns, wall_ns, trace_path, events,
# tick_mono_ns, first_mono_ns (pointers), index, replaying (uint32), start_wall_ns (int64),
# events_total (uint64), state (uint8), reserved[7].
RUNTIME_FORMAT = "<10Q2IqQB7x"
RUNTIME_BYTES = struct.calcsize(RUNTIME_FORMAT)
RUNTIME_FIELDS = ["next", "node", "fibers_head", "current_fiber", "now_ns", "wall_ns", "trace_path", "events",
                  "tick_mono_ns", "first_mono_ns", "index", "replaying", "start_wall_ns", "events_total", "state",
                  "reserved"]
# reprise_debug_node_state
NODE_NOT_STARTED, NODE_RUNNING, NODE_ENDED, NODE_FROZEN = 0, 1, 2, 3

STOP_REASONS = {0: "none", 1: "event", 2: "kind", 3: "output", 4: "checkpoint", 5: "divergence", 6: "end",
                7: "break_at", 8: "started"}
JOINT_END = "the joint replay's end"  # replay/joint.cpp's stop text at the end of a joint replay
STOP_CHECKPOINT, STOP_DIVERGENCE, STOP_END, STOP_BREAK_AT, STOP_STARTED = 4, 5, 6, 7, 8
ARCHES = {1: "x86_64_sysv", 2: "aarch64_aapcs"}

# Boost.Context fcontext: where jump_fcontext leaves a suspended context's registers, keyed by
# (arch, Boost version range). A fiber's `context` points at this block; the caller of
# jump_fcontext resumes with pc = [ctx + pc], sp = ctx + frame, the callee-saved registers from
# their slots. Sources: boostorg/context src/asm/jump_x86_64_sysv_elf_gas.S (1.74: lea -0x38(%rsp);
# r12..rbp at 0x8..0x30, return address at 0x38, lea 0x40(%rsp)); from 1.81 a stack guard slot at
# 0x8 moves r12..rbp to 0x10..0x38 and the return address to 0x40 (lea 0x48(%rsp)). Both x86_64
# rows are checked by running Boost.Context itself: tests/debug/fcontext_probe.cpp finds every slot
# (fcontext_layout_test.py, against the installed 1.74 and Debian 12's 1.81, downloaded). A Boost built with the CET shadow
# stack (BOOST_CONTEXT_SHADOW_STACK) adds an 8-byte SSP slot first: not supported here.
# aarch64: src/asm/jump_arm64_aapcs_elf_gas.S (sub sp, #0xb0; d8..d15 at 0..0x38, x19..x28 at
# 0x40..0x88, fp/lr at 0x90, pc at 0xa0), read from the source, not run on hardware here.
FCONTEXT_LAYOUTS = [
    # (arch, first boost version, last boost version, pc slot, frame bytes, {register: slot}, verified)
    ("x86_64_sysv", 106100, 108099, 0x38, 0x40,
     {"r12": 0x08, "r13": 0x10, "r14": 0x18, "r15": 0x20, "rbx": 0x28, "rbp": 0x30}, True),
    ("x86_64_sysv", 108100, 109099, 0x40, 0x48,
     {"r12": 0x10, "r13": 0x18, "r14": 0x20, "r15": 0x28, "rbx": 0x30, "rbp": 0x38}, True),
    ("aarch64_aapcs", 106500, 109099, 0xa0, 0xb0,
     dict([("x%d" % r, 0x40 + 8 * (r - 19)) for r in range(19, 29)] + [("x29", 0x90), ("x30", 0x98)]), False),
]
ARCH_REGS = {"x86_64_sysv": ("rip", "rsp"), "aarch64_aapcs": ("pc", "sp")}


def fcontext_layout(arch, boost_version):
    """The saved-register layout of (arch, Boost version), or a gdb.GdbError naming both."""
    for a, low, high, pc, frame, regs, verified in FCONTEXT_LAYOUTS:
        if a == arch and low <= boost_version <= high:
            return {"pc": pc, "frame": frame, "regs": regs, "verified": verified}
    raise gdb.GdbError("reprise: no Boost.Context fcontext layout known for %s with Boost %s: the extension's "
                       "table (FCONTEXT_LAYOUTS in reprise_gdb.py) must learn it (see jump_*.S of that version)"
                       % (arch, boost_version_text(boost_version)))


def boost_version_text(v):
    return "%d.%d.%d" % (v // 100000, v // 100 % 1000, v % 100)


def seconds(ns, places=6):
    return ("%." + str(places) + "f") % (ns / 1e9)


# --- reading the process ------------------------------------------------------------------------

def target_kind():
    """None (no process), 'core' (a core file) or 'live'."""
    inf = gdb.selected_inferior()
    if inf is None or inf.pid == 0:
        return None
    conn = getattr(inf, "connection", None)
    if conn is not None and conn.type == "core":
        return "core"
    return "live"


def inferior():
    if target_kind() is None:
        raise gdb.GdbError("reprise: the program is not running (start it with `run`, or load a core file)")
    return gdb.selected_inferior()


def core_loaded():
    return target_kind() == "core"


def live():
    return target_kind() == "live"


def read(addr, n):
    return inferior().read_memory(addr, n).tobytes()


def read_cstring(addr, limit=4096):
    """A NUL-terminated string (bounded); reads in pieces that do not cross a page needlessly."""
    if addr == 0:
        return None
    out = b""
    inf = inferior()
    while len(out) < limit:
        chunk = 256 - (addr + len(out)) % 256  # never past the next 256-byte boundary: no unmapped page
        try:
            data = inf.read_memory(addr + len(out), chunk).tobytes()
        except gdb.MemoryError:
            break
        i = data.find(b"\0")
        if i >= 0:
            return (out + data[:i]).decode(errors="replace")
        out += data
    return out.decode(errors="replace")


def u64(addr):
    return struct.unpack("<Q", read(addr, 8))[0]


def i64(addr):
    return struct.unpack("<q", read(addr, 8))[0]


class Table:
    """The table as read now (one bulk read), with the helpers the commands share."""

    def __init__(self):
        sym = gdb.lookup_global_symbol("reprise_debug") or gdb.lookup_static_symbol("reprise_debug")
        if sym is None:
            try:
                self.addr = int(gdb.parse_and_eval("(unsigned long)&reprise_debug"))
            except gdb.error:
                raise gdb.GdbError("reprise: this program has no debug table (no `reprise_debug` symbol): "
                                   "is it a reprise program, built from issue 14 on?")
        else:
            self.addr = int(sym.value().address)
        head = read(self.addr, 16)
        magic, version, table_bytes = struct.unpack("<8sII", head)
        if magic != MAGIC:
            raise gdb.GdbError("reprise: `reprise_debug` does not start with the magic \"reprise\" (read %r)" % magic)
        if version != TABLE_VERSION:
            raise gdb.GdbError("reprise: the program's debug table is version %d; this extension knows version %d "
                               "only: use the extension of the reprise the program was built with" % (version, TABLE_VERSION))
        if table_bytes != TABLE_BYTES:
            raise gdb.GdbError("reprise: the debug table has %d bytes, version %d has %d: table and extension disagree"
                               % (table_bytes, version, TABLE_BYTES))
        check_layout_against_debug_info()
        raw = read(self.addr, TABLE_BYTES)
        f = {}
        for name, (off, fmt) in TABLE.items():
            vals = struct.unpack_from("<" + fmt, raw, off)
            f[name] = vals if len(vals) > 1 else vals[0]
        self.f = f
        self.fiber = dict(zip(FIBER_FIELDS, f["fiber"]))
        self.wait_kind_off, self.wait_handle_off = f["wait_list"]
        self.timer = dict(zip(TIMER_FIELDS, f["timer"]))
        check_timer_layout_against_debug_info(self.timer)
        self.arch = ARCHES.get(f["arch"], "unknown(%d)" % f["arch"])

    def __getitem__(self, name):
        return self.f[name]

    def text(self, name):
        return self.f[name].split(b"\0", 1)[0].decode(errors="replace")

    def first_line(self, name):
        return self.text(name).strip().split("\n", 1)[0]

    def names(self, array_field, count_field):
        addr, count = self.f[array_field], self.f[count_field]
        if addr == 0 or count == 0:
            return []
        ptrs = struct.unpack("<%dQ" % count, read(addr, 8 * count))
        return [read_cstring(p, 64) or "" for p in ptrs]

    def runtimes(self):
        out = []
        addr, seen = self.f["runtimes"], 0
        while addr and seen < 4096:
            vals = struct.unpack(RUNTIME_FORMAT, read(addr, RUNTIME_BYTES))
            out.append(Node(addr, vals))
            addr, seen = vals[0], seen + 1
        return out

    def write(self, field, value):
        off, fmt = TABLE[field]
        inferior().write_memory(self.addr + off, struct.pack("<" + fmt, value))


_layout_checked = False


def check_layout_against_debug_info():
    """When the program has debug information for the table, every offset the extension uses must
    match it: a refactor of the table without a version change fails here, loudly."""
    global _layout_checked
    if _layout_checked:
        return
    try:
        t = gdb.lookup_type("reprise_debug_table")
    except gdb.error:
        _layout_checked = True
        return
    wrong = []
    if t.sizeof != TABLE_BYTES:
        wrong.append("sizeof %d (extension: %d)" % (t.sizeof, TABLE_BYTES))
    fields = {fl.name: fl.bitpos // 8 for fl in t.fields()}
    for name, (off, _) in TABLE.items():
        if name not in fields:
            wrong.append("%s missing" % name)
        elif fields[name] != off:
            wrong.append("%s at %d (extension: %d)" % (name, fields[name], off))
    try:
        r = gdb.lookup_type("reprise_debug_runtime")
        names = [fl.name for fl in r.fields()]
        want = RUNTIME_FIELDS
        if names != want or r.sizeof != RUNTIME_BYTES:
            wrong.append("reprise_debug_runtime is %s (%d bytes); extension: %s (%d bytes)"
                         % (names, r.sizeof, want, RUNTIME_BYTES))
    except gdb.error:
        pass
    if wrong:
        raise gdb.GdbError("reprise: the debug table and this extension disagree (same version, other layout): "
                           + "; ".join(wrong))
    _layout_checked = True


_timer_debug_info = {}  # program -> TimerState's field offsets from its debug information, or None


def check_timer_layout_against_debug_info(layout):
    """The table's timer offsets against TimerState's in the program's debug information, when it
    has some (a stripped binary or its core has none: the table alone is used). The lookup is made
    once per program; the comparison at every read of the table."""
    key = gdb.selected_inferior().progspace.filename
    if key not in _timer_debug_info:
        try:
            t = gdb.lookup_type("reprise::detail::TimerState")
            _timer_debug_info[key] = {fl.name: fl.bitpos // 8 for fl in t.fields()
                                      if not fl.is_base_class and hasattr(fl, "bitpos")}
        except gdb.error:
            _timer_debug_info[key] = None
    fields = _timer_debug_info[key]
    if fields is None:
        return
    wrong = ["TimerState::%s at %s (table: %d)" % (name, fields.get(name, "nowhere"), layout[name])
             for name in TIMER_FIELDS if fields.get(name) != layout[name]]
    if wrong:
        raise gdb.GdbError("reprise: the debug table's timer layout and the program's debug information "
                           "disagree: " + "; ".join(wrong))


class Node:
    def __init__(self, addr, vals):
        (self.next, node, self.fibers_head, self.current_fiber, self.now_ns_p, self.wall_ns_p, trace,
         self.events_p, self.tick_p, self.first_p, self.index, self.replaying, self.start_wall_ns,
         self.events_total, self.state) = vals
        self.addr = addr
        self.name = read_cstring(node, 256) or ""
        self.trace = read_cstring(trace, 4096) if trace else None

    def events(self):
        return u64(self.events_p) if self.events_p else 0

    def virtual_ns(self):
        if not (self.tick_p and self.first_p):
            return 0
        return i64(self.tick_p) - i64(self.first_p)

    def first_mono_ns(self):
        return i64(self.first_p) if self.first_p else 0

    def now_ns(self):
        return i64(self.now_ns_p) if self.now_ns_p else 0

    def wall_ns(self):
        return i64(self.wall_ns_p) if self.wall_ns_p else 0

    def started(self):
        """Whether the node's run has started (a joint replay starts each node at its first tick, in
        wall-time order)."""
        return self.state != NODE_NOT_STARTED


# --- a node that has not started: when it will ----------------------------------------------------

def utc_text(wall_ns):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall_ns // 1000000000)) + ".%06d UTC" % (
        wall_ns % 1000000000 // 1000)


def not_started_text(table, node, nodes):
    """`node X has not started yet (...)`: when its recording started, and how far that is past
    the wall time the started nodes have reached."""
    start = node.start_wall_ns  # the trace header's, copied into the table when the node was created
    if start <= 0:
        return "node %d %s has not started yet: no event of its trace replayed" % (node.index, node.name)
    reached = max([n.wall_ns() for n in nodes if n is not node and n.started()] or [0])
    later = ""
    if reached > 0:
        later = ", %s s of wall time after the point the started nodes have reached" % seconds(start - reached, 3) \
            if start >= reached else ""
    return ("node %d %s has not started yet: no event of its trace replayed; its first tick comes at wall time %s "
            "(its recording's start%s): the joint replay starts it there" % (
                node.index, node.name, utc_text(start), later))


# --- state of the session -----------------------------------------------------------------------

class Session:
    selected_node = None        # an index, or None: the stopped node, else 0
    checkpoint_interval = 100000  # events between the checkpoints a run forward leaves (0: none; CHECKPOINT_AUTO_START)
    checkpoint_auto = True      # the interval follows the replay's speed: about CHECKPOINT_AUTO_S apart
    landing_distance = 1000     # a goto leaves a checkpoint this many events before its target
    checkpoint_max = 256
    checkpoint_keep_newest = 16
    checkpoints = []            # [(node index, event, checkpoint id)], one parked process each
    bookmarks = {}              # name -> (node index, event)
    node_names = {}             # node index -> name, as last read from the table
    offsets = {}                # checkpoint id -> {fd: file offset} when it was taken
    parked = {}                 # checkpoint id -> Parked
    attached = set()            # inferiors restored from a checkpoint (gdb would detach them at its exit)
    next_checkpoint_id = 1
    args = None                 # the program's arguments, as the first replay under gdb had them
    quiet = 0                   # > 0 while a command runs the program itself (it prints its own line)
    last_stop = None


S = Session()


def nodes_or_error(table):
    nodes = table.runtimes()
    if not nodes:
        raise gdb.GdbError("reprise: no runtime registered yet (the program has not created its runtime, "
                           "or has destroyed it)")
    return nodes


def node_of(table, nodes):
    want = S.selected_node
    if want is None:
        want = table["stopped_node"] if table["stopped_node"] >= 0 else 0
    for n in nodes:
        if n.index == want:
            return n
    return nodes[0]


def find_node(nodes, spec):
    for n in nodes:
        if spec == str(n.index) or spec == n.name:
            return n
    runs = [n.name for n in nodes if n.name.startswith(spec + "/")]
    if runs:
        raise gdb.GdbError("reprise: node %s was recorded %d times: name one of its runs (%s), or an index"
                           % (spec, len(runs), ", ".join(runs)))
    raise gdb.GdbError("reprise: no node %r (nodes: %s)" % (spec, ", ".join("%d %s" % (n.index, n.name) for n in nodes)))


def node_state(table, node):
    """A node's state now: not started (and when it starts), ended, frozen at its trace's end, at its
    trace's end, stopped here, or its next event."""
    if not node.started():
        return "not started yet" + (", first tick at wall time %s" % utc_text(node.start_wall_ns)
                                    if node.start_wall_ns > 0 else "")
    event = current_event(table, node)
    where = "event %d, virtual time %s s" % (event, seconds(node.virtual_ns()))
    stopped_here = table["stopped_node"] == node.index and table["stop_reason"] != 0
    if node.state == NODE_ENDED and stopped_here and table["stop_reason"] != STOP_END:
        # The program has returned, and the stop is before its end record (the exit) is delivered
        # and checked: not yet "as recorded".
        where += ", ending (its exit, the end record, is the next event)"
    elif node.state == NODE_ENDED:
        where += ", ended" + (" as recorded" if node.replaying else "")
    elif node.state == NODE_FROZEN:
        where += ", frozen (its trace ends without an exit: it stays there)"
    if table["stopped_node"] == node.index and table["stop_reason"] == STOP_END:
        return where + ", at its trace's end"
    if table["stopped_node"] == node.index and table["stop_reason"] != 0:
        return where + ", stopped here (%s)" % STOP_REASONS.get(table["stop_reason"], table["stop_reason"])
    return where


def current_event(table, node):
    """The number of the node's next event: the stopped one while stopped there."""
    if table["stopped_node"] == node.index and table["stop_reason"] not in (0,):
        return table["stopped_event"] if table["stopped_event"] == node.events() else node.events()
    return node.events()


def stop_line(what=None):
    """`[reprise] node NAME event E, virtual time T s: WHAT` for the stop the process is at."""
    t = Table()
    nodes = t.runtimes()
    if not nodes:
        return "[reprise] (no runtime yet): %s" % (what or t.text("stop_text"))
    if what is None and t["stopped_node"] >= 0:
        node = next((n for n in nodes if n.index == t["stopped_node"]), nodes[0])
        return "[reprise] node %s event %d, virtual time %s s: %s" % (
            node.name, t["stopped_event"], seconds(t["stopped_virtual_ns"]), t.first_line("stop_text"))
    node = node_of(t, nodes)
    return "[reprise] node %s event %d, virtual time %s s: %s" % (
        node.name, node.events(), seconds(node.virtual_ns()), what or t.first_line("stop_text"))


# --- the stop breakpoint and stop events ---------------------------------------------------------

class StopBreakpoint(gdb.Breakpoint):
    """reprise_debug_stop(): where a replay under the extension stops. Silent: the stop handler prints."""

    def __init__(self):
        super().__init__("reprise_debug_stop", gdb.BP_BREAKPOINT, internal=True)
        self.silent = True

    def stop(self):
        return True


_stop_bp = None
_signal_stop = False
FATAL_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGSYS")


def fatal_signal():
    """The signal the process stopped on when going on would end it (a recorded crash), or None."""
    return _signal_stop if _signal_stop in FATAL_SIGNALS else None


def on_stop(event):
    global _signal_stop
    _task.clear()
    try:
        if isinstance(event, gdb.BreakpointEvent) and any(b is _stop_bp for b in event.breakpoints):
            _signal_stop = False
            if S.args is None:
                S.args = program_args()
            if S.quiet == 0:
                print(stop_line())
        elif isinstance(event, gdb.SignalEvent):
            _signal_stop = event.stop_signal
            print(stop_line("signal %s" % event.stop_signal))
    except (gdb.GdbError, gdb.error, gdb.MemoryError):
        pass  # not a reprise program, or before its table is readable: gdb's own report says enough


def program_args():
    """The current inferior's arguments (`show args`), or None."""
    text = gdb.execute("show args", to_string=True)
    if '"' not in text:
        return None
    args = text[text.index('"') + 1:text.rindex('"')]
    return args or None


def on_exit(event):
    _task.clear()


def on_cont(event):
    _task.clear()


# --- task stacks: an unwinder over a parked fiber's saved fcontext --------------------------------

class FrameId:
    """A frame's identity for create_unwind_info (gdb 13 has no class of its own for it)."""

    def __init__(self, sp, pc):
        self.sp, self.pc = sp, pc


class TaskUnwinder(Unwinder):
    """While a task is selected, the caller of frame #0 is the task's jump_fcontext return: its
    saved registers become frame #1, and gdb unwinds the rest of the task's stack as usual."""

    def __init__(self):
        super().__init__("reprise-task")
        self.regs = None  # {register name: value} of the selected task, or None

    def __call__(self, pending_frame):
        if self.regs is None or pending_frame.level() != 0:
            return None
        pc_name, sp_name = ARCH_REGS[self.arch]
        # Frame #0's identity: its pc, and a stack address just below the task's (gdb refuses a
        # caller whose frame is "inner" to its callee's, and a task's stack is often below the thread's).
        frame_id = FrameId(gdb.Value(self.regs[sp_name] - 0x100).cast(pending_frame.read_register(sp_name).type),
                           pending_frame.read_register(pc_name))
        info = pending_frame.create_unwind_info(frame_id)
        ulong = gdb.lookup_type("unsigned long")
        for reg, value in self.regs.items():
            info.add_saved_register(reg, gdb.Value(value).cast(ulong))
        return info

    def select(self, arch, regs):
        self.arch, self.regs = arch, regs
        gdb.invalidate_cached_frames()

    def clear(self):
        if self.regs is not None:
            self.regs = None
            gdb.invalidate_cached_frames()


_task = TaskUnwinder() if Unwinder is not object else None

# Where a task's stack starts: Boost.Context's make_fcontext leaves a trampoline at the bottom of
# each fiber's stack whose return address is 0. Unwinding past it gives a garbage frame (#N 0x0 in
# ?? ()). gdb 13's Python unwinders cannot mark a frame outermost (a FrameId is always an ordinary
# one; leaving the pc unsaved makes `bt` end on an error, "PC not saved"), so the frame filter
# below ends a backtrace at the fiber's entry instead. A frame filter makes gdb print frames
# through Python: FiberFrame keeps the CLI's look (names without parameters, optimized-out
# arguments as <optimized out> rather than a printer's exception).
FIBER_ENTRIES = ("make_fcontext",)

try:
    from gdb.FrameDecorator import FrameDecorator, SymValueWrapper
except ImportError:  # no frame filter API: backtraces keep the frame past the fiber's entry
    FrameDecorator = None


def optimized_out_scalar(value, depth=0):
    """An optimized-out scalar inside an optimized-out value (gdb prints it `<optimized out>` with no
    pretty-printer, where a printer of the whole would read its fields and fail)."""
    t = value.type.strip_typedefs()
    if depth > 8 or t.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return value
    for field in t.fields():
        # Base classes too: a std::vector's fields are all in its base (its printer would fail).
        if hasattr(field, "bitpos") and (field.is_base_class or field.name):
            try:
                return optimized_out_scalar(value[field], depth + 1)
            except (gdb.error, TypeError, ValueError):
                continue
    return value


if FrameDecorator is not None:
    class FiberFrame(FrameDecorator):
        """A frame as the CLI prints it, through the frame filter."""

        def function(self):
            frame = self.inferior_frame()
            name = frame.name() if frame.type() not in (gdb.DUMMY_FRAME, gdb.SIGTRAMP_FRAME) else None
            if name:
                return name  # without the parameters, as `bt` shows it (str(frame.function()) has them)
            return super().function()

        def frame_args(self):
            args = super().frame_args()
            if not args:
                return args
            frame = self.inferior_frame()
            out = []
            for a in args:
                sym = a.symbol()
                try:
                    v = frame.read_var(sym)
                    if not isinstance(sym, str) and v.is_optimized_out:
                        out.append(SymValueWrapper(sym, optimized_out_scalar(v)))
                        continue
                except (gdb.error, ValueError, RuntimeError, TypeError):
                    pass
                out.append(a)  # gdb reads it (entry values and all)
            return out


class FiberEntryFilter:
    """Ends a backtrace at a fiber's entry (make_fcontext's trampoline): a task's stack, main's too,
    has no caller past it."""

    def __init__(self):
        self.name = "reprise-fiber-entry"
        self.priority = 100
        self.enabled = True

    def filter(self, frames):
        return stop_at_fiber_entry(frames)


def stop_at_fiber_entry(frames):
    for decorator in frames:
        yield FiberFrame(decorator)
        try:
            name = decorator.inferior_frame().name()
        except gdb.error:
            name = None
        if name in FIBER_ENTRIES:
            return


def task_registers(table, context):
    layout = fcontext_layout(table.arch, table["boost_version"])
    pc_name, sp_name = ARCH_REGS[table.arch]
    block = read(context, layout["frame"])
    regs = {r: struct.unpack_from("<Q", block, off)[0] for r, off in layout["regs"].items()}
    regs[pc_name] = struct.unpack_from("<Q", block, layout["pc"])[0]
    regs[sp_name] = context + layout["frame"]
    return regs


# --- tasks -----------------------------------------------------------------------------------------

class Task:
    __slots__ = ("addr", "id", "name", "state", "context", "waiting_on", "deadline", "stack_base", "stack_bytes")


def read_tasks(table, node, limit=1000000):
    """The node's tasks in spawn order, one bulk read per task (and one per name and wait list)."""
    fl = table.fiber
    size = fl["size"]
    inf = inferior()
    fmt_q, fmt_q_signed = struct.Struct("<Q"), struct.Struct("<q")
    names = {}
    out = []
    addr = u64(node.fibers_head) if node.fibers_head else 0
    while addr and len(out) < limit:
        raw = inf.read_memory(addr, size).tobytes()
        t = Task()
        t.addr = addr
        t.id = fmt_q.unpack_from(raw, fl["id"])[0]
        name_p = fmt_q.unpack_from(raw, fl["name"])[0]
        t.state = raw[fl["state"]]
        t.context = fmt_q.unpack_from(raw, fl["context"])[0]
        t.waiting_on = fmt_q.unpack_from(raw, fl["waiting_on"])[0]
        t.deadline = fmt_q_signed.unpack_from(raw, fl["park_deadline_ns"])[0]
        t.stack_base = fmt_q.unpack_from(raw, fl["stack_base"])[0]
        t.stack_bytes = fmt_q.unpack_from(raw, fl["stack_mapped_bytes"])[0]
        if name_p not in names:
            names[name_p] = read_cstring(name_p, 256) if name_p else ""
        t.name = names[name_p]
        out.append(t)
        addr = fmt_q.unpack_from(raw, fl["all_next"])[0]
    return out


def wait_of(table, task):
    """(kind name, handle) of what a parked task waits on; ('sleep', 0) for a sleep."""
    if task.waiting_on == 0:
        return ("sleep", 0)
    lo = min(table.wait_kind_off, table.wait_handle_off)
    hi = max(table.wait_kind_off + 1, table.wait_handle_off + 8)
    raw = read(task.waiting_on + lo, hi - lo)
    kind = raw[table.wait_kind_off - lo]
    handle = struct.unpack_from("<Q", raw, table.wait_handle_off - lo)[0]
    return (kind, handle)


def timer_deadline(table, wait_list):
    """The loop time (ns) the timer whose wait list this is fires at (the table's timer layout:
    container_of the wait list), or -1 when it is not armed."""
    timer = wait_list - table.timer["waiters"]
    if u64(timer + table.timer["heap_index"]) == UINT64_MAX:
        return -1
    return i64(timer + table.timer["deadline_ns"])


WAIT_OBJECTS = {"timer": "timer", "read": "connection", "write": "connection", "accept": "listener",
                "join": "task", "offload": "job"}


def describe_wait(kind_name, handle, deadline, now_ns, first_ns):
    until = ""
    if deadline >= now_ns:
        until = "until +%s s" % seconds(deadline - now_ns, 3)
    elif deadline >= 0:
        until = "due since %s s" % seconds(now_ns - deadline)  # its wake-up is the next event(s)
    if kind_name == "sleep":
        return "sleep " + (until or "(no deadline)")
    what = kind_name
    if handle:
        what += " on %s #%d" % (WAIT_OBJECTS.get(kind_name, "handle"), handle)
    return what + (" " + until if until else "")


def format_tasks(table, node, nodes=None):
    started = time.monotonic()
    tasks = read_tasks(table, node)
    if not tasks and not node.started():
        return not_started_text(table, node, nodes or [node]), 0, time.monotonic() - started
    states = table.names("fiber_state_names", "fiber_state_count")
    kinds = table.names("wait_kind_names", "wait_kind_count")
    current = u64(node.current_fiber) if node.current_fiber else 0
    now, first = node.now_ns(), node.first_mono_ns()
    lines = ["node %d %s: %d task(s), in spawn order ('*': running)" % (node.index, node.name, len(tasks)),
             "     %6s  %-24s %-8s %-40s %s" % ("id", "name", "state", "waits on", "deadline (virtual)")]
    wait_cache = {}
    for t in tasks:
        state = states[t.state] if t.state < len(states) else "state%d" % t.state
        waits, deadline = "", ""
        if state == "parked":
            if t.waiting_on not in wait_cache:
                k, h = wait_of(table, t)
                wait_cache[t.waiting_on] = (k if isinstance(k, str) else (kinds[k] if k < len(kinds) else "kind%d" % k), h)
            k, h = wait_cache[t.waiting_on]
            until = t.deadline
            if until < 0 and k == "timer" and t.waiting_on:
                # A Timer::wait parks with no deadline of its own: the timer's deadline is when it ends.
                until = timer_deadline(table, t.waiting_on)
            waits = describe_wait(k, h, until, now, first)
            if until >= 0:
                deadline = "%s s" % seconds(until - first)
        mark = "*" if t.addr == current else " "
        lines.append("  %s  %6d  %-24s %-8s %-40s %s" % (mark, t.id, t.name, state, waits, deadline))
    return "\n".join(lines), len(tasks), time.monotonic() - started


# --- run control ---------------------------------------------------------------------------------

# Checkpoints are forks of the replaying process, each one a gdb inferior stopped where it was
# taken. gdb's own `checkpoint` forks through an inferior function call, which needs to write the
# whole register state: with gdb 13 on kernels whose XSAVE area is larger than gdb knows
# ("Couldn't write extended state status: Bad address") it cannot. So the fork is made by running
# one `syscall` instruction of libc with rax = fork, writing general registers only, and the
# registers it clobbers (rip, rax, rcx, r11) are put back in parent and child.

SYS_FORK_X86_64 = 57
_syscall_insn = {}


def syscall_instruction():
    """The address of a `syscall` instruction in the process (in libc's syscall())."""
    key = gdb.selected_inferior().num
    if key in _syscall_insn:
        return _syscall_insn[key]
    try:
        start = int(gdb.parse_and_eval("(unsigned long)&syscall"))
    except gdb.error:
        raise gdb.GdbError("reprise: checkpoints need libc's syscall() in the process (not found)")
    code = read(start, 128)
    i = code.find(b"\x0f\x05")
    if i < 0:
        raise gdb.GdbError("reprise: no syscall instruction found in libc's syscall()")
    _syscall_insn[key] = start + i
    return start + i


def checkpoint_ids():
    """The checkpoints whose parked process is still there."""
    return {cid for cid, p in S.parked.items() if process_alive(p.pid)}


def process_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def select_inferior(num):
    """Switches to inferior `num` without gdb's "[Switching to ...]" lines."""
    for inf in gdb.inferiors():
        if inf.num == num:
            threads = inf.threads()
            if threads:
                threads[0].switch()
                return
    gdb.execute("inferior %d" % num, to_string=True)


class silenced:
    """gdb prints some things even under execute(to_string=True) (a stepi's stop, a switch of
    inferior): the extension's own run control turns those notifications off meanwhile."""
    depth = 0

    def __enter__(self):
        if silenced.depth == 0:
            silenced.before = gdb.parameter("suppress-cli-notifications")
            gdb.execute("set suppress-cli-notifications on", to_string=True)
        silenced.depth += 1

    def __exit__(self, *_):
        silenced.depth -= 1
        if silenced.depth == 0 and not silenced.before:
            gdb.execute("set suppress-cli-notifications off", to_string=True)


class OnceBreakpoint(gdb.Breakpoint):
    """A silent internal breakpoint at an address, for one stop of the extension's own."""

    def __init__(self, addr):
        super().__init__("*%d" % addr, gdb.BP_BREAKPOINT, internal=True, temporary=True)
        self.silent = True

    def stop(self):
        return True


def run_to(addr):
    """Continues to `addr` (an internal breakpoint), without the stop breakpoint, without output."""
    bp = OnceBreakpoint(addr)
    _stop_bp.enabled = False
    try:
        gdb.execute("continue", to_string=True)
    finally:
        _stop_bp.enabled = True
        if bp.is_valid():
            bp.delete()


_needs_step_over = set()


SYS_CLOSE_X86_64 = 3
SYS_LSEEK_X86_64 = 8
SYS_SETPGID_X86_64 = 109
SYS_PRCTL_X86_64 = 157
PR_SET_PTRACER = 0x59616d61
SYS_OPENAT_X86_64 = 257
AT_FDCWD = -100
O_RDONLY_CLOEXEC = 0o2000000
# What a syscall's injection changes: the call's registers, and the stack pointer and flags of a
# parked fork's way (see take_checkpoint).
SYSCALL_REGS = ("rip", "rax", "rdi", "rsi", "rdx", "r10", "rcx", "r11", "rsp", "eflags")
ERESTART = (-512, -513, -514, -516)  # ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK
SYSCALL_TRIES = 8


def inject_syscall(nr, *args, rsp=None):
    """Runs one syscall in the selected process (x86_64) and puts back every register it touched;
    returns (rax, the registers as they were). `rsp`: the stack pointer during the call."""
    insn = syscall_instruction()
    frame = gdb.newest_frame()
    saved = {r: int(frame.read_register(r)) for r in SYSCALL_REGS}
    with silenced():
        gdb.execute("set $rip = %d" % insn, to_string=True)
        gdb.execute("set $rax = %d" % nr, to_string=True)
        for reg, value in zip(("rdi", "rsi", "rdx", "r10"), args):
            gdb.execute("set $%s = %d" % (reg, value), to_string=True)
        if rsp is not None:
            gdb.execute("set $rsp = %d" % rsp, to_string=True)
        # A signal that comes meanwhile (SIGCHLD of a checkpoint stopping) interrupts the call
        # before it did anything (-ERESTART*): it is made again.
        for _ in range(SYSCALL_TRIES):
            gdb.execute("stepi", to_string=True)
            result = int(gdb.newest_frame().read_register("rax"))
            if result not in ERESTART:
                break
            gdb.execute("set $rip = %d" % insn, to_string=True)
            gdb.execute("set $rax = %d" % nr, to_string=True)
        restore_registers(saved)
    _needs_step_over.add(gdb.selected_inferior().num)
    return result, saved


def restore_registers(saved):
    """Writes the registers that differ. (gdb 13 takes half a second over the first write that moves
    a process's stack pointer onto the program's stack: a register left as it is is not written.)"""
    frame = gdb.newest_frame()
    now = {r: int(frame.read_register(r)) & UINT64_MAX for r in saved}
    for r, v in saved.items():
        if now[r] != v & UINT64_MAX:
            gdb.execute("set $%s = %d" % (r, v), to_string=True)


def file_offsets(pid):
    """{fd: offset} of the process's regular files open for reading only. A fork shares them with its parent: a
    checkpoint must put back the offsets it had (the trace reader reads on)."""
    out = {}
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if not target.startswith("/") or target.startswith("/dev/") or target.startswith("/proc/"):
                continue
            pos, flags = None, None
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("pos:"):
                        pos = int(line.split()[1])
                    elif line.startswith("flags:"):
                        flags = int(line.split()[1], 8)
            # Files opened for reading only (the traces): one written to (a log, the terminal's
            # file, shared with gdb itself) must not be rewound.
            if pos is not None and flags is not None and flags & 3 == os.O_RDONLY:
                out[int(fd)] = pos
        except (OSError, ValueError):
            continue
    return out


class Parked:
    """A checkpoint's process: its pid, the registers it had before the fork (put back when it is
    restarted), the descriptor it waits on once let go, and the gdb inferior holding it while it is
    one of the few most recent (None once let go, parked)."""

    def __init__(self, pid, registers, fd, held, way):
        self.pid, self.registers, self.fd, self.held, self.way = pid, registers, fd, held, way


HELD_MAX = 4  # checkpoints gdb holds as inferiors (restarted without an attach); older ones are let go


def take_checkpoint(node_index, event):
    """A fork of the process, remembered as node:event; returns its id.

    gdb holds the fork as an inferior while it is one of the HELD_MAX most recent checkpoints:
    restarting one then costs no attach (an attached process's first frame costs gdb 13 about half
    a second of symbol reading). Older ones are let go, parked: gdb 13's cost of a fork grows with
    the inferiors it holds (0.05 s a checkpoint with 10 of them, 0.5 s with 150), and a session of
    hundreds of checkpoints came to a halt. A parked fork runs by a way laid out in its registers
    and below its stack before the fork: from the fork's return in libc's syscall() it returns into
    that syscall instruction again, which (rax 0 in a child) reads one byte of a FIFO that only gdb
    writes: it blocks. When gdb is gone the read ends (end of file) and the process returns into
    _exit(): a checkpoint never outlives its debugger, nor runs the program on. It has a process
    group of its own (the terminal's ^C is not for it). Only the syscall instruction, a comparison
    and two returns run in it, so no register but those of SYSCALL_REGS changes: `reprise goto` and
    `back` attach to it again and put them back (restore_checkpoint)."""
    t = Table()
    if t.arch != "x86_64_sysv":
        raise gdb.GdbError("reprise: checkpoints are made on x86_64 only (this is %s)" % t.arch)
    remember_node_names(t)
    inf = gdb.selected_inferior()
    before = {i.num for i in gdb.inferiors()}
    offsets = file_offsets(inf.pid)
    insn = syscall_instruction()
    exit_fn = libc_function("_exit")
    S.quiet += 1
    try:
        with silenced():
            sp = int(gdb.newest_frame().read_register("rsp"))
            # Below the red zone: the return addresses (the syscall instruction, _exit),
            # the byte read, the FIFO's name. Nothing of the program lives below its stack pointer.
            way = (sp - 512) & ~15
            name = parking_fifo().encode() + b"\0"
            inf.write_memory(way, struct.pack("<QQQ", insn, exit_fn, 0) + name)
            fd, _ = inject_syscall(SYS_OPENAT_X86_64, AT_FDCWD, way + 24, O_RDONLY_CLOEXEC)
            if fd < 0:
                raise gdb.GdbError("reprise: the process cannot open the checkpoint FIFO %s (errno %d)"
                                   % (parking_fifo(), -fd))
            try:
                # The parked way's read (fd, buffer, 1 byte) is in the fork's registers already; its
                # stack pointer moves onto the way when it is let go (let_go_old_ones).
                pid, saved = inject_syscall(SYS_FORK_X86_64, fd, way + 16, 1)
                new = sorted({i.num for i in gdb.inferiors()} - before)
                if pid <= 0 or not new:
                    raise gdb.GdbError("reprise: the fork for a checkpoint failed (%d; detach-on-fork must be off)" % pid)
            finally:
                inject_syscall(SYS_CLOSE_X86_64, fd)
        # The registers were set by hand: at a stop breakpoint gdb would report it again at the
        # next `continue`, a user's too. One instruction on (reprise_debug_stop's `ret`) it won't.
        step_over_stop_breakpoint()
    finally:
        S.quiet -= 1
    cid = S.next_checkpoint_id
    S.next_checkpoint_id += 1
    S.checkpoints.append((node_index, event, cid))
    S.parked[cid] = Parked(pid, saved, fd, new[-1], way)
    S.offsets[cid] = offsets
    thin_checkpoints()
    let_go_old_ones()
    return cid


def let_go_old_ones():
    """Past HELD_MAX held checkpoints, the oldest are detached: each runs into its parked way."""
    held = sorted(cid for cid, p in S.parked.items() if p.held is not None)
    if len(held) <= HELD_MAX:
        return
    back = gdb.selected_inferior().num
    try:
        for cid in held[:len(held) - HELD_MAX]:
            p = S.parked[cid]
            try:
                select_inferior(p.held)
                with silenced():
                    # A process group of its own (the terminal's ^C is not for it; a held one stays in
                    # the replay's, where gdb's interrupt of a restored one reaches it), and gdb allowed
                    # to attach to it again where Yama allows only descendants (ptrace_scope 1: its
                    # parent may be gone by then).
                    inject_syscall(SYS_SETPGID_X86_64, 0, 0)
                    if yama_limits_attach():
                        inject_syscall(SYS_PRCTL_X86_64, PR_SET_PTRACER, os.getpid())
                    gdb.execute("set $rsp = %d" % p.way, to_string=True)  # onto the way: it returns into the read
                    gdb.execute("detach", to_string=True)
            except gdb.error:
                pass  # gone already: checkpoint_ids() drops it
            finally:
                select_inferior(back)
            try:
                gdb.execute("remove-inferiors %d" % p.held, to_string=True)
            except gdb.error:
                pass
            _needs_step_over.discard(p.held)
            p.held = None
    finally:
        select_inferior(back)


def yama_limits_attach():
    """Whether Yama lets gdb attach only to its descendants (ptrace_scope 1, and gdb not root)."""
    if "yama" not in _fifo:
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                scope = int(f.read().strip() or 0)
        except (OSError, ValueError):
            scope = 0
        _fifo["yama"] = scope == 1 and os.geteuid() != 0
    return _fifo["yama"]


_fifo = {}


def parking_fifo():
    """The FIFO parked checkpoints wait on: gdb holds it open for writing and never writes."""
    if "path" not in _fifo:
        try:
            folder = tempfile.mkdtemp(prefix="reprise-gdb-")
            path = os.path.join(folder, "checkpoints")
            os.mkfifo(path, 0o600)
            _fifo["fd"] = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # O_RDWR: does not wait for a reader
        except OSError as e:
            raise gdb.GdbError("reprise: checkpoints need a FIFO in a temporary folder (TMPDIR): %s" % e)
        _fifo["path"] = path
    if len(_fifo["path"]) > FIFO_NAME_MAX:
        raise gdb.GdbError("reprise: the checkpoint FIFO's name %s is longer than %d bytes (a shorter TMPDIR will do)"
                           % (_fifo["path"], FIFO_NAME_MAX))
    return _fifo["path"]


FIFO_NAME_MAX = 200  # it is written below the program's stack, between the way and the red zone


def libc_function(name):
    key = (gdb.selected_inferior().num, name)
    if key not in _syscall_insn:
        try:
            _syscall_insn[key] = int(gdb.parse_and_eval("(unsigned long)&%s" % name))
        except gdb.error:
            raise gdb.GdbError("reprise: checkpoints need libc's %s() in the process (not found)" % name)
    return _syscall_insn[key]


def restore_checkpoint(cid):
    """Selects checkpoint `cid`'s process (its inferior while held, else attached again as a new
    one), as it was when taken (registers, the FIFO closed, the files it reads seeked back); the
    checkpoint is used up. Returns the inferior."""
    p = S.parked.pop(cid)
    if p.held is not None:
        select_inferior(p.held)
        num = p.held
    else:
        num = attach_parked(cid, p)
    restore_registers(p.registers)
    inject_syscall(SYS_CLOSE_X86_64, p.fd)  # the FIFO (the fork's descriptor of it: same number)
    put_back_offsets(cid)
    S.offsets.pop(cid, None)
    _needs_step_over.add(num)
    # Attached or forked, gdb would detach it at its exit (and it would replay on alone): killed then.
    S.attached.add(num)
    return num


def attach_parked(cid, p):
    """Attaches to a parked checkpoint's process as a new inferior, selected; where that fails, the
    inferior selected before stays selected and a GdbError says why."""
    back = gdb.selected_inferior().num
    out = gdb.execute("add-inferior", to_string=True)
    m = re.search(r"inferior (\d+)", out)
    if m is None:
        raise gdb.GdbError("reprise: gdb did not add an inferior for checkpoint %d (%s)" % (cid, out.strip()))
    num = int(m.group(1))
    gdb.execute("inferior %d" % num, to_string=True)
    try:
        gdb.execute("attach %d" % p.pid, to_string=True)
    except gdb.error as e:
        select_inferior(back)
        try:
            gdb.execute("remove-inferiors %d" % num, to_string=True)
        except gdb.error:
            pass
        try:
            os.kill(p.pid, signal.SIGKILL)
        except OSError:
            pass
        raise gdb.GdbError("reprise: checkpoint %d (process %d) cannot be attached again: %s"
                           % (cid, p.pid, "; ".join(line.strip() for line in str(e).splitlines() if line.strip())))
    return num


def put_back_offsets(cid):
    """Seeks the selected process's files back to where they were when checkpoint `cid` was taken."""
    for fd, pos in S.offsets.get(cid, {}).items():
        inject_syscall(SYS_LSEEK_X86_64, fd, pos, 0)


def delete_checkpoint(cid):
    p = S.parked.pop(cid, None)
    if p is not None and p.held is not None:
        forget_inferior(p.held)
    elif p is not None:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except OSError:
            pass
    S.offsets.pop(cid, None)


def delete_all_checkpoints(*_):
    """At gdb's exit: a parked process is no inferior, and gdb would leave it; a process attached
    again from a checkpoint is one gdb would detach (and it would replay on alone)."""
    for p in S.parked.values():
        try:
            os.kill(p.pid, signal.SIGKILL)  # held ones too: no gdb command runs while gdb exits
        except OSError:
            pass
    S.parked.clear()
    S.checkpoints = []
    if "fd" in _fifo:
        os.close(_fifo.pop("fd"))
        shutil.rmtree(os.path.dirname(_fifo.pop("path")), ignore_errors=True)
    for num in list(S.attached):
        for inf in gdb.inferiors():
            if inf.num == num and inf.pid != 0:
                try:
                    os.kill(inf.pid, signal.SIGKILL)
                except OSError:
                    pass
    S.attached.clear()


def forget_inferior(num):
    """Kills and removes a process that was left behind (not the selected one)."""
    if num == gdb.selected_inferior().num:
        return
    for cmd in ("kill inferiors %d", "remove-inferiors %d"):
        try:
            gdb.execute(cmd % num, to_string=True)
        except gdb.error:
            pass
    _needs_step_over.discard(num)
    S.attached.discard(num)


def step_over_stop_breakpoint():
    """After a pc was set back onto reprise_debug_stop by hand, gdb would report the breakpoint there
    again at once: step one instruction with it disabled first."""
    num = gdb.selected_inferior().num
    if num not in _needs_step_over:
        return
    _needs_step_over.discard(num)
    if gdb.newest_frame().name() != "reprise_debug_stop":
        return
    _stop_bp.enabled = False
    try:
        with silenced():
            gdb.execute("stepi", to_string=True)
    finally:
        _stop_bp.enabled = True


def thin_checkpoints():
    """At most checkpoint_max: the most recently taken few stay (the one just taken among them,
    wherever it lies: a goto back into a thinned stretch lays new ones there); of the others, the
    one whose neighbours on its node are closest goes, so the gaps stay even. Before, "newest"
    meant the latest by event, and a checkpoint taken behind them was removed at once: a goto
    back then took and lost the same checkpoint forever (the hang of the known issue)."""
    while len(S.checkpoints) > S.checkpoint_max:
        recent = {c[2] for c in sorted(S.checkpoints, key=lambda c: c[2])[-S.checkpoint_keep_newest:]}
        ordered = sorted(S.checkpoints, key=lambda c: (c[0], c[1]))
        victim, best = None, None
        for i, c in enumerate(ordered):
            if c[2] in recent:
                continue
            before = ordered[i - 1] if i > 0 and ordered[i - 1][0] == c[0] else None
            after = ordered[i + 1] if i + 1 < len(ordered) and ordered[i + 1][0] == c[0] else None
            # A node's first and last checkpoints bound its coverage: they go last.
            gap = (after[1] - before[1]) if before and after else UINT64_MAX
            if best is None or gap < best or (gap == best and c[2] < victim[2]):
                best, victim = gap, c
        S.checkpoints.remove(victim)
        delete_checkpoint(victim[2])


def require_live():
    if not live():
        if core_loaded():
            raise gdb.GdbError("reprise: a core file cannot run: only reading commands (info, nodes, tasks, task, event) work")
        raise gdb.GdbError("reprise: the program is not running: `run` it first (with the extension loaded, a replay "
                           "stops at its start)")


def start_program():
    """`run` to the replay's started stop."""
    confirm = gdb.parameter("confirm")
    S.quiet += 1
    try:
        gdb.execute("set confirm off")
        # A checkpoint's inferior (a fork) has neither the arguments nor the environment of the first.
        if S.args is not None:
            gdb.execute("set args %s" % S.args)
        gdb.execute("set environment REPRISE_DEBUGGER=1")
        gdb.execute("run", to_string=True)
    finally:
        S.quiet -= 1
        gdb.execute("set confirm %s" % ("on" if confirm else "off"))
    if not live():
        raise gdb.GdbError("reprise: the program ended before its replay started (is it run with --replay=TRACE?)")
    t = Table()
    if t["stop_reason"] != STOP_STARTED:
        raise gdb.GdbError("reprise: the program did not stop at its replay's start (stop reason %s)"
                           % STOP_REASONS.get(t["stop_reason"], t["stop_reason"]))


def arm(table, node_index, event=UINT64_MAX, kinds=0, handle=0, needle=b""):
    table.write("armed", 0)
    table.write("stop_node", node_index)
    table.write("stop_event", event)
    table.write("stop_kinds", kinds)
    table.write("stop_handle", handle)
    if needle:
        inferior().write_memory(table.addr + TABLE["output_needle"][0], needle)
    table.write("output_needle_bytes", len(needle))
    table.write("checkpoint_every", S.checkpoint_interval)
    table.write("armed", 1)


def disarm():
    t = Table()
    t.write("armed", 0)
    t.write("stop_event", UINT64_MAX)
    t.write("stop_kinds", 0)
    t.write("output_needle_bytes", 0)
    t.write("checkpoint_every", 0)


# The automatic checkpoint interval: a fork costs about 0.1 s under gdb, and replay runs a million
# events or more a second, so a checkpoint every 100,000 events cost more than going back from an
# older one saves. In auto mode the interval is set, after each periodic checkpoint, to about one
# second of the replay's measured speed (a round 1, 2 or 5 x 10^k events, within these bounds).
CHECKPOINT_AUTO_S = 1.0
CHECKPOINT_AUTO_START, CHECKPOINT_AUTO_MIN, CHECKPOINT_AUTO_MAX = 100000, 10000, 100000000


def auto_interval(events_per_s):
    want = max(CHECKPOINT_AUTO_MIN, min(CHECKPOINT_AUTO_MAX, events_per_s * CHECKPOINT_AUTO_S))
    step = 10 ** (len(str(int(want))) - 1)
    return max(m * step for m in (1, 2, 5) if m * step <= want)


def run_forward(node_index, **target):
    """Arms the target, continues, leaves a checkpoint at each checkpoint stop, returns at the
    first other stop (or raises when the program ended). In auto mode each checkpoint stop also
    sets the interval from the replay's speed since the last one (in the same node)."""
    if fatal_signal():
        raise gdb.GdbError("reprise: the program stopped on signal %s: it cannot go on from here; go back "
                           "(reprise back, reprise goto N) instead" % _signal_stop)
    t = Table()
    end = trace_end(t, node_index)
    if end is not None:
        # Going on from here would let the program run to its exit: stay stopped at the end.
        raise gdb.GdbError("reprise: already at the end of the trace (event %d) of node %s: nothing comes after it; "
                           "go back (reprise back, reprise goto N) instead" % (end, node_name(t, node_index)))
    arm(t, node_index, **target)
    node = next((n for n in t.runtimes() if n.index == node_index), None)
    since = (node_index, current_event(t, node) if node else 0, time.perf_counter())
    S.quiet += 1
    try:
        step_over_stop_breakpoint()
        for _ in range(10000000):
            gdb.execute("continue", to_string=True)
            if not live():
                raise gdb.GdbError("reprise: the program ended without reaching the target (the trace's end?)")
            if _signal_stop:
                break
            t = Table()
            if t["stop_reason"] == STOP_BREAK_AT:
                continue  # the program's own --break-at, met again after a restart: not this command's target
            if t["stop_reason"] != STOP_CHECKPOINT:
                break
            key = (t["stopped_node"], t["stopped_event"])
            if S.checkpoint_auto and since[0] == key[0] and key[1] > since[1]:
                elapsed = time.perf_counter() - since[2]
                if elapsed > 0:
                    S.checkpoint_interval = auto_interval((key[1] - since[1]) / elapsed)
                    t.write("checkpoint_every", S.checkpoint_interval)
            if S.checkpoint_interval and checkpoint_at(*key) is None:
                take_checkpoint(*key)
            since = (key[0], key[1], time.perf_counter())  # the fork's own time not counted
            step_over_stop_breakpoint()  # the registers were set by hand: gdb would report this stop again
    finally:
        S.quiet -= 1
        if live():
            disarm()


def remember_node_names(table):
    """Keeps the nodes' names: once the program has exited there is no table to read them from."""
    try:
        S.node_names.update((n.index, n.name) for n in table.runtimes())
    except (gdb.GdbError, gdb.error, gdb.MemoryError):
        pass


def checkpoint_text(cid, node_index, event, table=None):
    """`checkpoint ID: node NAME event E`: how every command shows a checkpoint."""
    if table is not None:
        remember_node_names(table)
    return "checkpoint %d: node %s event %d" % (cid, S.node_names.get(node_index, str(node_index)), event)


def restart_checkpoint(cp):
    """Goes to checkpoint cp (node, event, id) and forks it again so that it stays usable;
    the process left behind goes."""
    global _signal_stop
    _signal_stop = False
    left = gdb.selected_inferior().num
    S.checkpoints.remove(cp)
    S.quiet += 1
    try:
        with silenced():
            restore_checkpoint(cp[2])
            # An attached process has neither the arguments nor the environment: a later `run` needs them.
            if S.args is not None:
                gdb.execute("set args %s" % S.args, to_string=True)
            gdb.execute("set environment REPRISE_DEBUGGER=1", to_string=True)
            forget_inferior(left)
        disarm()  # the targets armed when it was taken: a later `continue` must not stop at them
    finally:
        S.quiet -= 1
    _task.clear()
    again = take_checkpoint(cp[0], cp[1])
    print("[reprise] back to %s (kept as checkpoint %d)" % (checkpoint_text(cp[2], cp[0], cp[1], Table()), again))


def restart_from(node_index, target):
    """From the latest checkpoint at or before `target` that can be restored, else from the start;
    a checkpoint that cannot be (its process gone, or not attachable) is dropped, saying so."""
    for _ in range(len(S.checkpoints) + 1):
        cp = best_checkpoint(node_index, target)
        if cp is None:
            break
        try:
            restart_checkpoint(cp)
            return
        except gdb.GdbError as e:
            print("%s; dropped, going on from an earlier checkpoint or the start" % e)
    start_program()


def checkpoint_at(node_index, event):
    """The live checkpoint at node:event, or None."""
    alive = checkpoint_ids()
    return next((c for c in S.checkpoints if (c[0], c[1]) == (node_index, event) and c[2] in alive), None)


def best_checkpoint(node_index, target):
    alive = checkpoint_ids()
    usable = [c for c in S.checkpoints if c[0] == node_index and c[1] <= target and c[2] in alive]
    return max(usable, key=lambda c: c[1]) if usable else None


def goto(node_index, target):
    """To just before event `target` of node `node_index`: forward from here, or from the latest
    checkpoint at or before it, or from the start."""
    if target_kind() == "core":
        require_live()
    restarted = False
    if target_kind() is None:
        # Not running (or ended): from a checkpoint, else from the start.
        restart_from(node_index, target)
        restarted = True
    t = Table()
    nodes = nodes_or_error(t)
    node = next((n for n in nodes if n.index == node_index), None)
    if node is None:
        raise gdb.GdbError("reprise: no node %d" % node_index)
    check_in_range(node, target)
    now = current_event(t, node)
    if target == now and (restarted or t["stop_reason"] != 0) and not fatal_signal():
        return
    if target < now or (fatal_signal() and not restarted):
        # Back (or away from a signal, which the program cannot survive): restart, then forward.
        restart_from(node_index, target)
        t = Table()
        node = next(n for n in t.runtimes() if n.index == node_index)
        now = current_event(t, node)
        if now == target:
            return
    # A checkpoint a little before the target, so that going back from there is quick.
    landing = target - S.landing_distance
    if S.checkpoint_interval and landing > now and not any(
            c[0] == node_index and landing <= c[1] <= target for c in S.checkpoints):
        run_forward(node_index, event=landing)
        t = Table()
        if t["stop_reason"] == STOP_END or not live():
            return
        take_checkpoint(node_index, landing)
    run_forward(node_index, event=target)


def check_in_range(node, target):
    """Refuses an event past the node's trace when the table knows how many it has (a joint replay's
    plan counted them), instead of replaying to the node's end to find out."""
    total = node.events_total
    if total and target >= total:
        raise gdb.GdbError("reprise: node %d %s has %d events, #0 to #%d: event %d is past its trace's end"
                           % (node.index, node.name, total, total - 1, target))


def trace_end(table, node_index):
    """The event number the process is stopped at when that is node `node_index`'s trace's end
    (stop reason end: the program would exit, or that node stop, if it went on), else None."""
    if live() and table["stop_reason"] == STOP_END:
        if table["stopped_node"] == node_index:
            return table["stopped_event"]
        if table.first_line("stop_text").startswith(JOINT_END):
            # Every node is done: any node would run the process to its exit.
            node = next((n for n in table.runtimes() if n.index == node_index), None)
            return current_event(table, node) if node is not None else table["stopped_event"]
    return None


def node_name(table, node_index):
    return next((n.name for n in table.runtimes() if n.index == node_index), str(node_index))


def finish_line():
    """The stop line after a command that ran the program, and a GdbError for a target not reached."""
    if not live():
        raise gdb.GdbError("reprise: the program is no longer running")
    if _signal_stop:
        return
    t = Table()
    print(stop_line())
    if t["stop_reason"] == STOP_END:
        raise gdb.GdbError("reprise: the replay ran into the trace's end (event %d) before the target"
                           % t["stopped_event"])


def parse_target_offline(spec):
    """N, NODE:N (a node index) or a bookmark while no process runs."""
    if spec in S.bookmarks:
        return S.bookmarks[spec]
    node, ev = (S.selected_node or 0), spec
    if ":" in spec:
        name, ev = spec.rsplit(":", 1)
        if not name.isdigit():
            raise gdb.GdbError("reprise: with no process running, name the node by its index (NODE:N)")
        node = int(name)
    try:
        return node, int(ev, 0)
    except ValueError:
        raise gdb.GdbError("reprise: %r is neither an event number, NODE:N nor a bookmark" % spec)


def parse_target(table, nodes, spec):
    """N, NODE:N or a bookmark -> (node index, event)."""
    if spec in S.bookmarks:
        return S.bookmarks[spec]
    node = node_of(table, nodes)
    ev = spec
    if ":" in spec:
        name, ev = spec.rsplit(":", 1)
        node = find_node(nodes, name)
    try:
        n = int(ev, 0)
    except ValueError:
        raise gdb.GdbError("reprise: %r is neither an event number, NODE:N nor a bookmark (bookmarks: %s)"
                           % (spec, ", ".join(sorted(S.bookmarks)) or "none"))
    if n < 0:
        raise gdb.GdbError("reprise: event numbers start at 0")
    return node.index, n


# --- the commands ----------------------------------------------------------------------------------

class Prefix(gdb.Command):
    """reprise: tasks, events, virtual time and going back in a reprise replay. `help reprise` lists the commands."""

    def __init__(self):
        super().__init__("reprise", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, True)


class Sub(gdb.Command):
    def __init__(self, name):
        super().__init__("reprise " + name, gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        try:
            if hasattr(self, "run_raw"):
                self.run_raw(arg)
            else:
                self.run(gdb.string_to_argv(arg))
        except gdb.GdbError:
            raise
        except gdb.MemoryError as e:
            raise gdb.GdbError("reprise: cannot read the program's memory (%s)" % e)
        except gdb.error as e:
            raise gdb.GdbError("reprise: %s" % e)


class InfoCmd(Sub):
    """reprise info: the debug table's version, the runtime's and Boost's versions, the arch, the nodes."""

    def __init__(self):
        super().__init__("info")

    def run(self, argv):
        t = Table()
        nodes = t.runtimes()
        known = "unknown"
        try:
            lay = fcontext_layout(t.arch, t["boost_version"])
            known = "known" + ("" if lay["verified"] else " (from the source, not verified here)")
        except gdb.GdbError:
            pass
        print("reprise debug table version %d (extension: %d), runtime %s" % (
            t["version"], TABLE_VERSION, read_cstring(t["runtime_version"], 64)))
        print("Boost %s (fcontext layout %s), arch %s" % (boost_version_text(t["boost_version"]), known, t.arch))
        # Each node's state as the table has it now (read at every call: nothing is kept between commands).
        print("nodes: %d" % len(nodes))
        for n in nodes:
            print("  %d %s (%s): %s" % (n.index, n.name, "replaying" if n.replaying else "live", node_state(t, n)))
        alive = checkpoint_ids()
        S.checkpoints = [c for c in S.checkpoints if c[2] in alive]
        attached = "a core file" if core_loaded() else ("yes" if t["attached"] else "no")
        print("attached: %s; checkpoint interval %s; %d checkpoint(s)" % (
            attached, interval_text(), len(S.checkpoints)))


class NodesCmd(Sub):
    """reprise nodes: the nodes (index, name, trace, next event, virtual time); '>' marks the selected one."""

    def __init__(self):
        super().__init__("nodes")

    def run(self, argv):
        t = Table()
        nodes = nodes_or_error(t)
        sel = node_of(t, nodes)
        for n in nodes:
            event = current_event(t, n)
            print("%s %d %-12s event %-10s virtual %s s  %s%s" % (
                ">" if n is sel else " ", n.index, n.name,
                "%d/%d" % (event, n.events_total) if n.events_total else event, seconds(n.virtual_ns()),
                n.trace or "(live)", "" if n.started() else "  (not started yet)"))


class NodeCmd(Sub):
    """reprise node N|NAME: the node the other commands mean."""

    def __init__(self):
        super().__init__("node")

    def run(self, argv):
        t = Table()
        nodes = nodes_or_error(t)
        if not argv:
            n = node_of(t, nodes)
            print("node %d %s" % (n.index, n.name))
            return
        n = find_node(nodes, argv[0])
        S.selected_node = n.index
        _task.clear()
        print("node %d %s selected" % (n.index, n.name))


class TasksCmd(Sub):
    """reprise tasks: the selected node's tasks in spawn order: id, name, state, what each waits on, until when."""

    def __init__(self):
        super().__init__("tasks")

    def run(self, argv):
        t = Table()
        node = node_of(t, nodes_or_error(t))
        text, count, took = format_tasks(t, node, t.runtimes())
        print(text)
        if argv and argv[0] == "--time":
            print("listed %d task(s) in %.3f s" % (count, took))


class TaskCmd(Sub):
    """reprise task ID | off: show task ID's stack through bt/frame/info locals (frame #0 stays the thread's)."""

    def __init__(self):
        super().__init__("task")

    def run(self, argv):
        if _task is None:
            raise gdb.GdbError("reprise: this gdb has no Python unwinder API (gdb.unwinder)")
        if not argv:
            raise gdb.GdbError("reprise: usage: reprise task ID | off")
        if argv[0] == "off":
            _task.clear()
            print("task stacks off: the thread's own frames")
            return
        try:
            want = int(argv[0].lstrip("#"), 0)
        except ValueError:
            raise gdb.GdbError("reprise: usage: reprise task ID | off (an id from `reprise tasks`)")
        t = Table()
        node = node_of(t, nodes_or_error(t))
        task = next((x for x in read_tasks(t, node) if x.id == want), None)
        if task is None:
            raise gdb.GdbError("reprise: no task %d on node %s (see `reprise tasks`)" % (want, node.name))
        states = t.names("fiber_state_names", "fiber_state_count")
        state = states[task.state] if task.state < len(states) else str(task.state)
        current = u64(node.current_fiber) if node.current_fiber else 0
        if task.addr == current or state == "running":
            raise gdb.GdbError("reprise: task %d is the running one: its stack is the thread's (`bt`)" % want)
        if state not in ("parked", "ready") or task.context == 0:
            raise gdb.GdbError("reprise: task %d is %s: it has no saved stack to show" % (want, state))
        regs = task_registers(t, task.context)
        _task.select(t.arch, regs)
        print("task %d '%s' (%s) selected: frame #0 is still the thread's; frames #1.. are the task's stack "
              "(bt, frame N, info locals). `reprise task off` restores." % (want, task.name, state))


class EventCmd(Sub):
    """reprise event: the current event number, node, virtual time, stop reason and text, trace."""

    def __init__(self):
        super().__init__("event")

    def run(self, argv):
        t = Table()
        node = node_of(t, nodes_or_error(t))
        reason = STOP_REASONS.get(t["stop_reason"], str(t["stop_reason"]))
        at_stop = t["stopped_node"] == node.index
        event = current_event(t, node)
        print("node %d %s, event %d, virtual time %s s" % (node.index, node.name, event, seconds(node.virtual_ns())))
        if _signal_stop:
            print("stopped: signal %s (the program's own, as recorded or not)" % _signal_stop)
        elif at_stop and t["stopped_event"] == event:
            print("stopped: %s (event %d): %s" % (reason, t["stopped_event"], t.text("stop_text")))
        elif at_stop:
            # Stopped elsewhere (a breakpoint of gdb's own, a step): the replay's last stop is history.
            print("not at a replay stop (a breakpoint or step of gdb's own); the replay last stopped at event %d "
                  "(%s): %s" % (t["stopped_event"], reason, t.text("stop_text")))
        print("trace: %s" % (node.trace or "(live run)"))


class GotoCmd(Sub):
    """reprise goto N | NODE:N | BOOKMARK: to just before event N is delivered (forward, or back through checkpoints)."""

    def __init__(self):
        super().__init__("goto")

    def run(self, argv):
        if len(argv) != 1:
            raise gdb.GdbError("reprise: usage: reprise goto N | NODE:N | BOOKMARK")
        if target_kind() == "core":
            require_live()
        if target_kind() is None:
            node_index, n = parse_target_offline(argv[0])
        else:
            t = Table()
            nodes = nodes_or_error(t)
            node_index, n = parse_target(t, nodes, argv[0])
            check_in_range(next(x for x in nodes if x.index == node_index), n)
            if node_index != node_of(t, nodes).index:
                print("node %d %s selected" % (node_index, node_name(t, node_index)))
        # The node a goto names is the one the later commands (back, next, tasks) mean.
        if S.selected_node != node_index:
            S.selected_node = node_index
            _task.clear()
        goto(node_index, n)
        finish_line()


CHECKPOINT_INTERVAL_MAX = (1 << 62)  # the table's field is a uint64; far past any trace


def count_argument(text, usage):
    """A non-negative integer argument (decimal or 0x...), or a usage error."""
    try:
        n = int(text, 0)
    except ValueError:
        n = -1
    if n < 0 or n > UINT64_MAX:
        raise gdb.GdbError("reprise: usage: " + usage)
    return n


class BackCmd(Sub):
    """reprise back [K]: K events back (default 1)."""

    def __init__(self):
        super().__init__("back")

    def run(self, argv):
        require_live()
        k = count_argument(argv[0], "reprise back [K] (events back, 1 or more)") if argv else 1
        if k < 1:
            raise gdb.GdbError("reprise: usage: reprise back [K] (events back, 1 or more)")
        t = Table()
        node = node_of(t, nodes_or_error(t))
        now = current_event(t, node)
        if k > now:
            raise gdb.GdbError("reprise: at event %d of node %s: %d back would be before its first event (#0); "
                               "reprise goto 0 goes there" % (now, node.name, k))
        goto(node.index, now - k)
        finish_line()


class NextCmd(Sub):
    """reprise next KIND [HANDLE]: forward to the next event of a record or wake kind (of a handle)."""

    def __init__(self):
        super().__init__("next")

    def run(self, argv):
        require_live()
        t = Table()
        records = t.names("record_kind_names", "record_kind_count")
        wakes = t.names("wake_kind_names", "wake_kind_count")
        kinds = "record kinds: %s; wake kinds: %s" % (", ".join(r for r in records if r), ", ".join(w for w in wakes if w))
        if not argv:
            raise gdb.GdbError("reprise: usage: reprise next KIND [HANDLE]; " + kinds)
        kind = argv[0]
        # A name that is both a record kind and a wake kind (accepted, connected) stops at either.
        bits = 0
        if kind and kind in records:
            bits |= 1 << records.index(kind)
        if kind and kind in wakes:
            bits |= 1 << (16 + wakes.index(kind))
        if not bits:
            raise gdb.GdbError("reprise: unknown kind %r; %s" % (kind, kinds))
        handle = count_argument(argv[1].lstrip("#"), "reprise next KIND [HANDLE] (a handle's id)") if len(argv) > 1 else 0
        node = node_of(t, nodes_or_error(t))
        run_forward(node.index, kinds=bits, handle=handle)
        finish_line()


def c_unescape(text):
    """TEXT's bytes: typed characters as UTF-8 (as a program writes them), C escapes (\\r \\n \\t
    \\xHH \\ooo \\\\ ...) as the bytes they name. An unknown or cut escape is an error."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "" or nxt not in "\\'\"abfnrtv01234567x" or (
                    nxt == "x" and not re.match(r"[0-9a-fA-F]{2}", text[i + 2:i + 4])):
                raise gdb.GdbError("reprise: %r has an escape that is not one (at %r); the escapes are C's (\\r \\n "
                                   "\\t \\xHH ...), and a backslash is written \\\\" % (text, text[i:i + 4]))
            i += 2
        else:
            i += 1
    return codecs.escape_decode(text.encode("utf-8"))[0]


class UntilOutputCmd(Sub):
    """reprise until-output TEXT [CONN]: run until a connection's output contains TEXT (C escapes: \\r \\n)."""

    def __init__(self):
        super().__init__("until-output")

    def run_raw(self, arg):
        require_live()
        text, conn = arg.strip(), 0
        m = re.match(r"^(.*\S)\s+#?(\d+)$", text)
        if m and not (text.startswith('"') and text.endswith('"')):
            text, conn = m.group(1), int(m.group(2))
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]
        if not text:
            raise gdb.GdbError("reprise: usage: reprise until-output TEXT [CONN]")
        needle = c_unescape(text)
        if not 0 < len(needle) <= 256:
            raise gdb.GdbError("reprise: the text must have 1 to 256 bytes")
        t = Table()
        node = node_of(t, nodes_or_error(t))
        run_forward(node.index, needle=needle, handle=conn)
        finish_line()


class BookmarkCmd(Sub):
    """reprise bookmark NAME: names the current node:event (for `reprise goto NAME`)."""

    def __init__(self):
        super().__init__("bookmark")

    def run(self, argv):
        if len(argv) != 1:
            raise gdb.GdbError("reprise: usage: reprise bookmark NAME")
        try:
            int(argv[0], 0)
            numeric = True  # 12, 0x10, 0b1, 1_0: goto reads them all as numbers
        except ValueError:
            numeric = False
        if numeric or ":" in argv[0]:
            # `reprise goto NAME` would take it for an event (N, NODE:N): a name is never one.
            raise gdb.GdbError("reprise: a bookmark's name is not a number and has no ':' (goto would read %r as an "
                               "event): name it with a word, e.g. reprise bookmark before-%s"
                               % (argv[0], argv[0].replace(":", "-")))
        t = Table()
        node = node_of(t, nodes_or_error(t))
        S.bookmarks[argv[0]] = (node.index, current_event(t, node))
        print("bookmark %s = %s:%d" % (argv[0], node.name, S.bookmarks[argv[0]][1]))


class BookmarksCmd(Sub):
    """reprise bookmarks: the bookmarks (name -> node:event)."""

    def __init__(self):
        super().__init__("bookmarks")

    def run(self, argv):
        names = {}
        try:
            names = {n.index: n.name for n in Table().runtimes()}
        except gdb.GdbError:
            pass
        if not S.bookmarks:
            print("no bookmarks (reprise bookmark NAME)")
        for name, (node, ev) in sorted(S.bookmarks.items(), key=lambda kv: kv[1]):
            print("%s -> %s:%d" % (name, names.get(node, node), ev))


class CheckpointCmd(Sub):
    """reprise checkpoint: a checkpoint at the current event (a fork of the process; see take_checkpoint)."""

    def __init__(self):
        super().__init__("checkpoint")

    def run(self, argv):
        require_live()
        t = Table()
        node = node_of(t, nodes_or_error(t))
        event = current_event(t, node)
        try:
            at_stop = gdb.newest_frame().name() == "reprise_debug_stop"
        except gdb.error:
            at_stop = False
        held = checkpoint_at(node.index, event)
        if held is not None and at_stop:
            # A second fork of the same stop would restart to the same place: one is enough. (After a
            # gdb step inside the event the program is elsewhere: that one is taken.)
            print(checkpoint_text(held[2], node.index, event, t) + " already holds this event (none taken)")
            return
        cid = take_checkpoint(node.index, event)
        print(checkpoint_text(cid, node.index, event, t) + " taken")


class CheckpointsCmd(Sub):
    """reprise checkpoints: the checkpoints `reprise goto` and `back` restart from."""

    def __init__(self):
        super().__init__("checkpoints")

    def run(self, argv):
        alive = checkpoint_ids()
        S.checkpoints = [c for c in S.checkpoints if c[2] in alive]
        if not S.checkpoints:
            print("no checkpoints (interval %s)" % interval_text())
        table = None
        if target_kind() is not None:
            try:
                table = Table()
            except gdb.GdbError:
                pass
        for node, ev, cid in sorted(S.checkpoints, key=lambda c: (c[0], c[1])):
            print(checkpoint_text(cid, node, ev, table))


def interval_text():
    if S.checkpoint_auto:
        return "auto (about %g s of replay apart: %d events now)" % (CHECKPOINT_AUTO_S, S.checkpoint_interval)
    if S.checkpoint_interval == 0:
        return "0 (none)"
    return "%d event%s" % (S.checkpoint_interval, "" if S.checkpoint_interval == 1 else "s")


class CheckpointIntervalCmd(Sub):
    """reprise checkpoint-interval [N|auto]: stop every N events going forward to leave a checkpoint (0: never;
    auto, the default: about a second of replay apart)."""

    def __init__(self):
        super().__init__("checkpoint-interval")

    def run(self, argv):
        usage = ("reprise: usage: reprise checkpoint-interval N|auto (events, 0 or more; 0: none; auto: about a "
                 "second of replay apart)")
        if len(argv) > 1:
            raise gdb.GdbError(usage)
        if argv and argv[0] == "auto":
            S.checkpoint_auto = True
            S.checkpoint_interval = CHECKPOINT_AUTO_START  # from there it follows the replay's speed
        elif argv:
            try:
                n = int(argv[0])
            except ValueError:
                n = -1
            if n < 0 or n > CHECKPOINT_INTERVAL_MAX:
                raise gdb.GdbError(usage)
            S.checkpoint_interval = n
            S.checkpoint_auto = False
        print("checkpoint interval: %s" % interval_text())
        if 0 < S.checkpoint_interval < CHECKPOINT_AUTO_MIN and not S.checkpoint_auto:
            print("note: a checkpoint is a fork that costs about 0.1 s under gdb: one every %d events may cost far "
                  "more than the replay itself (auto keeps them about a second of replay apart)" % S.checkpoint_interval)


def install():
    global _stop_bp
    gdb.execute("set environment REPRISE_DEBUGGER=1")
    # Checkpoints are forks that gdb holds (the few most recent ones; the others go on alone, parked:
    # take_checkpoint); gdb stays with the replaying process.
    gdb.execute("set detach-on-fork off")
    gdb.execute("set follow-fork-mode parent")
    if _stop_bp is None:
        # A pending breakpoint until the program (or its shared library) is loaded.
        gdb.execute("set breakpoint pending on", to_string=True)
        _stop_bp = StopBreakpoint()
    gdb.events.stop.connect(on_stop)
    gdb.events.exited.connect(on_exit)
    gdb.events.cont.connect(on_cont)
    if hasattr(gdb.events, "gdb_exiting"):
        gdb.events.gdb_exiting.connect(delete_all_checkpoints)
    atexit.register(delete_all_checkpoints)
    if _task is not None:
        gdb.unwinder.register_unwinder(None, _task, replace=True)
    if hasattr(gdb, "frame_filters") and FrameDecorator is not None:
        gdb.frame_filters["reprise-fiber-entry"] = FiberEntryFilter()
    Prefix()
    for cls in (InfoCmd, NodesCmd, NodeCmd, TasksCmd, TaskCmd, EventCmd, GotoCmd, BackCmd, NextCmd, UntilOutputCmd,
                BookmarkCmd, BookmarksCmd, CheckpointCmd, CheckpointsCmd, CheckpointIntervalCmd):
        cls()


def load_printers():
    """The pretty-printers of the public types (reprise_printers.py, installed beside this file)."""
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        import reprise_printers
    except ImportError as e:
        print("reprise: the pretty-printers (reprise_printers.py beside %s) are missing: %s" % (__file__, e))
        return
    reprise_printers.register()


install()
load_printers()
