#!/usr/bin/env python3
"""Proves that every rule of reprise-check bites, and bites nothing else.

    bite_test.py CHECKER

CHECKER is the checker to run (the build tree's reprise-check, or tools/reprise_check.py). On
tests/rules/fixture it must report exactly the PATH:LINE: RULE lines of fixture/expected.txt
(one missing means a rule no longer bites; one in excess means a false positive), nothing on
fixture/near_misses, honour --allow-dir, and exit 2 on bad usage. The layering rule holds in
reprise's own tree (--self) only: fixture/runtime, clock, io, replay, sim and examples hold its
reports, its near misses (comments, literals, a folder's own or an earlier folder's headers, the
umbrella header, folders outside the order) and its one exception.
"""
import pathlib
import re
import subprocess
import sys

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixture"
REPORT = re.compile(r"^(\S+?):(\d+): (\w+): ")
failures = []


def run(*args):
    cmd = [CHECKER, *args]
    if CHECKER.endswith(".py"):
        cmd = [sys.executable, *cmd]
    p = subprocess.run(cmd, cwd=FIXTURE, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def reports(stdout):
    return {f"{m[1]}:{m[2]}: {m[3]}" for m in map(REPORT.match, stdout.splitlines()) if m}


def expect(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)
        if detail:
            print("     " + detail.replace("\n", "\n     "))


def main():
    expected = {line.strip() for line in (FIXTURE / "expected.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}

    code_user, out_user, err = run("user")
    expect("user tree: exit 1", code_user == 1, f"exit {code_user}\n{out_user}{err}")
    code_self, out_self, err = run("--self", ".")
    expect("--self on the fixture: exit 1", code_self == 1, f"exit {code_self}\n{out_self}{err}")
    got = reports(out_user) | reports(out_self)
    for line in sorted(expected - got):
        expect(f"reported: {line}", False, "the rule does not bite here")
    for line in sorted(got - expected):
        expect(f"not reported: {line}", False, "a report the fixture does not expect")
    expect(f"exactly the {len(expected)} expected reports", got == expected)
    for rule in ("clock", "io", "random", "thread", "env", "layering", "allow"):
        expect(f"rule {rule} bites", any(line.endswith(": " + rule) for line in got & expected))
    expect("summary line", re.search(r"\d+ files checked, \d+ violation", out_user) is not None, out_user)

    code, out, err = run("near_misses")
    expect("near misses: exit 0, no reports", code == 0 and not reports(out), f"exit {code}\n{out}{err}")

    code, out, _ = run("io", "runtime", "replay")
    expect("layering holds in reprise's own tree (--self) only",
           not any(line.endswith(": layering") for line in reports(out)), out)

    code, out, _ = run("--allow-dir", "user/vendor=clock", "user/vendor")
    expect("--allow-dir DIR=clock leaves the env report", reports(out) == {"user/vendor/legacy.cpp:6: env"}, out)
    code, out, _ = run("--allow-dir", "user/vendor", "user")
    expect("--allow-dir DIR exempts the folder from every rule",
           code == 1 and reports(out) == reports(out_user) - {l for l in reports(out_user) if "vendor/" in l}, out)

    code, out, _ = run("--help")
    expect("--help: exit 0", code == 0 and "reprise-allow" in out, out)
    code, out, _ = run("--list-rules")
    expect("--list-rules: exit 0", code == 0 and "thread:" in out, out)
    for args in ([], ["no-such-folder"], ["--allow-dir", "user=nosuchrule", "user"], ["--no-such-option"]):
        code, out, err = run(*args)
        expect(f"bad usage {args}: exit 2", code == 2 and err, f"exit {code}\n{out}{err}")

    print(f"bite_test: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    CHECKER = str(pathlib.Path(sys.argv[1]).resolve())
    sys.exit(main())
