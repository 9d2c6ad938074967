package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckFailsWhenNothingCompared: a check that compared nothing is an
// error (exit 2, the reason said), not "consistent": every message
// invalid because the key column is named wrong.
func TestCheckFailsWhenNothingCompared(t *testing.T) {
	base, err := os.ReadFile("../../examples/orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(base), "key: [id]", "key: [idd]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", cfg, "../../examples/dumps/source.jsonl", "../../examples/dumps/target.jsonl"}, nil, &out, &errOut)
	if code != exitFailure || !strings.Contains(errOut.String(), "nothing could be compared") {
		t.Errorf("check: exit %d, want %d saying nothing could be compared:\n%s", code, exitFailure, errOut.String())
	}
}

// TestNotARowGoesToTheDLQ: a value that is neither a Debezium envelope
// nor a row holding the table's key columns is malformed: it is counted
// invalid and written to the dead-letter file, never compared.
func TestNotARowGoesToTheDLQ(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/dumps/source.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	bad := `{"topic":"pg.public.orders","partition":0,"offset":100,"ts":1763700009000,"key":"{\"id\": 9}","payload":"{\"hello\":1}"}` + "\n"
	f := filepath.Join(dir, "source.jsonl")
	if err := os.WriteFile(f, append(src, bad...), 0o644); err != nil {
		t.Fatal(err)
	}
	dlq := filepath.Join(dir, "dlq.jsonl")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", "../../examples/orders.yaml", "--dlq", dlq, f, "../../examples/dumps/target.jsonl"}, nil, &out, &errOut)
	if code != exitOK || out.Len() != 0 {
		t.Errorf("check: exit %d, output %q; want 0 and no drift (the malformed message set aside):\n%s", code, out.String(), errOut.String())
	}
	d, _ := os.ReadFile(dlq)
	if !strings.Contains(string(d), "hello") || !strings.Contains(errOut.String(), "neither a Debezium envelope nor a row") {
		t.Errorf("the message is not in the dead letters with its reason:\ndlq: %s\nstderr: %s", d, errOut.String())
	}
}
