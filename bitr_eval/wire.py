"""The wire between the evaluator and the agent's sandboxed process: no pickle, a fixed format.

A message is one frame:

    uint32 little-endian  header length H
    uint32 little-endian  body length B
    H bytes               JSON object: {"type": ..., "arrays": [[name, dtype, shape], ...], ...fields}
    B bytes               the arrays' raw little-endian bytes, one after the other

Message types come from a fixed set, dtypes from a whitelist (`DTYPES`), and the receiver
refuses any frame over its size limit before reading it. Decoding builds arrays with
`np.frombuffer`: bytes are only ever read as numbers, never as code or objects.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from typing import Any, Optional

import numpy as np

PREFIX = struct.Struct("<II")
DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|i1", "|u1", "|b1"})
MAX_HEADER = 64 * 1024
MAX_ARRAYS = 16
MAX_DIMS = 8

# evaluator -> agent
TO_AGENT = frozenset({"probe", "init", "reset", "task", "context", "act", "observe", "close"})
# agent -> evaluator
FROM_AGENT = frozenset({"ready", "ok", "action", "error"})


class WireError(Exception):
    """A malformed or oversized frame, a closed connection, or a timeout; the message says which."""


class Closed(WireError):
    """The other side closed the connection (its process exited)."""


class Timeout(WireError):
    """Nothing complete arrived before the deadline."""


class Message:
    __slots__ = ("type", "fields", "arrays")

    def __init__(self, type: str, fields: dict, arrays: dict[str, np.ndarray]):
        self.type, self.fields, self.arrays = type, fields, arrays

    def __repr__(self):
        return f"Message({self.type!r}, {self.fields}, {list(self.arrays)})"


def _wire_dtype(array: np.ndarray) -> np.ndarray:
    dtype = array.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not np.little_endian):
        array = array.astype(dtype.newbyteorder("<"))
    return array


def encode(type: str, arrays: Optional[dict[str, Any]] = None, **fields) -> bytes:
    """One frame. `fields` must be JSON values; arrays must have a whitelisted dtype."""
    specs, chunks = [], []
    for name, value in (arrays or {}).items():
        array = _wire_dtype(np.ascontiguousarray(value))
        if array.dtype.str not in DTYPES:
            raise WireError(f"array {name!r} has dtype {array.dtype}, not one of the wire's {sorted(DTYPES)}")
        specs.append([name, array.dtype.str, list(array.shape)])
        chunks.append(array.tobytes())
    fields["type"] = type
    if specs:
        fields["arrays"] = specs
    header = json.dumps(fields, separators=(",", ":"), allow_nan=True).encode()
    body = b"".join(chunks)
    return PREFIX.pack(len(header), len(body)) + header + body


def _decode(header: bytes, body: memoryview, allowed: frozenset) -> Message:
    try:
        fields = json.loads(bytes(header))
    except (UnicodeDecodeError, ValueError) as err:
        raise WireError(f"a header that is not JSON ({err})") from None
    if not isinstance(fields, dict):
        raise WireError("a header that is not a JSON object")
    kind = fields.pop("type", None)
    if not isinstance(kind, str) or kind not in allowed:
        raise WireError(f"a message of unknown type {str(kind)[:40]!r} (allowed: {', '.join(sorted(allowed))})")
    specs = fields.pop("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise WireError("a malformed array list")
    arrays, offset = {}, 0
    for spec in specs:
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], str)
                and isinstance(spec[2], list) and len(spec[2]) <= MAX_DIMS
                and all(type(n) is int and 0 <= n < 2**31 for n in spec[2])):
            raise WireError(f"a malformed array description {str(spec)[:80]}")
        name, dtype, shape = spec
        if dtype not in DTYPES:
            raise WireError(f"array {name[:40]!r} of dtype {dtype[:20]!r}, not one of {sorted(DTYPES)}")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if offset + size > len(body):
            raise WireError(f"array {name[:40]!r} runs past the end of its message")
        arrays[name] = np.frombuffer(body[offset:offset + size], dtype=dtype).reshape(shape)
        offset += size
    if offset != len(body):
        raise WireError(f"{len(body) - offset} bytes after the last array")
    return Message(kind, fields, arrays)


class Channel:
    """Framed messages over a connected stream socket, with deadlines and a size limit on
    what is received."""

    def __init__(self, sock: socket.socket, allowed: frozenset, max_message: int):
        sock.setblocking(True)
        self.sock = sock
        self.allowed = allowed
        self.max_message = max_message
        self._buffer = bytearray()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self.sent_bytes = self.received_bytes = 0

    def send(self, type: str, arrays: Optional[dict[str, Any]] = None, **fields) -> None:
        self.send_frame(encode(type, arrays, **fields))

    def send_frame(self, frame: bytes) -> None:
        try:
            self.sock.sendall(frame)
        except OSError as err:  # BrokenPipe, ConnectionReset: the other side is gone
            raise Closed(f"the connection closed while sending ({err.strerror or err})") from None
        self.sent_bytes += len(frame)

    def _fill(self, need: int, deadline: Optional[float]) -> None:
        while len(self._buffer) < need:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._poll.poll(max(1, int(remaining * 1000 + 0.999))):
                    if time.monotonic() >= deadline:
                        raise Timeout("nothing arrived in time")
                    continue
            try:
                chunk = self.sock.recv(max(need - len(self._buffer), 65536))
            except OSError as err:
                raise Closed(f"the connection failed ({err.strerror or err})") from None
            if not chunk:
                raise Closed("the connection closed")
            self._buffer += chunk
            self.received_bytes += len(chunk)

    def recv(self, deadline: Optional[float] = None) -> Message:
        """The next message; `deadline` is a time.monotonic() value (None: wait for ever)."""
        self._fill(PREFIX.size, deadline)
        header_length, body_length = PREFIX.unpack_from(self._buffer)
        if header_length > MAX_HEADER:
            raise WireError(f"a header of {header_length} bytes (the limit is {MAX_HEADER})")
        total = PREFIX.size + header_length + body_length
        if total > self.max_message:
            raise WireError(f"a message of {total} bytes (the limit is {self.max_message})")
        self._fill(total, deadline)
        frame = bytes(self._buffer[:total])
        del self._buffer[:total]
        view = memoryview(frame)
        return _decode(view[PREFIX.size:PREFIX.size + header_length], view[PREFIX.size + header_length:], self.allowed)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
