package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

const (
	python     = "/usr/bin/python3"
	schemaDir  = "../../schemas/avro"
	goldenDir  = "../../schemas/testdata/golden"
	compatFile = "../../schemas/testdata/compat/cases.jsonl"
	avroTool   = "testdata/avro_tool.py"
)

// needPython skips unless /usr/bin/python3 imports every module named.
func needPython(t *testing.T, modules ...string) {
	t.Helper()
	for _, m := range modules {
		if err := exec.Command(python, "-c", "import "+m).Run(); err != nil {
			t.Skipf("%s cannot import %s (apt-get install python3-avro python3-confluent-kafka); .ci/run installs them", python, m)
		}
	}
}

// TestGoldenEncodingsAreApacheAvros re-derives the golden bytes the schemas
// package holds its encoder to with Apache Avro's Python library.
func TestGoldenEncodingsAreApacheAvros(t *testing.T) {
	needPython(t, "avro")
	mustRun(t, nil, python, filepath.Join(goldenDir, "gen.py"), "--check")
}

// TestCompatibilityAgreesWithApacheAvro runs Apache Avro's own
// compatibility checker over the cases schemas.Compatible is tested
// against, and over every pair of versions of our schemas.
func TestCompatibilityAgreesWithApacheAvro(t *testing.T) {
	needPython(t, "avro")
	type verdict struct {
		Compatible bool   `json:"compatible"`
		Rule       string `json:"rule"`
	}
	var cases []verdict
	text, err := os.ReadFile(compatFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		var c verdict
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	out := mustRun(t, nil, python, avroTool, "compat", schemaDir, compatFile)
	pairs := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var v struct {
			Case       int      `json:"case"`
			Pair       []string `json:"pair"`
			Compatible bool     `json:"compatible"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		switch {
		case v.Case > 0:
			if c := cases[v.Case-1]; c.Compatible != v.Compatible {
				t.Errorf("case %d (%s): Apache Avro says compatible=%v, the file says %v", v.Case, c.Rule, v.Compatible, c.Compatible)
			}
		default:
			pairs++
			if !v.Compatible {
				t.Errorf("Apache Avro: %s cannot read %s", v.Pair[0], v.Pair[1])
			}
		}
	}
	if pairs < 4 {
		t.Errorf("only %d version pairs checked", pairs)
	}
}

// TestApacheAvroReadsAcrossVersions: Python reads v1 drift data with the
// v2 reader schema (reason takes its default) and v2 data with the v1
// reader schema (reason is skipped).
func TestApacheAvroReadsAcrossVersions(t *testing.T) {
	needPython(t, "avro")
	d, err := readGolden("drift.v2.resolved")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ writer, reader string }{{"drift.v1", "drift.v2"}, {"drift.v2", "drift.v1"}, {"drift.v2", "drift.v2"}} {
		w := schemaFile(c.writer)
		body, err := schemas.AppendBinary(nil, w, d.record)
		if err != nil {
			t.Fatal(err)
		}
		out := mustRun(t, nil, python, avroTool, "read", schemaDir, c.writer, c.reader, hex.EncodeToString(body))
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		want := d.datum()
		switch {
		case c.reader == "drift.v1":
			delete(want, "reason")
		case c.writer == "drift.v1":
			want["reason"] = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s data read as %s:\n got %v\nwant %v", c.writer, c.reader, got, want)
		}
	}
}

// TestPythonConsumerReadsPublishedRecords: every golden record, published
// by our Publisher through our Serde to "cdcrecon broker" in both
// encodings, is read by a confluent-kafka consumer in Python and decoded by
// Apache Avro with the .avsc files into the hand-written datum.
func TestPythonConsumerReadsPublishedRecords(t *testing.T) {
	needPython(t, "avro", "confluent_kafka")
	b := startBroker(t)
	reg := srfake.New()
	defer reg.Close()
	cl, err := registry.NewClient(config.SchemaRegistry{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: kafka.ClientConfig{Brokers: []string{b.addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	goldens, err := allGoldens()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	topics := map[registry.Encoding]string{registry.Confluent: "interop.confluent", registry.SingleObject: "interop.single"}
	for _, serde := range []*registry.Serde{registry.NewSerde(cl), registry.NewSerde(nil)} {
		for _, g := range goldens {
			v, err := serde.Encode(ctx, nil, topics[serde.Encoding()], g.record)
			if err != nil {
				t.Fatal(err)
			}
			m := message.NewMessage("", v)
			m.Metadata.Set(kafka.MetaKey, g.name)
			if err := pub.Publish(topics[serde.Encoding()], m); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := mustRun(t, nil, python, avroTool, "consume", schemaDir, b.addr, reg.URL(),
		fmt.Sprint(2*len(goldens)), topics[registry.Confluent], topics[registry.SingleObject])
	byName := map[string]golden{}
	for _, g := range goldens {
		byName[g.name] = g
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Topic    string         `json:"topic"`
			Key      string         `json:"key"`
			Encoding string         `json:"encoding"`
			Writer   string         `json:"writer"`
			Datum    map[string]any `json:"datum"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		g, ok := byName[r.Key]
		if !ok {
			t.Errorf("unexpected key %q", r.Key)
			continue
		}
		seen[r.Encoding]++
		if r.Topic != topics[registry.Encoding(r.Encoding)] {
			t.Errorf("%s: %s record on topic %s", r.Key, r.Encoding, r.Topic)
		}
		if latest := schemas.Latest(g.record.SchemaName()); r.Writer != fmt.Sprintf("%s.v%d", latest.Name, latest.Version) {
			t.Errorf("%s: written under %s, want the latest version", r.Key, r.Writer)
		}
		want := g.datum()
		for k, v := range r.Datum { // fields newer than the golden's version carry their default
			if _, ok := want[k]; !ok && v == nil {
				want[k] = nil
			}
		}
		if !reflect.DeepEqual(r.Datum, want) {
			t.Errorf("%s (%s):\n got %v\nwant %v", r.Key, r.Encoding, r.Datum, want)
		}
	}
	if seen["confluent"] != len(goldens) || seen["single-object"] != len(goldens) {
		t.Errorf("read %v, want %d of each encoding", seen, len(goldens))
	}
}

// golden is one case of schemas/testdata/golden: the hand-written datum
// and the record our decoder makes of Apache Avro's bytes for it (which
// the schemas tests hold equal to a hand-written Go value).
type golden struct {
	name   string
	raw    []byte // the datum's JSON
	record schemas.Record
}

func (g golden) datum() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(g.raw, &m); err != nil {
		panic(err)
	}
	return m
}

