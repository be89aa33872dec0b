"""The DNS load generator of bench/dns.py, run as a process of its own (so that its CPU is
not the measured server's event loop): one UDP socket, queries prepared once and sent with
a fresh ID each, every answer matched to its query by ID for its latency.

    python bench/_dns_load.py SERVER closed WINDOW SECONDS NAME:TYPE...   (as fast as answered)
    python bench/_dns_load.py SERVER paced RATE SECONDS NAME:TYPE...      (a fixed offered rate)
    python bench/_dns_load.py SERVER unique WINDOW SECONDS NAME:TYPE...   (closed, every name new:
        x<n>.NAME, so no answer can come from the server's cache)

Prints one JSON line: answered, lost (no answer within 1 s), seconds, latencies in ms.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

from dnslib import DNSRecord

LOST_AFTER = 1.0


def main(argv: list[str]) -> None:
    server, mode, level, seconds = argv[0], argv[1], float(argv[2]), float(argv[3])
    queries = [bytearray(DNSRecord.question(*spec.split(":")).pack()) for spec in argv[4:]]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect((server, 53))
    sock.setblocking(False)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    sent: list[float] = []  # when each answered query was sent, seconds into the run
    qid = 0
    n = 0
    lost = 0

    def send() -> None:
        nonlocal qid, n
        qid = (qid + 1) & 0xFFFF
        if mode == "unique":  # one more label in front: x<n>.NAME (cheap: no dnslib per query)
            label = b"x%d" % n
            template = queries[n % len(queries)]
            q = template[:12] + bytes((len(label),)) + label + template[12:]
        else:
            q = queries[n % len(queries)]
        n += 1
        q[0], q[1] = qid >> 8, qid & 0xFF
        sent_at[qid] = time.perf_counter()
        sock.send(q)

    def receive(timeout: float) -> None:
        ready, _, _ = select.select([sock], [], [], timeout)
        while ready:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                return
            t = sent_at.pop(data[0] << 8 | data[1], None)
            if t is not None:
                latencies.append(time.perf_counter() - t)
                sent.append(t - start)

    start = time.perf_counter()
    end = start + seconds
    if mode in ("closed", "unique"):
        for _ in range(int(level)):
            send()
        while (now := time.perf_counter()) < end:
            before = len(latencies)
            receive(0.05)
            for _ in range(len(latencies) - before):
                send()
            if len(latencies) == before:  # answers lost: keep the window full
                stale = [k for k, t in sent_at.items() if now - t > LOST_AFTER]
                for k in stale:
                    del sent_at[k]
                    lost += 1
                    send()
    else:
        interval = 1.0 / level
        due = start
        while (now := time.perf_counter()) < end:
            while due <= now:
                send()
                due += interval
            receive(max(0.0, min(due - time.perf_counter(), 0.01)))
    elapsed = time.perf_counter() - start
    drain_until = time.perf_counter() + LOST_AFTER
    while sent_at and time.perf_counter() < drain_until:
        receive(0.05)
    print(json.dumps({"answered": len(latencies), "lost": lost + len(sent_at), "seconds": elapsed,
                      "latencies_ms": [round(x * 1000, 3) for x in latencies],
                      "sent_s": [round(x, 4) for x in sent]}))


if __name__ == "__main__":
    main(sys.argv[1:])
