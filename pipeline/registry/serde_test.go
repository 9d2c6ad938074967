package registry_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
	"github.com/cdcrecon/cdcrecon/schemas/compat"
)

func drift() *schemas.Drift {
	at := time.UnixMilli(1709287260500).UTC()
	return &schemas.Drift{
		ID: "d-1", Table: "orders",
		Key:      schemas.Columns{{Name: "id", Value: "1", Digest: "00000000000000aa"}},
		Kind:     schemas.ValueMismatch,
		Status:   schemas.Resolved,
		Columns:  []string{"total"},
		Source:   schemas.Columns{{Name: "total", Value: "12.3", Digest: "00000000000000bb"}},
		Target:   schemas.Columns{{Name: "total", Value: "12.4", Digest: "00000000000000cc"}},
		OpenedAt: time.UnixMilli(1709287200000).UTC(), ResolvedAt: &at,
		Reason: "total differs",
	}
}

func client(t *testing.T, reg *srfake.Registry, cfg config.SchemaRegistry) *sr.Client {
	t.Helper()
	cfg.URL = reg.URL()
	cl, err := registry.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestConfluentRoundTrip: the record is registered once under
// "<topic>-value", carries that id, and a second Serde (a reader with an
// empty cache) decodes it by fetching the schema.
func TestConfluentRoundTrip(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	var posts atomic.Int32
	reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/subjects/") {
			posts.Add(1)
		}
		return false
	})
	ctx := context.Background()
	w := registry.NewSerde(client(t, reg, config.SchemaRegistry{}))
	if w.Encoding() != registry.Confluent {
		t.Fatalf("encoding %s", w.Encoding())
	}
	var b []byte
	var err error
	for range 3 {
		if b, err = w.Encode(ctx, nil, "cdcrecon.drift", drift()); err != nil {
			t.Fatal(err)
		}
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("%d registrations for 3 records, want 1 (ids cached)", n)
	}
	ss, ok := reg.GetSchema("cdcrecon.drift-value", 1)
	if !ok {
		t.Fatal("subject cdcrecon.drift-value has no version 1")
	}
	if b[0] != 0 || int(binary.BigEndian.Uint32(b[1:5])) != ss.ID {
		t.Fatalf("header %x, want 00 and id %d", b[:5], ss.ID)
	}
	if err := compat.Compatible(ss.Schema.Schema, schemas.Latest(schemas.DriftName).Text); err != nil {
		t.Errorf("registered schema is not the latest drift schema: %v", err)
	}

	r := registry.NewSerde(client(t, reg, config.SchemaRegistry{}))
	got, sch, enc, err := r.Decode(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if enc != registry.Confluent || sch != schemas.Latest(schemas.DriftName) || !reflect.DeepEqual(got, drift()) {
		t.Errorf("decoded %#v under %v (%s)", got, sch, enc)
	}

	// Without a registry: single-object, and a confluent record cannot be read.
	plain := registry.NewSerde(nil)
	so, err := plain.Encode(ctx, nil, "cdcrecon.drift", drift())
	if err != nil || !schemas.IsSingleObject(so) {
		t.Fatalf("single-object encode: %x, %v", so, err)
	}
	if got, _, enc, err := r.Decode(ctx, so); err != nil || enc != registry.SingleObject || !reflect.DeepEqual(got, drift()) {
		t.Errorf("registry serde reading single-object: %v %s", err, enc)
	}
	if _, _, _, err := plain.Decode(ctx, b); err == nil || !strings.Contains(err.Error(), "no schema registry is configured") {
		t.Errorf("confluent record without registry: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte(`{"json":1}`), {0, 0, 0}} {
		if _, _, _, err := r.Decode(ctx, bad); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
	if _, _, _, err := r.Decode(ctx, []byte{0, 0, 0, 0, 99, 1}); err == nil || !strings.Contains(err.Error(), "id 99") {
		t.Errorf("unknown id: %v", err)
	}
}

// TestNewerWriterSchema reads a record written under a drift schema this
// build does not embed (a later version) by fetching it from the registry.
func TestNewerWriterSchema(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	v3 := strings.Replace(schemas.Latest(schemas.DriftName).Text, `"fields": [`, `"fields": [
    {"name": "severity", "type": "int", "default": 0},`, 1)
	reg.SeedSchema("cdcrecon.drift-value", 3, 42, sr.Schema{Schema: v3, Type: sr.TypeAvro})
	body, err := schemas.AppendBinary(nil, schemas.Latest(schemas.DriftName), drift())
	if err != nil {
		t.Fatal(err)
	}
	rec := append([]byte{0, 0, 0, 0, 42, 0x06}, body...) // id 42; severity 3
	got, sch, _, err := registry.NewSerde(client(t, reg, config.SchemaRegistry{})).Decode(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if sch.FullName != "io.cdcrecon.Drift" || schemas.ByFingerprint(sch.Fingerprint()) != nil {
		t.Errorf("writer schema %+v should be the fetched, unembedded one", sch)
	}
	if !reflect.DeepEqual(got, drift()) {
		t.Errorf("decoded %#v", got)
	}
}

func TestAuth(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		expect string
		cfg    config.SchemaRegistry
		ok     bool
	}{
		{"basic", "Basic Y2RjcmVjb246czNjcmV0", config.SchemaRegistry{Username: "cdcrecon", Password: "s3cret"}, true},
		{"basic, wrong password", "Basic Y2RjcmVjb246czNjcmV0", config.SchemaRegistry{Username: "cdcrecon", Password: "guess"}, false},
		{"bearer", "Bearer tok-123", config.SchemaRegistry{Token: "tok-123"}, true},
		{"bearer missing", "Bearer tok-123", config.SchemaRegistry{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := srfake.New(srfake.WithAuth(c.expect))
			defer reg.Close()
			_, err := registry.NewSerde(client(t, reg, c.cfg)).Encode(ctx, nil, "cdcrecon.drift", drift())
			if c.ok && err != nil {
				t.Fatal(err)
			}
			if !c.ok && (err == nil || !strings.Contains(err.Error(), "subject cdcrecon.drift-value")) {
				t.Fatalf("want a refusal naming the subject, got %v", err)
			}
			if !c.ok && strings.Contains(err.Error(), c.cfg.Password+"@") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestIncompatibleChangeRefused: srfake does not enforce compatibility
// levels (its compatibility endpoint always answers true), so this test
// adds the enforcement a real registry does — schemas.Compatible under
// BACKWARD, the new schema reading the latest registered one — and checks
// that the refusal reaches the caller naming the subject.
func TestIncompatibleChangeRefused(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		subject, ok := strings.CutPrefix(r.URL.Path, "/subjects/")
		subject, ok2 := strings.CutSuffix(subject, "/versions")
		if r.Method != http.MethodPost || !ok || !ok2 {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var in sr.Schema
		if err := json.Unmarshal(body, &in); err != nil {
			return false
		}
		var latest sr.SubjectSchema
		for v := 1; ; v++ {
			ss, ok := reg.GetSchema(subject, v)
			if !ok {
				break
			}
			latest = ss
		}
		if latest.Schema.Schema == "" {
			return false
		}
		if err := compat.Compatible(in.Schema, latest.Schema.Schema); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(map[string]any{"error_code": 409, "message": "Schema being registered is incompatible with an earlier schema: " + err.Error()})
			return true
		}
		return false
	})
	// Earlier drift schemas: one without reason, which has a default; one
	// without id, which the current schema requires.
	current := schemas.Latest(schemas.DriftName).Text
	compatible := strings.Replace(current, `,
    {"name": "reason", "type": ["null", "string"], "default": null, "doc": "Why the key is not consistent, in one sentence. Added in version 2."}`, "", 1)
	old := strings.Replace(current, `{"name": "id", "type": "string", "doc": "Derived from (table, key, opened_at): the same on every replay."},`, "", 1)
	if compatible == current || old == current {
		t.Fatal("the drift schema changed: update the edits above")
	}
	for _, c := range []struct {
		name, earlier string
		ok            bool
	}{{"compatible", compatible, true}, {"incompatible", old, false}} {
		t.Run(c.name, func(t *testing.T) {
			subject := "drift-" + c.name
			if _, _, err := reg.RegisterSchema(subject+"-value", sr.Schema{Schema: c.earlier, Type: sr.TypeAvro}); err != nil {
				t.Fatal(err)
			}
			_, err := registry.NewSerde(client(t, reg, config.SchemaRegistry{})).Encode(context.Background(), nil, subject, drift())
			if c.ok != (err == nil) {
				t.Fatalf("Encode: %v, want ok=%v", err, c.ok)
			}
			if !c.ok && !strings.Contains(err.Error(), "incompatible") {
				t.Errorf("error does not say why: %v", err)
			}
		})
	}
}
