package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
)

// largeDumps writes the example dumps with order 3 added on both sides,
// the same on each, its status a text of n bytes: records of over n
// bytes that agree.
func largeDumps(t *testing.T, n int) (src, tgt string) {
	t.Helper()
	dir := t.TempDir()
	big := strings.Repeat("x", n)
	add := func(from, name string, row map[string]any, source map[string]any) string {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(map[string]any{"before": nil, "after": row, "source": source, "op": "c", "ts_ms": 1763700005100})
		line, _ := json.Marshal(map[string]any{"topic": source["topic"], "partition": 0, "offset": 50, "ts": 1763700005120,
			"key": `{"id": 3}`, "payload": string(payload)})
		delete(source, "topic")
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, append(append(b, line...), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	src = add("../../examples/dumps/source.jsonl", "source.jsonl",
		map[string]any{"id": 3, "status": big, "order_total": "1.00", "paid": false},
		map[string]any{"topic": "pg.public.orders", "connector": "postgresql", "name": "pg", "ts_ms": 1763700005000, "db": "shop", "schema": "public", "table": "orders"})
	tgt = add("../../examples/dumps/target.jsonl", "target.jsonl",
		map[string]any{"id": 3, "status": big, "total": "1.0000", "paid": 0},
		map[string]any{"topic": "mysql.shop.orders", "connector": "mysql", "name": "mysql", "ts_ms": 1763700005200, "db": "shop", "table": "orders"})
	return src, tgt
}

// TestCheckTakesLargeRecords: records of 3 MB, over the 1 MB that
// Kafka's clients and brokers allow by default, are compared like any
// other; over --max-record-bytes, the line is named with the limit.
func TestCheckTakesLargeRecords(t *testing.T) {
	src, tgt := largeDumps(t, 3<<20)
	report := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", "../../examples/orders.yaml", "--report", report, src, tgt}, nil, &out, &errOut)
	if code != exitOK || out.Len() != 0 {
		t.Fatalf("check: exit %d, stdout %q, stderr %s", code, out.String(), errOut.String())
	}
	var rep offline.Report
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Events != 8 || rep.Invalid != 0 {
		t.Errorf("report %s (%v): want 8 events, none invalid", b, err)
	}

	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"check", "--config", "../../examples/orders.yaml", "--max-record-bytes", "2000000", src, tgt}, nil, &out, &errOut)
	msg := errOut.String()
	srcLine := fmt.Sprintf("source.jsonl:%d", lines(t, src))
	tgtLine := fmt.Sprintf("target.jsonl:%d", lines(t, tgt))
	if code != exitFailure || !strings.Contains(msg, srcLine) || !strings.Contains(msg, tgtLine) ||
		!strings.Contains(msg, "--max-record-bytes 2000000") {
		t.Errorf("check --max-record-bytes 2000000: exit %d, want %d naming %s, %s and the limit:\n%s", code, exitFailure, srcLine, tgtLine, msg)
	}
}

