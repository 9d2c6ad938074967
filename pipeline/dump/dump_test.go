package dump_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
)

func readAll(t *testing.T, r *dump.Reader) []dump.Record {
	t.Helper()
	var out []dump.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

// The lines in testdata/kcat.jsonl were written by kcat itself; the
// expectations below are read off those lines by hand.
func TestReadKcatOutput(t *testing.T) {
	f, err := os.Open("testdata/kcat.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs := readAll(t, dump.NewReader(f, "kcat.jsonl"))
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	r := recs[0]
	if r.Topic != "t1" || r.Partition != 0 || r.Offset != 0 {
		t.Errorf("position = %s/%d/%d", r.Topic, r.Partition, r.Offset)
	}
	if want := time.UnixMilli(1795268810300); !r.Timestamp.Equal(want) {
		t.Errorf("timestamp = %v, want %v", r.Timestamp, want)
	}
	if want := []byte("\xc3\x01\xff\xfe bin"); !bytes.Equal(r.Value, want) {
		t.Errorf("binary payload = %q, want %q", r.Value, want)
	}
	if string(r.Key) != "k2" {
		t.Errorf("key = %q", r.Key)
	}
	if len(r.Headers) != 2 || r.Headers[0].Key != "h1" || string(r.Headers[0].Value) != "x" || string(r.Headers[1].Value) != "y" {
		t.Errorf("headers = %+v, want h1=x, h1=y in order", r.Headers)
	}
	if recs[2].Key != nil || recs[2].Headers != nil {
		t.Errorf("null key read as %q, headers %v", recs[2].Key, recs[2].Headers)
	}
	if recs[1].Key == nil || recs[1].Value == nil {
		t.Error("non-null key or payload read as null")
	}
}

// Writing what was read gives kcat's lines back, minus the "broker" field
// that only a fetch from a real broker knows.
func TestWriteMatchesKcat(t *testing.T) {
	data, err := os.ReadFile("testdata/kcat.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, dump.NewReader(bytes.NewReader(data), "kcat.jsonl"))
	var out []byte
	for _, r := range recs {
		out = dump.AppendLine(out, r)
	}
	want := bytes.ReplaceAll(data, []byte(`"broker":0,`), nil)
	if !bytes.Equal(out, want) {
		t.Errorf("written:\n%q\nwant:\n%q", out, want)
	}
}

func TestRoundTripEveryByte(t *testing.T) {
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	in := dump.Record{
		Topic: "tópic", Partition: 7, Offset: 42, Timestamp: time.UnixMilli(1700000000123),
		LogAppendTime: true,
		Headers:       []dump.Header{{Key: "a\"b", Value: all}, {Key: "n", Value: nil}, {Key: "e", Value: []byte{}}},
		Key:           []byte{}, Value: all,
	}
	line := dump.AppendLine(nil, in)
	got, err := dump.ParseLine(bytes.TrimSpace(line))
	if err != nil {
		t.Fatalf("parsing %q: %v", line, err)
	}
	if got.Topic != in.Topic || got.Partition != in.Partition || got.Offset != in.Offset ||
		!got.Timestamp.Equal(in.Timestamp) || !got.LogAppendTime {
		t.Errorf("got %+v", got)
	}
	if !bytes.Equal(got.Value, all) || got.Key == nil || len(got.Key) != 0 {
		t.Errorf("value or empty key changed: %q %q", got.Value, got.Key)
	}
	if len(got.Headers) != 3 || got.Headers[1].Value != nil || got.Headers[2].Value == nil || !bytes.Equal(got.Headers[0].Value, all) {
		t.Errorf("headers = %+v", got.Headers)
	}
}

func TestEscapesFromOtherWriters(t *testing.T) {
	// Python's json.dumps escapes non-ASCII as \u sequences, surrogate
	// pairs included.
	rec, err := dump.ParseLine([]byte(`{"topic":"t","partition":0,"key":"caf\u00e9 \ud83d\ude00","payload":"a\/b\n"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Key) != "café 😀" || string(rec.Value) != "a/b\n" {
		t.Errorf("key %q value %q", rec.Key, rec.Value)
	}
}

func TestBadLinesNameFileAndLine(t *testing.T) {
	input := strings.Join([]string{
		`{"topic":"t","partition":0,"key":null,"payload":"ok"}`,
		``,
		`{"topic":"t","partition":0,"payload":42}`,
		`not json`,
		`{"partition":0,"payload":"x"}`,
		`{"topic":"t","partition":-1,"payload":"x"}`,
		`{"topic":"t","partition":0,"headers":["a"],"payload":"x"}`,
		`{"topic":"t","partition":0,"payload":"x","extra":1}`,
		`{"topic":"t","partition":0,"payload":"bad \q escape"}`,
		`{"topic":"t","partition":0,"payload":"last"}`,
	}, "\n")
	r := dump.NewReader(strings.NewReader(input), "in.jsonl")
	wantErrs := map[int]string{
		3: `field "payload"`,
		4: "parsing JSON",
		5: `field "topic"`,
		6: `field "partition"`,
		7: `field "headers"`,
		8: `unknown field "extra"`,
		9: "parsing JSON",
	}
	var good []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *dump.LineError
		if errors.As(err, &le) {
			want, ok := wantErrs[le.Line]
			if !ok || le.File != "in.jsonl" || !strings.Contains(le.Error(), want) {
				t.Errorf("unexpected error %v (want at line %d: %q)", le, le.Line, want)
			}
			if !strings.HasPrefix(le.Error(), "in.jsonl:") {
				t.Errorf("error %q does not start with the file name", le)
			}
			delete(wantErrs, le.Line)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, string(rec.Value))
	}
	if len(wantErrs) != 0 {
		t.Errorf("no error for lines %v", wantErrs)
	}
	if strings.Join(good, ",") != "ok,last" {
		t.Errorf("good records = %v", good)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"topic":"t","partition":0,"key":"k","payload":"v","headers":["a","b"]}`))
	f.Add([]byte(`{"topic":"t","partition":1,"payload":"\ud83d\ude00\u0001"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := dump.ParseLine(line)
		// The scanner accepts only what a JSON parser accepts.
		if valid := json.Valid(line); err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		if err != nil {
			return
		}
		// Whatever parses must survive a write and a second parse.
		again, err := dump.ParseLine(bytes.TrimSpace(dump.AppendLine(nil, rec)))
		if err != nil {
			t.Fatalf("re-parsing written line: %v", err)
		}
		if !bytes.Equal(again.Value, rec.Value) || !bytes.Equal(again.Key, rec.Key) || (again.Key == nil) != (rec.Key == nil) {
			t.Fatalf("round trip changed %q/%q into %q/%q", rec.Key, rec.Value, again.Key, again.Value)
		}
	})
}

// TestParallelReaderMatchesReader: over many chunks, with blank lines, bad
// lines and a final line without a newline, the parallel reader returns
// what the plain one does, in the same order, with the same line numbers.
func TestParallelReaderMatchesReader(t *testing.T) {
	var in strings.Builder
	for i := range 5000 {
		switch {
		case i%997 == 0:
			in.WriteString("\n   \n")
		case i%1231 == 0:
			in.WriteString("not json\n")
		}
		fmt.Fprintf(&in, `{"topic":"t%d","partition":%d,"offset":%d,"key":"k\"%d","payload":"v\\n%d"}`, i%3, i%2, i, i, i)
		if i < 4999 {
			in.WriteByte('\n')
		}
	}
	type item struct {
		rec  dump.Record
		err  string
		line int
	}
	read := func(r *dump.Reader) []item {
		defer r.Close()
		var out []item
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				return out
			}
			it := item{rec: rec, line: r.Line()}
			if err != nil {
				it.err = err.Error()
			}
			out = append(out, it)
		}
	}
	want := read(dump.NewReader(strings.NewReader(in.String()), "in.jsonl"))
	for _, workers := range []int{1, 3} {
		got := read(dump.NewParallelReader(strings.NewReader(in.String()), "in.jsonl", workers))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d workers: %d items differ from the plain reader's %d", workers, len(got), len(want))
		}
	}
	if len(want) != 5000+4 { // line 0 takes the blank-line case
		t.Errorf("%d items, want 5000 records and 4 bad lines", len(want))
	}
}

// TestParallelReaderStopsEarly: closing a reader long before its end
// returns once its goroutines have exited, though they were blocked
// handing on chunks nobody reads; a second Close does nothing.
func TestParallelReaderStopsEarly(t *testing.T) {
	line := `{"topic":"t","partition":0,"payload":"x"}` + "\n"
	r := dump.NewParallelReader(strings.NewReader(strings.Repeat(line, 200000)), "in.jsonl", 2)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		r.Close()
		r.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: the reader's goroutines are stuck")
	}
}
