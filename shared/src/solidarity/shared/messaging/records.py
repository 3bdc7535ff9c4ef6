"""Fetched record batches that a header name which is not UTF-8 cannot make unreadable.

aiokafka decodes header names as strict UTF-8 while it parses a fetched batch. Kafka's wire
format allows any bytes there, and a client other than aiokafka can send them: one such record
then raises `UnicodeDecodeError` out of every `getmany` of its partition, before the consumer
sees any record of that batch. The partition stops for good (a FastStream subscriber's loop
ends on it), and the kit cannot dead-letter what it never receives.

`tolerate_header_names_not_utf8()` makes aiokafka's fetcher read batches through
`TolerantMemoryRecords`: each batch is parsed by aiokafka's own (C) parser as before, and only
a batch that parser refuses for a header name is parsed again by aiokafka's Python parser,
reading header names with `surrogateescape`. The record then reaches the consumer like any
other; its odd header name is one it does not know, and the name's original bytes come back
with `name.encode("utf-8", "surrogateescape")` (which is how the outbox stores it, so a dead
letter keeps them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, SupportsIndex

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

from solidarity.shared.logging import get_logger

log = get_logger(__name__)

_DEFAULT_MAGIC = 2  # record batches v2, the only ones with headers


class _LenientBytes(bytes):
    """A slice of a batch whose `decode()` keeps bytes that are not UTF-8 as surrogates."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes.decode(self, encoding, "surrogateescape" if errors == "strict" else errors)


class _LenientBuffer(bytearray):
    """A batch's bytes whose slices are `_LenientBytes` (the Python parser decodes those)."""

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = bytearray.__getitem__(self, index)
        return _LenientBytes(item) if isinstance(index, slice) else item


class _LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc]  # aiokafka: untyped
    """aiokafka's Python parser of a batch, reading header names with `surrogateescape`."""

    _buffer: bytearray

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        super().__init__(buffer)
        self._buffer = _LenientBuffer(self._buffer)

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _LenientBuffer):
            self._buffer = _LenientBuffer(self._buffer)


def _refused_a_header_name(error: BaseException) -> bool:
    if isinstance(error, UnicodeDecodeError):  # aiokafka's C parser
        return True
    # aiokafka's Python parser wraps it (without its C extensions).
    return isinstance(error, CorruptRecordException) and isinstance(
        error.__cause__, UnicodeDecodeError
    )


class _TolerantBatch:
    """A fetched batch: aiokafka's own, parsed again leniently if it refuses a header name."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw
        self._records: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> _TolerantBatch:
        return self

    def __next__(self) -> Any:
        if self._records is None:
            self._records = self._read()
        return next(self._records)

    def _read(self) -> Iterator[Any]:
        last: int | None = None
        try:
            for record in self._batch:
                last = record.offset
                yield record
            return
        except (UnicodeDecodeError, CorruptRecordException) as error:
            if not _refused_a_header_name(error):
                raise
        log.warning(
            "record_header_name_not_utf8",
            base_offset=self._batch.base_offset,
            records_before=0 if last is None else last - self._batch.base_offset + 1,
        )
        for record in _LenientBatch(self._raw):
            if last is None or record.offset > last:
                yield record


class TolerantMemoryRecords(_MemoryRecordsPy):  # type: ignore[misc]  # aiokafka: untyped
    """aiokafka's fetched records, batch by batch, each batch a `_TolerantBatch`."""

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if raw is None or batch is None or batch.magic < _DEFAULT_MAGIC:
            return batch
        return _TolerantBatch(batch, raw)


def tolerate_header_names_not_utf8() -> bool:
    """Make every aiokafka consumer of this process read fetched batches tolerantly.

    Idempotent; False (and a warning) if aiokafka no longer reads batches where the kit
    expects, so that an upgrade that moved it is seen rather than silently unprotected.
    """
    current = getattr(fetcher, "MemoryRecords", None)
    if current is TolerantMemoryRecords:
        return True
    if current is None:
        log.warning("record_reader_not_replaced", reason="aiokafka's fetcher changed")
        return False
    fetcher.MemoryRecords = TolerantMemoryRecords
    return True
