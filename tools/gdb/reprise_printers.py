# reprise_printers: gdb pretty-printers for reprise's public types (Result, Error, Address, Duration, Instant, Connection, Task).
"""Pretty-printers for the types a program on reprise holds in its locals.

The gdb extension (reprise_gdb.py) imports this module and calls register(); it also works alone:
    (gdb) source tools/gdb/reprise_printers.py
Printers read memory only (no call into the program), so they work on a core file too.

    reprise::Result<T>    ok = {value = ...} | error = {error = timed_out}
    reprise::Error        io (EACCES 13) | timed_out
    reprise::Address      127.0.0.1:6379 | [::1]:80 | (empty)
    reprise::Duration     1.5 s (1500000000 ns)         (std::chrono::nanoseconds)
    reprise::Instant      loop time 12.000000250 s       (time_point<reprise::MonoClock>)
    reprise::WallTime     2026-12-01T02:51:45.519797730Z (time_point<system_clock, nanoseconds>)
    reprise::Deadline     never | at loop time 3.000000000 s
    reprise::Connection   connection 5 127.0.0.1:6379 <- 127.0.0.1:57466 [eof] | (none)
    reprise::Listener     listener 3 127.0.0.1:6379 | (none)
    reprise::Task<T>      task 7 'worker' not finished | finished = {value = 3} | (none)
"""
import datetime
import errno
import ipaddress
import struct

import gdb
import gdb.printing

NS_PER_S = 1_000_000_000
# Bounds on what a printer reads from a possibly damaged process.
TASK_NAME_BYTES_MAX = 256
SOCKADDR_BYTES = 28  # sizeof(sockaddr_in6), the largest member of Address's storage


def _errno_name(n):
    return errno.errorcode.get(n, f"errno {n}")


def _enum_name(value):
    """The enumerator's name without its scope ("reprise::Errc::timed_out" -> "timed_out")."""
    return str(value).rsplit("::", 1)[-1]


def _seconds(ns):
    sign = "-" if ns < 0 else ""
    m = abs(ns)
    return f"{sign}{m // NS_PER_S}.{m % NS_PER_S:09d}"


def _duration_text(ns):
    """A duration in the largest unit that keeps it exact enough to read, and in ns."""
    m = abs(ns)
    if m >= NS_PER_S:
        short = f"{ns / NS_PER_S:g} s"
    elif m >= 1_000_000:
        short = f"{ns / 1_000_000:g} ms"
    elif m >= 1_000:
        short = f"{ns / 1_000:g} us"
    else:
        return f"{ns} ns"
    return f"{short} ({ns} ns)"


def _deref_or_none(pointer):
    """The object a pointer points to, or None for null (or a type gdb knows nothing of)."""
    try:
        if int(pointer) == 0:
            return None
        return pointer.dereference()
    except gdb.error:
        return None


def _shared_ptr_target(sp):
    """The object a libstdc++ std::shared_ptr holds, or None."""
    try:
        return _deref_or_none(sp["_M_ptr"])
    except gdb.error:
        return None


def _string(value):
    """A std::string's text, bounded."""
    try:
        return value.format_string(max_elements=TASK_NAME_BYTES_MAX).strip('"') if value.type.code != gdb.TYPE_CODE_PTR \
            else value.string(length=TASK_NAME_BYTES_MAX)
    except (gdb.error, UnicodeDecodeError):
        return "?"


def _variant_member(variant, index):
    """The index-th alternative of a libstdc++ std::variant, as that type."""
    alternative = variant.type.strip_typedefs().template_argument(index)
    union = variant["_M_u"]
    for _ in range(index):
        union = union["_M_rest"]
    return union["_M_first"]["_M_storage"].address.cast(alternative.pointer()).dereference()


def _address_text(value):
    """An Address (or its sockaddr storage) as "HOST:PORT"."""
    try:
        storage = value["storage_"]
        raw = bytes(gdb.selected_inferior().read_memory(storage.address, SOCKADDR_BYTES))
    except (gdb.error, gdb.MemoryError):
        return "(unreadable)"
    family = struct.unpack_from("<H", raw, 0)[0]
    port = struct.unpack_from(">H", raw, 2)[0]
    if family == 0:
        return "(empty)"
    if family == 2:  # AF_INET
        return f"{ipaddress.IPv4Address(raw[4:8])}:{port}"
    if family == 10:  # AF_INET6
        return f"[{ipaddress.IPv6Address(raw[8:24])}]:{port}"
    return f"(address family {family})"


class ErrorPrinter:
    """reprise::Error: the code's name, and the errno beside it when there is one."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        code = _enum_name(self.val["code"])
        n = int(self.val["sys_errno"])
        return f"{code} ({_errno_name(n)} {n})" if n else code


class AddressPrinter:
    """reprise::Address: HOST:PORT (IPv6 in brackets), or (empty)."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        return _address_text(self.val)


class ResultPrinter:
    """reprise::Result<T>: ok with its value, or error with its Error."""

    def __init__(self, val):
        self.val = val
        self.void = "Result<void>" in str(self.val.type.strip_typedefs())

    def _state(self):
        if self.void:
            ok = bool(self.val["ok_"])
            return ("ok", None) if ok else ("error", self.val["error_"])
        variant = self.val["v_"]
        index = int(variant["_M_index"])
        if index == 0:
            return "ok", _variant_member(variant, 0)
        if index == 1:
            return "error", _variant_member(variant, 1)
        return "valueless", None

    def to_string(self):
        return self._state()[0]

    def children(self):
        what, inner = self._state()
        if inner is not None:
            yield ("value" if what == "ok" else "error"), inner


