#!/usr/bin/env python3
"""An independent client of the log distributor, written from PROTOCOL.md alone.

It speaks the compressed parts of the protocol (section 7) with Python's own codecs
(`pip install lz4 zstandard`), so that the distributor's implementation is checked
against a second one:

  analyzer  connects to the analyzer port, sends a HELLO asking for lz4 or zstd BATCH
            frames (and ACKs with --acks), decodes DELIVER and BATCH frames (checking
            each BATCH's count and raw_len), verifies every probe (binary or text,
            section 4) and prints a JSON summary once --count DELIVER frames arrived.
  emitter   connects to the emitter port, sends an EMITTER HELLO naming the codec (and
            asking for ACKs with --acks), then --count LOG frames with binary probes as
            one compressed stream, flushed every --flush-every frames; with --acks it
            waits until every frame is acknowledged. Prints a JSON summary.

Exit status: 0 when everything arrived and verified, 1 otherwise (the summary says why).
"""

import argparse
import json
import socket
import struct
import sys
import time
import zlib

import lz4.frame
import zstandard

CODECS = {"lz4": 1, "zstd": 2}  # BATCH codec byte; the HELLO flag bit is 1 << id
MAX_RAW_LEN = 16 << 20


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


# ---- probes (section 4) -------------------------------------------------------------

def binary_probe(priority, emitter, seq, sent_ns, filler):
    body = b"LDT1" + struct.pack(">IQQ", emitter, seq, sent_ns) + filler
    return body + struct.pack(">I", crc32(bytes([priority]) + body))


def verify_binary(priority, payload):
    if len(payload) < 28 or payload[:4] != b"LDT1":
        return None
    stored = struct.unpack(">I", payload[-4:])[0]
    if stored != crc32(bytes([priority]) + payload[:-4]):
        return False
    return struct.unpack(">IQQ", payload[4:24])


def verify_text(payload):
    at = payload.rfind(b"LDT1:")
    if at < 0:
        return None
    text = payload[at + 5:].rstrip(b" \t\r\n")
    try:
        fields, rest = text.split(b" ", 1)
        emitter, seq, sent_ns, crc = fields.split(b":")
    except ValueError:
        return False
    for f in (emitter, seq, sent_ns):
        if not f.isdigit() or (len(f) > 1 and f[:1] == b"0"):
            return False
    if len(crc) != 8 or crc != crc.lower() or not rest:
        return False
    covered = emitter + b":" + seq + b":" + sent_ns + b" " + rest
    if int(crc, 16) != crc32(covered):
        return False
    return int(emitter), int(seq), int(sent_ns)


def pri_priority(payload):
    """Section 8: severity * 32 + min(facility, 23); 161 without a valid PRI."""
    if payload[:1] == b"<":
        end = payload.find(b">", 1, 5)
        digits = payload[1:end] if end > 0 else b""
        if 1 <= len(digits) <= 3 and digits.isdigit() and int(digits) <= 191:
            pri = int(digits)
            return (pri % 8) * 32 + min(pri // 8, 23)
    return 161


# ---- frames ---------------------------------------------------------------------------

def read_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return bytes(out)


def deliver_frames(raw, count):
    """Splits decompressed BATCH bytes into exactly `count` DELIVER frames."""
    frames, at = [], 0
    while at < len(raw):
        if len(raw) - at < 22:
            raise ValueError("BATCH bytes end inside a DELIVER header at %d" % at)
        frame_len, kind = struct.unpack(">IB", raw[at:at + 5])
        if kind != 0x44 or frame_len < 22 or at + frame_len > len(raw):
            raise ValueError("BATCH byte %d: not a DELIVER frame" % at)
        priority, queued, dispatch = struct.unpack(">BQQ", raw[at + 5:at + 22])
        frames.append((priority, queued, dispatch, raw[at + 22:at + frame_len]))
        at += frame_len
    if len(frames) != count:
        raise ValueError("BATCH count %d but %d DELIVER frames inside" % (count, len(frames)))
    return frames


def decompress_batch(codec, body, raw_len):
    if raw_len > MAX_RAW_LEN:
        raise ValueError("BATCH raw_len %d exceeds 16 MiB" % raw_len)
    if codec == CODECS["lz4"]:
        d = lz4.frame.LZ4FrameDecompressor()
        raw = d.decompress(body, max_length=raw_len + 1)
        if len(raw) > raw_len:
            raise ValueError("BATCH decodes to more than its raw_len %d" % raw_len)
        if not d.eof or d.unused_data:
            raise ValueError("BATCH body is not exactly one LZ4 frame")
    else:
        # One frame: what follows it is left in unused_data. (This client trusts the
        # distributor's raw_len for memory; the Rust decoder bounds the output by it.)
        obj = zstandard.ZstdDecompressor().decompressobj()
        raw = obj.decompress(body)
        if obj.unused_data:
            raise ValueError("BATCH body is not exactly one zstd frame")
    if len(raw) != raw_len:
        raise ValueError("BATCH raw_len %d but it decodes to %d bytes" % (raw_len, len(raw)))
    return raw


def analyzer(args):
    codec = CODECS[args.compress]
    host, port = args.distributor.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=args.timeout)
    flags = (1 if args.acks else 0) | (1 << codec)
    ident = args.id.encode()
    sock.sendall(struct.pack(">IBHBd", 16 + len(ident), 0x48, 1, flags, args.weight) + ident)
    s = dict(delivers=0, batches=0, plain=0, probes_ok=0, text_probes=0, corrupt=0,
             foreign=0, wire_bytes=0, raw_bytes=0, acked=0, error=None)
    try:
        while s["delivers"] < args.count:
            frame_len, kind = struct.unpack(">IB", read_exact(sock, 5))
            rest = read_exact(sock, frame_len - 5)
            s["wire_bytes"] += frame_len
            if kind == 0x45:
                raise ValueError("REJECT: " + rest.decode("utf-8", "replace"))
            if kind == 0x44:
                frames = [struct.unpack(">BQQ", rest[:17]) + (rest[17:],)]
                s["plain"] += 1
                s["raw_bytes"] += frame_len
            elif kind == 0x42:
                got_codec, count, raw_len = struct.unpack(">BII", rest[:9])
                if got_codec != codec:
                    raise ValueError("BATCH codec %d, asked for %d" % (got_codec, codec))
                frames = deliver_frames(decompress_batch(codec, rest[9:], raw_len), count)
                s["batches"] += 1
                s["raw_bytes"] += raw_len
            else:
                raise ValueError("unknown frame kind 0x%02x" % kind)
            for priority, _queued, _dispatch, payload in frames:
                s["delivers"] += 1
                ok = verify_binary(priority, payload)
                if ok is None or ok is False:
                    text = verify_text(payload)
                    if text is not None:
                        s["text_probes"] += 1
                        ok = text if text and priority == pri_priority(payload) else False
                if ok is None:
                    s["foreign"] += 1
                elif ok is False:
                    s["corrupt"] += 1
                else:
                    s["probes_ok"] += 1
            if args.acks:
                sock.sendall(struct.pack(">IBQ", 13, 0x41, s["delivers"]))
                s["acked"] = s["delivers"]
    except (ValueError, EOFError, OSError) as e:
        s["error"] = str(e)
    sock.close()
    print(json.dumps(s))
    return 0 if s["error"] is None and s["corrupt"] == 0 else 1


