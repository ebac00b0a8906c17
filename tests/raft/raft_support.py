"""Shared by the RAFT test drivers: failures, checks and bounded waits."""
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
