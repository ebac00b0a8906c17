#!/usr/bin/env python3
"""reprise-check: finds code that would make a reprise program diverge in replay.

A program recorded by reprise replays exactly only if everything it observes from the
world passes through the runtime: clock reads, I/O, randomness, threads, the process
environment. This checker reads C and C++ sources and reports every place that goes
around the runtime, as `path:line: rule: what` lines an editor can jump to.

    reprise-check src include          # check a project's own folders (or files)
    reprise-check --list-rules         # what each rule catches and what to use instead

A line may opt out with a comment on the line itself (or alone on the line above):

    auto pid = ::getpid();  // reprise-allow: env because the pid only names a log file

The reason is required. `--allow-dir DIR[=RULE,...]` exempts a folder (or a file) from
every rule, or from the rules listed. Build folders (build*, anything holding a
build.ninja, CMakeCache.txt or meson-private) and hidden folders are skipped.

Exit status: 0 when clean, 1 when something is reported, 2 on bad usage.

The same script checks reprise's own tree with `--self [ROOT]`: there each rule has its
homes (the clock in clock/, I/O in io/ and record/, ...), where it does not apply, and one more
rule holds, `layering`: a folder includes only its own headers and those of the folders before
it (runtime, clock, io, record, replay, sim), so the folders' include graph has no cycle.
"""
from __future__ import annotations

import argparse
import bisect
import os
import pathlib
import posixpath
import re
import sys
from dataclasses import dataclass, field

SOURCE_SUFFIXES = {".cpp", ".cc", ".cxx", ".c++", ".c", ".hpp", ".hh", ".hxx", ".h", ".ipp", ".inl", ".tpp"}

# --- the rules -----------------------------------------------------------------------------------


@dataclass
class Rule:
    name: str
    what: str           # what a violation does (the message on each report)
    use: str            # what to use instead, in short (on each report)
    instead: str        # what to use instead (for --list-rules and the docs)
    catches: str        # what the rule looks for (for --list-rules and the docs)
    # Free (non-member) calls: name -> arities that make an unqualified call the C/POSIX one
    # (None: any). A call qualified with `::` or `std::` is always reported.
    calls: dict = field(default_factory=dict)
    # Calls reported only with a `::` qualifier or unqualified (never std::NAME or X::NAME).
    global_calls: dict = field(default_factory=dict)
    # Regular expressions over the code (comments and string literals blanked).
    patterns: list = field(default_factory=list)
    # Regular expressions over the contents of string literals.
    strings: list = field(default_factory=list)
    # Checked in reprise's own tree only (--self), by its own code rather than by scan().
    self_only: bool = False


CLOCK_TYPES = r"(?:steady_clock|system_clock|high_resolution_clock|utc_clock|tai_clock|gps_clock|file_clock)"