class Compressor:
    """One compressed stream per connection, flushed whenever the writer stops."""

    def __init__(self, codec, level):
        self.codec = codec
        if codec == "lz4":
            self.c = lz4.frame.LZ4FrameCompressor(block_linked=True, auto_flush=True)
            self.started = False
        else:
            self.c = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data):
        if self.codec == "lz4":
            head = b"" if self.started else self.c.begin()
            self.started = True
            return head + self.c.compress(data)
        return self.c.compress(data) + self.c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self):
        if self.codec == "lz4":
            return (b"" if self.started else self.c.begin()) + self.c.flush()
        return self.c.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


def emitter(args):
    host, port = args.target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=args.timeout)
    codec = CODECS[args.compress]
    flags = (1 if args.acks else 0) | (1 << codec)
    ident = ("py-emitter-%d" % args.emitter_id).encode()
    sock.sendall(b"LDE1" + bytes([1, flags, len(ident)]) + ident)
    c = Compressor(args.compress, args.level)
    s = dict(sent=0, raw_bytes=0, wire_bytes=7 + len(ident), acked=0, error=None)
    words = b"GET POST /api/v1/users /api/v1/orders 200 404 cache hit miss session".split()
    batch = bytearray()
    try:
        for seq in range(args.count):
            filler = b" ".join(words[(seq * 7 + i) % len(words)] for i in range(40))
            priority = seq % 8
            payload = binary_probe(priority, args.emitter_id, seq, time.time_ns(), filler)
            batch += struct.pack(">IB", 5 + len(payload), priority) + payload
            s["sent"] += 1
            if s["sent"] % args.flush_every == 0 or seq == args.count - 1:
                out = c.compress(bytes(batch))
                sock.sendall(out)
                s["raw_bytes"] += len(batch)
                s["wire_bytes"] += len(out)
                batch.clear()
        out = c.finish()
        sock.sendall(out)
        s["wire_bytes"] += len(out)
        if args.acks:
            while s["acked"] < s["sent"]:
                frame_len, kind = struct.unpack(">IB", read_exact(sock, 5))
                rest = read_exact(sock, frame_len - 5)
                if kind == 0x45:
                    raise ValueError("REJECT: " + rest.decode("utf-8", "replace"))
                if kind != 0x41 or frame_len != 13:
                    raise ValueError("expected an ACK, got kind 0x%02x" % kind)
                s["acked"] = struct.unpack(">Q", rest)[0]
        sock.shutdown(socket.SHUT_WR)
        # The distributor never sends data without ACKs; wait for its close (or ours).
        sock.settimeout(args.timeout)
        while sock.recv(4096):
            pass
    except (ValueError, EOFError, OSError) as e:
        s["error"] = str(e)
    sock.close()
    print(json.dumps(s))
    return 0 if s["error"] is None else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    a = sub.add_parser("analyzer", help="ask for and decode BATCH frames")
    a.add_argument("--distributor", required=True, metavar="HOST:PORT")
    a.add_argument("--id", default="py-analyzer")
    a.add_argument("--weight", type=float, default=1.0)
    a.add_argument("--compress", choices=CODECS, required=True)
    a.add_argument("--acks", action="store_true")
    a.add_argument("--count", type=int, required=True, help="DELIVER frames to wait for")
    a.add_argument("--timeout", type=float, default=30.0)
    e = sub.add_parser("emitter", help="send a compressed emitter stream")
    e.add_argument("--target", required=True, metavar="HOST:PORT")
    e.add_argument("--compress", choices=CODECS, required=True)
    e.add_argument("--level", type=int, default=3, help="zstd level")
    e.add_argument("--acks", action="store_true")
    e.add_argument("--count", type=int, required=True)
    e.add_argument("--emitter-id", type=int, default=900)
    e.add_argument("--flush-every", type=int, default=50, help="LOG frames per flushed write")
    e.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    sys.exit(analyzer(args) if args.role == "analyzer" else emitter(args))


if __name__ == "__main__":
    main()
