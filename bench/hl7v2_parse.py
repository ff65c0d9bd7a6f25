"""HL7 v2 parse rate on one core: the platform's tokenizer beside python-hl7 and hl7apy, on the same messages.

    .venv/bin/python bench/hl7v2_parse.py               # best of --repeat runs of --seconds each
    … --seconds 1 --repeat 5

Two messages, both UTF-8 bytes as they leave the MLLP frame decoder: a short ADT^A01 (2.5.1, 8 segments,
Chinese name and address) and a long ORU^R01 (2.5.1, PID, OBR and 30 OBX). Every row starts from the bytes:

- ``healthplatform header``: ``message_parse`` (charset from MSH-18, strict decode, segments, MSH) and
  ``header()`` — what the MLLP listener does before the inbox commit;
- ``healthplatform every field``: the same, then every leaf of every field of every segment read unescaped
  (``Field.leaves``) — what a mapping worker pays at most;
- ``python-hl7``: ``hl7.parse(raw, encoding="utf-8")`` (it splits everything eagerly), then every leaf walked
  and unescaped where it holds the escape character, so both "every field" rows do the same work;
- ``hl7apy``: ``parse_message(raw.decode())`` with its defaults (tolerant validation, message-structure groups
  found), as the issue measured it; its objects are built during the parse, so no walk is added.

No database, no sockets. Times per message are the best run's; the machine is shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADT = "\r".join(
    [
        "MSH|^~\\&|HIS|SZ001^1.2.156.112604.1.1^ISO|HP|REGION|20240301083000+0800||ADT^A01^ADT_A01|ADT0001|P|2.5.1"
        "|||AL|NE||UNICODE UTF-8",
        "EVN|A01|20240301083000",
        "PID|1||MRN0001^^^SZ001^MR~11010519000101000X^^^NNCHN^NI~HC99000001^^^HC^HC||张^伟^^^^^L||19800115|M|||"
        "深圳市南山区科技园1号^^深圳^广东^518000^CHN||^PRN^PH^^^^13800000000",
        "PV1|1|I|NEU^301^2^SZ001||||D001^王^医生|||||||||||V0001|||||||||||||||||||||||||20240301080000",
        "AL1|1|DA|^青霉素|SV|皮疹",
        "DG1|1||I10^Essential (primary) hypertension^I10|||A",
        "NK1|1|张^丽|SPO^配偶^HL70063||^PRN^PH^^^^13900000000",
        "ZPV|1|VIP\\S\\GOLD|extra",
    ]
).encode()

ORU = "\r".join(
    [
        "MSH|^~\\&|LIS|SZ001|HP|REGION|20240301120000+0800||ORU^R01^ORU_R01|LAB-20240301-0001|P|2.5.1|||NE|NE||"
        "UNICODE UTF-8",
        "PID|1||MRN0001^^^SZ001^MR||张^伟||19800115|M",
        "OBR|1|PL0001|FL0001|CBC^血常规^L|||20240301100000|||||||||D001^王^医生||||||20240301115900|||F",
        *[
            f"OBX|{n}|NM|T{n:03d}^检验项目{n}^L||{n}.5|mmol/L|3.5-5.5|{'H' if n % 5 == 0 else 'N'}|||F|||20240301113000"
            for n in range(1, 31)
        ],
    ]
).encode()


def ours_header(raw: bytes) -> None:
    from healthplatform.ingest.hl7v2.message import message_parse

    message_parse(raw).header()


def ours_every_field(raw: bytes) -> None:
    from healthplatform.ingest.hl7v2.message import message_parse

    message = message_parse(raw)
    message.header()
    for segment in message.segments:
        for number in range(1, len(segment) + 1):
            for _ in segment.field(number).leaves():
                pass


def python_hl7(raw: bytes) -> None:
    import hl7

    message = hl7.parse(raw, encoding="utf-8")
    escape = message.esc
    stack = list(message)
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if escape in node:
                message.unescape(node)
        else:
            stack.extend(node)


def hl7apy(raw: bytes) -> None:
    from hl7apy.parser import parse_message

    parse_message(raw.decode("utf-8"))


def rate(function: Callable[[bytes], None], raw: bytes, seconds: float, repeat: int) -> float:
    """Best messages per second over ``repeat`` runs of about ``seconds`` each."""
    function(raw)  # imports and first-use caches outside the clock
    best = 0.0
    for _ in range(repeat):
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            for _ in range(10):
                function(raw)
            count += 10
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [
        ("healthplatform header", ours_header),
        ("healthplatform every field", ours_every_field),
        ("python-hl7 (hl7.parse + every field)", python_hl7),
        ("hl7apy (parse_message)", hl7apy),
    ]
    messages = [("ADT^A01, 8 segments", ADT), ("ORU^R01, 30 OBX", ORU)]
    print(f"HL7 v2 parse on one core, best of {args.repeat} x {args.seconds:g} s; bytes in, per message")
    head = "".join(f"{name:>30}" for name, _ in messages)
    print(f"{'':40}{head}")
    for label, function in rows:
        cells = []
        for _, raw in messages:
            per_second = rate(function, raw, args.seconds, args.repeat)
            cells.append(f"{per_second:>12,.0f} msg/s {1e6 / per_second:>8.1f} µs")
        print(f"{label:40}" + "".join(f"{cell:>30}" for cell in cells))


if __name__ == "__main__":
    main()