RULES = [
    Rule(
        "clock",
        "reads a clock the replay cannot warp",
        "use now(), wall_now() or precise_now()",
        "now() (the tick's loop time), wall_now(), precise_now() (a recorded read), timers and deadlines",
        "std::chrono::steady_clock/system_clock/high_resolution_clock::now() (also through a `using` "
        "alias or a time_point's ::clock), time(), clock(), clock_gettime, gettimeofday, timespec_get, "
        "localtime, rdtsc",
        calls={"time": {1}, "clock": {0}, "clock_gettime": None, "gettimeofday": None, "timespec_get": None,
               "ftime": None, "localtime": None, "localtime_r": None, "__rdtsc": None, "__rdtscp": None,
               "__builtin_ia32_rdtsc": None},
        patterns=[re.compile(r"(?:\bstd\s*::\s*)?(?:\bchrono\s*::\s*)?\b" + CLOCK_TYPES + r"\s*::\s*now\s*\("),
                  re.compile(r"::\s*clock\s*::\s*now\s*\(")],
        strings=[re.compile(r"\brdtscp?\b")],
    ),
    Rule(
        "io",
        "does socket or file I/O the runtime does not see",
        "use reprise's TCP (io/tcp.hpp) or file (io/file.hpp) API",
        "listen, Listener::accept, connect, Connection::read_some/read_until/write (io/tcp.hpp); "
        "read_file, write_file_atomic, append_file, File (io/file.hpp)",
        "free calls of read/write/pread/pwrite/readv/writev/send/recv/sendto/recvfrom/sendmsg/recvmsg/"
        "accept/accept4/connect/socket/open/openat (with `::`, or unqualified with the POSIX number of "
        "arguments: member calls such as conn.read(...) are fine), ::bind/::listen/::fsync/::rename/"
        "::unlink/::ftruncate, fopen, std::fstream/ifstream/ofstream",
        global_calls={"read": {3}, "write": {3}, "pread": {4}, "pwrite": {4}, "readv": {3}, "writev": {3},
                      "send": {4}, "recv": {4}, "sendto": {6}, "recvfrom": {6}, "sendmsg": {3},
                      "recvmsg": {3}, "accept": {3}, "accept4": {4}, "connect": {3}, "socket": {3},
                      "open": {2, 3}, "openat": {3, 4},
                      # only with `::` (std::bind and reprise's listen share the names)
                      "bind": set(), "listen": set(), "fsync": set(), "fdatasync": set(), "rename": set(),
                      "unlink": set(), "ftruncate": set()},
        calls={"fopen": None, "fdopen": None, "freopen": None, "popen": None},
        patterns=[re.compile(r"\b(?:std\s*::\s*)?basic_[io]?fstream\b|\bstd\s*::\s*[io]?fstream\b")],
    ),
    Rule(
        "random",
        "draws randomness outside the runtime's seeded PRNG",
        "use random_u64(), random_below() or secure_random()",
        "random_u64(), random_below(n) (seeded by --seed, in the trace header), secure_random(n) (recorded)",
        "rand, srand, random(), srandom, drand48 and friends, getrandom, arc4random, std::random_device, "
        "std::mt19937 and the other standard engines, /dev/random and /dev/urandom",
        calls={"rand": {0}, "srand": {1}, "random": {0}, "srandom": {1}, "drand48": {0}, "lrand48": {0},
               "mrand48": {0}, "srand48": {1}, "getrandom": None, "getentropy": None, "rand_r": {1}},
        patterns=[re.compile(r"\brandom_device\b|\bmt19937(?:_64)?\b|\bminstd_rand0?\b|\branlux\w+\b|"
                             r"\bknuth_b\b|\bdefault_random_engine\b|\barc4random\w*")],
        strings=[re.compile(r"/dev/u?random")],
    ),
    Rule(
        "thread",
        "starts a thread of its own",
        "use spawn() or offload()",
        "spawn(name, fn) for a task, offload(fn) for blocking work (its result is a recorded wake-up)",
        "std::thread, std::jthread, std::async, pthread_create",
        calls={"pthread_create": None},
        patterns=[re.compile(r"\bstd\s*::\s*j?thread\b(?!\s*::\s*(?:id|hardware_concurrency)\b)|"
                             r"\bstd\s*::\s*async\b")],
    ),
    Rule(
        "env",
        "reads the process environment",
        "use env(name) or input(name, produce)",
        "env(name) (recorded once, replayed); input(\"name\", produce) for a pid or a host name",
        "getenv, secure_getenv, std::getenv, getpid, getppid, gettid, gethostname",
        calls={"getenv": None, "secure_getenv": None, "getpid": None, "getppid": None, "gettid": None,
               "gethostname": None},
    ),
]
# reprise's own folders, each built only on those before it: the core, time, the world's I/O,
# recording, replay, simulation. A folder includes its own headers and those of earlier folders,
# never a later folder's (internal/ ones included), so the folders' include graph has no cycle.
LAYERS = ["runtime", "clock", "io", "record", "replay", "sim"]
# The one exception: the umbrella header is the whole public API in one include, for programs,
# so it includes every folder's public headers. The library's own code never includes it (the
# rule reports a folder that does, as if it included the folders the umbrella does).
LAYERING_EXCEPTIONS = {"runtime/reprise.hpp"}
LAYERING_WHAT = f"may not include a later folder (order {', '.join(LAYERS)})"

