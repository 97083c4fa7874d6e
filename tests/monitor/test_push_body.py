"""monitor.sources.push.read_body: one buffer of the declared length, read from gunicorn's body in large
reads when nothing is read ahead, byte for byte what ``Body.read`` gives."""

from __future__ import annotations

import io
import os

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import Unreader

from monitor.sources.push import BadBatch, BatchLimits, _length_reader, parse_batch, read_body

LIMITS = BatchLimits(max_bytes=10**8, max_rows=10**6, max_columns=100, max_cells=10**8)


class _Socket(Unreader):
    """What gunicorn's socket unreader does, from bytes: 8 KB per recv."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data, self.at = data, 0

    def chunk(self) -> bytes:
        piece = self.data[self.at:self.at + 8192]
        self.at += len(piece)
        return piece


def _environ(stream, length: int) -> dict:
    return {"wsgi.input": stream, "CONTENT_LENGTH": str(length)}


def test_gunicorn_body_is_read_whole_through_its_length_reader() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    body = Body(LengthReader(_Socket(data), len(data)))
    assert _length_reader(body) is body.reader
    got = read_body(_environ(body, len(data)), LIMITS)
    assert isinstance(got, bytearray) and got == data


def test_read_ahead_in_gunicorn_body_falls_back_to_its_read() -> None:
    data = os.urandom(100_000)
    body = Body(LengthReader(_Socket(data), len(data)))
    first = body.read(10)  # Body now holds read-ahead bytes: its reader must not be read past them
    assert _length_reader(body) is None
    assert first + read_body(_environ(body, len(data) - 10), LIMITS) == data


def test_short_body_and_blank_body_are_refused() -> None:
    with pytest.raises(BadBatch, match="ended after 3 of 10"):
        read_body(_environ(io.BytesIO(b"abc"), 10), LIMITS)
    blank = read_body(_environ(io.BytesIO(b" \n\t"), 3), LIMITS)
    with pytest.raises(BadBatch, match="empty"):
        parse_batch(blank, "text/csv", LIMITS)


def test_csv_from_the_buffer_parses_as_from_bytes() -> None:
    text = b"x0,x1,y\n1,2.5,3\n4,5,6\n"
    from_buffer = parse_batch(read_body(_environ(io.BytesIO(text), len(text)), LIMITS), "text/csv", LIMITS)
    assert from_buffer.equals(parse_batch(text, "text/csv", LIMITS))
