package normalize

import "github.com/cdcrecon/cdcrecon/processors/canon"

// Sum is a canonical row's digests: one per column (parallel to the row)
// and the row's, which leaves out columns compared with a tolerance.
type Sum struct {
	Row  uint64
	Cols []uint64
}

// Digest computes a row's Sum with h.
func (t *Table) Digest(h *canon.Hasher, row canon.Row) Sum {
	cols := h.Columns(make([]uint64, 0, len(row)), row)
	var skip []bool
	for i, c := range row {
		if col := t.columns[c.Name]; col != nil && col.loose {
			if skip == nil {
				skip = make([]bool, len(row))
			}
			skip[i] = true
		}
	}
	return Sum{Row: h.Row(row, cols, skip), Cols: cols}
}

// Diff returns the canonical columns, sorted, in which two present rows
// differ, comparing column digests (a and b's Sums) and, for columns with a
// tolerance, values. A column one row lacks is null there. Columns holding
// an unresolved unchanged-TOAST placeholder on either side are unknown and
// not compared.
func (t *Table) Diff(a canon.Row, sa Sum, b canon.Row, sb Sum) []string {
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || i < len(a) && a[i].Name < b[j].Name:
			if a[i].Value.Kind() != canon.Unavailable {
				out = append(out, a[i].Name)
			}
			i++
		case i >= len(a) || b[j].Name < a[i].Name:
			if b[j].Value.Kind() != canon.Unavailable {
				out = append(out, b[j].Name)
			}
			j++
		default:
			if sa.Cols[i] != sb.Cols[j] && !t.same(a[i].Name, a[i].Value, b[j].Value) {
				out = append(out, a[i].Name)
			}
			i++
			j++
		}
	}
	return out
}

func (t *Table) same(name string, x, y canon.Value) bool {
	if x.Kind() == canon.Unavailable || y.Kind() == canon.Unavailable {
		return true
	}
	if col := t.columns[name]; col != nil && col.loose {
		return canon.WithinTolerance(x, y, col.tolerance)
	}
	return false
}

// Equal reports whether two present rows are consistent: equal row
// digests (when no column has a tolerance), or no column in Diff.
func (t *Table) Equal(a canon.Row, sa Sum, b canon.Row, sb Sum) bool {
	if sa.Row == sb.Row && !t.loose {
		return true
	}
	return len(t.Diff(a, sa, b, sb)) == 0
}
