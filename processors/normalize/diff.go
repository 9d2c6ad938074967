package normalize

import "github.com/cdcrecon/cdcrecon/processors/canon"

// Digest returns a canonical row's digest: equal digests mean equal rows
// in every column compared exactly. Columns compared with a tolerance are
// left out; Equal checks them by value.
func (t *Table) Digest(h *canon.Hasher, row canon.Row) uint64 {
	return h.Row(row, t.looseNames)
}

// Diff returns the canonical columns, sorted, in which two present rows
// differ. A column one row lacks is null there. Columns with a tolerance
// differ when further apart than it. Columns holding an unresolved
// unchanged-TOAST placeholder on either side are unknown and not compared.
func (t *Table) Diff(a, b canon.Row) []string {
	return mergeDiff(len(a), len(b),
		func(inB bool, i int) (string, bool) {
			if inB {
				return b[i].Name, b[i].Value.Kind() == canon.Unavailable
			}
			return a[i].Name, a[i].Value.Kind() == canon.Unavailable
		},
		func(i, j int) bool { return t.same(a[i].Name, a[i].Value, b[j].Value) })
}

// mergeDiff walks two column lists sorted by name, of lengths na and nb,
// and returns the names in which they differ: a name only one list has,
// unless unknown there, and a shared name for which same is false. col
// returns a column's name and whether its value is unknown.
func mergeDiff(na, nb int, col func(inB bool, i int) (name string, unknown bool), same func(i, j int) bool) []string {
	var out []string
	i, j := 0, 0
	for i < na || j < nb {
		var an, bn string
		var au, bu bool
		if i < na {
			an, au = col(false, i)
		}
		if j < nb {
			bn, bu = col(true, j)
		}
		switch {
		case j >= nb || i < na && an < bn:
			if !au {
				out = append(out, an)
			}
			i++
		case i >= na || bn < an:
			if !bu {
				out = append(out, bn)
			}
			j++
		default:
			if !same(i, j) {
				out = append(out, an)
			}
			i++
			j++
		}
	}
	return out
}

func (t *Table) same(name string, x, y canon.Value) bool {
	if x.Kind() == canon.Unavailable || y.Kind() == canon.Unavailable || canon.Equal(x, y) {
		return true
	}
	if col := t.columns[name]; col != nil && col.loose {
		return canon.WithinTolerance(x, y, col.tolerance)
	}
	return false
}

// Loose reports whether some column is compared with a tolerance: row
// digests then leave it out, and only Equal can tell equal rows.
func (t *Table) Loose() bool { return len(t.looseNames) > 0 }

// Equal reports whether two present rows, with their digests, are
// consistent: equal digests and no tolerance column apart, or no column in
// Diff.
func (t *Table) Equal(a canon.Row, da uint64, b canon.Row, db uint64) bool {
	if da == db && !t.Loose() {
		return true
	}
	return len(t.Diff(a, b)) == 0
}

// Summary is a canonical row reduced to its column names and value
// digests: enough for a field-level diff without a second copy of the
// values. Columns compared with a tolerance, and unresolved
// unchanged-TOAST placeholders, keep their value, which digests cannot
// compare.
type Summary []SummaryColumn

// SummaryColumn is one column of a Summary.
type SummaryColumn struct {
	Name   string
	Digest uint64
	// Value is set for tolerance columns and placeholders only.
	Value canon.Value
}

// Summarize reduces a row to its Summary.
func (t *Table) Summarize(h *canon.Hasher, row canon.Row) Summary {
	s := make(Summary, len(row))
	for i, c := range row {
		s[i] = SummaryColumn{Name: c.Name, Digest: h.Value(c.Value)}
		if col := t.columns[c.Name]; col != nil && col.loose || c.Value.Kind() == canon.Unavailable {
			s[i].Value = c.Value
		}
	}
	return s
}

// DiffSummaries is Diff over two rows' Summaries.
func (t *Table) DiffSummaries(a, b Summary) []string {
	return mergeDiff(len(a), len(b),
		func(inB bool, i int) (string, bool) {
			if inB {
				return b[i].Name, b[i].Value.Kind() == canon.Unavailable
			}
			return a[i].Name, a[i].Value.Kind() == canon.Unavailable
		},
		func(i, j int) bool { return a[i].Digest == b[j].Digest || t.sameSummarized(a[i], b[j]) })
}

// sameSummarized compares columns whose digests differ: equal only when
// one is an unknown placeholder or both are within a tolerance.
func (t *Table) sameSummarized(x, y SummaryColumn) bool {
	if x.Value.Kind() == canon.Unavailable || y.Value.Kind() == canon.Unavailable {
		return true
	}
	if col := t.columns[x.Name]; col != nil && col.loose {
		return canon.WithinTolerance(x.Value, y.Value, col.tolerance)
	}
	return false
}
