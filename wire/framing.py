"""Message framing for the echo protocol.

`length`: each message is a 4-byte big-endian length, then that many payload bytes. The
decoder is fed bytes split anywhere (TCP keeps no write boundaries) and yields whole messages.
A length over the maximum is a protocol error raised at the header, before any payload is
buffered, so a garbage prefix cannot make the peer allocate gigabytes.

`raw`: no length prefix, so TCP's lack of boundaries shows. Two readings of "a message":
- per read (persistent connections): whatever one read returns is a message, so three writes may
  come back as one "LuffyZoroSanji", which is the point of showing it;
- until FIN (non-persistent connections): everything the peer sends before it half-closes
  (shutdown(SHUT_WR)) is one message, however many reads it takes.
Either way a message over the maximum is a protocol error, never a silent truncation.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_MESSAGE = 1 << 20  # 1 MiB
FRAMINGS = ("length", "raw")


class FramingError(ValueError):
    """The byte stream breaks the framing: the connection cannot continue."""


class MessageTooLarge(FramingError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message of {length} bytes exceeds the limit of {limit} bytes")
        self.length = length
        self.limit = limit


class RawMessageTooLarge(MessageTooLarge):
    """A raw message grew past the limit before its end: `length` is what had arrived so far."""

    def __init__(self, length: int, limit: int) -> None:
        FramingError.__init__(
            self, f"raw message of at least {length} bytes exceeds the limit of {limit} bytes"
        )
        self.length = length
        self.limit = limit


class TruncatedMessage(FramingError):
    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"connection ended mid-message ({have} of {need} bytes)")
        self.have = have
        self.need = need


def encode_length(payload: bytes, max_message: int = DEFAULT_MAX_MESSAGE) -> bytes:
    if len(payload) > max_message:
        raise MessageTooLarge(len(payload), max_message)
    return HEADER.pack(len(payload)) + payload


class LengthDecoder:
    """Incremental decoder for `length` framing.

    `feed(data)` returns the messages completed by `data` (possibly none); `eof()` says the peer
    closed: it returns the messages the end completes (none here) and raises `TruncatedMessage`
    if a message was cut short.
    """

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._need: int | None = None  # payload length of the message being read

    @property
    def pending(self) -> int:
        """Bytes held for a message not yet complete (0 at a message boundary)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < HEADER_SIZE:
                    return out
                (length,) = HEADER.unpack_from(self._buf)
                if length > self.max_message:
                    raise MessageTooLarge(length, self.max_message)
                self._need = length
            end = HEADER_SIZE + self._need
            if len(self._buf) < end:
                return out
            out.append(bytes(self._buf[HEADER_SIZE:end]))
            del self._buf[:end]
            self._need = None

    def whole(self, data: bytes) -> int:
        """How many messages `data` is, when it is exactly whole messages and none is pending;
        else 0, and nothing is taken (feed it instead). An echo of whole messages is `data`
        itself: the server sends it back without splitting and re-framing it."""
        if self._buf:
            return 0
        at, count, end, limit = 0, 0, len(data), self.max_message
        unpack = HEADER.unpack_from
        while at + HEADER_SIZE <= end:
            (length,) = unpack(data, at)
            if length > limit:
                return 0  # `feed` raises it, at the same header
            at += HEADER_SIZE + length
            count += 1
        return count if at == end else 0

    def eof(self) -> list[bytes]:
        if self._buf:
            need = HEADER_SIZE + (self._need if self._need is not None else 0)
            raise TruncatedMessage(len(self._buf), max(need, HEADER_SIZE))
        return []


class RawDecoder:
    """`raw` framing, per read: every chunk of bytes read is passed through as it came."""

    pending = 0

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message

    def feed(self, data: bytes) -> list[bytes]:
        if len(data) > self.max_message:
            raise MessageTooLarge(len(data), self.max_message)
        return [bytes(data)] if data else []

    def eof(self) -> list[bytes]:
        return []


class RawUntilFinDecoder:
    """`raw` framing, until FIN: the peer's bytes up to its half-close are one message.

    `feed` buffers and returns nothing; `eof()` returns the message (none if no bytes came).
    The limit is checked as bytes arrive, so a peer that never stops costs at most the limit.
    """

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if len(self._buf) + len(data) > self.max_message:
            raise RawMessageTooLarge(len(self._buf) + len(data), self.max_message)
        self._buf += data
        return []

    def eof(self) -> list[bytes]:
        message = bytes(self._buf)
        self._buf = bytearray()
        return [message] if message else []


Decoder = LengthDecoder | RawDecoder | RawUntilFinDecoder


def decoder(
    framing: str, max_message: int = DEFAULT_MAX_MESSAGE, until_fin: bool = False
) -> Decoder:
    """The decoder of `framing`; `until_fin` picks the raw reading where a message ends at the
    peer's FIN (the server's non-persistent listeners) instead of at each read."""
    if framing == "length":
        return LengthDecoder(max_message)
    if framing == "raw":
        return RawUntilFinDecoder(max_message) if until_fin else RawDecoder(max_message)
    raise ValueError(f"unknown framing {framing!r} (choose from {', '.join(FRAMINGS)})")


def encode(framing: str, payload: bytes, max_message: int = DEFAULT_MAX_MESSAGE) -> bytes:
    if framing == "length":
        return encode_length(payload, max_message)
    if framing == "raw":
        if len(payload) > max_message:
            raise MessageTooLarge(len(payload), max_message)
        return bytes(payload)
    raise ValueError(f"unknown framing {framing!r} (choose from {', '.join(FRAMINGS)})")
