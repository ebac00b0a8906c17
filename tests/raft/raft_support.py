"""Shared by the RAFT test drivers: failures, checks, bounded waits and the scenario loop."""
import subprocess
import time


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_for(what, predicate, timeout_s=10.0, step_s=0.05):
    """Polls predicate() (bounded in time); returns its first truthy value or fails."""
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
    """Runs each named scenario: `start(name)` makes its fixture (with a cleanup(ok)
    method), `run(name, fixture)` plays it. Prints each outcome; returns the exit code."""
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