RULES.append(Rule(
    "layering",
    LAYERING_WHAT,
    "move what both folders need down to the earlier one, or forward-declare it",
    "move a type both folders need down to the earlier folder (keep a forwarding header at the old "
    "public path), forward-declare what is only named, or define the code that needs the later "
    "folder's types in that folder",
    "in reprise's own tree (--self) only: #include <reprise/DIR/...> or \"reprise/DIR/...\" (or a "
    "relative path into DIR) from a file of an earlier folder of runtime, clock, io, record, replay, "
    "sim, internal/ headers included. runtime/reprise.hpp, the umbrella header of the whole public "
    "API, is the one exception. No line may opt out: a cycle is fixed, not allowed",
    self_only=True,
))
RULE_NAMES = [r.name for r in RULES]

# Homes of the rules in reprise's own tree (--self): the code that implements the runtime's
# side of each rule. Folders end with '/'.
SELF_FOLDERS = ["runtime", "clock", "io", "record", "replay", "sim", "tools", "examples"]
SELF_HOMES = {
    "clock": ["clock/"],
    "io": ["io/", "record/"],
    "random": ["runtime/os_random.cpp", "runtime/internal/os_random.hpp", "runtime/internal/prng.hpp"],
    "thread": ["io/offload_pool.cpp", "io/internal/offload_pool.hpp", "record/"],
    "env": ["io/input.cpp"],
}

# --- reading C++ -----------------------------------------------------------------------------------


INCLUDE = re.compile(r"#\s*include\b[^\n]*")


def strip_code(text: str, keep_includes: bool = False):
    """Blanks comments and the contents of string and character literals (newlines kept, so
    offsets and line numbers stay), and #include lines (unless `keep_includes`: then they are
    left as they are). Returns (code, [(offset, literal)])."""
    out = list(text)
    literals = []
    n = len(text)
    i = 0
    line_start = True  # only whitespace since the last newline

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if c == "\n":
            line_start = True
            i += 1
            continue
        if line_start and c == "#":
            m = INCLUDE.match(text, i)
            if m:
                if not keep_includes:
                    blank(i, m.end())
                i = m.end()
                continue
        if not c.isspace():
            line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
            continue
        if c == '"':
            # raw string: R"delim( ... )delim" (with an optional u8/u/U/L prefix)
            m = re.search(r"(?:\b|(?<=[^A-Za-z0-9_]))(?:u8|u|U|L)?R$", text[max(0, i - 3):i])
            if m:
                close = text.find("(", i)
                delim = text[i + 1:close] if close >= 0 else ""
                if close >= 0 and len(delim) <= 16 and not re.search(r"[\s()\\]", delim):
                    end = text.find(")" + delim + '"', close)
                    end = n if end < 0 else end
                    literals.append((i + 1, text[close + 1:end]))
                    blank(i + 1, end + len(delim) + 1)
                    i = min(n, end + len(delim) + 2)
                    continue
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            literals.append((i + 1, text[i + 1:j]))
            blank(i + 1, min(j, n))
            i = j + 1
            continue
        if c == "'":
            # a digit separator (1'000'000) is not a character literal
            k = i
            while k > 0 and (text[k - 1].isalnum() or text[k - 1] in "_'."):
                k -= 1
            if k < i and text[k].isdigit():
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != "'" and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, min(j, n))
            i = j + 1
            continue
        i += 1
    return "".join(out), literals


