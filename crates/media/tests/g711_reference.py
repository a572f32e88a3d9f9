#!/usr/bin/env python3
"""Write independent G.711 reference tables for tests/g711_reference.rs.

Usage: python3 g711_reference.py OUT_DIR

The reference is Python's stdlib `audioop` (3.11/3.12; removed in 3.13), which uses the
Sun/CCITT g711 code, with no code shared with voice-ua-media. Files written (raw bytes):
  ulaw_encode.bin  65536 codes, for x = -32768..32767 (audioop.lin2ulaw, width 2)
  alaw_encode.bin  65536 codes, same inputs (audioop.lin2alaw, width 2)
  ulaw_decode.bin  256 little-endian i16, for codes 0..255 (audioop.ulaw2lin)
  alaw_decode.bin  256 little-endian i16 (audioop.alaw2lin)
Exit status 2 with a message on stderr if audioop is missing.
"""
import os
import struct
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
try:
    import audioop  # noqa: E402
except ImportError:
    sys.stderr.write("python3 has no audioop module (needs Python <= 3.12)\n")
    sys.exit(2)


def main() -> None:
    out = sys.argv[1]
    linear = struct.pack("<65536h", *range(-32768, 32768))
    codes = bytes(range(256))
    files = {
        "ulaw_encode.bin": audioop.lin2ulaw(linear, 2),
        "alaw_encode.bin": audioop.lin2alaw(linear, 2),
        "ulaw_decode.bin": audioop.ulaw2lin(codes, 2),
        "alaw_decode.bin": audioop.alaw2lin(codes, 2),
    }
    if sys.byteorder != "little":
        files["ulaw_decode.bin"] = audioop.byteswap(files["ulaw_decode.bin"], 2)
        files["alaw_decode.bin"] = audioop.byteswap(files["alaw_decode.bin"], 2)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
