"""reprise_trace: the trace file's layout read independently of the C++ reader, for tests.

Header: magic "REPRISE\\n", then u32 LE version, body length, CRC-32C of the body, then
the body. Chunks (format 3 and 4): a 16-byte frame -- u32 stored length S, u32 raw length R,
u8 flags (1 compressed, 2 encrypted), 3 zero bytes, u32 CRC-32C over frame bytes 0..11
and the S stored bytes -- then the S stored bytes. docs/trace-format.md is the spec.
"""
import struct

MAGIC = b"REPRISE\n"
FORMAT_VERSION = 4
FRAME_BYTES = 16
HEADER_BYTES_MAX = 1024 * 1024
CHUNK_BYTES_MAX = 65 * 1024 * 1024
SEAL_OVERHEAD_BYTES = 24 + 16
FLAG_COMPRESSED = 1
FLAG_ENCRYPTED = 2


class LayoutError(Exception):
    pass


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli, reflected polynomial 0x82f63b78); crc32c(b, crc32c(a)) == crc32c(a + b)."""
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class Chunk:
    def __init__(self, offset, stored, raw, flags, crc):
        self.offset, self.stored, self.raw, self.flags, self.crc = offset, stored, raw, flags, crc

    @property
    def end(self):
        return self.offset + FRAME_BYTES + self.stored

    def crc_matches(self, data):
        frame = data[self.offset:self.offset + 12]
        return crc32c(data[self.offset + FRAME_BYTES:self.end], crc32c(frame)) == self.crc


def read_header(data):
    """(version, header_end) of a trace's bytes; LayoutError when there is no complete header."""
    if len(data) < 20 or data[:8] != MAGIC:
        raise LayoutError(f"no complete header ({len(data)} bytes)")
    version, length, _crc = struct.unpack_from("<III", data, 8)
    if length > HEADER_BYTES_MAX or 20 + length > len(data):
        raise LayoutError(f"bad header (version {version}, length {length}, file {len(data)} bytes)")
    return version, 20 + length


def header_crc_matches(data):
    _version, end = read_header(data)
    (crc,) = struct.unpack_from("<I", data, 16)
    return crc32c(data[20:end]) == crc


def walk_chunks(data):
    """(header_end, complete chunks, end offset of the last complete chunk) from the frames'
    length fields alone; a partial chunk at the very end is left out. LayoutError on a frame
    no writer produces."""
    version, header_end = read_header(data)
    if version != FORMAT_VERSION:
        raise LayoutError(f"format version {version}, expected {FORMAT_VERSION}")
    chunks = []
    offset = header_end
    while offset + FRAME_BYTES <= len(data):
        stored, raw, flags = struct.unpack_from("<IIB", data, offset)
        (crc,) = struct.unpack_from("<I", data, offset + 12)
        if raw < 1 or raw > CHUNK_BYTES_MAX or stored > CHUNK_BYTES_MAX + SEAL_OVERHEAD_BYTES or flags & ~3:
            raise LayoutError(f"chunk {len(chunks)} at offset {offset}: stored {stored}, raw {raw}, flags {flags}")
        chunk = Chunk(offset, stored, raw, flags, crc)
        if chunk.end > len(data):
            break
        chunks.append(chunk)
        offset = chunk.end
    return header_end, chunks, offset
