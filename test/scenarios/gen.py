#!/usr/bin/python3
"""Writes the dumps of every scenario from its events.txt.

A scenario is a folder holding check.yaml (the configuration), events.txt
(what the two databases did, one event per line), want.jsonl (the drift
records `check --history` must print, written by hand from
processors/reconcile/SEMANTICS.md, with the fields the scenario pins) and
the dumps this script writes from events.txt: source.jsonl and
target.jsonl, Debezium JSON (schemaless) as kcat -J lines.

events.txt, after # comments:

  SIDE TABLE TIME OP KEY [ROW] [pos=N] [partition=N]

  SIDE   src (PostgreSQL-shaped, topic pg.public.TABLE) or
         tgt (MySQL-shaped, topic mysql.shop.TABLE)
  TIME   event time in ms after 2025-11-21T04:40:00Z (source.ts_ms)
  OP     c u d r: a change (d keeps the previous row as "before")
         tombstone: the null-value record after a delete
         t: a truncate (KEY is -)
         poison: a record whose value is the text of ROW, verbatim
  KEY    the message key as JSON, e.g. {"id":1}
  ROW    the "after" row as JSON (for c u r)
  pos=N  the connector position (lsn, or binlog pos); by default each
         event gets the next one. Give the same pos twice to re-send an
         event (a duplicate), or to give snapshot rows one position.

Run: /usr/bin/python3 test/scenarios/gen.py [--check]
"""
import glob
import re
import sys
import json
import os

BASE = 1763700000000
HERE = os.path.dirname(os.path.abspath(__file__))


def envelope(side, table, t, op, before, after, pos):
    if side == "src":
        src = {"version": "2.7.0.Final", "connector": "postgresql", "name": "pg", "ts_ms": BASE + t,
               "snapshot": "true" if op == "r" else "false", "db": "shop", "schema": "public", "table": table,
               "txId": 500 + pos, "lsn": 1000 + pos * 8, "xmin": None}
    else:
        src = {"version": "2.7.0.Final", "connector": "mysql", "name": "mysql", "ts_ms": BASE + t,
               "snapshot": "false", "db": "shop", "table": table, "server_id": 1,
               "file": "binlog.000001", "pos": 4000 + pos * 8, "row": 0}
    return {"before": before, "after": after, "source": src, "op": op, "ts_ms": BASE + t + 20}


def generate(folder, check=False):
    out = {"src": [], "tgt": []}
    last = {}
    auto = {"src": 0, "tgt": 0}
    offsets = {}
    with open(os.path.join(folder, "events.txt")) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$", line)
            if not m:
                raise SystemExit("%s:%d: want SIDE TABLE TIME OP KEY [ROW] [pos=N] [partition=N]" % (folder, n))
            side, table, t, op, key, rest = m.groups()
            opts = {}
            while True:
                o = re.search(r"(?:^|\s)(pos|partition)=(\d+)$", rest)
                if not o:
                    break
                opts[o.group(1)] = o.group(2)
                rest = rest[:o.start()].rstrip()
            rest = rest or None
            if key == "-":
                key = None
            topic = ("pg.public." if side == "src" else "mysql.shop.") + table
            part = int(opts.get("partition", 0))
            auto[side] += 1
            pos = int(opts.get("pos", auto[side]))
            t = int(t)
            if op == "tombstone":
                value = None
            elif op == "poison":
                value = json.loads(rest) if rest.startswith('"') else rest
            elif op == "t":
                value = json.dumps(envelope(side, table, t, "t", None, None, pos))
            else:
                k = (side, table, key)
                after = json.loads(rest) if op != "d" else None
                before = last.get(k) if op in ("u", "d") else None
                value = json.dumps(envelope(side, table, t, op, before, after, pos))
                last[k] = after
            off = offsets.get((topic, part), 0)
            offsets[(topic, part)] = off + 1
            out[side].append(json.dumps({"topic": topic, "partition": part, "offset": off, "tstype": "create",
                                         "ts": BASE + t + 40, "key": key, "payload": value}))
    stale = []
    for side, name in (("src", "source.jsonl"), ("tgt", "target.jsonl")):
        path = os.path.join(folder, name)
        text = "".join(l + "\n" for l in out[side])
        if check:
            with open(path) as f:
                if f.read() != text:
                    stale.append(path)
            continue
        with open(path, "w") as f:
            f.write(text)
    return stale


def main():
    check = "--check" in sys.argv
    folders = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(HERE, "*", "events.txt")))
    stale = []
    for folder in folders:
        stale += generate(folder, check)
    if stale:
        raise SystemExit("not generated from events.txt (run gen.py): " + ", ".join(stale))
    print("%d scenarios %s" % (len(folders), "up to date" if check else "written"))


if __name__ == "__main__":
    main()
