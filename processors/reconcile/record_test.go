package reconcile_test

import (
	"reflect"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/reconcile"
)

func TestRecordRoundTrip(t *testing.T) {
	row := canon.AppendRow(nil, canon.Row{{Name: "v", Value: canon.StringValue("x")}})
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, c := range []reconcile.Change{
		{Table: "orders", Side: normalize.Target, Kind: reconcile.Upsert, Key: []byte{1, 2}, Row: row, Digest: 0xdeadbeef, Unresolved: true,
			Time: -5, Origin: reconcile.Origin{Topic: "mysql.shop.orders", Partition: 3, Offset: 1 << 40}},
		{Table: "t", Side: normalize.Source, Kind: reconcile.Absent, Key: []byte{}, Time: 1709287200123, Origin: reconcile.Origin{Topic: "a"}},
		{Table: "t", Side: normalize.Source, Kind: reconcile.Truncate, Key: []byte{}, Time: 7},
	} {
		b := reconcile.AppendChange([]byte("x"), &c, id)[1:]
		got, gid, m, err := reconcile.DecodeRecord(b)
		if err != nil || m != nil || gid != id {
			t.Fatalf("%v: %v %v %x", c, err, m, gid)
		}
		if !reflect.DeepEqual(*got, c) {
			t.Errorf("round trip:\n got %+v\nwant %+v", *got, c)
		}
		for n := range b { // every cut is an error, never a panic
			if _, _, _, err := reconcile.DecodeRecord(b[:n]); err == nil {
				t.Errorf("%d of %d bytes decoded", n, len(b))
			}
		}
	}
	mk := reconcile.Mark{Side: normalize.Source, Input: "pg.public.orders/2", Time: reconcile.End}
	_, _, m, err := reconcile.DecodeRecord(reconcile.AppendMark(nil, mk))
	if err != nil || m == nil || *m != mk {
		t.Errorf("mark: %v %v", m, err)
	}
	for _, bad := range [][]byte{nil, {2, 'C'}, {1, 'X'}, append(reconcile.AppendMark(nil, mk), 0)} {
		if _, _, _, err := reconcile.DecodeRecord(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(reconcile.AppendMark(nil, reconcile.Mark{Side: 1, Input: "a/0", Time: 3}))
	f.Add(reconcile.AppendChange(nil, &reconcile.Change{Table: "t", Kind: reconcile.Upsert, Row: []byte{0}}, [16]byte{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, id, m, err := reconcile.DecodeRecord(b)
		if err != nil {
			return
		}
		var again []byte
		if c != nil {
			again = reconcile.AppendChange(nil, c, id)
		} else {
			again = reconcile.AppendMark(nil, *m)
		}
		if c2, id2, m2, err := reconcile.DecodeRecord(again); err != nil || !reflect.DeepEqual(c, c2) || id != id2 || !reflect.DeepEqual(m, m2) {
			t.Errorf("re-encoding changed the record: %v", err)
		}
	})
}
