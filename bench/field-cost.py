#!/usr/bin/env python3
"""What one counter field costs redis-server inside a script.

Starts a throwaway redis-server (hash-max-listpack-entries 128, as
opstream's deployments run it) on a free port, fills 1,000 bucket-like
hashes of 40 "CC:metric" fields, then times (INFO commandstats, EVALSHA)
scripts that, for every hash: read the 40 fields with one HMGET; read
them and write them back with one HSET; read, check and sum them as the
step script does (the integer check, the sum, the new value formatted) and
write them back. Prints microseconds per field and per command call.

    python3 bench/field-cost.py [ROUNDS]     (default 20)
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

READ = "for k = 1, #KEYS do redis.call('HMGET', KEYS[k], unpack(ARGV, 1, 40)) end"
READ_WRITE = """local set = {}
for j = 1, 40 do set[#set + 1] = ARGV[j]; set[#set + 1] = ARGV[40 + j] end
for k = 1, #KEYS do
  redis.call('HMGET', KEYS[k], unpack(ARGV, 1, 40))
  redis.call('HSET', KEYS[k], unpack(set))
end"""
STEP = """local find, fmt = string.find, string.format
for k = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[k], unpack(ARGV, 1, 40))
  local set, n = {}, 0
  for j = 1, 40 do
    local v, dl = cur[j], ARGV[40 + j]
    if not v then n = n + 2; set[n - 1] = ARGV[j]; set[n] = dl
    elseif #v < 16 and #dl < 16 and (v == '0' or find(v, '^%-?[1-9]%d*$')) then
      n = n + 2; set[n - 1] = ARGV[j]; set[n] = fmt('%d', v + dl)
    end
  end
  redis.call('HSET', KEYS[k], unpack(set, 1, n))
end"""
CALLS = "for k = 1, #KEYS do redis.call('EXISTS', KEYS[k]) end"
HASH_ENTRIES = 128  # hash-max-listpack-entries, as opstream's deployments run it


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")

    def reply(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        return [self.reply() for _ in range(int(rest))]

    def cmd(self, *args):
        self.sock.sendall(encode(args))
        return self.reply()


def evalsha_usec(conn):
    stats = conn.cmd("INFO", "commandstats").decode()
    line = [l for l in stats.split("\r\n") if l.startswith("cmdstat_evalsha:")][0]
    return int(line.split("usec=")[1].split(",")[0])


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    tmp = tempfile.mkdtemp(prefix="opstream-field-cost-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no", "--dir", tmp,
                               "--hash-max-listpack-entries", str(HASH_ENTRIES)],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                conn = Conn(port)
                conn.cmd("PING")
                break
            except OSError:
                time.sleep(0.05)
        keys = ["opstream:{BENCH-%03d}:min:2026113000%02d" % (i % 100, i // 100)
                for i in range(1000)]
        fields = ["%s:%s" % (cc, m) for cc in ("NG", "CM", "GH", "PH", "TH", "BR", "IN", "VN")
                  for m in ("arrests", "victims", "events", "migrants", "seized_items")]
        deltas = [str(1 + i % 5) for i in range(40)]
        for k in keys:
            args = []
            for f in fields:
                args += [f, "123"]
            conn.cmd("HSET", k, *args)
        per_field = {}
        for name, body in (("calls", CALLS), ("read", READ), ("read+write", READ_WRITE),
                           ("step", STEP)):
            sha = conn.cmd("SCRIPT", "LOAD", body + "\nreturn 1").decode()
            conn.cmd("CONFIG", "RESETSTAT")
            for _ in range(rounds):
                conn.cmd("EVALSHA", sha, len(keys), *keys, *fields, *deltas)
            per_field[name] = evalsha_usec(conn) / (rounds * len(keys) * 40)
        print("redis-server %s, hash-max-listpack-entries %d; %d hashes of 40 fields, %d rounds"
              % (conn.cmd("INFO", "server").decode().split("redis_version:")[1].split("\r")[0],
                 HASH_ENTRIES, len(keys), rounds))
        print("  a command called from a script (EXISTS)  %.2f us per call" % (per_field["calls"] * 40))
        print("  HMGET, per field                         %.3f us" % per_field["read"])
        print("  HMGET and HSET, per field                %.3f us" % per_field["read+write"])
        print("  read, check, sum and write, per field    %.3f us (the step script's way)"
              % per_field["step"])
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
