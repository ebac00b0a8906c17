#!/usr/bin/env python3
# bench/kv_load.py: a RESP load of SETs and GETs with random values, so a recorded trace holds data that resists compression.
"""Usage: bench/kv_load.py --port P [OPTIONS]

Sends SET and GET requests to a RESP server (reprise-kv, redis-server) on 127.0.0.1 over a few
connections, one request in flight per connection, and prints one line on stdout:

  requests=N sets=S gets=G hits=H value_bytes=V request_bytes=Q reply_bytes=R seconds=T req_per_s=X seed=E

value_bytes counts the random bytes of every SET value: bytes no compressor can shrink, so a
trace of this load is at least that large once compressed.

Mixes:
  redis      what `redis-benchmark -r KEYS -d 100 -t set,get` sends, with random values: half the
             requests are SETs, then half GETs, of keys key:NNNNNNNNNNNN (12 digits, uniform below
             --keys), each value 100 random bytes (redis-benchmark's own values are all 'x')
  memcached  a read-heavy cache: requests drawn 9 GETs to 1 SET, interleaved, keys uniform below
             --keys, each SET's value random bytes of a size drawn log-uniformly from 16 B to 4 KiB

Options:
  --port P       the server's port (required)
  --mix M        redis or memcached (default redis)
  --requests N   requests in all (default 100000)
  --conns C      connections (default 4)
  --keys K       key space (default 100000 for redis, as -r 100000; 10000 for memcached, so GETs hit)
  --seed S       seed of the key, size and value draws (default: from the clock; printed either way)
  --timeout T    bound on the whole run in seconds (default 120); a reply slower than 10 s fails it
"""

import argparse
import math
import random
import socket
import sys
import time

REPLY_WAIT_S = 10
READ_BYTES = 65536
VALUE_BYTES_REDIS = 100
VALUE_BYTES_MIN = 16
VALUE_BYTES_MAX = 4096
MEMCACHED_GETS_PER_SET = 9
CONNS_MAX = 64
KEYS_DEFAULT = {"redis": 100000, "memcached": 10000}
REQUESTS_MAX = 10_000_000


class LoadError(Exception):
    """The server refused, closed or answered something that is not a reply to the request sent."""


def command(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class Conn:
    """One connection with a reply parser for the replies SET and GET give (+OK, $-1, $N)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_WAIT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffered = b""
        self.reply_bytes = 0

    def send(self, request):
        self.sock.sendall(request)

    def _fill(self):
        chunk = self.sock.recv(READ_BYTES)
        if not chunk:
            raise LoadError("the server closed the connection")
        self.buffered += chunk

    def reply(self):
        """Reads one whole reply; returns True for a GET hit (a bulk string), False otherwise."""
        while b"\r\n" not in self.buffered:
            self._fill()
        line, _, rest = self.buffered.partition(b"\r\n")
        if line == b"+OK":
            self.buffered = rest
            self.reply_bytes += len(line) + 2
            return False
        if line == b"$-1":
            self.buffered = rest
            self.reply_bytes += len(line) + 2
            return False
        if line.startswith(b"$"):
            length = int(line[1:])
            if not 0 <= length <= VALUE_BYTES_MAX:
                raise LoadError(f"a bulk reply of {length} bytes, larger than any value sent")
            need = len(line) + 2 + length + 2
            while len(self.buffered) < need:
                self._fill()
            self.buffered = self.buffered[need:]
            self.reply_bytes += need
            return True
        raise LoadError(f"unexpected reply {line[:80]!r}")


def key(rng, keys):
    return b"key:%012d" % rng.randrange(keys)


def requests_of(mix, rng, total, keys):
    """The requests in order, each (is_set, bytes, random value bytes)."""
    if mix == "redis":
        for i in range(total):
            if i < total // 2:
                value = rng.randbytes(VALUE_BYTES_REDIS)
                yield True, command(b"SET", key(rng, keys), value), len(value)
            else:
                yield False, command(b"GET", key(rng, keys)), 0
    else:
        log_min, log_max = math.log(VALUE_BYTES_MIN), math.log(VALUE_BYTES_MAX)
        for _ in range(total):
            if rng.randrange(MEMCACHED_GETS_PER_SET + 1) == 0:
                size = int(math.exp(rng.uniform(log_min, log_max)))
                value = rng.randbytes(size)
                yield True, command(b"SET", key(rng, keys), value), size
            else:
                yield False, command(b"GET", key(rng, keys)), 0


def main():
    parser = argparse.ArgumentParser(add_help=False, usage=argparse.SUPPRESS)
    parser.add_argument("--help", "-h", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--mix", choices=["redis", "memcached"], default="redis")
    parser.add_argument("--requests", type=int, default=100000)
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--keys", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    if args.help:
        print(__doc__.strip())
        return 0
    if args.port is None or not 1 <= args.port <= 65535:
        parser.error("--port wants 1 to 65535")
    if not 1 <= args.requests <= REQUESTS_MAX:
        parser.error(f"--requests wants 1 to {REQUESTS_MAX}")
    if not 1 <= args.conns <= CONNS_MAX:
        parser.error(f"--conns wants 1 to {CONNS_MAX}")
    if args.keys is None:
        args.keys = KEYS_DEFAULT[args.mix]
    if not 1 <= args.keys <= 10**12:
        parser.error("--keys wants 1 to 10^12")
    if not 1 <= args.timeout <= 3600:
        parser.error("--timeout wants 1 to 3600")
    seed = args.seed if args.seed is not None else time.time_ns() % 2**32
    rng = random.Random(seed)
    print(f"kv_load: seed={seed}", file=sys.stderr, flush=True)

    conns = [Conn(args.port) for _ in range(args.conns)]
    began = time.monotonic()
    deadline = began + args.timeout
    counts = {"requests": 0, "sets": 0, "gets": 0, "hits": 0, "value_bytes": 0, "request_bytes": 0}
    pending = requests_of(args.mix, rng, args.requests, args.keys)
    try:
        done = False
        while not done:
            if time.monotonic() > deadline:
                raise LoadError(f"not done within --timeout {args.timeout:g} s")
            # One request in flight per connection: send one on each, then read each reply.
            in_flight = []
            for conn in conns:
                request = next(pending, None)
                if request is None:
                    done = True
                    break
                is_set, data, value_bytes = request
                conn.send(data)
                in_flight.append((conn, is_set))
                counts["requests"] += 1
                counts["sets" if is_set else "gets"] += 1
                counts["value_bytes"] += value_bytes
                counts["request_bytes"] += len(data)
            for conn, is_set in in_flight:
                if conn.reply() and not is_set:
                    counts["hits"] += 1
    except (OSError, LoadError, ValueError) as error:
        print(f"kv_load: error after {counts['requests']} requests: {error}", file=sys.stderr)
        return 1
    finally:
        for conn in conns:
            conn.sock.close()
    seconds = time.monotonic() - began
    reply_bytes = sum(conn.reply_bytes for conn in conns)
    print(" ".join(f"{k}={v}" for k, v in counts.items()) +
          f" reply_bytes={reply_bytes} seconds={seconds:.3f} req_per_s={counts['requests'] / seconds:.0f} seed={seed}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
