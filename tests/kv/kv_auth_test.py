#!/usr/bin/env python3
"""reprise-kv with a password: AUTH as Redis has it, and a recording that never holds the password.

Usage: kv_auth_test.py REPRISE_KV REPRISE_TOOL

A server started with --requirepass-file (and --record --record-full --record-compress off, so
the trace's bytes are plain) answers -NOAUTH before AUTH, -WRONGPASS to a wrong password, +OK
to the right one (redis-cli -a, AUTH default PASS, and an AUTH whose password arrives split over
two sends); the password appears in no byte of the trace files, of `reprise dump` or of
`reprise dump --json`, and the trace replays to exit 0 with no divergence (the redacted reads
restored from the password file). A wrong password file at replay is refused (exit 3, naming
the secret, never showing it); a missing one too. With no password, --bind 0.0.0.0 is refused
(protected mode) unless --protected-mode=no. Exits 77 when redis-cli is missing.
"""
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from reprise_test import Server, check, replay, report, run  # noqa: E402

SECRET = b"s3cret-Pa55word-for-the-trace-test"


def raw(port, data_parts, want_lines):
    """Sends `data_parts` (a pause between them, so they arrive as separate reads) and returns
    the first `want_lines` reply lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i, part in enumerate(data_parts):
            if i:
                time.sleep(0.2)
            s.sendall(part)
        buf = b""
        while buf.count(b"\r\n") < want_lines:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\r\n")[:want_lines]


def cli(port, *args, password=None):
    argv = ["redis-cli", "-p", str(port)]
    if password is not None:
        argv += ["-a", password, "--no-auth-warning"]
    return run(argv + list(args), timeout_s=30)


def main():
    kv, tool = sys.argv[1], sys.argv[2]
    if shutil.which("redis-cli") is None:
        print("redis-cli missing: skipped")
        return 77
    d = tempfile.mkdtemp(prefix="kv-auth-")
    pass_file = os.path.join(d, "requirepass")
    with open(pass_file, "wb") as f:
        f.write(SECRET + b"\n")
    os.chmod(pass_file, 0o600)
    trace = os.path.join(d, "kv.trace")
    secret = SECRET.decode()

    server = Server([kv, f"--record={trace}", "--record-full", "--record-compress", "off", "--port=0",
                     f"--requirepass-file={pass_file}"])
    port = server.port
    rc, out, err = cli(port, "SET", "k", "v")
    check("NOAUTH Authentication required." in out, "before AUTH a command gets -NOAUTH", out + err)
    rc, out, err = cli(port, "GET", "k", password="not-the-password")
    check("WRONGPASS invalid username-password pair or user is disabled." in out + err,
          "a wrong password gets -WRONGPASS", out + err)
    rc, out, err = cli(port, "SET", "k", "v", password=secret)
    check(rc == 0 and out.strip() == "OK", "redis-cli -a PASSWORD authenticates", out + err)
    rc, out, err = cli(port, "ECHO", secret, password=secret)
    check(out.strip() == secret, "ECHO of the password (a full output holding it)", out + err)
    auth = b"*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$%d\r\n%s\r\n" % (len(SECRET), SECRET)
    cut = auth.index(SECRET) + 7
    lines = raw(port, [auth[:cut], auth[cut:] + b"GET k\r\n"], 3)
    check(lines[:3] == [b"+OK", b"$1", b"v"], "AUTH default PASS split over two reads, then GET", repr(lines))
    lines = raw(port, [b"AUTH wrong\r\nGET k\r\n"], 2)
    check(lines[0].startswith(b"-WRONGPASS") and lines[1].startswith(b"-NOAUTH"),
          "a failed AUTH leaves the client unauthenticated", repr(lines))
    rc, out, err = cli(port, "SHUTDOWN", password=secret)
    check(server.wait(20) == 0, "SHUTDOWN stops the server with exit 0", server.err())

    files = [os.path.join(d, n) for n in os.listdir(d) if n.startswith("kv.trace")]
    check(len(files) >= 1, "the trace was written", repr(files))
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        check(SECRET not in data and SECRET[:12] not in data, f"{os.path.basename(path)} holds no byte of the password")
    rc, dump, err = run([tool, "dump", trace], timeout_s=60)
    check(rc == 0 and "input secret" in dump and "redacted" in dump, "dump shows the secret's record and redactions",
          dump[-2000:] + err)
    check(secret not in dump and SECRET.hex() not in dump, "dump shows no password", "")
    rc, dump_json, err = run([tool, "dump", "--json", trace], timeout_s=60)
    check(rc == 0 and secret not in dump_json and SECRET.hex() not in dump_json
          and SECRET[:12].hex() not in dump_json, "dump --json shows no password", err)

    r = replay(kv, trace)
    check(r.matched(), "the trace replays with no divergence (redacted reads restored)", r.tail())

    wrong = os.path.join(d, "wrong")
    with open(wrong, "w") as f:
        f.write("not-the-password\n")
    rc, out, err = run([kv, f"--replay={trace}"], env=dict(os.environ, REPRISE_SECRET_FILE_REQUIREPASS=wrong))
    check(rc == 3 and 'secret "requirepass" that does not match the recorded digest' in err
          and "not-the-password" not in err, "a wrong password at replay is refused", err[-1000:])
    os.rename(pass_file, pass_file + ".gone")
    rc, out, err = run([kv, f"--replay={trace}"])
    check(rc != 0 and "requirepass" in err, "a missing password file at replay is refused", err[-1000:])
    os.rename(pass_file + ".gone", pass_file)
    rc, out, err = run([kv, f"--replay={trace}"], env=dict(os.environ, REPRISE_SECRET_FILE_REQUIREPASS=pass_file))
    check(rc == 0, "REPRISE_SECRET_FILE_REQUIREPASS names the file at replay", err[-1000:])

    rc, out, err = run([kv, "--bind", "0.0.0.0", "--port=0"], timeout_s=20)
    check(rc == 2 and "protected mode" in err, "no password and --bind 0.0.0.0: refused", err)
    with Server([kv, "--bind", "0.0.0.0", "--port=0", "--protected-mode=no"]) as s:
        rc, out, err = cli(s.port, "PING")
        check(out.strip() == "PONG", "--protected-mode=no serves 0.0.0.0 without a password", out + err)
        s.stop()
    with Server([kv, "--bind", "0.0.0.0", "--port=0", f"--requirepass-file={pass_file}"]) as s:
        rc, out, err = cli(s.port, "PING", password=secret)
        check(out.strip() == "PONG", "a password serves 0.0.0.0 in protected mode", out + err)
        s.stop()
    ok = report("kv-auth")
    if ok == 0:
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"kept {d}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