# Identifiers after which NAME( is a call, not the declaration of a function or variable NAME.
CALL_KEYWORDS = {"return", "co_return", "co_yield", "co_await", "throw", "case", "else", "do", "and", "or",
                 "not", "xor", "bitand", "bitor", "compl", "sizeof", "decltype", "noexcept", "new", "delete"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def prev_nonspace(code: str, i: int) -> int:
    i -= 1
    while i >= 0 and code[i] in " \t\r\n":
        i -= 1
    return i


def qualification(code: str, start: int):
    """How the name at `start` is reached: 'member' (x.f, p->f), 'global' (::f), 'std' (std::f),
    'scoped' (X::f), 'decl' (the name is being declared: int f(...)), or 'free' (a plain call)."""
    p = prev_nonspace(code, start)
    if p < 0:
        return "free"
    c = code[p]
    if c == "." or (c == ">" and p > 0 and code[p - 1] == "-"):
        return "member"
    if c == ":" and p > 0 and code[p - 1] == ":":
        q = prev_nonspace(code, p - 1)
        if q >= 0 and code[q] == ">":
            return "scoped"
        if q >= 0 and (code[q].isalnum() or code[q] == "_"):
            m = IDENT.search(code, 0, q + 1)
            return "std" if m and m.group(0) == "std" else "scoped"
        return "global"
    if c.isalnum() or c == "_":
        m = IDENT.search(code, 0, p + 1)
        if m and not m.group(0)[0].isdigit() and m.group(0) not in CALL_KEYWORDS:
            return "decl"   # ssize_t read(int, void*, size_t); Duration time() const; int x(3);
        return "free"
    if c == ">" and p > 0 and not code[p - 1].isspace():
        return "decl"       # std::optional<int> read(...)   (a comparison is spaced: a > f(x))
    if c in "*&" and p > 0 and (code[p - 1].isalnum() or code[p - 1] in "_>") and code[p + 1].isspace():
        return "decl"       # char* read(...), const Foo& read(...)   (a product is spaced: a * f(x))
    return "free"


def arity(code: str, open_paren: int):
    """The number of arguments of the call whose '(' is at open_paren."""
    depth = 0
    commas = 0
    empty = True
    for k in range(open_paren + 1, min(len(code), open_paren + 4000)):
        c = code[k]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return 0 if empty else commas + 1
            depth -= 1
        elif c == "," and depth == 0:
            commas += 1
        if not c.isspace():
            empty = False
    return None


@dataclass
class Finding:
    line: int
    rule: str
    text: str      # the offending code, as a short expression
    message: str


CALL_RE_CACHE: dict = {}


def call_regex(names):
    key = tuple(sorted(names))
    if key not in CALL_RE_CACHE:
        CALL_RE_CACHE[key] = re.compile(r"\b(" + "|".join(re.escape(n) for n in key) + r")\s*\(")
    return CALL_RE_CACHE[key]


def clock_aliases(code: str):
    """Names that a `using X = ...clock;` or `typedef ...clock X;` makes a clock."""
    found = set()
    for m in re.finditer(r"\busing\s+(\w+)\s*=\s*[^;{}]*?\b" + CLOCK_TYPES + r"\s*;", code):
        found.add(m.group(1))
    for m in re.finditer(r"\btypedef\s+[^;{}]*?\b" + CLOCK_TYPES + r"\s+(\w+)\s*;", code):
        found.add(m.group(1))
    return found


def scan(text: str, rules, aliases=frozenset()):
    """Every finding in one file's text, for the given rules."""
    code, literals = strip_code(text)
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset):
        return bisect.bisect_right(starts, offset)

    def show(s):
        return re.sub(r"\s+", "", s)

    findings = []
    for rule in rules:
        seen = set()

        def add(offset, snippet):
            line = line_of(offset)
            if (line, snippet) not in seen:
                seen.add((line, snippet))
                findings.append(Finding(line, rule.name, snippet, rule.what))

        if rule.calls:
            for m in call_regex(rule.calls).finditer(code):
                name = m.group(1)
                how = qualification(code, m.start(1))
                if how in ("member", "scoped", "decl"):
                    continue
                wanted = rule.calls[name]
                if how == "free" and wanted is not None and arity(code, m.end() - 1) not in wanted:
                    continue
                prefix = {"global": "::", "std": "std::"}.get(how, "")
                add(m.start(1), f"{prefix}{name}()")
        if rule.global_calls:
            for m in call_regex(rule.global_calls).finditer(code):
                name = m.group(1)
                how = qualification(code, m.start(1))
                if how == "global" or (how == "free" and arity(code, m.end() - 1) in rule.global_calls[name]):
                    add(m.start(1), ("::" if how == "global" else "") + name + "()")
        for pattern in rule.patterns:
            for m in pattern.finditer(code):
                snippet = show(m.group(0))
                add(m.start(), snippet + ")" if snippet.endswith("(") else snippet)
        if rule.name == "clock" and aliases:
            alias_re = re.compile(r"(?<![\w:.])(?<!->)(" + "|".join(map(re.escape, sorted(aliases))) +
                                  r")\s*::\s*now\s*\(")
            for m in alias_re.finditer(code):
                add(m.start(), show(m.group(0)) + ") (an alias of a std::chrono clock)")
        for pattern in rule.strings:
            for offset, literal in literals:
                for m in pattern.finditer(literal):
                    add(offset + m.start(), f'"{m.group(0)}"')
    return findings, text.splitlines()


