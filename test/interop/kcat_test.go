package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kcatRecord is a kcat -J line as encoding/json sees it; only valid UTF-8
// payloads are used where this type is compared.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TS        int64    `json:"ts"`
	Headers   []string `json:"headers"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

func parseKcat(t *testing.T, out []byte) []kcatRecord {
	t.Helper()
	var recs []kcatRecord
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r kcatRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b kcatRecord) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return recs
}

// kcatProduce writes "key<TAB>value" lines to one partition with kcat.
func kcatProduce(t *testing.T, addr, topic string, partition int, lines string, headers ...string) {
	t.Helper()
	args := []string{"-b", addr, "-P", "-t", topic, "-p", fmt.Sprint(partition), "-K", "\t", "-Z"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	mustRun(t, []byte(lines), "kcat", args...)
}

func kcatDump(t *testing.T, addr, topic string) []byte {
	t.Helper()
	return mustRun(t, nil, "kcat", "-b", addr, "-C", "-t", topic, "-J", "-e", "-q", "-o", "beginning")
}

// kcat produces to and consumes from cdcrecon broker, and a kcat dump loads
// back with cdcrecon produce and reads back identical.
func TestKcatDumpRoundTrip(t *testing.T) {
	needKcat(t)
	b := startBroker(t, "--partitions", "3")
	kcatProduce(t, b.addr, "orders", 0, "k1\tv1\nk2\t{\"id\":2}\n", "origin=pg", "trace=a")
	kcatProduce(t, b.addr, "orders", 2, "k3\tv3\n")
	kcatProduce(t, b.addr, "orders", 1, "k4\t\n") // -Z: empty value is null

	dump := kcatDump(t, b.addr, "orders")
	orig := parseKcat(t, dump)
	if len(orig) != 4 {
		t.Fatalf("kcat read back %d records, want 4:\n%s", len(orig), dump)
	}
	if orig[0].Partition != 0 || *orig[0].Key != "k1" || *orig[0].Payload != "v1" ||
		!slices.Equal(orig[0].Headers, []string{"origin", "pg", "trace", "a"}) {
		t.Fatalf("kcat read back %+v", orig[0])
	}
	if orig[2].Partition != 1 || orig[2].Payload != nil {
		t.Errorf("null payload on partition 1 read back as %+v", orig[2])
	}

	// The dump goes back in under another topic name.
	renamed := bytes.ReplaceAll(dump, []byte(`"topic":"orders"`), []byte(`"topic":"orders_copy"`))
	file := filepath.Join(t.TempDir(), "orders.jsonl")
	if err := os.WriteFile(file, renamed, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, cdcrecon, "produce", "--brokers", b.addr, file)
	copied := parseKcat(t, kcatDump(t, b.addr, "orders_copy"))
	if len(copied) != len(orig) {
		t.Fatalf("copy has %d records, want %d", len(copied), len(orig))
	}
	for i := range orig {
		o, c := orig[i], copied[i]
		o.Topic = "orders_copy"
		if got, want := asJSON(t, c), asJSON(t, o); got != want {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}

	// cdcrecon tail prints the lines kcat prints, but for kcat's "broker".
	tail := mustRun(t, nil, cdcrecon, "tail", "--brokers", b.addr, "--topic", "orders", "--exit")
	want := sortLines(bytes.ReplaceAll(dump, []byte(`"broker":0,`), nil))
	if got := sortLines(tail); got != want {
		t.Errorf("tail output:\n%s\nkcat output:\n%s", got, want)
	}
}

// Binary payloads (Avro, for one) survive kcat → dump → produce → kcat
// byte for byte.
func TestKcatBinaryPayload(t *testing.T) {
	needKcat(t)
	b := startBroker(t)
	var payload []byte
	for i := 1; i < 256; i++ {
		if i != '\n' && i != '\t' {
			payload = append(payload, byte(i))
		}
	}
	kcatProduce(t, b.addr, "bin", 0, "key\t"+string(payload)+"\n")
	dump := kcatDump(t, b.addr, "bin")
	renamed := bytes.ReplaceAll(dump, []byte(`"topic":"bin"`), []byte(`"topic":"bin2"`))
	mustRun(t, renamed, cdcrecon, "produce", "--brokers", b.addr, "-")
	raw := mustRun(t, nil, "kcat", "-b", b.addr, "-C", "-t", "bin2", "-e", "-q", "-f", "%s", "-o", "beginning")
	if !bytes.Equal(raw, payload) {
		t.Errorf("payload changed:\n got %q\nwant %q", raw, payload)
	}
}

// With --data-dir the broker keeps topics and records across a restart.
func TestBrokerPersistsAcrossRestart(t *testing.T) {
	needKcat(t)
	dir := t.TempDir()
	b := startBroker(t, "--data-dir", dir)
	kcatProduce(t, b.addr, "kept", 0, "a\t1\nb\t2\n")
	b.stop(t)

	b2 := startBroker(t, "--data-dir", dir)
	recs := parseKcat(t, kcatDump(t, b2.addr, "kept"))
	if len(recs) != 2 || *recs[0].Key != "a" || *recs[1].Payload != "2" {
		t.Fatalf("after restart read %+v", recs)
	}
	b2.stop(t)
}

func TestProduceReportsBadLines(t *testing.T) {
	b := startBroker(t)
	file := filepath.Join(t.TempDir(), "bad.jsonl")
	content := `{"topic":"t","partition":0,"key":"a","payload":"1"}
{"topic":"t","partition":0,"key":"b","payload":
{"topic":"t","partition":0,"key":"c","payload":"3"}
`
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, nil, cdcrecon, "produce", "--brokers", b.addr, file)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(string(stderr), "bad.jsonl:2:") {
		t.Errorf("stderr does not name bad.jsonl:2: %s", stderr)
	}
	out := mustRun(t, nil, cdcrecon, "tail", "--brokers", b.addr, "--topic", "t", "--exit")
	if n := bytes.Count(out, []byte("\n")); n != 2 {
		t.Errorf("%d records loaded, want the 2 good ones:\n%s", n, out)
	}
}

func sortLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
