#!/usr/bin/python3
"""Writes, or with --check verifies, the golden encodings of schemas/.

Each CASE.json holds {"schema": "NAME.vN", "datum": {...}}: one record,
written by hand, with timestamp-millis fields as integers and bytes and
fixed fields as hex strings. Apache Avro's own Python library encodes it
with ../../avro/NAME.vN.avsc into CASE.hex. fingerprints.txt holds each
schema's CRC-64-AVRO fingerprint of Avro's parsing canonical form, as the
Python library forms it.

The Go tests hold cdcrecon's encoder to these files, so the expected bytes
come from an independent implementation, not from the code under test.
Run from anywhere: /usr/bin/python3 gen.py [--check]
"""
import datetime
import glob
import io
import json
import os
import sys

import avro.io
import avro.schema

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "..", "avro")


def crc64_avro(data):
    """CRC-64-AVRO, the Rabin fingerprint of the Avro specification."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def convert(schema, value):
    """Turns the JSON datum into what the Python writer takes."""
    t = schema.type
    if value is None:
        return None
    if t == "record":
        return {f.name: convert(f.type, value[f.name]) for f in schema.fields if f.name in value}
    if t == "array":
        return [convert(schema.items, v) for v in value]
    if t == "union":
        for branch in schema.schemas:
            if branch.type == "null":
                continue
            return convert(branch, value)
    if t in ("bytes", "fixed"):
        return bytes.fromhex(value)
    if schema.props.get("logicalType") == "timestamp-millis":
        return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
    return value


def load(name):
    with open(os.path.join(SCHEMAS, name + ".avsc")) as f:
        return avro.schema.parse(f.read())


def main():
    check = "--check" in sys.argv
    out = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        with open(path) as f:
            case = json.load(f)
        schema = load(case["schema"])
        buf = io.BytesIO()
        avro.io.DatumWriter(schema).write(convert(schema, case["datum"]), avro.io.BinaryEncoder(buf))
        out[path[:-5] + ".hex"] = buf.getvalue().hex() + "\n"
    lines = []
    for path in sorted(glob.glob(os.path.join(SCHEMAS, "*.avsc"))):
        name = os.path.basename(path)[:-5]
        canonical = load(name).canonical_form
        lines.append("%s %016x\n" % (name, crc64_avro(canonical.encode())))
    out[os.path.join(HERE, "fingerprints.txt")] = "".join(lines)
    bad = 0
    for path, text in out.items():
        if check:
            try:
                with open(path) as f:
                    have = f.read()
            except FileNotFoundError:
                have = None
            if have != text:
                print("%s: differs from Apache Avro's encoding: want %s" % (os.path.basename(path), text.strip()))
                bad += 1
        else:
            with open(path, "w") as f:
                f.write(text)
    if check and bad:
        sys.exit(1)
    print("%d files %s" % (len(out), "match" if check else "written"))


if __name__ == "__main__":
    main()