# --- layering (reprise's own tree) ---------------------------------------------------------------


INCLUDED = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.MULTILINE)


def layer_of(rel: str):
    """The layer (index in LAYERS) of a path relative to reprise's root, or None outside them."""
    top, slash, _ = rel.partition("/")
    return LAYERS.index(top) if slash and top in LAYERS else None


def included_path(rel: str, delim: str, name: str):
    """The path relative to reprise's root that an #include in file `rel` names: <reprise/DIR/...>
    or "reprise/DIR/...", or a quoted path relative to the including file; None for any other."""
    if name.startswith("reprise/"):
        return name[len("reprise/"):]
    if delim == '"':
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), name))
        if not joined.startswith("../"):
            return joined
    return None


def umbrella_layer(texts: dict):
    """The latest layer the umbrella header includes (the last layer when it is not checked)."""
    for (_, path), text in texts.items():
        if path in LAYERING_EXCEPTIONS:
            code, _ = strip_code(text, keep_includes=True)
            layers = [layer_of(t) for m in INCLUDED.finditer(code)
                      if (t := included_path(path, m.group(1), m.group(2))) is not None]
            return max((x for x in layers if x is not None), default=0)
    return len(LAYERS) - 1


def layering(rel: str, text: str, umbrella: int):
    """Every include in file `rel` (relative to reprise's root) of a later folder than its own.
    Comments do not count: only #include lines of the code."""
    layer = layer_of(rel)
    if layer is None or rel in LAYERING_EXCEPTIONS:
        return []
    code, _ = strip_code(text, keep_includes=True)
    findings = []
    for m in INCLUDED.finditer(code):
        target = included_path(rel, m.group(1), m.group(2))
        if target is None:
            continue
        through_umbrella = target in LAYERING_EXCEPTIONS
        reached = umbrella if through_umbrella else layer_of(target)
        if reached is not None and reached > layer:
            what = LAYERING_WHAT + (f", and {target} includes folders up to {LAYERS[reached]}/"
                                    if through_umbrella else "")
            findings.append(Finding(code.count("\n", 0, m.start(2)) + 1, "layering", f"{LAYERS[layer]}/", what))
    return findings


ALLOW = re.compile(r"reprise-allow:\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)(.*)")


def opt_outs(lines, number):
    """The opt-outs that cover line `number` (1-based): a reprise-allow comment on the line, or on a
    comment-only line just above. Returns (rules, problems)."""
    rules, problems = set(), []
    candidates = [number]
    if number >= 2 and lines[number - 2].lstrip().startswith(("//", "/*", "*")):
        candidates.append(number - 1)
    for k in candidates:
        m = ALLOW.search(lines[k - 1])
        if not m:
            continue
        names = [s.strip() for s in m.group(1).split(",")]
        reason = m.group(2).strip(" \t*/:-")
        if reason.lower() in ("", "because"):
            problems.append((k, f"reprise-allow: {m.group(1)} gives no reason: say why after the rule"))
            continue
        rules.update(names)
    return rules, problems


