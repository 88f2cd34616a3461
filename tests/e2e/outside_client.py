#!/usr/bin/python3
"""An outside client of telemetry.v1.IngestService, in Python (Debian's
python3-grpcio), written from the .proto alone: it shares none of our C++
client's habits. python_client_test.cc runs it against a real gateway and
checks the database afterwards.

Modes:
  deep      one stream, every batch handed to gRPC at once (no window at all)
  resend    streams cancelled at random moments; whatever was not acked is
            resent on a new stream until everything is (bounded)
  halfclose many streams that half-close with all their batches in flight,
            some cancelled right after

Batch b, reading i: sensor "py-<b % 5>" at base_ms + b * per_batch + i ms,
value b * 1000 + i + 0.5, quality 1 - i / 1024, so the test can check every
stored value. Prints one line, "acked=<n> refused=<n> streams=<n>", and exits
non-zero when a valid batch was refused or an ack broke the contract.
"""

import argparse
import random
import sys
import threading
import time

import grpc
from google.protobuf import timestamp_pb2  # noqa: F401 (imported by the generated code)

from telemetry.v1 import ingest_pb2

METHOD = "/telemetry.v1.IngestService/StreamReadings"


def batch(prefix, b, base_ms, per_batch):
    out = ingest_pb2.ReadingBatch(idempotency_key=f"{prefix}{b}")
    for i in range(per_batch):
        ms = base_ms + b * per_batch + i
        r = out.readings.add()
        r.sensor_id = f"py-{b % 5}"
        r.timestamp.seconds = ms // 1000
        r.timestamp.nanos = (ms % 1000) * 1_000_000
        r.value = b * 1000.0 + i + 0.5
        r.quality = 1.0 - i / 1024.0
        r.unit = "bar"
    return out


class Checker:
    """Every ack must be OK, carry a key we sent and account for all readings."""

    def __init__(self, prefix, per_batch):
        self.prefix, self.per_batch = prefix, per_batch
        self.acked, self.problems = set(), []
        self.lock = threading.Lock()

    def ack(self, a):
        with self.lock:
            if a.status_code != 0:
                self.problems.append(f"refused: code {a.status_code} {a.status_message!r} "
                                     f"key {a.idempotency_key!r}")
                return
            if not a.idempotency_key.startswith(self.prefix):
                self.problems.append(f"ack with a key we never sent: {a.idempotency_key!r}")
                return
            if a.accepted + a.duplicates != self.per_batch or a.rejected:
                self.problems.append(f"ack of {a.idempotency_key} counts {a.accepted} accepted "
                                     f"{a.duplicates} duplicates {a.rejected} rejected")
            self.acked.add(int(a.idempotency_key[len(self.prefix):]))


def open_stream(channel):
    return channel.stream_stream(METHOD,
                                 request_serializer=ingest_pb2.ReadingBatch.SerializeToString,
                                 response_deserializer=ingest_pb2.BatchAck.FromString)


def drain(call, checker):
    """Reads acks until the call ends; returns its final code."""
    try:
        for a in call:
            checker.ack(a)
        return call.code()
    except grpc.RpcError as e:
        return e.code()


def mode_deep(channel, args, checker):
    batches = [batch(args.prefix, b, args.base_ms, args.per_batch) for b in range(args.batches)]
    call = open_stream(channel)(iter(batches), timeout=120)
    code = drain(call, checker)
    if code != grpc.StatusCode.OK:
        checker.problems.append(f"deep stream ended {code}")
    return 1


def mode_resend(channel, args, checker):
    rng = random.Random(args.seed)
    streams = 0
    deadline = time.monotonic() + 120
    while len(checker.acked) < args.batches and time.monotonic() < deadline and streams < 500:
        todo = [b for b in range(args.batches) if b not in checker.acked]
        call = open_stream(channel)(
            (batch(args.prefix, b, args.base_ms, args.per_batch) for b in todo), timeout=60)
        streams += 1
        # Cancel at a random moment, or not at all on every fourth stream.
        if streams % 4 != 0:
            timer = threading.Timer(rng.uniform(0.0, 0.08), call.cancel)
            timer.start()
        else:
            timer = None
        code = drain(call, checker)
        if timer:
            timer.cancel()
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            checker.problems.append(f"stream ended {code}")
    if len(checker.acked) < args.batches:
        checker.problems.append(f"only {len(checker.acked)} of {args.batches} acked in 120 s")
    return streams


def mode_halfclose(channel, args, checker):
    rng = random.Random(args.seed)
    per = max(1, args.batches // args.streams)
    calls = []
    for s in range(args.streams):
        todo = [batch(args.prefix, b, args.base_ms, args.per_batch)
                for b in range(s * per, min(args.batches, (s + 1) * per))]
        calls.append(open_stream(channel)(iter(todo), timeout=60))
    # Some are cancelled a moment later, with batches still in flight.
    for c in calls[::3]:
        threading.Timer(rng.uniform(0.0, 0.05), c.cancel).start()
    threads = [threading.Thread(target=drain, args=(c, checker)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Whatever the cancels cost is resent the ordinary way.
    missing = [b for b in range(args.batches) if b not in checker.acked]
    if missing:
        call = open_stream(channel)(
            (batch(args.prefix, b, args.base_ms, args.per_batch) for b in missing), timeout=120)
        code = drain(call, checker)
        if code != grpc.StatusCode.OK:
            checker.problems.append(f"resend stream ended {code}")
    return len(calls) + (1 if missing else 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--mode", choices=["deep", "resend", "halfclose"], required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--base_ms", type=int, required=True)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--per_batch", type=int, default=20)
    p.add_argument("--streams", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if not (args.target.startswith("127.") or args.target.startswith("[::1]")
            or args.target.startswith("localhost")):
        sys.exit("loopback targets only")
    checker = Checker(args.prefix, args.per_batch)
    with grpc.insecure_channel(args.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        streams = {"deep": mode_deep, "resend": mode_resend,
                   "halfclose": mode_halfclose}[args.mode](channel, args, checker)
    print(f"acked={len(checker.acked)} refused={len(checker.problems)} streams={streams}")
    for problem in checker.problems[:20]:
        print(problem, file=sys.stderr)
    sys.exit(1 if checker.problems else 0)


if __name__ == "__main__":
    main()
