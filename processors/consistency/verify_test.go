package consistency_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

const verifyConfig = `
window: {size: 1s, grace: 100ms}
idle: {safety_margin: 1s}
verify: {delay: 1s, timeout: 10s, settle: 200ms, max_keys: 3}
tables:
  - name: a
    key: [id]
    source: {topic: src.a, verify: {signal_topic: src-signal, prefix: src}}
    target: {topic: tgt.a, verify: {signal_topic: tgt-signal, prefix: tgt}}
`

// connectorSim runs an engine over two simulated databases and their
// change streams, 10 ms at a time, and plays both connectors: a request
// is answered, after a latency, with a re-read row for every requested
// key its database has, and nothing for the others, as Debezium's
// incremental snapshot does. The streams and the databases are set apart
// so that a test can lose an event from a stream (the database changed,
// its stream did not say so) or tamper with a database behind its stream.
type connectorSim struct {
	t       *testing.T
	cfg     *config.Config
	m       *normalize.Mapper
	tbl     *normalize.Table
	h       canon.Hasher
	db      [3]map[int64]int64 // by side: key -> value; absent: no row
	pending []changes.Change   // stream events and re-reads not yet delivered
	log     []logEntry         // everything delivered, for replays
	now     int64
	offsets map[string]int64
	answers [3]bool
	ignore  func(consistency.Request) bool // requests the connectors never read
	latency int64
	out     []schemas.Record
	reqs    []consistency.Request
	e       *consistency.Engine
}