func readGolden(name string) (golden, error) {
	text, err := os.ReadFile(filepath.Join(goldenDir, name+".json"))
	if err != nil {
		return golden{}, err
	}
	var c struct {
		Schema string          `json:"schema"`
		Datum  json.RawMessage `json:"datum"`
	}
	if err := json.Unmarshal(text, &c); err != nil {
		return golden{}, fmt.Errorf("%s: %w", name, err)
	}
	h, err := os.ReadFile(filepath.Join(goldenDir, name+".hex"))
	if err != nil {
		return golden{}, err
	}
	body, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		return golden{}, err
	}
	s := schemaFile(c.Schema)
	if s == nil {
		return golden{}, fmt.Errorf("%s: no schema %s", name, c.Schema)
	}
	r, err := schemas.Decode(s, body)
	if err != nil {
		return golden{}, fmt.Errorf("%s: %w", name, err)
	}
	return golden{name: name, raw: c.Datum, record: r}, nil
}

// schemaFile returns the schema of a file name without .avsc: drift.v2.
func schemaFile(name string) *schemas.Schema {
	n, v, _ := strings.Cut(name, ".v")
	version, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	return schemas.Version(n, version)
}

func allGoldens() ([]golden, error) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var gs []golden
	for _, f := range files {
		g, err := readGolden(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}
