package realstack

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// shape is what a Debezium change event looks like, whatever its values:
// the envelope's fields and the source block's, each with its JSON type,
// and the fields of the row images.
type shape struct {
	Envelope, Source map[string]string
	Before, After    []string
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// shapeOf returns the op and shape of a change event's value, with or
// without the JsonConverter's schema wrapper.
func shapeOf(t *testing.T, value []byte) (string, shape) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(value, &v); err != nil {
		t.Fatalf("not a JSON change event: %v\n%s", err, value)
	}
	if p, ok := v["payload"].(map[string]any); ok && v["schema"] != nil {
		v = p
	}
	sh := shape{Envelope: map[string]string{}, Source: map[string]string{}}
	for k, f := range v {
		sh.Envelope[k] = jsonType(f)
	}
	src, _ := v["source"].(map[string]any)
	for k, f := range src {
		sh.Source[k] = jsonType(f)
	}
	fields := func(row any) []string {
		m, _ := row.(map[string]any)
		return slices.Sorted(maps.Keys(m))
	}
	sh.Before, sh.After = fields(v["before"]), fields(v["after"])
	op, _ := v["op"].(string)
	return op, sh
}

// record is a change topic's message as both readers see it.
type record struct {
	key   string
	value []byte // nil: a tombstone
}

// realEvents reads topic from its start until it has seen each of ops for
// the row with key, the tombstone after its delete included.
func realEvents(t *testing.T, addr, topic, key string) []record {
	t.Helper()
	var out []record
	done := scanTopic(t, addr, topic, func(r *kgo.Record) bool {
		var k struct{ Payload json.RawMessage }
		if json.Unmarshal(r.Key, &k) != nil || string(k.Payload) != key {
			return false
		}
		out = append(out, record{key: string(k.Payload), value: r.Value})
		return r.Value == nil
	})
	if !done {
		t.Fatalf("%s: no delete and tombstone of %s within 90s; read %d of its events", topic, key, len(out))
	}
	return out
}

// simulatedEvents runs `cdcrecon simulate` and returns the messages of
// its source topic for orders.
func simulatedEvents(t *testing.T, topic string) []record {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command(Binary(t), "simulate", "--out", dir, "--events", "600", "--keys", "40").CombinedOutput(); err != nil {
		t.Fatalf("cdcrecon simulate: %v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "source.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m struct {
			Topic   string
			Key     string
			Payload *string
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Topic != topic {
			continue
		}
		r := record{key: m.Key}
		if m.Payload != nil {
			r.value = []byte(*m.Payload)
		}
		out = append(out, r)
	}
	return out
}

// shapes returns the shape of each op's first event, and whether every
// delete is followed by a tombstone of its key before that key's next
// event.
func shapes(t *testing.T, recs []record) (map[string]shape, bool) {
	t.Helper()
	byOp := map[string]shape{}
	tombstoned := true
	awaiting := map[string]bool{}
	for _, r := range recs {
		if r.value == nil {
			delete(awaiting, r.key)
			continue
		}
		if awaiting[r.key] {
			tombstoned = false
		}
		op, sh := shapeOf(t, r.value)
		if _, ok := byOp[op]; !ok {
			byOp[op] = sh
		}
		if op == "d" {
			awaiting[r.key] = true
		}
	}
	return byOp, tombstoned && len(awaiting) == 0
}

// compareWithSimulator checks that `cdcrecon simulate` writes the source
// side's events as the real PostgreSQL connector does: for a create, an
// update and a delete, the same envelope and source fields with the same
// JSON types, the row images the same replica identity gives (no before
// image of an update, the key alone before a delete), and a tombstone
// after each delete. src's orders table gets those three writes.
func compareWithSimulator(t *testing.T, s *Stack, src *Postgres) {
	t.Helper()
	src.SQL(t, "shop", "-c", "INSERT INTO orders (id, customer_id, total, status) VALUES (77, 1, 3.50, 'new'); "+
		"UPDATE orders SET status = 'paid' WHERE id = 77; DELETE FROM orders WHERE id = 77")
	real, realTombstones := shapes(t, realEvents(t, s.Kafka, "src.public.orders", `{"id":77}`))
	sim, simTombstones := shapes(t, simulatedEvents(t, "pg.public.orders"))
	if !realTombstones || !simTombstones {
		t.Errorf("a tombstone after each delete: real connector %v, simulator %v", realTombstones, simTombstones)
	}
	for _, op := range []string{"c", "u", "d"} {
		r, ok := real[op]
		if !ok {
			t.Fatalf("the real connector sent no %q event for orders 77", op)
		}
		m, ok := sim[op]
		if !ok {
			t.Errorf("the simulator wrote no %q event", op)
			continue
		}
		diff := func(what string, a, b map[string]string) {
			var d []string
			for _, k := range slices.Sorted(maps.Keys(a)) {
				if b[k] != a[k] {
					d = append(d, fmt.Sprintf("%s: real %s, simulated %s", k, a[k], cmp.Or(b[k], "absent")))
				}
			}
			for _, k := range slices.Sorted(maps.Keys(b)) {
				if _, ok := a[k]; !ok {
					d = append(d, fmt.Sprintf("%s: real absent, simulated %s", k, b[k]))
				}
			}
			if len(d) > 0 {
				t.Errorf("op %q, %s fields differ:\n  %s", op, what, strings.Join(d, "\n  "))
			}
		}
		diff("envelope", r.Envelope, m.Envelope)
		diff("source", r.Source, m.Source)
		// Before images: the key alone before a delete, none before an
		// update (PostgreSQL's default replica identity).
		if op != "c" && (len(r.Before) == 0) != (len(m.Before) == 0) {
			t.Errorf("op %q: before image real %v, simulated %v", op, r.Before, m.Before)
		}
	}
	t.Logf("simulated PostgreSQL events have the real connector's shape: envelope %v, source %v",
		slices.Sorted(maps.Keys(real["u"].Envelope)), slices.Sorted(maps.Keys(real["u"].Source)))
}
