package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// TestTailDecode publishes drift records in both encodings, and one that
// is not Avro, and reads them back with tail --decode.
func TestTailDecode(t *testing.T) {
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := srfake.New()
	defer reg.Close()
	cl, err := registry.NewClient(config.SchemaRegistry{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opened := time.Date(2024, 3, 1, 10, 0, 0, 123e6, time.UTC)
	rec := &schemas.Drift{
		ID: "d-1", Table: "orders",
		Key:     schemas.Columns{{Name: "id", Value: "7", Digest: "00000000000000aa"}},
		Kind:    schemas.ValueMismatch,
		Status:  schemas.Open,
		Columns: []string{"email", "total"},
		Source: schemas.Columns{
			{Name: "email", Digest: "00000000000000bb", Redacted: true},
			{Name: "total", Value: "12.3", Digest: "00000000000000cc"},
		},
		Target: schemas.Columns{
			{Name: "email", Digest: "00000000000000dd", Redacted: true},
			{Name: "total", Value: "12.4", Digest: "00000000000000ee"},
		},
		OpenedAt: opened,
		Reason:   "total differs",
	}
	var payloads [][]byte
	for _, s := range []*registry.Serde{registry.NewSerde(cl), registry.NewSerde(nil)} {
		p, err := s.Encode(ctx, nil, "cdcrecon.drift", rec)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	payloads = append(payloads, []byte(`{"not":"avro"}`))
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: kafka.ClientConfig{Brokers: []string{b.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, p := range payloads {
		m := message.NewMessage("", p)
		m.Metadata.Set(kafka.MetaKey, `{"table":"orders","key":{"id":7}}`)
		if err := pub.Publish("cdcrecon.drift", m); err != nil {
			t.Fatal(err)
		}
	}

	var out, errOut bytes.Buffer
	code := run(ctx, []string{"tail", "--brokers", b.Addr(), "--topic", "cdcrecon.drift", "--decode", "--exit", "--registry", reg.URL()}, nil, &out, &errOut)
	if code != exitFailure {
		t.Errorf("exit %d, want %d for the record that is not Avro", code, exitFailure)
	}
	if !strings.Contains(errOut.String(), "cdcrecon.drift/0/2: first byte 0x7b") {
		t.Errorf("stderr does not name the bad record: %q", errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	wantValue := `{"id":"d-1","table":"orders","key":{"id":7},"kind":"value_mismatch","status":"open",
		"columns":["email","total"],
		"source":{"email":{"redacted":"00000000000000bb"},"total":12.3},
		"target":{"email":{"redacted":"00000000000000dd"},"total":12.4},
		"opened_at":"2024-03-01T10:00:00.123Z","resolved_at":null,"reason":"total differs"}`
	for i, enc := range []string{"confluent", "single-object"} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		var want map[string]any
		head := `{"topic":"cdcrecon.drift","partition":0,"offset":` + string(rune('0'+i)) +
			`,"key":"{\"table\":\"orders\",\"key\":{\"id\":7}}","schema":"io.cdcrecon.Drift","version":` + strconv.Itoa(schemas.Latest("drift").Version) + `,"encoding":"` + enc + `","value":` + wantValue + `}`
		if err := json.Unmarshal([]byte(head), &want); err != nil {
			t.Fatal(err)
		}
		if ts, ok := got["ts"].(float64); !ok || ts <= 0 {
			t.Errorf("line %d: ts %v", i+1, got["ts"])
		}
		delete(got, "ts")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("line %d:\n got %v\nwant %v", i+1, got, want)
		}
	}

	// Without a registry the Confluent record cannot be read; the
	// single-object one can.
	out.Reset()
	errOut.Reset()
	run(ctx, []string{"tail", "--brokers", b.Addr(), "--topic", "cdcrecon.drift", "--decode", "--exit"}, nil, &out, &errOut)
	if !strings.Contains(errOut.String(), "cdcrecon.drift/0/0: record carries schema id 1, but no schema registry is configured") {
		t.Errorf("stderr: %q", errOut.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("%d lines without a registry, want 1", n)
	}
}

func TestTailDecodeUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", "--topic", "t", "--registry", "http://x"}, "--registry and --config go with --decode"},
		{[]string{"tail", "--topic", "t", "--decode", "--registry", "x:8081"}, "--registry: url: want an http:// or https:// URL"},
		{[]string{"tail", "--topic", "t", "--decode", "--registry", "http://x", "--config", "c.yaml"}, "not both"},
		{[]string{"tail", "--topic", "t", "--decode", "--config", "/no/such.yaml"}, "/no/such.yaml"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), c.args, nil, &out, &errOut); code != exitFailure {
			t.Errorf("%v: exit %d", c.args, code)
		}
		if !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: stderr %q, want %q", c.args, errOut.String(), c.want)
		}
	}
}
