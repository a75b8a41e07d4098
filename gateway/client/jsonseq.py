# Incremental readers of streamed JSON records: RFC 7464 JSON text sequences
# (application/json-seq: RS + JSON + LF per record) and, as a courtesy, NDJSON (one JSON text per
# LF-terminated line). Sans-IO: bytes in, values out, one record at most `max_record_bytes` held.
# Must not: do I/O, or split on anything but RS (json-seq) or LF (NDJSON): universal newlines
# (\r, \u2028) inside a record are data.
#
# Theory of operation (json-seq): bytes up to the first RS, and runs of RS, hold no record. After
# an RS the record's bytes accumulate until the next RS or the end of the stream, where the
# record is parsed. So that a record arrives *as it arrives*, not when the next one starts, a
# record whose received bytes end with LF is parsed at once; if that fails (a pretty-printed
# record's inner LF) it keeps accumulating. A record that does not parse, or whose top-level
# number/true/false/null is not followed by whitespace (RFC 7464 section 2.4: it may have been
# truncated), is reported as an InvalidRecord and skipped; the sequence goes on. Bytes after a
# record delivered at its LF and before the next RS are reported the same way (seen whole, that
# record would not have parsed; a delivered value cannot be taken back).
from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["InvalidRecord", "JSONSeqDecoder", "NDJSONDecoder", "SEQ_TYPES", "NDJSON_TYPES", "RS"]

RS: Final = 0x1E
_LF: Final = 0x0A
_WS: Final = b" \t\r\n"
SEQ_TYPES: Final = frozenset({"application/json-seq"})
NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"}
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


class InvalidRecord:
    """A record that was skipped: it did not parse, was over the size cap, or may be truncated.

    Attributes:
        reason: what was wrong.
        text: the start of the record (at most 200 characters), for messages.
        index: the record's position in the sequence (0-based, counting skipped ones).
    """

    __slots__ = ("reason", "text", "index")

    def __init__(self, reason: str, text: str, index: int) -> None:
        self.reason = reason
        self.text = text
        self.index = index

    def __repr__(self) -> str:
        return f"InvalidRecord({self.index}, {self.reason!r}, {self.text[:40]!r})"


def _parse(raw: bytes | bytearray) -> Any:
    text = bytes(raw).decode("utf-8")
    return _DECODER.decode(text)


class _RecordReader:
    __slots__ = ("max_record_bytes", "_buf", "_open", "_done", "_over", "_index", "_sep")

    def __init__(self, max_record_bytes: int, sep: int) -> None:
        if max_record_bytes <= 0:
            raise ValueError("max_record_bytes must be positive")
        self.max_record_bytes = max_record_bytes
        self._buf = bytearray()
        self._open = False  # inside a record (after a separator)
        self._done = False  # this record was already emitted at an LF
        self._over = False  # this record went over the cap: skip to the next separator
        self._index = 0
        self._sep = sep

    @property
    def buffered(self) -> int:
        """Bytes held for the record being read."""
        return len(self._buf)


