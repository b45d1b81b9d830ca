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
import math
import select
import socket
import struct
import time
from typing import Any, Optional

import numpy as np

PREFIX = struct.Struct("<II")
DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|i1", "|u1", "|b1"})
MAX_HEADER = 64 * 1024
# Waiting for a reply, first try to read for this long before sleeping in poll(): the other
# side usually answers within an env step or an agent's act, and a process that sleeps is
# woken only after the scheduler gets round to it (tens of microseconds per wake-up, two per step).
SPIN_S = 200e-6
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


_HEADERS: dict = {}  # (type, array layout) -> header bytes, for messages without fields
_CACHE_SIZE = 256


def encode(type: str, arrays: Optional[dict[str, Any]] = None, **fields) -> bytes:
    """One frame. `fields` must be JSON values; arrays must have a whitelisted dtype."""
    packed = [(name, _wire_dtype(np.asarray(value))) for name, value in (arrays or {}).items()]
    key = None
    if not fields:
        key = (type, tuple((name, a.dtype.str, a.shape) for name, a in packed))
        header = _HEADERS.get(key)
    if key is None or header is None:
        specs = []
        for name, array in packed:
            if array.dtype.str not in DTYPES:
                raise WireError(f"array {name!r} has dtype {array.dtype}, not one of the wire's {sorted(DTYPES)}")
            specs.append([name, array.dtype.str, list(array.shape)])
        fields["type"] = type
        if specs:
            fields["arrays"] = specs
        header = json.dumps(fields, separators=(",", ":"), allow_nan=True).encode()
        if key is not None and len(_HEADERS) < _CACHE_SIZE:
            _HEADERS[key] = header
    body = b"".join([a.tobytes() for _, a in packed])
    return PREFIX.pack(len(header), len(body)) + header + body


_DTYPES = {name: np.dtype(name) for name in DTYPES}


def _layout(header: bytes, allowed: frozenset):
    """(type, fields, [(name, dtype, count, shape, offset)], body size) of a header, validated."""
    try:
        fields = json.loads(header)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WireError(f"a header that is not JSON ({type(err).__name__}: {str(err)[:100]})") from None
    if not isinstance(fields, dict):
        raise WireError("a header that is not a JSON object")
    kind = fields.pop("type", None)
    if not isinstance(kind, str) or kind not in allowed:
        raise WireError(f"a message of unknown type {str(kind)[:40]!r} (allowed: {', '.join(sorted(allowed))})")
    specs = fields.pop("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise WireError("a malformed array list")
    layout, offset = [], 0
    for spec in specs:
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], str)
                and isinstance(spec[2], list) and len(spec[2]) <= MAX_DIMS
                and all(type(n) is int and 0 <= n < 2**31 for n in spec[2])):
            raise WireError(f"a malformed array description {str(spec)[:80]}")
        name, dtype, shape = spec
        if dtype not in DTYPES:
            raise WireError(f"array {name[:40]!r} of dtype {dtype[:20]!r}, not one of {sorted(DTYPES)}")
        count = math.prod(shape)
        layout.append((name, _DTYPES[dtype], count, tuple(shape), offset))
        offset += count * _DTYPES[dtype].itemsize
    return kind, fields, layout, offset


def _decode(header: bytes, body: memoryview, allowed: frozenset, cache: Optional[dict] = None) -> Message:
    """A message from its header and body; `cache` keeps the validated layouts of headers
    without fields (an action's header is the same on every step)."""
    header = bytes(header)
    hit = cache.get(header) if cache is not None else None
    if hit is None:
        hit = _layout(header, allowed)
        if cache is not None and not hit[1] and len(cache) < _CACHE_SIZE:
            cache[header] = hit
    kind, fields, layout, size = hit
    if size != len(body):
        name = next((n for n, d, c, _, o in layout if o + c * d.itemsize > len(body)), None)
        if name is not None:
            raise WireError(f"array {name[:40]!r} runs past the end of its message")
        raise WireError(f"{len(body) - size} bytes after the last array")
    arrays = {name: np.frombuffer(body, dtype, count, offset).reshape(shape)
              for name, dtype, count, shape, offset in layout}
    return Message(kind, dict(fields), arrays)


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
        self._layouts: dict = {}

    def send(self, type: str, arrays: Optional[dict[str, Any]] = None, **fields) -> None:
        self.send_frame(encode(type, arrays, **fields))

    def send_frame(self, frame: bytes) -> None:
        try:
            self.sock.sendall(frame)
        except OSError as err:  # BrokenPipe, ConnectionReset: the other side is gone
            raise Closed(f"the connection closed while sending ({err.strerror or err})") from None
        self.sent_bytes += len(frame)

    def _spin(self, size: int) -> Optional[bytes]:
        """What arrives within SPIN_S, read without sleeping; None if nothing did."""
        until = time.perf_counter() + SPIN_S
        while True:
            try:
                return self.sock.recv(size, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                if time.perf_counter() > until:
                    return None
            except OSError as err:
                raise Closed(f"the connection failed ({err.strerror or err})") from None

    def _fill(self, need: int, deadline: Optional[float]) -> None:
        while len(self._buffer) < need:
            size = max(need - len(self._buffer), 65536)
            chunk = self._spin(size)
            if chunk is None:  # nothing yet: sleep in poll() until something arrives
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._poll.poll(max(1, int(remaining * 1000 + 0.999))):
                        if time.monotonic() >= deadline:
                            raise Timeout("nothing arrived in time")
                        continue
                try:
                    chunk = self.sock.recv(size)
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
        return _decode(view[PREFIX.size:PREFIX.size + header_length], view[PREFIX.size + header_length:], self.allowed,
                       self._layouts)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