# --- walking the tree ---------------------------------------------------------------------------


BUILD_DIR_NAME = re.compile(r"_?build(?:dir)?(?:[-_.].*)?|cmake-build-.*")


def is_build_dir(path: pathlib.Path) -> bool:
    """Hidden folders, and build folders: build, builddir, build-asan, _build, cmake-build-debug, or
    any folder holding a build.ninja, a CMakeCache.txt or meson-private."""
    if path.name.startswith(".") or BUILD_DIR_NAME.fullmatch(path.name):
        return True
    return any((path / marker).exists() for marker in ("build.ninja", "CMakeCache.txt", "meson-private"))


def sources(paths):
    """Every source file under the paths given (files given are taken as they are), sorted, once."""
    seen = set()
    for given in paths:
        if given.is_file():
            key = given.resolve()
            if key not in seen:
                seen.add(key)
                yield given
            continue
        for dirpath, dirnames, filenames in os.walk(given):
            base = pathlib.Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not is_build_dir(base / d))
            for f in sorted(filenames):
                p = base / f
                if p.suffix.lower() in SOURCE_SUFFIXES and not f.startswith("."):
                    key = p.resolve()
                    if key not in seen:
                        seen.add(key)
                        yield p


@dataclass
class AllowDir:
    path: pathlib.Path      # resolved
    rules: set              # empty: every rule

    def covers(self, real: pathlib.Path, rule: str) -> bool:
        if self.rules and rule not in self.rules:
            return False
        return real == self.path or self.path in real.parents


def parse_allow_dir(spec: str, base: pathlib.Path | None = None) -> AllowDir:
    path, _, rules = spec.partition("=")
    names = {r.strip() for r in rules.split(",") if r.strip()}
    unknown = names - set(RULE_NAMES)
    if unknown:
        raise ValueError(f"--allow-dir {spec}: unknown rule {', '.join(sorted(unknown))} "
                         f"(rules: {', '.join(RULE_NAMES)})")
    p = pathlib.Path(path)
    if base is not None and not p.is_absolute():
        p = base / p
    return AllowDir(p.resolve(), names)


def check(files, allow_dirs, out, self_mode=False):
    """Checks the files, given as (real path, path as shown: relative to reprise's root with
    `self_mode`); prints each violation; returns (files checked, violations by rule)."""
    texts = {}
    aliases = set()
    for real, path in files:
        try:
            texts[(real, path)] = real.read_text(errors="replace")
        except OSError as e:
            print(f"{path}: cannot read: {e.strerror}", file=sys.stderr)
            continue
        aliases |= clock_aliases(strip_code(texts[(real, path)])[0])
    umbrella = umbrella_layer(texts) if self_mode else None
    counts = {}
    for (real, path), text in texts.items():
        real = real.resolve()
        active = [r for r in RULES if (self_mode or not r.self_only)
                  and not any(a.covers(real, r.name) for a in allow_dirs)]
        if not active:
            continue
        findings, lines = scan(text, [r for r in active if not r.self_only], frozenset(aliases))
        if any(r.name == "layering" for r in active):
            findings += layering(path, text, umbrella)
        reported_problems = set()
        for f in sorted(findings, key=lambda f: (f.line, f.rule)):
            allowed, problems = opt_outs(lines, f.line)
            for k, what in problems:
                if k not in reported_problems:
                    reported_problems.add(k)
                    counts["allow"] = counts.get("allow", 0) + 1
                    print(f"{path}:{k}: allow: {what}", file=out)
            if f.rule in allowed and f.rule != "layering":
                continue
            counts[f.rule] = counts.get(f.rule, 0) + 1
            rule = next(r for r in RULES if r.name == f.rule)
            print(f"{path}:{f.line}: {f.rule}: {f.text} {f.message}: {rule.use}", file=out)
            print(f"    {lines[f.line - 1].strip()}", file=out)
        for number, line in enumerate(lines, 1):
            m = ALLOW.search(line)
            if m:
                for name in (s.strip() for s in m.group(1).split(",")):
                    if name not in RULE_NAMES:
                        counts["allow"] = counts.get("allow", 0) + 1
                        print(f"{path}:{number}: allow: reprise-allow names no rule '{name}' "
                              f"(rules: {', '.join(RULE_NAMES)})", file=out)
                    elif name == "layering":
                        counts["allow"] = counts.get("allow", 0) + 1
                        print(f"{path}:{number}: allow: no line may opt out of layering: a cycle between "
                              f"folders is fixed, not allowed", file=out)
    return len(texts), counts