class DurationPrinter:
    """reprise::Duration (std::chrono::nanoseconds)."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        return _duration_text(int(self.val["__r"]))


class InstantPrinter:
    """reprise::Instant: a point of the runtime's loop (monotonic) time; in replay, the recorded one."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        return f"loop time {_seconds(int(self.val['__d']['__r']))} s"


class WallTimePrinter:
    """reprise::WallTime: nanoseconds since the Unix epoch, shown as UTC."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        ns = int(self.val["__d"]["__r"])
        try:
            when = datetime.datetime.fromtimestamp(ns // NS_PER_S, datetime.timezone.utc)
            return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % NS_PER_S:09d}Z"
        except (OverflowError, OSError, ValueError):
            return f"{ns} ns since the epoch"


class DeadlinePrinter:
    """reprise::Deadline: never, or the loop time it expires at."""

    INT64_MAX = (1 << 63) - 1

    def __init__(self, val):
        self.val = val

    def to_string(self):
        at = int(self.val["at_ns_"])
        return "never" if at == self.INT64_MAX else f"at loop time {_seconds(at)} s"


class ConnectionPrinter:
    """reprise::Connection: its handle id (as traces name it), both addresses and how it stands."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        state = _deref_or_none(self.val["state_"])
        if state is None:
            return "(none)"
        try:
            text = f"connection {int(state['id'])} {_address_text(state['local'])} <- {_address_text(state['peer'])}"
            flags = [name for name in ("connecting", "eof", "write_shut", "closed", "read_paused") if bool(state[name])]
            error = state["error"]
            if bool(error["_M_payload"]["_M_engaged"]):
                flags.append("error " + ErrorPrinter(error["_M_payload"]["_M_payload"]["_M_value"]).to_string())
            return text + (f" [{', '.join(flags)}]" if flags else "")
        except gdb.error:
            return f"connection at {self.val['state_']} (no debug information for its state)"


class ListenerPrinter:
    """reprise::Listener: its handle id and address."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        state = _deref_or_none(self.val["state_"])
        if state is None:
            return "(none)"
        try:
            closed = " [closed]" if bool(state["closed"]) else ""
            return f"listener {int(state['id'])} {_address_text(state['local'])}{closed}"
        except gdb.error:
            return f"listener at {self.val['state_']} (no debug information for its state)"


class TaskPrinter:
    """reprise::Task<T>: the task's id and name, whether it runs or finished (with its value)."""

    def __init__(self, val):
        self.val = val

    def _core(self):
        state = _shared_ptr_target(self.val["state_"])
        if state is None:
            return None, None
        core = state.cast(state.type.fields()[0].type) if state.type.fields() and state.type.fields()[0].is_base_class \
            else state
        return state, core

    def to_string(self):
        state, core = self._core()
        if core is None:
            return "(none)"
        name = _string(core["name"])
        if bool(core["finished"]):
            how = "finished"
            try:
                if int(core["exception"]["_M_exception_object"]) != 0:
                    how = "finished by an exception"
            except gdb.error:
                pass
        else:
            how = "not finished" if int(core["fiber"]) != 0 else "not started"
        detached = ", detached" if bool(core["detached"]) else ""
        return f"task {int(core['id'])} '{name}' {how}{detached}"

    def children(self):
        state, core = self._core()
        if state is None or not bool(core["finished"]):
            return
        try:
            value = state["value"]
        except gdb.error:
            return  # Task<void>
        payload = value["_M_payload"]
        if bool(payload["_M_engaged"]):
            yield "value", payload["_M_payload"]["_M_value"]


class Printers(gdb.printing.RegexpCollectionPrettyPrinter):
    """The collection, which leaves a value the compiler optimized out to gdb (`<optimized out>`):
    its fields cannot be read, and a printer's error would show as a Python exception (a backtrace
    through a frame filter prints arguments through Python)."""

    def __call__(self, val):
        try:
            if val.is_optimized_out:
                return None
        except gdb.error:
            return None
        return super().__call__(val)


def build_pretty_printer():
    pp = Printers("reprise")
    pp.add_printer("Result", r"^reprise::Result<.*>$", ResultPrinter)
    pp.add_printer("Error", r"^reprise::Error$", ErrorPrinter)
    pp.add_printer("Address", r"^reprise::Address$", AddressPrinter)
    pp.add_printer("Duration", r"^std::chrono::duration<long, std::ratio<1, 1000000000> >$", DurationPrinter)
    pp.add_printer("Instant", r"^std::chrono::time_point<reprise::MonoClock, .*>$", InstantPrinter)
    pp.add_printer("WallTime", r"^std::chrono::time_point<std::chrono::_V2::system_clock, "
                               r"std::chrono::duration<long, std::ratio<1, 1000000000> > >$", WallTimePrinter)
    pp.add_printer("Deadline", r"^reprise::Deadline$", DeadlinePrinter)
    pp.add_printer("Connection", r"^reprise::Connection$", ConnectionPrinter)
    pp.add_printer("Listener", r"^reprise::Listener$", ListenerPrinter)
    pp.add_printer("Task", r"^reprise::Task<.*>$", TaskPrinter)
    return pp


def register(objfile=None):
    """Registers the printers with objfile (None: for every program gdb debugs), replacing an earlier copy."""
    gdb.printing.register_pretty_printer(objfile, build_pretty_printer(), replace=True)


if __name__ == "__main__":  # `source reprise_printers.py` in gdb
    register()
