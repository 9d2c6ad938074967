// Package scenarios runs cdcrecon check over the scenario folders beside
// this file: a configuration, dumps of both sides, and the drift records
// the reference semantics call for (see gen.py for the layout).
package scenarios

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/test/testbin"
)

var cdcrecon string

func TestMain(m *testing.M) { testbin.Main(m, &cdcrecon) }

// pinned are the fields of a drift record a scenario's want.jsonl states.
type pinned struct {
	Table      string          `json:"table"`
	Key        json.RawMessage `json:"key"`
	Kind       string          `json:"kind"`
	Columns    []string        `json:"columns"`
	Status     string          `json:"status"`
	OpenedAt   string          `json:"opened_at"`
	ResolvedAt *string         `json:"resolved_at"`
}

func readPinned(t *testing.T, b []byte) []pinned {
	t.Helper()
	var out []pinned
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var p pinned
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		var k any // compare keys as values, not text
		_ = json.Unmarshal(p.Key, &k)
		p.Key, _ = json.Marshal(k)
		out = append(out, p)
	}
	return out
}

func TestScenarios(t *testing.T) {
	dirs, _ := filepath.Glob("*/events.txt")
	if len(dirs) < 12 {
		t.Fatalf("%d scenarios, want the 12 the rules need", len(dirs))
	}
	for _, ev := range dirs {
		dir := filepath.Dir(ev)
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			want, err := os.ReadFile(filepath.Join(dir, "want.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			report := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(cdcrecon, "check", "--config", filepath.Join(dir, "check.yaml"), "--history", "--report", report,
				filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl"))
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err = cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			wantRecs := readPinned(t, want)
			gotRecs := readPinned(t, out.Bytes())
			if !reflect.DeepEqual(gotRecs, wantRecs) {
				t.Errorf("drift records differ\n got:\n%s\nwant:\n%s\nstderr:\n%s", out.String(), want, errOut.String())
			}
			wantCode := 0
			open := map[string]bool{}
			for _, r := range wantRecs {
				open[r.Table+string(r.Key)+r.OpenedAt] = r.Status == "open"
			}
			for _, o := range open {
				if o {
					wantCode = 1
				}
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, wantCode, errOut.String())
			}
			if w, err := os.ReadFile(filepath.Join(dir, "want-report.json")); err == nil {
				var wantRep, gotRep map[string]any
				got, _ := os.ReadFile(report)
				if err := json.Unmarshal(w, &wantRep); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(got, &gotRep); err != nil {
					t.Fatal(err)
				}
				for k, v := range wantRep {
					if gotRep[k] != v {
						t.Errorf("report %s = %v, want %v", k, gotRep[k], v)
					}
				}
			}
		})
	}
}

// TestDumpsMatchEvents re-derives the dumps from events.txt.
func TestDumpsMatchEvents(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("/usr/bin/python3 is not installed")
	}
	out, err := exec.Command("/usr/bin/python3", "gen.py", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
