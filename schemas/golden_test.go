package schemas_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/schemas"
)

func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

func ptr[T any](v T) *T { return &v }

// goldenCases are the records of testdata/golden/*.json, written again as
// Go values. The .hex files beside them are Apache Avro's (Python) encoding
// of the JSON, made by testdata/golden/gen.py; test/interop re-checks them
// against that library.
var goldenCases = map[string]schemas.Record{
	"drift.v1.open": &schemas.Drift{
		ID: "d-5f2c9a01", Table: "orders",
		Key:     schemas.Columns{{Name: "id", Value: "100042", Digest: "0a1b2c3d4e5f6071"}},
		Kind:    schemas.MissingInTarget,
		Status:  schemas.Open,
		Columns: []string{},
		Source: schemas.Columns{
			{Name: "status", Value: `"shipped"`, Digest: "1111111111111111"},
			{Name: "total", Value: "12.3", Digest: "2222222222222222"},
		},
		OpenedAt: ms(1709287200123),
	},
	"drift.v2.resolved": &schemas.Drift{
		ID: "d-77aa", Table: "customers",
		Key: schemas.Columns{
			{Name: "region", Value: `"eu"`, Digest: "3333333333333333"},
			{Name: "id", Value: "7", Digest: "4444444444444444"},
		},
		Kind:    schemas.ValueMismatch,
		Status:  schemas.Resolved,
		Columns: []string{"email", "name"},
		Source: schemas.Columns{
			{Name: "email", Digest: "5555555555555555", Redacted: true},
			{Name: "name", Value: `"Zoë"`, Digest: "6666666666666666"},
		},
		Target: schemas.Columns{
			{Name: "email", Digest: "7777777777777777", Redacted: true},
			{Name: "name", Value: `"Zoe"`, Digest: "8888888888888888"},
		},
		OpenedAt:   ms(1709287200000),
		ResolvedAt: ptr(ms(1709287260500)),
		Reason:     "name and email differ 60.5s after the source row changed; grace 30s",
	},
	"drift.v2.empty-row": &schemas.Drift{
		ID: "d-0", Table: "t", Key: schemas.Columns{}, Kind: schemas.ExtraInTarget, Status: schemas.Open,
		Columns: []string{}, Target: schemas.Columns{}, OpenedAt: ms(0),
	},
	"drift.v3.stream-gap": &schemas.Drift{
		ID: "d-31c0", Table: "orders",
		Key:          schemas.Columns{{Name: "id", Value: "42", Digest: "0a0a0a0a0a0a0a0a"}},
		Kind:         schemas.ValueMismatch,
		Status:       schemas.Resolved,
		Columns:      []string{"status"},
		Source:       schemas.Columns{{Name: "status", Value: `"paid"`, Digest: "1212121212121212"}},
		Target:       schemas.Columns{{Name: "status", Value: `"new"`, Digest: "3434343434343434"}},
		OpenedAt:     ms(1709287200000),
		ResolvedAt:   ptr(ms(1709287214250)),
		Reason:       "the re-read rows agree: the target's change stream did not show its row",
		Verification: schemas.StreamGap, VerifiedAt: ptr(ms(1709287214250)), VerifiedSide: "target", Policy: "orders@v2", Decision: schemas.Verifying,
	},
	"drift.v4.repaired": &schemas.Drift{
		ID: "d-31c0", Table: "orders",
		Key:          schemas.Columns{{Name: "id", Value: "42", Digest: "0a0a0a0a0a0a0a0a"}},
		Kind:         schemas.ValueMismatch,
		Status:       schemas.Resolved,
		Columns:      []string{"total"},
		Source:       schemas.Columns{{Name: "total", Value: "12.5", Digest: "1212121212121212"}},
		Target:       schemas.Columns{{Name: "total", Value: "0", Digest: "3434343434343434"}},
		OpenedAt:     ms(1709287200000),
		ResolvedAt:   ptr(ms(1709287231500)),
		Reason:       "total: no source state of the last 5s matches",
		Verification: schemas.Confirmed, VerifiedAt: ptr(ms(1709287212000)), Policy: "orders@v2", Decision: schemas.Compensate,
		CompensationID: "c-31c0",
	},
	"audit.v1.applied": &schemas.Audit{
		CompensationID: "c-31c0", DriftID: "d-31c0", Table: "orders", TargetTable: "public.orders",
		Database: "postgres postgres://cdcrecon@db:5432/shop", Action: schemas.Upsert,
		Key:       schemas.Columns{{Name: "id", Value: "42", Digest: "0a0a0a0a0a0a0a0a"}},
		Outcome:   schemas.Applied,
		Reason:    "the target row was as the drift recorded it",
		Statement: `UPDATE "public"."orders" SET "email" = $1::text::text, "total" = $2::text::numeric(10,2) WHERE "id" = $3::text::integer`,
		Params: schemas.Columns{{Name: "email", Digest: "5656565656565656", Redacted: true},
			{Name: "total", Value: "12.5", Digest: "1212121212121212"}, {Name: "id", Value: "42", Digest: "0a0a0a0a0a0a0a0a"}},
		Attempts: 2, Policy: "orders@v2", Verification: "confirmed", InstanceID: "apply-1", At: ms(1709287230000),
	},
	"audit.v1.superseded": &schemas.Audit{
		CompensationID: "c-9", DriftID: "d-9", Table: "orders", TargetTable: "shop.orders",
		Database: "mysql 127.0.0.1:3306", Action: schemas.Delete,
		Key:      schemas.Columns{{Name: "id", Value: "9", Digest: "9999999999999999"}},
		Outcome:  schemas.Superseded,
		Reason:   "the target row is no longer as the drift recorded it: total differs",
		Attempts: 1, InstanceID: "apply-2", At: ms(1700000000000),
	},
	"compensation.v2.confirmed": &schemas.Compensation{
		ID: "c-31c0", DriftID: "d-31c0", Table: "orders", TargetTopic: "mysql.shop.orders", Action: schemas.Upsert,
		Key:           schemas.Columns{{Name: "id", Value: "42", Digest: "0a0a0a0a0a0a0a0a"}},
		Row:           schemas.Columns{{Name: "status", Value: `"paid"`, Digest: "1212121212121212"}},
		DriftOpenedAt: ms(1709287200000), Policy: "orders@5d41a2c0", Verification: schemas.Confirmed,
	},
	"compensation.v1.upsert": &schemas.Compensation{
		ID: "c-5f2c9a01", DriftID: "d-5f2c9a01", Table: "orders", TargetTopic: "mysql.shop.orders",
		Action: schemas.Upsert,
		Key:    schemas.Columns{{Name: "id", Value: "100042", Digest: "0a1b2c3d4e5f6071"}},
		Row: schemas.Columns{
			{Name: "status", Value: `"shipped"`, Digest: "1111111111111111"},
			{Name: "order_total", Value: "12.3", Digest: "2222222222222222"},
		},
		DriftOpenedAt: ms(1709287200123),
	},
	"compensation.v1.delete": &schemas.Compensation{
		ID: "c-9", DriftID: "d-9", Table: "orders", TargetTopic: "mysql.shop.orders", Action: schemas.Delete,
		Key:           schemas.Columns{{Name: "id", Value: "9", Digest: "9999999999999999"}},
		DriftOpenedAt: ms(1700000000000),
	},
	"checksum.v1": &schemas.Checksum{
		Table: "orders", Partition: 3, WindowStart: ms(1709287200000), WindowEnd: ms(1709287260000),
		Source:   schemas.SideDigest{Count: 1200, Digest: schemas.Digest128{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}},
		Target:   schemas.SideDigest{Count: 1199, Digest: schemas.Digest128{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00}},
		DriftIDs: []string{"d-5f2c9a01"},
	},
	"deadletter.v1": &schemas.DeadLetter{
		Topic: "pg.public.orders", Offset: 41, Timestamp: ms(1709287200999),
		Key: []byte(`{"id":1}`), Value: []byte(`{"op":`),
		Headers: []schemas.Header{{Key: "trace", Value: []byte{0x00, 0xff}}, {Key: "empty"}},
		Stage:   "decode", Reason: "malformed value: at byte 6: unexpected end of JSON",
	},
	"deadletter.v1.tombstone": &schemas.DeadLetter{
		Topic: "t", Partition: 2147483647, Offset: 9223372036854775807, Timestamp: ms(-1000),
		Stage: "map",
	},
}

