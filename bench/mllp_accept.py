"""HL7 v2 intake on PostgreSQL, issue 17's acceptance bar: bytes in → inbox commit → ACK out, over real sockets.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/hp_bench_mllp .venv/bin/python bench/mllp_accept.py
    … --messages 20000 --processes 2 --connections 16     # the closed-loop run (as fast as ACKs come back)
    … --rate 1000                                          # also the open-loop run: ACK latency at 1,000/s

The listener is ``manage.py runmllp`` in its own process, as in production; the senders are ``--processes``
client processes with ``--connections`` MLLP connections each, every connection one message in flight (it
sends the next only when the ACK of the last is back, as MLLP senders do). The messages are a mix like a
region's morning: half ADT^A01/A08, a third ORU^R01 with 1-30 OBX (ten on average), the rest ORM^O01,
RDE^O11, MDM^T02 and VXU^V04, in UTF-8 with Chinese names; each with its own MSH-10.

Printed beside it, in the same run: PostgreSQL's batched insert of the same inbox rows (``COPY`` in batches
of 500, one transaction each: the physical limit of the store), and how many commits the listener's
group commit made (distinct ``received_at``: one per commit).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthplatform.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("PLATFORM_DATA_DIR", tempfile.mkdtemp(prefix="hp-bench-mllp-"))

SB, EB = b"\x0b", b"\x1c\r"
SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇"]


def _msh(kind: str, control_id: str) -> str:
    return f"MSH|^~\\&|HIS-B|BENCH|HIP|REGION|20261203080000||{kind}|{control_id}|P|2.5.1|||||CHN|UNICODE UTF-8\r"


def _pid(n: int) -> str:
    name = f"{SURNAMES[n % 10]}^{GIVEN[(n // 10) % 10]}"
    return f"PID|1||MRN{n:07d}^^^BENCH^MR||{name}||19{50 + n % 50:02d}0{1 + n % 9}1{n % 10}|{'MF'[n % 2]}\r"


def message(n: int, rng: random.Random) -> bytes:
    """The n-th message of the mix (see the module's docstring)."""
    control_id = f"B{n:09d}"
    roll = rng.random()
    if roll < 0.5:
        kind = "ADT^A01^ADT_A01" if rng.random() < 0.6 else "ADT^A08^ADT_A01"
        text = (
            _msh(kind, control_id) + f"EVN|{kind[4:7]}|20261203080000\r" + _pid(n) + "PV1|1|I|W3^12^1||||D123^张^医生\r"
        )
    elif roll < 0.83:
        obx = "".join(
            f"OBX|{i}|NM|{2345 + i}-7^项目{i}^LN||{rng.uniform(1, 10):.2f}|mmol/L|3.9-6.1|N|||F|||20261203075500\r"
            for i in range(1, min(30, max(1, int(rng.expovariate(0.1)))) + 1)
        )
        text = (
            _msh("ORU^R01^ORU_R01", control_id)
            + _pid(n)
            + f"OBR|1|ORD{n}|FIL{n}|24323-8^综合代谢^LN|||20261203070000\r"
            + obx
        )
    else:
        kind = rng.choice(["ORM^O01^ORM_O01", "RDE^O11^RDE_O11", "MDM^T02^MDM_T02", "VXU^V04^VXU_V04"])
        text = _msh(kind, control_id) + _pid(n) + f"ORC|NW|ORD{n}\rNTE|1||常规\r"
    return text.encode()


async def _connection(port: int, messages: list[bytes], interval: float | None, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accepted = 0
    # Each connection's first message at a random point of its interval: started together, the connections
    # would send in bursts of all of them at once, which is not what an offered rate means.
    next_at = time.perf_counter() + (random.uniform(0, interval) if interval else 0)
    for payload in messages:
        if interval is not None:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
        began = time.perf_counter()
        writer.write(SB + payload + EB)
        await writer.drain()
        answer = await reader.readuntil(EB)
        latencies.append((time.perf_counter() - began) * 1000)
        accepted += b"MSA|AA|" in answer or b"MSA|CA|" in answer  # original or enhanced mode
    writer.close()
    await writer.wait_closed()
    return accepted


def _client(port: int, batches: list[list[bytes]], interval: float | None, out) -> None:
    async def run():
        latencies: list[float] = []
        counts = await asyncio.gather(*(_connection(port, b, interval, latencies) for b in batches))
        return sum(counts), latencies

    out.put(asyncio.run(run()))


def _send(port: int, payloads: list[bytes], processes: int, connections: int, interval: float | None):
    """Sends ``payloads`` over processes × connections; returns (seconds, accepted, latencies in ms)."""
    lanes = processes * connections
    per_lane = [payloads[i::lanes] for i in range(lanes)]
    out = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=_client, args=(port, per_lane[p * connections : (p + 1) * connections], interval, out)
        )
        for p in range(processes)
    ]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [out.get() for _ in workers]
    seconds = time.perf_counter() - began
    for worker in workers:
        worker.join()
    latencies = [ms for _, lat in results for ms in lat]
    return seconds, sum(a for a, _ in results), latencies


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="MLLP connections per client process")
    parser.add_argument("--rate", type=float, default=0, help="also an open-loop run at this many messages/s")
    parser.add_argument("--listeners", type=int, default=1, help="runmllp processes sharing the port")
    args = parser.parse_args()

    import django

    django.setup()
    from database import bench_database

    bench_database()
    from django.db import connection
    from django.utils import timezone

    from healthplatform.ingest.models import InboxMessage
    from registry.models import SourceSystem
    from registry.services import source_system_register
    from tests.registry.factories import InstitutionFactory

    InboxMessage.objects.all().delete()
    if not SourceSystem.objects.filter(sending_application="HIS-B", sending_facility="BENCH").exists():
        source_system_register(
            institution=InstitutionFactory(name="基准医院"),
            kind="HIS",
            name="HIS-B",
            sending_application="HIS-B",
            sending_facility="BENCH",
        )
    rng = random.Random(17)
    payloads = [message(n, rng) for n in range(args.messages)]
    size = statistics.mean(len(p) for p in payloads)
    print(f"{len(payloads):,} messages, {size:.0f} bytes on average")

    # The physical limit: the same rows, COPY in batches of 500, one transaction each.
    from django.db import transaction

    from ehr.bulk import rows_insert_returning_ids
    from healthplatform.ingest.inbox import _COLUMNS
    from mpi.models import uuid7

    source = SourceSystem.objects.get(sending_application="HIS-B", sending_facility="BENCH")
    now = timezone.now()
    values = {"door": "mllp", "source_id": source.pk, "message_type": "ADT^A01", "version": "2.5.1"}
    rows = []
    for n, p in enumerate(payloads):
        row = {**values, "uuid": uuid7(), "control_id": f"L{n}", "raw": p, "text": p.decode(), "received_at": now}
        row |= {"sha256": hashlib.sha256(p).hexdigest(), "status": "received", "resends": 0, "attempts": 0}
        row |= {"control_id_reused": False}
        rows.append(tuple(row.get(c, "" if c not in ("processed_at", "replay_of_id") else None) for c in _COLUMNS))
    began = time.perf_counter()
    for i in range(0, len(rows), 500):
        with transaction.atomic():
            rows_insert_returning_ids(InboxMessage, _COLUMNS, rows[i : i + 500])
    limit = len(rows) / (time.perf_counter() - began)
    InboxMessage.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE ingest_inboxmessage")
    connection.close()

    port = _free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    listeners = [
        subprocess.Popen(
            [sys.executable, "manage.py", "runmllp", "--port", str(port), "--no-drain"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.listeners)
    ]
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        _send(port, payloads[:200], 1, 4, None)  # warm up (sender look-up, imports)
        InboxMessage.objects.all().delete()
        seconds, accepted, latencies = _send(port, payloads, args.processes, args.connections, None)
        commits = InboxMessage.objects.values("received_at").distinct().count()
        stored = InboxMessage.objects.count()
        print(
            f"accepted (closed loop, {args.listeners} listener(s), {args.processes} client processes × "
            f"{args.connections} connections): "
            f"{accepted / seconds:,.0f} messages/s ({accepted:,} AA or CA, {stored:,} rows in {commits:,} commits: "
            f"{stored / max(commits, 1):.1f} per commit); ACK latency p50 {_p(latencies, 0.5):.1f} ms, "
            f"p99 {_p(latencies, 0.99):.1f} ms  (bar ≥ 3,000/s)"
        )
        print(f"  physical limit: COPY of the same rows in batches of 500 {limit:,.0f} rows/s")
        if args.rate:
            InboxMessage.objects.all().delete()
            lanes = args.processes * args.connections
            count = int(min(len(payloads), args.rate * 10))
            seconds, accepted, latencies = _send(
                port, payloads[:count], args.processes, args.connections, lanes / args.rate
            )
            print(
                f"accepted at an offered {args.rate:,.0f}/s: {accepted / seconds:,.0f} messages/s; ACK latency p50 "
                f"{_p(latencies, 0.5):.1f} ms, p99 {_p(latencies, 0.99):.1f} ms  (bar p99 ≤ 50 ms)"
            )
    finally:
        for listener in listeners:
            listener.terminate()
        for listener in listeners:
            listener.wait(30)


if __name__ == "__main__":
    main()
