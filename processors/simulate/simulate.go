// Package simulate generates Debezium traffic for a PostgreSQL-shaped
// source database and a MySQL-shaped target replicated from it, with
// faults injected at known places, and the ground truth those faults
// imply: the drift a correct reconciler reports at the end of input.
//
// The traffic is what the two connectors would write with the
// JsonConverter and schemas.enable=false: row events with their source
// blocks and positions, tombstones after deletes, and the target lagging
// the source by less than the grace. Everything derives from Options.Seed,
// so the same options give byte-identical output.
//
// Faults, each at its own rate:
//   - Drop: the target never applies an event;
//   - Corrupt: the target applies an event with one wrong value;
//   - Delay: the target applies an event later than the grace allows
//     (a drift that opens and later resolves, or stays open at the end);
//   - Duplicate: the connector restarts and re-sends a run of events with
//     their original positions (duplicates, never drift);
//   - Poison: malformed messages among the events (invalid, never drift).
package simulate

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zeebo/xxh3"
)

// Options sizes a workload. The zero value of each field takes the
// default named beside it.
type Options struct {
	// Seed makes the workload; the same seed gives the same bytes.
	Seed uint64
	// Tables is the number of tables, 1 to 3: orders, customers and
	// payments (composite key). Default 3.
	Tables int
	// Keys is the number of distinct rows over all tables. Default 1,000.
	Keys int
	// Events is the number of row events the source writes. Default 10,000.
	Events int
	// Partitions is the partition count of every input topic. Default 1.
	Partitions int
	// Rate is the source's events per second of event time. Default 1,000.
	Rate int
	// Start is the commit time of the first event. Default
	// 2026-11-21T00:00:00Z.
	Start time.Time
	// Grace is the lag the target may have; events are replicated well
	// within it unless delayed. Default 30s.
	Grace time.Duration
	// Window is the checksum window written to the configuration.
	// Default 1m.
	Window time.Duration
	Faults Faults
}

// Faults are the injected fault rates: each target event is dropped,
// corrupted or delayed with the given probability; each event starts a
// re-send with probability Duplicate; Poison malformed messages are
// spread over the topics.
type Faults struct {
	Drop, Corrupt, Delay, Duplicate float64
	Poison                          int
}

func (o *Options) defaults() error {
	if o.Tables == 0 {
		o.Tables = 3
	}
	if o.Keys == 0 {
		o.Keys = 1000
	}
	if o.Events == 0 {
		o.Events = 10000
	}
	if o.Partitions == 0 {
		o.Partitions = 1
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	}
	if o.Grace == 0 {
		o.Grace = 30 * time.Second
	}
	if o.Window == 0 {
		o.Window = time.Minute
	}
	switch {
	case o.Tables < 1 || o.Tables > len(tables):
		return fmt.Errorf("tables: want 1 to %d, got %d", len(tables), o.Tables)
	case o.Keys < o.Tables:
		return fmt.Errorf("keys: want at least one per table (%d), got %d", o.Tables, o.Keys)
	case o.Events < o.Keys:
		return fmt.Errorf("events: want at least one per key (%d), got %d", o.Keys, o.Events)
	case o.Partitions < 1 || o.Rate < 1 || o.Grace < 0 || o.Window <= 0:
		return fmt.Errorf("partitions, rate and window must be positive and grace not negative")
	}
	for name, p := range map[string]float64{"drop": o.Faults.Drop, "corrupt": o.Faults.Corrupt, "delay": o.Faults.Delay, "duplicate": o.Faults.Duplicate} {
		if p < 0 || p > 1 {
			return fmt.Errorf("faults.%s: want a probability in [0, 1], got %v", name, p)
		}
	}
	if o.Faults.Poison < 0 {
		return fmt.Errorf("faults.poison: must not be negative")
	}
	return nil
}

// Drift is one drift of the ground truth: a row that differs at the end of
// input, and how its final rows differ. A reconciler reports the row; the
// kind and columns of its drift record are those of the instant the drift
// opened, which, when the row changed again while drifted, can differ.
type Drift struct {
	Table string         `json:"table"`
	Key   map[string]any `json:"key"`
	Kind  string         `json:"kind"`
	// Columns are the differing canonical columns of a value_mismatch,
	// sorted.
	Columns []string `json:"columns,omitempty"`
}

