"""What the kit's tolerant batch reader (messaging/records.py) costs against aiokafka's own.

Reads the same fetched bytes, batch by batch and record by record, with aiokafka's
`MemoryRecords` and with the kit's `TolerantMemoryRecords`, for batches of many records and of
one, and prints nanoseconds a record (best of a few rounds). No broker is needed.

    .venv/bin/python scripts/bench_record_reader.py [--records N] [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import time

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from solidarity.shared.messaging.records import TolerantMemoryRecords

HEADERS = [
    ("event_type", b"RegistrationSubmitted"),
    ("schema_version", b"1"),
    ("event_id", b"0" * 36),
]


def _batch(records: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 1 << 24)
    for offset in range(records):
        builder.append(offset, None, b"key-%d" % offset, b"x" * 400, HEADERS)
    return bytes(builder.build())


def _read_all(reader: type, data: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    records = reader(data)
    while records.has_next():
        for _ in records.next_batch():
            count += 1
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records read per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is printed")
    args = parser.parse_args()
    if args.records < 200 or args.rounds < 1:
        parser.error("--records must be at least 200 and --rounds at least 1")
    sys.stdout.write(f"{'reader':24} {'records a batch':>16} {'records':>9} {'ns a record':>12}\n")
    for per_batch in (200, 1):
        data = _batch(per_batch) * (args.records // per_batch)
        for reader in (MemoryRecords, TolerantMemoryRecords):
            rounds = [_read_all(reader, data) for _ in range(args.rounds)]
            count, seconds = min(rounds, key=lambda one: one[1])
            per_record_ns = seconds / count * 1e9
            sys.stdout.write(
                f"{reader.__name__:24} {per_batch:>16} {count:>9,} {per_record_ns:>12,.0f}\n"
            )


if __name__ == "__main__":
    main()