func schemaOf(t *testing.T, caseName string) *schemas.Schema {
	t.Helper()
	parts := strings.SplitN(caseName, ".", 3)
	v, err := strconv.Atoi(strings.TrimPrefix(parts[1], "v"))
	if err != nil {
		t.Fatalf("case %s: %v", caseName, err)
	}
	s := schemas.Version(parts[0], v)
	if s == nil {
		t.Fatalf("case %s: no schema %s v%d", caseName, parts[0], v)
	}
	return s
}

// TestGolden holds the encoder to Apache Avro's bytes, and the decoder to
// the records, for every case; every schema version has at least one.
func TestGolden(t *testing.T) {
	covered := map[*schemas.Schema]bool{}
	files, _ := filepath.Glob("testdata/golden/*.json")
	if len(files) != len(goldenCases) {
		t.Errorf("%d golden JSON files, %d Go cases: keep them in step", len(files), len(goldenCases))
	}
	for name, rec := range goldenCases {
		t.Run(name, func(t *testing.T) {
			s := schemaOf(t, name)
			covered[s] = true
			text, err := os.ReadFile(filepath.Join("testdata/golden", name+".hex"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(text)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := schemas.AppendBinary(nil, s, rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoding differs from Apache Avro's\n got %x\nwant %x", got, want)
			}
			back, err := schemas.Decode(s, want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, rec) {
				t.Errorf("decoded\n %#v\nwant\n %#v", back, rec)
			}
			so, err := schemas.AppendSingleObject([]byte("prefix"), s, rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(so, []byte("prefix\xc3\x01")) || !bytes.Equal(so[16:], want) {
				t.Errorf("single object = %x, want prefix, C3 01, fingerprint, body", so)
			}
			back, ws, err := schemas.DecodeSingleObject(so[6:])
			if err != nil || ws != s || !reflect.DeepEqual(back, rec) {
				t.Errorf("single-object round trip: %v under %v, %#v", err, ws, back)
			}
		})
	}
	for _, s := range schemas.All() {
		if !covered[s] {
			t.Errorf("schema %s has no golden case", s)
		}
	}
}

// TestFingerprints compares with the CRC-64-AVRO fingerprints gen.py
// computed over Apache Avro's canonical forms.
func TestFingerprints(t *testing.T) {
	text, err := os.ReadFile("testdata/golden/fingerprints.txt")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		f := strings.Fields(line)
		name, ver, _ := strings.Cut(f[0], ".v")
		v, _ := strconv.Atoi(ver)
		s := schemas.Version(name, v)
		if s == nil {
			t.Errorf("fingerprints.txt names %s, which is not embedded", f[0])
			continue
		}
		seen++
		if got := strconv.FormatUint(s.Fingerprint(), 16); strings.TrimLeft(f[1], "0") != got {
			t.Errorf("%s: fingerprint %s, Apache Avro's canonical form gives %s", s, got, f[1])
		}
	}
	if seen != len(schemas.All()) {
		t.Errorf("fingerprints.txt covers %d of %d schemas", seen, len(schemas.All()))
	}
}