func newConnectorSim(t *testing.T, cfgText string) *connectorSim {
	cfg, err := config.Parse([]byte(cfgText), "verify.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &connectorSim{t: t, cfg: cfg, m: m, tbl: m.Tables()[0], offsets: map[string]int64{}, answers: [3]bool{false, true, true}, latency: 300}
	s.db[normalize.Source], s.db[normalize.Target] = map[int64]int64{}, map[int64]int64{}
	s.e = s.engine()
	return s
}

func (s *connectorSim) engine() *consistency.Engine {
	c := consistency.Config{Settings: s.cfg, Mapper: s.m, Emit: func(r schemas.Record) { s.out = append(s.out, clone(r)) },
		Request: func(r consistency.Request) { s.request(r) }}
	e, err := consistency.New(c)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, in := range []string{"src.a/0", "tgt.a/0"} {
		e.Expect(sideOf(in), in)
	}
	return e
}

func clone(r schemas.Record) schemas.Record {
	switch x := r.(type) {
	case *schemas.Drift:
		c := *x
		return &c
	case *schemas.Compensation:
		c := *x
		return &c
	}
	return r
}

func sideOf(input string) normalize.Side {
	if input[0] == 's' {
		return normalize.Source
	}
	return normalize.Target
}

func (s *connectorSim) change(side normalize.Side, at, key int64, v *int64, reread bool) changes.Change {
	topic := map[normalize.Side]string{normalize.Source: "src.a", normalize.Target: "tgt.a"}[side]
	c := changes.Change{Table: "a", Side: side, Key: canon.AppendKey(nil, []canon.Value{canon.IntValue(key)}), Time: at, Kind: changes.Absent, Reread: reread,
		Origin: changes.Origin{Topic: topic}}
	if v != nil {
		row := canon.Row{{Name: "v", Value: canon.IntValue(*v)}}
		c.Kind, c.Row, c.Digest = changes.Upsert, canon.AppendRow(nil, row), s.tbl.Digest(&s.h, row)
	}
	return c
}

// write changes a side's database at instant at, and its stream says so
// unless lost.
func (s *connectorSim) write(side normalize.Side, at, key int64, v *int64, lost bool) {
	if v == nil {
		delete(s.db[side], key)
	} else {
		s.db[side][key] = *v
	}
	if !lost {
		s.pending = append(s.pending, s.change(side, at, key, v, false))
	}
}

func val(v int64) *int64 { return &v }

func (s *connectorSim) request(r consistency.Request) {
	s.reqs = append(s.reqs, r)
	if !s.answers[r.Side] || s.ignore != nil && s.ignore(r) {
		return
	}
	for _, k := range r.Keys {
		if len(k) != 1 || k[0].Name != "id" {
			s.t.Fatalf("request %s names key %v, want the id column", r.ID, k)
		}
		key, err := strconv.ParseInt(k[0].Value, 10, 64)
		if err != nil {
			s.t.Fatal(err)
		}
		if v, ok := s.db[r.Side][key]; ok {
			s.pending = append(s.pending, s.change(r.Side, s.now+s.latency, key, val(v), true))
		}
	}
}

// run moves the clock to `to`, delivering what is due and a watermark of
// both inputs every 10 ms.
func (s *connectorSim) run(to int64) {
	for s.now < to {
		s.now += 10
		slices.SortStableFunc(s.pending, func(a, b changes.Change) int { return int(a.Time - b.Time) })
		n := 0
		for n < len(s.pending) && s.pending[n].Time <= s.now {
			c := s.pending[n]
			in := c.Origin.Topic + "/0"
			c.Origin.Offset = s.offsets[in]
			s.offsets[in]++
			s.log = append(s.log, logEntry{change: &c})
			if err := s.e.Apply(c); err != nil {
				s.t.Fatal(err)
			}
			n++
		}
		s.pending = s.pending[n:]
		for _, in := range []string{"src.a/0", "tgt.a/0"} {
			s.log = append(s.log, logEntry{side: sideOf(in), input: in, mark: s.now})
			s.e.Watermark(sideOf(in), in, s.now)
		}
		s.e.Advance()
	}
}

// drifts returns the drift records of a key, and its compensation
// commands.
func (s *connectorSim) records(key int64) (ds []*schemas.Drift, cs []*schemas.Compensation) {
	want := fmt.Sprint(key)
	for _, r := range s.out {
		switch x := r.(type) {
		case *schemas.Drift:
			if x.Key[0].Value == want {
				ds = append(ds, x)
			}
		case *schemas.Compensation:
			if x.Key[0].Value == want {
				cs = append(cs, x)
			}
		}
	}
	return ds, cs
}

func (s *connectorSim) requestsOf(key int64) map[normalize.Side]int {
	n := map[normalize.Side]int{}
	for _, r := range s.reqs {
		for _, k := range r.Keys {
			if k[0].Value == fmt.Sprint(key) {
				n[r.Side]++
			}
		}
	}
	return n
}

// replicate writes a row on both sides, the target 20 ms later.
func (s *connectorSim) replicate(at, key, v int64) {
	s.write(normalize.Source, at, key, val(v), false)
	s.write(normalize.Target, at+20, key, val(v), false)
}

type verdict struct {
	status       schemas.DriftStatus
	verification schemas.Verification
	side         string
	decision     schemas.Decision
}

func verdicts(ds []*schemas.Drift) []verdict {
	var out []verdict
	for _, d := range ds {
		out = append(out, verdict{d.Status, d.Verification, d.VerifiedSide, d.Decision})
	}
	return out
}

func TestVerifyVerdicts(t *testing.T) {
	pending := verdict{schemas.Open, schemas.Pending, "", schemas.Verifying}
	for _, tc := range []struct {
		name    string
		key     int64 // the drifted key; 0 is key 1
		setup   func(s *connectorSim)
		want    []verdict
		compens int
	}{{
		name: "a target row tampered behind replication is confirmed",
		setup: func(s *connectorSim) {
			s.write(normalize.Target, 1000, 1, val(99), false)
		},
		want:    []verdict{pending, {schemas.Open, schemas.Confirmed, "", schemas.Compensate}},
		compens: 1,
	}, {
		name: "an update the target's stream lost is a stream gap",
		setup: func(s *connectorSim) {
			s.write(normalize.Source, 1000, 1, val(7), false)
			s.write(normalize.Target, 1020, 1, val(7), true)
		},
		want: []verdict{pending, {schemas.Resolved, schemas.StreamGap, "target", schemas.Verifying}},
	}, {
		name: "a delete the target's stream lost is a stream gap, answered through the anchor",
		setup: func(s *connectorSim) {
			s.write(normalize.Source, 1000, 1, nil, false)
			s.write(normalize.Target, 1020, 1, nil, true)
		},
		want: []verdict{pending, {schemas.Resolved, schemas.StreamGap, "target", schemas.Verifying}},
	}, {
		name: "an insert the source's stream lost is a stream gap of the source",
		key:  3,
		setup: func(s *connectorSim) {
			s.write(normalize.Source, 1000, 3, val(5), true)
			s.write(normalize.Target, 1020, 3, val(5), false)
		},
		want: []verdict{pending, {schemas.Resolved, schemas.StreamGap, "source", schemas.Verifying}},
	}, {
		name: "a row deleted from the target behind replication is confirmed missing",
		setup: func(s *connectorSim) {
			s.write(normalize.Target, 1000, 1, nil, false)
		},
		want:    []verdict{pending, {schemas.Open, schemas.Confirmed, "", schemas.Compensate}},
		compens: 1,
	}, {
		name: "a target connector that ignores signals leaves the drift unverified",
		setup: func(s *connectorSim) {
			s.answers[normalize.Target] = false
			s.write(normalize.Target, 1000, 1, val(99), false)
		},
		want: []verdict{pending, {schemas.Open, schemas.Unverified, "target", schemas.ManualCheck}},
	}, {
		name: "a drift the streams resolve before the re-read needs no verdict",
		setup: func(s *connectorSim) {
			s.write(normalize.Target, 1000, 1, val(99), false)
			s.write(normalize.Target, 1500, 1, val(1), false)
		},
		want: []verdict{pending, {schemas.Resolved, "", "", schemas.Verifying}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newConnectorSim(t, verifyConfig)
			s.replicate(100, 1, 1)
			s.replicate(100, 2, 2) // the anchor: present on both sides
			s.run(500)
			tc.setup(s)
			s.run(20_000)
			key := max(tc.key, 1)
			ds, cs := s.records(key)
			if got := verdicts(ds); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("drift records %+v, want %+v", got, tc.want)
			}
			if len(cs) != tc.compens {
				t.Fatalf("%d compensation commands, want %d", len(cs), tc.compens)
			}
			for _, c := range cs {
				if c.Verification != schemas.Confirmed || c.Policy == "" || c.DriftID != ds[0].ID {
					t.Errorf("compensation %+v: want confirmed, the policy and drift %s", c, ds[0].ID)
				}
			}
			for _, d := range ds[1:] {
				if d.Status == schemas.Open && (d.VerifiedAt == nil || d.VerifiedAt.UnixMilli() < d.OpenedAt.UnixMilli()+1000) {
					t.Errorf("verdict %+v: verified_at before the delay", d)
				}
			}
			for _, r := range s.reqs {
				t.Logf("req %s %v %v", r.Side, r.At.UnixMilli(), r.Keys)
			}
			for side, n := range s.requestsOf(key) {
				if n != 1 {
					t.Errorf("key %d requested %d times on the %s", key, n, side)
				}
			}
		})
	}
}

