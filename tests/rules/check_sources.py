#!/usr/bin/env python3
"""Enforces DESIGN.md's determinism rules over the source tree.

Nothing outside clock/ reads a clock; nothing outside io/ does socket or file I/O;
nothing outside the PRNG and io/random draws randomness; no threads outside the
offload pool (and, later, the recorder's writer). A line may opt out with a comment
`reprise-allow: RULE because ...` that says why.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
# Folders whose code runs on (or as) the runtime: the rules apply to them.
CHECKED = ["runtime", "clock", "io", "record", "replay", "sim", "tools", "examples"]

RULES = {
    "clock": (
        re.compile(r"\b(clock_gettime|gettimeofday|steady_clock|system_clock|high_resolution_clock|"
                   r"std::time\s*\(|\btime\s*\(\s*(nullptr|NULL|0)\s*\)|localtime|rdtsc)"),
        ["clock/"],
        "reads a clock outside clock/",
    ),
    "io": (
        re.compile(r"((?<![A-Za-z0-9_>])::(socket|connect|accept4?|recv|send|recvfrom|sendto|read|write|pread|pwrite|open|"
                   r"openat|fsync|rename|unlink|ftruncate|bind|listen)\s*\(|\bfopen\s*\(|std::[io]?fstream)"),
        ["io/", "record/"],
        "does socket or file I/O outside io/ (and the trace files of record/)",
    ),
    "random": (
        re.compile(r"(\bs?rand\s*\(|random_device|getrandom|mt19937|minstd_rand|/dev/u?random|arc4random)"),
        ["io/random.cpp", "runtime/internal/prng.hpp"],
        "draws randomness outside the PRNG",
    ),
    "thread": (
        re.compile(r"(std::(thread|jthread|async)\b|pthread_create)"),
        ["io/offload_pool.cpp", "io/internal/offload_pool.hpp", "record/"],
        "starts a thread outside the offload pool and the recorder",
    ),
}

ALLOW = re.compile(r"reprise-allow:\s*(\w+)")


def strip_comment(line: str) -> str:
    # Rules look at code, not at the sentences of comments.
    return line.split("//", 1)[0]


def main() -> int:
    failures = []
    checked = 0
    for top in CHECKED:
        base = ROOT / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix not in (".cpp", ".hpp", ".h", ".cc"):
                continue
            rel = path.relative_to(ROOT).as_posix()
            checked += 1
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                code = strip_comment(line)
                if code.lstrip().startswith(("*", "/*", "///", "#include")):
                    continue
                allowed = set(ALLOW.findall(line))
                for name, (pattern, homes, what) in RULES.items():
                    if any(rel.startswith(h) for h in homes) or name in allowed:
                        continue
                    m = pattern.search(code)
                    if m:
                        failures.append(f"{rel}:{number}: {what}: '{m.group(0)}'\n    {line.strip()}")
    if checked == 0:
        print(f"check_sources: no source files under {ROOT}", file=sys.stderr)
        return 1
    for f in failures:
        print(f)
    print(f"check_sources: {checked} files checked, {len(failures)} violation(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
