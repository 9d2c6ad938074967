#!/usr/bin/python3
"""Apache Avro's Python library and confluent-kafka, run by avro_test.go as
an independent reader of cdcrecon's Avro.

  avro_tool.py compat SCHEMA_DIR CASES.jsonl
      For each case line, and each ordered pair of versions of a schema in
      SCHEMA_DIR, prints {"case"|"pair", "compatible"} by Avro's own
      ReaderWriterCompatibilityChecker.
  avro_tool.py read SCHEMA_DIR WRITER READER HEX
      Decodes the binary body HEX, written under schema file WRITER, with
      schema file READER as the reader schema; prints the datum.
  avro_tool.py consume SCHEMA_DIR BROKERS REGISTRY_URL COUNT TOPIC...
      Consumes COUNT records from the topics with confluent-kafka, decodes
      each by its Confluent schema id (fetched from the registry) or its
      single-object fingerprint, matched to a .avsc file by canonical form,
      read with the newest .avsc of that name; prints one line per record.

Datums print as JSON with timestamps as epoch milliseconds and bytes as hex.
"""
import datetime
import glob
import io
import json
import os
import struct
import sys
import urllib.request

import avro.io
import avro.schema

# The golden-file generator of schemas/ holds the CRC-64-AVRO function.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "schemas", "testdata", "golden"))
from gen import crc64_avro  # noqa: E402


def load_dir(d):
    out = {}
    for path in sorted(glob.glob(os.path.join(d, "*.avsc"))):
        with open(path) as f:
            out[os.path.basename(path)[:-5]] = (f.read(), avro.schema.parse(open(path).read()))
    return out


def newest(schemas, fullname):
    best = None
    for name, (_, s) in schemas.items():
        if s.fullname == fullname:
            v = int(name.rsplit(".v", 1)[1])
            if best is None or v > best[0]:
                best = (v, name, s)
    return best[1], best[2]


def plain(x):
    if isinstance(x, datetime.datetime):
        return int(x.timestamp() * 1000) if x.tzinfo else int(x.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).hex()
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [plain(v) for v in x]
    return x


def read(writer, reader, body):
    return avro.io.DatumReader(writer, reader).read(avro.io.BinaryDecoder(io.BytesIO(body)))


def cmd_compat(d, cases):
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    check = ReaderWriterCompatibilityChecker()

    def ok(r, w):
        return check.get_compatibility(r, w).compatibility == SchemaCompatibilityType.compatible

    with open(cases) as f:
        for i, line in enumerate(f):
            c = json.loads(line)
            r = avro.schema.parse(json.dumps(c["reader"]))
            w = avro.schema.parse(json.dumps(c["writer"]))
            print(json.dumps({"case": i + 1, "compatible": ok(r, w)}))
    schemas = load_dir(d)
    for a, (_, ra) in schemas.items():
        for b, (_, rb) in schemas.items():
            if ra.fullname == rb.fullname:
                print(json.dumps({"pair": [a, b], "compatible": ok(ra, rb)}))


def cmd_read(d, writer, reader, hexbody):
    schemas = load_dir(d)
    print(json.dumps(plain(read(schemas[writer][1], schemas[reader][1], bytes.fromhex(hexbody)))))


def cmd_consume(d, brokers, registry, count, topics):
    from confluent_kafka import Consumer
    schemas = load_dir(d)
    by_canonical = {s.canonical_form: (n, s) for n, (_, s) in schemas.items()}
    by_fp = {crc64_avro(s.canonical_form.encode()): (n, s) for n, (_, s) in schemas.items()}
    ids = {}
    c = Consumer({"bootstrap.servers": brokers, "group.id": "avro-tool", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "api.version.request": True})
    c.subscribe(topics)
    got = 0
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
    while got < count and datetime.datetime.now() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            raise SystemExit("consume error: %s" % m.error())
        v = m.value()
        if v[0] == 0:
            (sid,) = struct.unpack(">I", v[1:5])
            if sid not in ids:
                with urllib.request.urlopen("%s/schemas/ids/%d" % (registry, sid)) as resp:
                    text = json.load(resp)["schema"]
                ids[sid] = by_canonical[avro.schema.parse(text).canonical_form]
            name, writer = ids[sid]
            enc, body = "confluent", v[5:]
        elif v[:2] == b"\xc3\x01":
            (fp,) = struct.unpack("<Q", v[2:10])
            name, writer = by_fp[fp]
            enc, body = "single-object", v[10:]
        else:
            raise SystemExit("%s/%d/%d: unknown encoding" % (m.topic(), m.partition(), m.offset()))
        reader_name, reader = newest(schemas, writer.fullname)
        datum = read(writer, reader, body)
        print(json.dumps({"topic": m.topic(), "offset": m.offset(), "key": m.key().decode() if m.key() else None,
                          "encoding": enc, "writer": name, "reader": reader_name, "datum": plain(datum)}), flush=True)
        got += 1
    c.close()
    if got < count:
        raise SystemExit("read %d of %d records" % (got, count))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "compat":
        cmd_compat(*args)
    elif cmd == "read":
        cmd_read(*args)
    elif cmd == "consume":
        cmd_consume(args[0], args[1], args[2], int(args[3]), args[4:])
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
