package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/schemas"
)

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// Score compares the rows a drift history leaves open with the
// ground truth's rows: the recall, the precision and how many rows are
// open.
func Score(history []*schemas.Drift, truth map[string]bool) (recall, precision float64, open int) {
	found := map[string]bool{}
	for _, d := range offline.OpenAtEnd(history) {
		found[DriftRow(d)] = true
	}
	hit := 0
	for row := range found {
		if truth[row] {
			hit++
		}
	}
	return ratio(hit, len(truth)), ratio(hit, len(found)), len(found)
}

// DriftRow names a drift's row as "table {key}", as TruthRows does.
func DriftRow(d *schemas.Drift) string {
	line, _ := json.Marshal(d)
	r, _ := RowOf(line)
	return r
}

func RowOf(line []byte) (string, error) {
	var d struct {
		Table string         `json:"table"`
		Key   map[string]any `json:"key"`
	}
	if err := json.Unmarshal(line, &d); err != nil {
		return "", err
	}
	k, _ := json.Marshal(d.Key)
	return d.Table + " " + string(k), nil
}

// TruthRows reads simulate's truth.jsonl as a set of rows.
func TruthRows(file string) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	rows := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		r, err := RowOf([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		rows[r] = true
	}
	return rows, nil
}