// Truth is what a workload contains.
type Truth struct {
	// SourceEvents and TargetEvents count the row events written per side,
	// duplicates and tombstones excluded.
	SourceEvents, TargetEvents int
	// Tombstones, Duplicates and Poison count those messages over both
	// sides.
	Tombstones, Duplicates, Poison int
	// Dropped, Corrupted and Delayed count the injected target faults.
	Dropped, Corrupted, Delayed int
	// Drift is the drift open at the end, sorted by table, then key.
	Drift []Drift
}

// Records counts every message written.
func (t *Truth) Records() int {
	return t.SourceEvents + t.TargetEvents + t.Tombstones + t.Duplicates + t.Poison
}

// Message is one generated Kafka message; a nil Value is a tombstone.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
}

// Sink receives the generated messages: each topic partition's in offset
// order, both sides interleaved by event time.
type Sink func(Message) error

// event is one row change, its row values derived from (table, key,
// version) so that no row is stored.
type event struct {
	time    int64 // commit time, ms since the epoch
	table   uint8
	op      byte // c, u, d
	fault   uint8
	key     int32
	version int32 // the row's version after the event (before it for d)
	seq     int64 // position: the source's LSN or the target's binlog offset
}

const (
	faultNone uint8 = iota
	faultDrop
	faultCorrupt
	faultDelay
)

// Generate writes a workload to sink and returns its ground truth.
func Generate(opts Options, sink Sink) (*Truth, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	g := &generator{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x5eed))}
	src := g.source()
	tgt := g.target(src)
	truth := g.truth(src, tgt)
	w := &writer{g: g, sink: sink, truth: truth, offsets: map[string]int64{}, recent: map[string][]Message{}}
	if err := w.write(src, tgt); err != nil {
		return nil, err
	}
	return truth, nil
}

type generator struct {
	opts Options
	rng  *rand.Rand
}

// source makes the source's events in commit order: every key is created
// once, then updated, deleted and created again at random.
func (g *generator) source() []event {
	o := g.opts
	alive := make([]bool, o.Keys)
	versions := make([]int32, o.Keys)
	created := 0
	evs := make([]event, 0, o.Events)
	step := int64(1000) / int64(o.Rate)
	if step == 0 {
		step = 1
	}
	t := o.Start.UnixMilli()
	for i := range o.Events {
		var k int
		// Create every key before the events run out; otherwise touch a
		// random existing key.
		if remaining := o.Events - i; created < o.Keys && (created == 0 || remaining <= o.Keys-created || g.rng.IntN(2) == 0) {
			k = created
			created++
		} else {
			k = g.rng.IntN(created)
		}
		e := event{time: t, table: uint8(k % o.Tables), key: int32(k), seq: int64(i)}
		switch {
		case !alive[k]:
			e.op = 'c'
			versions[k]++
			alive[k] = true
		case g.rng.IntN(20) == 0:
			e.op = 'd'
			alive[k] = false
		default:
			e.op = 'u'
			versions[k]++
		}
		e.version = versions[k]
		evs = append(evs, e)
		// Some events commit together (one transaction), some apart.
		t += step * int64(g.rng.IntN(3))
	}
	return evs
}

// target replicates the source's events with a lag well within the
// grace, injecting faults, in the target's commit order.
func (g *generator) target(src []event) []event {
	o := g.opts
	last := make([]int, o.Keys) // index of each key's last source event
	for i, e := range src {
		last[e.key] = i
	}
	maxLag := o.Grace.Milliseconds() / 3
	if maxLag < 1 {
		maxLag = 1
	}
	tgt := make([]event, 0, len(src))
	prev := make([]int64, o.Keys) // each key's latest target commit
	for i, e := range src {
		e.time += 1 + g.rng.Int64N(maxLag)
		f := g.rng.Float64()
		switch {
		case f < o.Faults.Drop:
			e.fault = faultDrop
		case f < o.Faults.Drop+o.Faults.Corrupt && e.op != 'd':
			e.fault = faultCorrupt
		case f < o.Faults.Drop+o.Faults.Corrupt+o.Faults.Delay && last[e.key] == i:
			// Only a key's last event is delayed: a delayed earlier one
			// would be applied after later ones and regress the row.
			e.fault = faultDelay
			e.time += o.Grace.Milliseconds() + 1 + g.rng.Int64N(10000)
		}
		// The target applies a key's changes in the source's order.
		e.time = max(e.time, prev[e.key])
		prev[e.key] = e.time
		tgt = append(tgt, e)
	}
	slices.SortStableFunc(tgt, func(a, b event) int { return cmp.Compare(a.time, b.time) })
	for i := range tgt {
		tgt[i].seq = int64(i)
	}
	return tgt
}