// lines counts a file's lines.
func lines(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// bigAtLine writes a dump of n lines over three partitions of topic
// "lines", each record's value its line number, line big's value 2 MB.
func bigAtLine(t *testing.T, n, big int) string {
	t.Helper()
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		v := strconv.Itoa(i)
		if i == big {
			// Random, so that compression does not take it under 1 MiB.
			noise := make([]byte, 3<<19)
			rand.Read(noise)
			v += " " + base64.StdEncoding.EncodeToString(noise)
		}
		line, _ := json.Marshal(map[string]any{"topic": "lines", "partition": i % 3, "offset": i / 3, "ts": 1763700000000 + i,
			"key": "k" + strconv.Itoa(i), "payload": v})
		b.Write(append(line, '\n'))
	}
	f := filepath.Join(t.TempDir(), "lines.jsonl")
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// producedLines reads topic "lines" to its end: the line numbers it holds.
func producedLines(t *testing.T, cc kafka.ClientConfig) []int {
	t.Helper()
	end, err := topicEnd(cc, "lines")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range readTopic(t, cc, "lines", int(end)) {
		num, _, _ := strings.Cut(string(r.Value), " ")
		n, err := strconv.Atoi(num)
		if err != nil {
			t.Fatalf("record %q", r.Value)
		}
		got = append(got, n)
	}
	slices.Sort(got)
	return got
}

// TestProduceSaysWhatItWrote: a broker that refuses the record of line
// 100 (2 MB, over its 1 MiB limit) stops the load; what the command
// then says the broker has is exactly what the topic holds, and every
// line before the first failure is in it.
func TestProduceSaysWhatItWrote(t *testing.T) {
	b, err := broker.Start(broker.Config{MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	f := bigAtLine(t, 20000, 100)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"produce", "--brokers", b.Addr(), "--max-record-bytes", "4000000", f}, nil, &out, &errOut)
	msg := errOut.String()
	m := regexp.MustCompile(`lines.jsonl:(\d+): producing: .*MESSAGE_TOO_LARGE.*Stopped; the broker has, of .*lines.jsonl \(read to line (\d+)\): `).FindStringSubmatch(msg)
	if code != exitFailure || m == nil {
		t.Fatalf("produce: exit %d, want %d naming the line and what was written:\n%s", code, exitFailure, msg)
	}
	failed, _ := strconv.Atoi(m[1])
	read, _ := strconv.Atoi(m[2])
	got := producedLines(t, cc)
	// What the command says of each partition, worked out from what the
	// topic holds and the lines it read.
	for part := range 3 {
		var sent, in []int
		for i := 1; i <= read; i++ {
			if i%3 == part {
				sent = append(sent, i)
			}
		}
		for _, i := range got {
			if i%3 == part {
				in = append(in, i)
			}
		}
		var want string
		switch {
		case len(in) == len(sent):
			want = fmt.Sprintf("lines/%d: all %d sent", part, len(sent))
		case len(in) == 0:
			want = fmt.Sprintf("lines/%d: none of %d sent", part, len(sent))
		case slices.Equal(in, sent[:len(in)]):
			want = fmt.Sprintf("lines/%d: %d of %d sent, its lines up to line %d", part, len(in), len(sent), in[len(in)-1])
		default:
			// Every line before the first missing one, then the few
			// that are in, or the few that are not.
			missing := setDiffInts(sent, in)
			var after []int
			for _, i := range in {
				if i > missing[0] {
					after = append(after, i)
				}
			}
			want = fmt.Sprintf("lines/%d: %d of %d sent, all but lines %s", part, len(in), len(sent), strings.ReplaceAll(compactLines(missing), ",", ", "))
			if len(after) < len(missing) {
				want = fmt.Sprintf("lines/%d: %d of %d sent, its lines before line %d and, of the later ones, lines %s", part, len(in), len(sent),
					missing[0], strings.ReplaceAll(compactLines(after), ",", ", "))
			}
		}
		if !strings.Contains(msg, want) {
			t.Errorf("the topic holds %d lines of partition %d (%s); the command does not say %q:\n%.2000s", len(in), part, compactLines(in), want, msg)
		}
	}
	if failed > 100 || len(got) < failed-1 {
		t.Fatalf("reported line %d; %d lines in the topic", failed, len(got))
	}
	// Every line before the first failure is there.
	for _, i := range seq(1, failed-1) {
		if _, ok := slices.BinarySearch(got, i); !ok {
			t.Errorf("line %d, before the reported line %d, is not in the topic", i, failed)
			break
		}
	}
}

// TestProduceSkipsRecordsOverTheLimit: under --max-record-bytes' default,
// Kafka's own, the 2 MB line is a bad line named with the limit; every
// other line is written.
func TestProduceSkipsRecordsOverTheLimit(t *testing.T) {
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f := bigAtLine(t, 2000, 100)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"produce", "--brokers", b.Addr(), f}, nil, &out, &errOut)
	if code != exitFailure || !strings.Contains(errOut.String(), "lines.jsonl:100: a record of") || !strings.Contains(errOut.String(), "--max-record-bytes 1048588") {
		t.Fatalf("produce: exit %d, want %d naming line 100 and the limit:\n%s", code, exitFailure, errOut.String())
	}
	got := producedLines(t, kafka.ClientConfig{Brokers: []string{b.Addr()}})
	want := append(seq(1, 99), seq(101, 2000)...)
	if !slices.Equal(got, want) {
		t.Errorf("the topic holds %v, want every line but 100", compactLines(got))
	}
}

// setDiffInts returns the members of sorted a not in sorted b.
func setDiffInts(a, b []int) []int {
	var out []int
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

func seq(first, last int) []int {
	var s []int
	for i := first; i <= last; i++ {
		s = append(s, i)
	}
	return s
}

// compactLines shows sorted numbers as ranges.
func compactLines(ns []int) string {
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ns[i], ns[j]))
		} else {
			parts = append(parts, strconv.Itoa(ns[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
