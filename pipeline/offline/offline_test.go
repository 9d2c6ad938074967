package offline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// pinned are the fields of a drift record a scenario's want.jsonl states.
type pinned struct {
	Table      string   `json:"table"`
	Key        any      `json:"key"`
	Kind       string   `json:"kind"`
	Columns    []string `json:"columns"`
	Status     string   `json:"status"`
	OpenedAt   string   `json:"opened_at"`
	ResolvedAt *string  `json:"resolved_at"`
}

func pin(t *testing.T, line []byte) pinned {
	t.Helper()
	var p pinned
	if err := json.Unmarshal(line, &p); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return p
}

// TestCheckScenarios: Check over test/scenarios, one scenario per rule of
// the reference semantics, publishes the drift history each scenario's
// want.jsonl states, in order, and leaves open what is open there.
func TestCheckScenarios(t *testing.T) {
	dirs, _ := filepath.Glob("../../test/scenarios/*/want.jsonl")
	if len(dirs) < 12 {
		t.Fatalf("%d scenarios, want 12", len(dirs))
	}
	for _, w := range dirs {
		dir := filepath.Dir(w)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			want, err := os.ReadFile(w)
			if err != nil {
				t.Fatal(err)
			}
			var wantHist []pinned
			open := map[string]bool{}
			for sc := bufio.NewScanner(bytes.NewReader(want)); sc.Scan(); {
				if len(bytes.TrimSpace(sc.Bytes())) > 0 {
					p := pin(t, sc.Bytes())
					wantHist = append(wantHist, p)
					k, _ := json.Marshal(p.Key)
					open[p.Table+string(k)+p.OpenedAt] = p.Status == "open"
				}
			}
			cfg, err := config.Load(filepath.Join(dir, "check.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := offline.Check(context.Background(), offline.Options{Config: cfg,
				Dumps: []string{filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}})
			if err != nil {
				t.Fatal(err)
			}
			var got []pinned
			for _, d := range res.History {
				line, err := json.Marshal(d)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, pin(t, line))
			}
			if !reflect.DeepEqual(got, wantHist) {
				t.Errorf("history\n got %+v\nwant %+v", got, wantHist)
			}
			wantOpen := 0
			for _, o := range open {
				if o {
					wantOpen++
				}
			}
			if len(res.Open) != wantOpen || res.Report.OpenDrift != int64(wantOpen) {
				t.Errorf("%d open (report %d), want %d", len(res.Open), res.Report.OpenDrift, wantOpen)
			}
			if err := res.Compared(); err != nil && wantOpen > 0 {
				t.Errorf("Compared: %v", err)
			}
		})
	}
}