// truth compares each key's final source and target states.
func (g *generator) truth(src, tgt []event) *Truth {
	o := g.opts
	type final struct {
		present bool
		version int32
		corrupt bool
	}
	srcFinal := make([]final, o.Keys)
	tgtFinal := make([]final, o.Keys)
	tr := &Truth{}
	for _, e := range src {
		srcFinal[e.key] = final{present: e.op != 'd', version: e.version}
		tr.SourceEvents++
	}
	for _, e := range tgt {
		switch e.fault {
		case faultDrop:
			tr.Dropped++
			continue
		case faultCorrupt:
			tr.Corrupted++
		case faultDelay:
			tr.Delayed++
		}
		tr.TargetEvents++
		tgtFinal[e.key] = final{present: e.op != 'd', version: e.version, corrupt: e.fault == faultCorrupt}
	}
	for k := range o.Keys {
		s, t := srcFinal[k], tgtFinal[k]
		tab := &tables[k%o.Tables]
		d := Drift{Table: tab.name, Key: tab.keyObject(int32(k))}
		switch {
		case !s.present && !t.present:
			continue
		case s.present && !t.present:
			d.Kind = "missing_in_target"
		case !s.present && t.present:
			d.Kind = "extra_in_target"
		default:
			a := tab.row(g.opts.Seed, int32(k), s.version, false)
			b := tab.row(g.opts.Seed, int32(k), t.version, t.corrupt)
			for i, c := range tab.columns {
				if c.compared && a[i].logical != b[i].logical {
					d.Columns = append(d.Columns, c.canonical)
				}
			}
			if len(d.Columns) == 0 {
				continue
			}
			slices.Sort(d.Columns)
			d.Kind = "value_mismatch"
		}
		tr.Drift = append(tr.Drift, d)
	}
	slices.SortStableFunc(tr.Drift, func(a, b Drift) int { return strings.Compare(a.Table, b.Table) })
	return tr
}

// writer turns events into messages, adding tombstones, re-sends and
// poison, and numbering offsets per topic partition.
type writer struct {
	g       *generator
	sink    Sink
	truth   *Truth
	offsets map[string]int64
	// recent holds each partition's last messages, for re-sends.
	recent map[string][]Message
}

const resendWindow = 16

func (w *writer) write(src, tgt []event) error {
	o := w.g.opts
	// Poison goes after random events of random sides.
	poisonAt := map[int]int{}
	total := len(src) + len(tgt)
	for range o.Faults.Poison {
		poisonAt[w.g.rng.IntN(total)]++
	}
	i, j, n := 0, 0, 0
	for i < len(src) || j < len(tgt) {
		var err error
		if j >= len(tgt) || (i < len(src) && src[i].time <= tgt[j].time) {
			err = w.event(src[i], true)
			i++
		} else {
			if tgt[j].fault != faultDrop {
				err = w.event(tgt[j], false)
			}
			j++
		}
		if err != nil {
			return err
		}
		for range poisonAt[n] {
			if err := w.poison(n); err != nil {
				return err
			}
		}
		n++
	}
	return nil
}

