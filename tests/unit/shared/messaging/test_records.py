"""Fetched batches stay readable when a header name is not UTF-8 (`messaging.records`)."""

from __future__ import annotations

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords

from solidarity.shared.messaging.records import (
    TolerantMemoryRecords,
    tolerate_header_names_not_utf8,
)
from solidarity.shared.testing.raw_records import RawRecord, record_batch

pytestmark = pytest.mark.unit

ODD_NAME = b"\xff\xfetrace"
RECORDS: list[RawRecord] = [
    (b"k1", b"first", [(b"event_type", b"A")]),
    (b"k2", b"odd", [(b"event_type", b"A"), (ODD_NAME, b"v")]),
    (None, b"third", []),
]


Read = list[tuple[int, bytes | None, list[tuple[str, bytes | None]]]]


def _read(records_class: type, data: bytes) -> Read:
    records = records_class(data)
    read: Read = []
    while records.has_next():
        for record in records.next_batch():
            read.append((record.offset, record.value, list(record.headers)))
    return read


@pytest.mark.parametrize("compression_type", [0, 1], ids=["plain", "gzip"])
def test_a_batch_with_a_header_name_that_is_not_utf8_is_read_whole(compression_type: int) -> None:
    data = bytes(record_batch(RECORDS, compression_type=compression_type))
    with pytest.raises(UnicodeDecodeError):  # aiokafka's own reader refuses the whole batch
        _read(MemoryRecords, data)

    read = _read(TolerantMemoryRecords, data)

    assert [(offset, value) for offset, value, _ in read] == [
        (0, b"first"),
        (1, b"odd"),
        (2, b"third"),
    ]
    name, value = read[1][2][1]
    assert isinstance(name, str)
    assert name.encode("utf-8", errors="surrogateescape") == ODD_NAME, "its bytes come back"
    assert value == b"v"


def test_batches_that_are_utf8_are_read_by_aiokafkas_own_parser() -> None:
    good = [r for r in RECORDS if r[1] != b"odd"]
    data = bytes(record_batch(good)) + bytes(record_batch(good))
    records = TolerantMemoryRecords(data)
    batch = records.next_batch()
    assert isinstance(batch._batch, DefaultRecordBatch)
    assert _read(TolerantMemoryRecords, data) == _read(MemoryRecords, data)


def test_every_consumer_of_the_process_reads_tolerantly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher, "MemoryRecords", MemoryRecords)
    assert tolerate_header_names_not_utf8()
    assert fetcher.MemoryRecords is TolerantMemoryRecords
    assert tolerate_header_names_not_utf8(), "a second call changes nothing"
