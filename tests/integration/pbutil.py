"""pbutil -- tiny wire-format encoders shared by the integration tests (stdlib only).

Tests build protobuf payloads (remote write, Loki push, OTLP) by hand, field by field, so they
exercise the daemons' decoders without depending on the project's own encoders, and compress
them with snappy's literal-only block format (valid snappy that any decoder accepts).
"""
import struct


def uvarint(n):
    """Protobuf base-128 varint; negative values are sent as 64-bit two's complement."""
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fbytes(num, data):
    """Length-delimited field `num` (wire type 2); str is UTF-8 encoded."""
    data = data.encode() if isinstance(data, str) else data
    return uvarint(num << 3 | 2) + uvarint(len(data)) + data


def snappy_literal(data):
    """Snappy block format made only of literal chunks (at most 64 KiB each)."""
    out = bytearray(uvarint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)