// TestVerifyAnswersOnlyItsRequest: a target connector that reads the
// first signal and never the second, with answers slow enough that the
// first's re-reads arrive after the second request was made. The second
// request names another anchor than the first (a re-read answers every
// waiting request naming its key), so the first's answer does not answer
// it: its drift is unverified on the target, not decided on rows the
// connector never read for it.
func TestVerifyAnswersOnlyItsRequest(t *testing.T) {
	s := newConnectorSim(t, verifyConfig)
	s.latency = 1500
	for k := int64(1); k <= 6; k++ {
		s.replicate(100, k, k)
	}
	s.run(500)
	targets := 0
	s.ignore = func(r consistency.Request) bool {
		if r.Side != normalize.Target {
			return false
		}
		targets++
		return targets > 1
	}
	s.write(normalize.Target, 1000, 1, val(99), false) // requested at 3000
	s.write(normalize.Target, 2000, 4, val(98), false) // requested at 4000
	s.run(30_000)
	first, _ := s.records(1)
	second, _ := s.records(4)
	if got := verdicts(first); len(got) != 2 || got[1].verification != schemas.Confirmed {
		t.Errorf("key 1, whose request was read: %+v, want confirmed", got)
	}
	if got := verdicts(second); len(got) != 2 || got[1].verification != schemas.Unverified || got[1].side != "target" {
		t.Errorf("key 4, whose target request was never read: %+v, want unverified on the target", got)
	}
	var anchors [][]schemas.Columns
	for _, r := range s.reqs {
		if r.Side == normalize.Target {
			anchors = append(anchors, r.Keys)
		}
	}
	if len(anchors) != 2 || reflect.DeepEqual(anchors[0], anchors[1]) {
		t.Errorf("target requests %v: want two, naming different anchors", anchors)
	}
}