def list_rules(out):
    for r in RULES:
        print(f"{r.name}: {r.what}.", file=out)
        print(f"    catches: {r.catches}", file=out)
        print(f"    instead: {r.instead}", file=out)
    print("Opt a line out with a comment: // reprise-allow: RULE because REASON", file=out)


def main(argv=None, prog=None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog or "reprise-check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reports code that goes around reprise's runtime (clock reads, I/O, randomness, threads, "
                    "the environment), so that a recorded program replays exactly.",
        epilog="rules: " + ", ".join(RULE_NAMES) + " (--list-rules explains them)\n"
               "opt a line out: // reprise-allow: RULE because REASON   (on the line, or alone on the line above)\n"
               "exit status: 0 clean, 1 violations reported, 2 bad usage")
    parser.add_argument("paths", nargs="*", type=pathlib.Path, metavar="PATH",
                        help="folders (searched recursively) and files to check")
    parser.add_argument("--allow-dir", action="append", default=[], metavar="DIR[=RULE,...]",
                        help="do not apply the rules (all, or those listed) under DIR (or to a file); repeatable")
    parser.add_argument("--list-rules", action="store_true", help="describe every rule and exit")
    parser.add_argument("--self", action="store_true",
                        help="check reprise's own tree (PATH: its root) with each rule's homes exempt")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)

    if args.list_rules:
        list_rules(sys.stdout)
        return 0

    allow_dirs = []
    try:
        for spec in args.allow_dir:
            allow_dirs.append(parse_allow_dir(spec))
    except ValueError as e:
        parser.error(str(e))

    if args.self:
        if len(args.paths) > 1:
            parser.error("--self takes at most one PATH: the root of reprise's tree")
        root = args.paths[0] if args.paths else pathlib.Path(__file__).resolve().parents[1]
        if not root.is_dir():
            parser.error(f"{root}: not a folder")
        for rule, homes in SELF_HOMES.items():
            allow_dirs += [parse_allow_dir(f"{h}={rule}", root) for h in homes]
        roots = [root / f for f in SELF_FOLDERS if (root / f).is_dir()]
        files = [(p, p.relative_to(root).as_posix()) for p in sources(roots)]
    else:
        if not args.paths:
            parser.error("give one or more folders or files to check (or --list-rules)")
        missing = [str(p) for p in args.paths if not p.exists()]
        if missing:
            parser.error(f"no such file or folder: {', '.join(missing)}")
        files = [(p, str(p)) for p in sources(args.paths)]

    if not files:
        print(f"{parser.prog}: no C or C++ sources under {', '.join(map(str, args.paths or ['.']))}",
              file=sys.stderr)
        return 2

    out = open(os.devnull, "w") if args.quiet else sys.stdout
    # Report paths as given (relative to the root with --self), so that editors can open them.
    checked, counts = check(files, allow_dirs, out, self_mode=args.self)
    total = sum(counts.values())
    if total:
        by_rule = ", ".join(f"{name} {counts[name]}" for name in RULE_NAMES + ["allow"] if name in counts)
        print(f"{parser.prog}: {checked} files checked, {total} violation(s) ({by_rule})")
        return 1
    print(f"{parser.prog}: {checked} files checked, no violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
