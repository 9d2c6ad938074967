package harness

import (
	"strconv"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
)

// TestWatermarksDecidable: an instant is decidable once every input
// partition holds an event committed after it, at the acknowledgement
// that made it so; tombstones and poison carry no time.
func TestWatermarksDecidable(t *testing.T) {
	ev := func(topic string, part int32, ts int64) dump.Record {
		return dump.Record{Topic: topic, Partition: part, Value: []byte(`{"op":"c","source":{"ts_ms":` + strconv.FormatInt(ts, 10) + `}}`)}
	}
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	m := newWatermarks(2)
	m.observe([]dump.Record{ev("a", 0, 100), ev("a", 0, 300)}, at(1))
	if _, ok := m.decidable(50); ok {
		t.Fatal("decidable while partition b/0 holds nothing")
	}
	m.observe([]dump.Record{{Topic: "b", Partition: 0, Value: []byte(`{"before":`)}, {Topic: "b", Partition: 0}}, at(2))
	if _, ok := m.decidable(50); ok {
		t.Fatal("poison and tombstones moved the watermark")
	}
	m.observe([]dump.Record{ev("b", 0, 200)}, at(3))
	m.observe([]dump.Record{ev("b", 0, 150)}, at(4)) // a re-send: older
	m.observe([]dump.Record{ev("b", 0, 400)}, at(5))
	for _, c := range []struct {
		t    int64
		want int
		ok   bool
	}{{50, 3, true}, {199, 3, true}, {200, 5, true}, {299, 5, true}, {300, 0, false}} {
		got, ok := m.decidable(c.t)
		if ok != c.ok || (ok && !got.Equal(at(c.want))) {
			t.Errorf("decidable(%d) = %v, %v; want %v, %v", c.t, got, ok, at(c.want), c.ok)
		}
	}
	m.end(at(9))
	if got, ok := m.decidable(1 << 50); !ok || !got.Equal(at(9)) {
		t.Errorf("after the heartbeats: %v, %v", got, ok)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := Percentile(d, 50); p != 100*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := Percentile(d, 99); p != 198*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := Percentile(d[:1], 99); p != time.Millisecond {
		t.Errorf("p99 of one = %s", p)
	}
}