// TestVerifyReadsGoToTheirOwnRequest: key 5 is the anchor of the first
// request (for key 1), then drifts with key 6 and is in the second. The
// connectors answer slowly, so the first request's read of key 5 comes
// after the second request was made. Each request takes one read of each
// key, the earliest first: that read goes to the first request, and the
// second is answered by its own reads, so key 6 is not judged absent
// before its row came back.
func TestVerifyReadsGoToTheirOwnRequest(t *testing.T) {
	s := newConnectorSim(t, verifyConfig)
	s.latency = 2500
	for k := int64(1); k <= 4; k++ {
		s.replicate(100, k, k)
	}
	s.replicate(200, 5, 5) // the latest row: the anchor
	s.replicate(150, 6, 6)
	s.run(500)
	s.write(normalize.Target, 1000, 1, val(99), false) // requested at 2000, with anchor 5; answered at 4510
	s.run(1990)
	s.write(normalize.Source, 2000, 5, val(55), false)
	s.write(normalize.Target, 2020, 5, val(55), true) // drifts at 2100, requested at 4000, answered at 6510
	s.write(normalize.Source, 2000, 6, val(66), false)
	s.write(normalize.Target, 2020, 6, val(66), true)
	s.run(30_000)
	for key, want := range map[int64]verdict{
		1: {schemas.Open, schemas.Confirmed, "", schemas.Compensate},
		5: {schemas.Resolved, schemas.StreamGap, "target", schemas.Verifying},
		6: {schemas.Resolved, schemas.StreamGap, "target", schemas.Verifying},
	} {
		ds, _ := s.records(key)
		if got := verdicts(ds); len(got) != 2 || got[1] != want {
			t.Errorf("key %d: %+v, want %+v", key, got, want)
		}
	}
}

// TestVerifyNeverAsksTwiceWhileWaiting: a key drifts, is mended by its
// stream, and drifts again while the first drift's request still waits
// for its slow answer: the second drift takes that request's answer, and
// the key is asked for once.
func TestVerifyNeverAsksTwiceWhileWaiting(t *testing.T) {
	s := newConnectorSim(t, verifyConfig)
	s.latency = 4000
	for k := int64(1); k <= 3; k++ {
		s.replicate(100, k, k)
	}
	s.run(500)
	s.write(normalize.Target, 1000, 1, val(99), false) // requested at 2000, answered at 6010
	s.run(2490)
	s.write(normalize.Target, 2500, 1, val(1), false) // mended
	s.run(2990)
	s.write(normalize.Target, 3000, 1, val(98), false) // drifts again: due at 4000
	s.run(30_000)
	for side, n := range s.requestsOf(1) {
		if n != 1 {
			t.Errorf("key 1 asked for %d times of the %s, want once", n, side)
		}
	}
	ds, cs := s.records(1)
	want := []verdict{{schemas.Open, schemas.Pending, "", schemas.Verifying}, {schemas.Resolved, "", "", schemas.Verifying},
		{schemas.Open, schemas.Pending, "", schemas.Verifying}, {schemas.Open, schemas.Confirmed, "", schemas.Compensate}}
	if got := verdicts(ds); !reflect.DeepEqual(got, want) || len(cs) != 1 {
		t.Errorf("records %+v and %d compensations, want %+v and 1", got, len(cs), want)
	}
}