func (w *writer) event(e event, source bool) error {
	tab := &tables[e.table]
	topic := tab.target
	if source {
		topic = tab.source
	}
	part := int32(xxh3.HashString(strconv.Itoa(int(e.key))) % uint64(w.g.opts.Partitions))
	key := tab.keyJSON(nil, e.key)
	value := w.payload(tab, e, source)
	ts := time.UnixMilli(e.time + 5) // the connector's write, shortly after the commit
	if err := w.emit(Message{Topic: topic, Partition: part, Timestamp: ts, Key: key, Value: value}); err != nil {
		return err
	}
	if e.op == 'd' {
		w.truth.Tombstones++
		if err := w.emit(Message{Topic: topic, Partition: part, Timestamp: ts, Key: key}); err != nil {
			return err
		}
	}
	// A connector restart re-sends what it had sent since its last
	// committed offset: the partition's latest messages, as they were.
	if w.g.rng.Float64() < w.g.opts.Faults.Duplicate {
		name := topic + "/" + strconv.Itoa(int(part))
		recent := w.recent[name]
		n := 1 + w.g.rng.IntN(len(recent))
		for _, r := range slices.Clone(recent[len(recent)-n:]) {
			if r.Value != nil && !isPoison(r.Value) {
				w.truth.Duplicates++
			} else if r.Value == nil {
				w.truth.Tombstones++
			} else {
				w.truth.Poison++
			}
			if err := w.emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writer) poison(n int) error {
	tab := &tables[n%w.g.opts.Tables]
	topic := tab.source
	if n%2 == 1 {
		topic = tab.target
	}
	w.truth.Poison++
	value := fmt.Appendf(nil, `{"before":null,"after":{"id":%d,"status":"new"},"source":{"version":"3.6.1.Final","connector":"postgresql"`, n)
	return w.emit(Message{Topic: topic, Timestamp: w.g.opts.Start.Add(time.Duration(n) * time.Millisecond), Key: []byte(`{"id":0}`), Value: value})
}

func isPoison(v []byte) bool { return len(v) > 0 && v[len(v)-1] != '}' }

func (w *writer) emit(r Message) error {
	name := r.Topic + "/" + strconv.Itoa(int(r.Partition))
	r.Offset = w.offsets[name]
	w.offsets[name]++
	recent := append(w.recent[name], r)
	if len(recent) > resendWindow {
		recent = recent[1:]
	}
	w.recent[name] = recent
	return w.sink(r)
}

// payload is an event's JSON value as its connector writes it.
func (w *writer) payload(tab *table, e event, source bool) []byte {
	seed := w.g.opts.Seed
	b := make([]byte, 0, 768)
	b = append(b, `{"before":`...)
	switch {
	case e.op == 'd' && source:
		// PostgreSQL's default replica identity: the key columns only.
		b = tab.keyJSON(b, e.key)
	case e.op == 'd' || (e.op == 'u' && !source):
		// MySQL's full row images.
		prev := e.version
		if e.op == 'u' {
			prev--
		}
		b = tab.rowJSON(b, e.key, tab.row(seed, e.key, prev, false), source)
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"after":`...)
	if e.op == 'd' {
		b = append(b, "null"...)
	} else {
		b = tab.rowJSON(b, e.key, tab.row(seed, e.key, e.version, e.fault == faultCorrupt), source)
	}
	b = append(b, `,"source":`...)
	if source {
		lsn := 24_000_000 + e.seq*176
		b = fmt.Appendf(b, `{"version":"3.6.1.Final","connector":"postgresql","name":"pg","ts_ms":%d,"snapshot":"false","db":"shop","sequence":"[\"%d\",\"%d\"]","ts_us":%d000,"ts_ns":%d000000,"schema":"public","table":"%s","txId":%d,"lsn":%d,"xmin":null,"origin":null,"origin_lsn":null}`,
			e.time, lsn-176, lsn, e.time, e.time, tab.name, 700+e.seq, lsn)
	} else {
		b = fmt.Appendf(b, `{"version":"3.6.1.Final","connector":"mysql","name":"mysql","ts_ms":%d,"snapshot":"false","db":"shop","sequence":null,"ts_us":%d000,"ts_ns":%d000000,"table":"%s","server_id":1,"gtid":null,"file":"binlog.%06d","pos":%d,"row":0,"thread":7,"query":null}`,
			e.time, e.time, e.time, tab.name, 3+e.seq/100000, 4+(e.seq%100000)*412)
	}
	// The envelope's processing time, in ms, µs and ns as Debezium 3
	// writes it.
	b = fmt.Appendf(b, `,"op":"%c","ts_ms":%d,"ts_us":%d000,"ts_ns":%d000000,"transaction":null}`, e.op, e.time+3, e.time+3, e.time+3)
	return b
}

// valueRNG is the random source of one row version.
func valueRNG(seed uint64, table uint8, key, version int32) *rand.Rand {
	var b [17]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	b[8] = table
	binary.LittleEndian.PutUint32(b[9:], uint32(key))
	binary.LittleEndian.PutUint32(b[13:], uint32(version))
	h := xxh3.Hash128(b[:])
	return rand.New(rand.NewPCG(h.Hi, h.Lo))
}
