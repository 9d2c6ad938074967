package schemas_test

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/schemas"
	"github.com/cdcrecon/cdcrecon/schemas/compat"
)

// compatCase is one line of testdata/compat/cases.jsonl: a pair of schemas
// and whether the reader can read the writer's data, by the Avro
// specification's schema-resolution rules. The verdicts were written from
// the specification; test/interop runs Apache Avro's own checker over the
// same file.
type compatCase struct {
	Rule       string          `json:"rule"`
	Compatible bool            `json:"compatible"`
	Writer     json.RawMessage `json:"writer"`
	Reader     json.RawMessage `json:"reader"`
}

func readCompatCases(t *testing.T) []compatCase {
	t.Helper()
	f, err := os.Open("testdata/compat/cases.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []compatCase
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var c compatCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("cases.jsonl:%d: %v", line, err)
		}
		cases = append(cases, c)
	}
	return cases
}

func TestCompatibleFollowsResolutionRules(t *testing.T) {
	for _, c := range readCompatCases(t) {
		err := compat.Compatible(string(c.Reader), string(c.Writer))
		if (err == nil) != c.Compatible {
			t.Errorf("%s: Compatible = %v, want compatible=%v", c.Rule, err, c.Compatible)
		}
	}
}

// TestVersionsFullyCompatible checks the evolution rule of doc.go: every
// version of a name reads every other's data, both ways.
func TestVersionsFullyCompatible(t *testing.T) {
	byName := map[string][]*schemas.Schema{}
	for _, s := range schemas.All() {
		byName[s.Name] = append(byName[s.Name], s)
		if schemas.Latest(s.Name).Version < s.Version {
			t.Errorf("Latest(%s) is older than %s", s.Name, s)
		}
	}
	for _, name := range []string{schemas.DriftName, schemas.CompensationName, schemas.ChecksumName, schemas.DeadLetterName} {
		if schemas.Latest(name) == nil {
			t.Errorf("no schema %s", name)
		}
	}
	if len(byName[schemas.DriftName]) < 2 {
		t.Fatal("drift needs a second version to prove the evolution path")
	}
	for _, vs := range byName {
		for _, a := range vs {
			for _, b := range vs {
				if err := compat.Compatible(a.Text, b.Text); err != nil {
					t.Errorf("%s cannot read %s: %v", a, b, err)
				}
			}
		}
	}
}

// TestCrossVersionDecoding writes a record under each version and reads it
// back: what the older version lacks comes back as the default.
func TestCrossVersionDecoding(t *testing.T) {
	rec := goldenCases["drift.v2.resolved"].(*schemas.Drift)
	v1, v2 := schemas.Version(schemas.DriftName, 1), schemas.Version(schemas.DriftName, 2)
	b1, err := schemas.AppendSingleObject(nil, v1, rec)
	if err != nil {
		t.Fatal(err)
	}
	got, ws, err := schemas.DecodeSingleObject(b1)
	if err != nil || ws != v1 {
		t.Fatalf("decoding v1 data: %v (writer %v)", err, ws)
	}
	want := *rec
	want.Reason = ""
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("v1 data read as\n %#v\nwant\n %#v", got, &want)
	}
	b2, err := schemas.AppendSingleObject(nil, v2, rec)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := schemas.DecodeSingleObject(b2); err != nil || !reflect.DeepEqual(got, rec) {
		t.Errorf("v2 data read as %#v, %v", got, err)
	}
	if len(b2) <= len(b1) {
		t.Errorf("v2 encoding (%d bytes) should carry the reason v1 (%d bytes) lacks", len(b2), len(b1))
	}
}

func TestDecodeErrors(t *testing.T) {
	drift := schemas.Latest(schemas.DriftName)
	good, err := schemas.AppendSingleObject(nil, drift, goldenCases["drift.v2.resolved"])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "no 0xC3 0x01 marker"},
		{"confluent", []byte{0, 0, 0, 0, 1, 2}, "no 0xC3 0x01 marker"},
		{"short header", good[:6], "header cut short"},
		{"unknown fingerprint", append([]byte{0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, good[10:]...), "unknown schema"},
		{"truncated body", good[:len(good)-3], "decoding io.cdcrecon.Drift"},
		{"trailing bytes", append(append([]byte(nil), good...), 0), "bytes after the record"},
	} {
		_, _, err := schemas.DecodeSingleObject(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := schemas.AppendBinary(nil, drift, goldenCases["checksum.v1"]); err == nil {
		t.Error("encoding a checksum under the drift schema should fail")
	}
}

// TestDecodeNewerWriter reads data of a schema version this build does not
// embed, as from a registry: fields it does not know are skipped, and a
// field whose type changed is an error naming it.
func TestDecodeNewerWriter(t *testing.T) {
	v2 := schemas.Latest(schemas.DriftName).Text
	v3text := strings.Replace(v2, `"fields": [`, `"fields": [
    {"name": "severity", "type": "int", "default": 0},`, 1)
	v3, err := schemas.Parse(v3text)
	if err != nil {
		t.Fatal(err)
	}
	if v3.FullName != "io.cdcrecon.Drift" {
		t.Fatalf("FullName = %q", v3.FullName)
	}
	rec := goldenCases["drift.v1.open"].(*schemas.Drift)
	// v3 puts the new field first: its encoding, then v2's fields
	body, err := schemas.AppendBinary(nil, schemas.Latest(schemas.DriftName), rec)
	if err != nil {
		t.Fatal(err)
	}
	withSeverity := append([]byte{0x0a}, body...) // zigzag 5, then v2's fields
	got, err := schemas.Decode(v3, withSeverity)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("read as %#v", got)
	}

	changed := strings.Replace(v2, `{"name": "table", "type": "string"`, `{"name": "table", "type": "long"`, 1)
	cs, err := schemas.Parse(changed)
	if err != nil {
		t.Fatal(err)
	}
	body = append([]byte{0x02, 'x', 0x04}, body[len("\x14d-5f2c9a01\x0corders"):]...) // id "x", table 2
	if _, err := schemas.Decode(cs, body); err == nil || !strings.Contains(err.Error(), "field table: want string, got int64") {
		t.Errorf("changed type: %v", err)
	}
}