// TestVerifyBatchesAndDeterminism drifts many keys at once: they go out in
// requests of max_keys, each key once per side; then the delivered log,
// re-reads included, is replayed into engines that checkpoint, restart and
// spill keys at random, and every replay emits exactly the same records
// and requests.
func TestVerifyBatchesAndDeterminism(t *testing.T) {
	s := newConnectorSim(t, verifyConfig)
	for k := int64(1); k <= 12; k++ {
		s.replicate(100, k, k)
	}
	s.run(500)
	for k := int64(1); k <= 5; k++ {
		s.write(normalize.Target, 1000, k, val(100+k), false) // confirmed
	}
	for k := int64(6); k <= 9; k++ {
		s.write(normalize.Source, 1000, k, val(200+k), false)
		s.write(normalize.Target, 1010, k, val(200+k), true) // stream gaps
	}
	s.run(20_000)
	perSide := map[normalize.Side]int{}
	for _, r := range s.reqs {
		perSide[r.Side]++
		if len(r.Keys) > 3 {
			t.Errorf("request %s has %d keys, over max_keys", r.ID, len(r.Keys))
		}
	}
	if perSide[normalize.Source] != 5 || perSide[normalize.Target] != 5 {
		t.Errorf("requests by side %v, want 5 each (9 keys, 2 and the anchor a request)", perSide)
	}
	st := s.e.Stats()
	if st.Confirmed != 5 || st.StreamGaps != 4 || st.Unverified != 0 {
		t.Errorf("verdicts: %d confirmed, %d stream gaps, %d unverified; want 5, 4, 0", st.Confirmed, st.StreamGaps, st.Unverified)
	}
	want := encodeAll(t, s.out, s.reqs)
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 3))
		db, err := state.Open("state", state.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		replay := newConnectorSim(t, verifyConfig)
		replay.answers = [3]bool{} // a replay's requests are not answered: the log holds the answers
		mk := func() *consistency.Engine {
			c := consistency.Config{Settings: replay.cfg, Mapper: replay.m, Store: db, MaxKeys: r.IntN(3),
				Emit:    func(rec schemas.Record) { replay.out = append(replay.out, clone(rec)) },
				Request: func(rq consistency.Request) { replay.reqs = append(replay.reqs, rq) }}
			e, err := consistency.New(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range []string{"src.a/0", "tgt.a/0"} {
				e.Expect(sideOf(in), in)
			}
			return e
		}
		e := mk()
		for i, l := range s.log {
			if l.change != nil {
				if err := e.Apply(*l.change); err != nil {
					t.Fatal(err)
				}
				continue
			}
			e.Watermark(l.side, l.input, l.mark)
			if r.IntN(3) != 0 && i != len(s.log)-1 {
				continue
			}
			e.Advance()
			checkpoint(t, e, db)
			if r.IntN(10) == 0 {
				e = mk()
			}
		}
		db.Close()
		if got := encodeAll(t, replay.out, replay.reqs); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: the replay differs: %s", seed, firstDiff(got, want))
		}
	}
}

func encodeAll(t *testing.T, recs []schemas.Record, reqs []consistency.Request) []string {
	var out []string
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%T %s", r, b))
	}
	for _, r := range reqs {
		b, _ := json.Marshal(r)
		out = append(out, "request "+string(b))
	}
	return out
}
