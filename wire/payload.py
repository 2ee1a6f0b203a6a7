"""Deterministic contents, so either end can check every byte without sharing files.

A 4 KiB block made of SHA-256 hex digests of the name, repeated: printable (curl output stays
readable), different per name, and cheap to build for 64 MiB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import lru_cache

BLOCK_SIZE = 4096
CHUNK_SIZE = 16 * BLOCK_SIZE  # 64 KiB: what a sender writes at a time


@lru_cache(maxsize=256)
def _block(name: str) -> bytes:
    seed = name.encode("utf-8")
    digests = (hashlib.sha256(seed + b"/" + str(i).encode()).hexdigest() for i in range(64))
    return "".join(digests).encode("ascii")


def chunks(name: str, size: int, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield `pattern(name, size)` in pieces of at most `chunk_size` (a multiple of 4 KiB)."""
    if size < 0:
        raise ValueError("size must be >= 0")
    if chunk_size % BLOCK_SIZE:
        raise ValueError("chunk_size must be a multiple of 4096")
    full = _block(name) * (chunk_size // BLOCK_SIZE)
    left = size
    while left >= chunk_size:
        yield full
        left -= chunk_size
    if left:
        yield full[:left]


def window(name: str, offset: int, size: int = CHUNK_SIZE) -> bytes:
    """`size` bytes of the name's endless pattern from `offset` on: `pattern(name, offset +
    size)[offset:]`. Cached by offset modulo the block, so the chunks of a long filler that
    start at the same place in the 4 KiB block are one bytes object."""
    return _window(name, offset % BLOCK_SIZE, size)


@lru_cache(maxsize=64)
def _window(name: str, start: int, size: int) -> bytes:
    block = _block(name)
    return ((block[start:] + block[:start]) * (size // BLOCK_SIZE + 1))[:size]


def pattern(name: str, size: int) -> bytes:
    return b"".join(chunks(name, size))


def sized_messages(sizes: list[int]) -> list[tuple[str, bytes]]:
    """Echo messages for `--sizes`: (label, payload) with a distinct pattern per message."""
    return [(f"msg{i + 1}-{size}", pattern(f"msg{i + 1}", size)) for i, size in enumerate(sizes)]


def preview(data: bytes | str, limit: int = 60) -> str:
    """A payload as a log line shows it: the text itself when short and printable, else its size."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(data)} bytes>"
    if len(data) > limit or not data.isprintable():
        return f"<{len(data)} bytes>"
    return data