class JSONSeqDecoder(_RecordReader):
    """RFC 7464 reader: ``feed(bytes)`` returns the values (and InvalidRecords) completed so far;
    ``close()`` ends the stream.

    Args:
        max_record_bytes: the largest record held; a larger one is skipped as invalid.

    Raises:
        ValueError: a non-positive cap.
    """

    __slots__ = ()

    def __init__(self, max_record_bytes: int = 1 << 20) -> None:
        super().__init__(max_record_bytes, RS)

    def feed(self, data: bytes) -> list[Any]:
        """Take the next bytes of the stream.

        Args:
            data: any slice of the stream (a record may span many calls).

        Returns:
            Values and InvalidRecord items completed by these bytes, in order.
        """
        out: list[Any] = []
        pos, end = 0, len(data)
        while pos < end:
            nxt = data.find(RS, pos)
            stop = end if nxt < 0 else nxt
            if stop > pos:
                self._take(data, pos, stop, out)
            if nxt < 0:
                break
            self._finish(out)  # an RS ends the record before it and opens the next
            self._open = True
            pos = nxt + 1
        if self._open and not self._done and not self._over and self._buf and self._buf[-1] == _LF:
            self._try_early(out)
        return out

    def close(self) -> list[Any]:
        """End of stream: the last record is parsed (or reported).

        Returns:
            What the last record gave (one value, one InvalidRecord, or nothing).
        """
        out: list[Any] = []
        self._finish(out)
        self._open = False
        return out

    def _take(self, data: bytes, start: int, stop: int, out: list[Any]) -> None:
        if not self._open:
            if data[start:stop].strip(_WS):  # text before the first RS is no record
                out.append(
                    InvalidRecord(
                        "data before the first RS",
                        data[start:stop][:200].decode("utf-8", "replace"),
                        self._index,
                    )
                )
                self._index += 1
            return
        if self._done:
            if data[start:stop].strip(_WS):
                self._done = False
                self._over = True
                out.append(
                    InvalidRecord(
                        "data after a complete JSON text",
                        data[start:stop][:200].decode("utf-8", "replace"),
                        self._index - 1,
                    )
                )
            return
        if self._over:
            return
        if len(self._buf) + (stop - start) > self.max_record_bytes:
            head = (bytes(self._buf[:200]) + data[start : start + 200])[:200]
            out.append(
                InvalidRecord(
                    f"record over {self.max_record_bytes} bytes",
                    head.decode("utf-8", "replace"),
                    self._index,
                )
            )
            self._index += 1
            self._buf.clear()
            self._over = True
            return
        self._buf += data[start:stop]

    def _try_early(self, out: list[Any]) -> None:
        try:
            value = _parse(self._buf)
        except (ValueError, RecursionError):
            return  # maybe an LF inside a pretty-printed record: wait for RS or the end
        self._buf.clear()
        self._done = True
        self._index += 1
        out.append(value)

    def _finish(self, out: list[Any]) -> None:
        buf = self._buf
        if self._open and not self._done and not self._over and buf.strip(_WS):
            index = self._index
            self._index += 1
            try:
                value = _parse(buf)
            except (ValueError, RecursionError) as exc:
                out.append(
                    InvalidRecord(
                        f"not JSON: {exc}", bytes(buf[:200]).decode("utf-8", "replace"), index
                    )
                )
            else:
                if (value is None or isinstance(value, (bool, int, float))) and buf[-1] not in _WS:
                    # RFC 7464 2.4: a number/true/false/null not followed by whitespace may be
                    # truncated ("123" of "1234"): drop it.
                    out.append(
                        InvalidRecord(
                            "top-level scalar without trailing whitespace (may be truncated)",
                            bytes(buf[:200]).decode("utf-8", "replace"),
                            index,
                        )
                    )
                else:
                    out.append(value)
        buf.clear()
        self._done = False
        self._over = False


class NDJSONDecoder(_RecordReader):
    """Newline-delimited JSON reader: one JSON text per LF-terminated line; blank lines are
    skipped; only LF ends a line (a CR before it is whitespace).

    Args:
        max_record_bytes: the longest line held; a longer one is skipped as invalid.
    """

    __slots__ = ()

    def __init__(self, max_record_bytes: int = 1 << 20) -> None:
        super().__init__(max_record_bytes, _LF)
        self._open = True

    def feed(self, data: bytes) -> list[Any]:
        """Take the next bytes; returns the values and InvalidRecords of the lines completed."""
        out: list[Any] = []
        pos, end = 0, len(data)
        while pos < end:
            nxt = data.find(_LF, pos)
            stop = end if nxt < 0 else nxt
            if not self._over:
                if len(self._buf) + (stop - pos) > self.max_record_bytes:
                    out.append(
                        InvalidRecord(
                            f"line over {self.max_record_bytes} bytes",
                            bytes(self._buf[:200]).decode("utf-8", "replace"),
                            self._index,
                        )
                    )
                    self._index += 1
                    self._buf.clear()
                    self._over = True
                else:
                    self._buf += data[pos:stop]
            if nxt < 0:
                break
            self._line(out)
            pos = nxt + 1
        return out

    def close(self) -> list[Any]:
        """End of stream: a last line without LF is parsed too."""
        out: list[Any] = []
        self._line(out)
        return out

    def _line(self, out: list[Any]) -> None:
        buf = self._buf
        if not self._over and buf.strip(_WS):
            index = self._index
            self._index += 1
            try:
                out.append(_parse(buf))
            except (ValueError, RecursionError) as exc:
                out.append(
                    InvalidRecord(
                        f"not JSON: {exc}", bytes(buf[:200]).decode("utf-8", "replace"), index
                    )
                )
        buf.clear()
        self._over = False
