package apply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// target is one table's target: its database, its table there and how
// its rows map to canonical ones.
type target struct {
	cfg     *config.Table
	norm    *normalize.Table
	db      *sql.DB
	dialect dialect
	address string // the database, without password
	name    string // the table as the database names it
	policy  string // the policy in force, table@version
	verify  bool

	mu   sync.Mutex
	cols []*column // read from the catalog on first use
}

func (t *target) columns(ctx context.Context) ([]*column, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cols != nil {
		return t.cols, nil
	}
	cols, err := t.dialect.columns(ctx, t.db, t.name)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", t.name, err)
	}
	if len(cols) == 0 {
		return nil, permanent(fmt.Errorf("table %s: not found in %s (or no privilege to see its columns)", t.name, t.address))
	}
	t.cols = cols
	return cols, nil
}

// forget drops the cached columns: a missing column may mean the table
// changed.
func (t *target) forget() {
	t.mu.Lock()
	t.cols = nil
	t.mu.Unlock()
}

// permanentError is an error no retry mends.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// verdict is what deciding a command found before, or instead of,
// writing.
type verdict struct {
	outcome   schemas.Outcome
	reason    string
	statement string
	params    schemas.Columns
}

// precheck decides what needs no database: the drift's state and the
// policy. ok is false with the verdict that stops the command.
func (t *target) precheck(cmd *schemas.Compensation, d *schemas.Drift) (verdict, bool) {
	switch {
	case d == nil:
		return verdict{outcome: schemas.Skipped, reason: "no record of drift " + cmd.DriftID + " on the drift topic: it cannot be known to be open"}, false
	case d.Status == schemas.Resolved:
		return verdict{outcome: schemas.Superseded, reason: "the drift is resolved: the rows agree again"}, false
	case t.verify && cmd.Verification != schemas.Confirmed:
		return verdict{outcome: schemas.Skipped, reason: "the table's drifts are re-read, and this command's drift is not confirmed"}, false
	case d.Decision != "" && d.Decision != schemas.Compensate:
		return verdict{outcome: schemas.Skipped, reason: fmt.Sprintf("the policy decided %s: no compensation is applied", d.Decision)}, false
	case cmd.Policy != "" && cmd.Policy != t.policy:
		return verdict{outcome: schemas.Skipped, reason: fmt.Sprintf("decided under policy %s; the configuration's is %s: decide it again (cdcrecon check --policy)", cmd.Policy, t.policy)}, false
	}
	switch cmd.Action {
	case schemas.Upsert, schemas.Delete, schemas.SoftDelete:
	default:
		return verdict{outcome: schemas.Failed, reason: fmt.Sprintf("unknown action %q", cmd.Action)}, false
	}
	return verdict{}, true
}

// run decides one command in one transaction: reads the target row,
// compares it with the drift's record of it, and writes the command
// unless dry. A transient database error is returned for a retry.
func (t *target) run(ctx context.Context, cmd *schemas.Compensation, d *schemas.Drift, dry bool) (verdict, error) {
	cols, err := t.columns(ctx)
	if err != nil {
		return verdict{}, err
	}
	byName := map[string]*column{}
	for _, c := range cols {
		byName[c.name] = c
	}
	var st statement
	keyCols := make([]*column, len(cmd.Key))
	for i, k := range cmd.Key {
		c := byName[k.Name]
		if c == nil {
			t.forget()
			return verdict{}, permanent(fmt.Errorf("table %s has no key column %s", t.name, k.Name))
		}
		keyCols[i] = c
	}
	// The row now, locked until the transaction ends.
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return verdict{}, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := t.dialect.begin(ctx, tx); err != nil {
		return verdict{}, err
	}
	var exprs []string
	var readable []*column
	for _, c := range cols {
		if c.class == cUnsupported {
			if _, role := t.norm.CanonicalColumn(normalize.Target, c.name); role == normalize.Compared || role == normalize.SoftDeleteColumn {
				return verdict{outcome: schemas.Skipped, reason: fmt.Sprintf("column %s has type %s, which apply cannot compare or write", c.name, c.dbType)}, nil
			}
			continue
		}
		exprs = append(exprs, t.dialect.readExpr(c))
		readable = append(readable, c)
	}
	lock := " FOR UPDATE" // both databases' row lock
	if dry {
		lock = ""
	}
	sel := st.where(t, "SELECT "+strings.Join(exprs, ", ")+" FROM "+t.dialect.quoteTable(t.name), keyCols, cmd.Key) + lock
	if st.err != nil {
		return verdict{}, permanent(st.err)
	}
	found, row, err := t.read(ctx, tx, sel, st.args, readable)
	if err != nil {
		return verdict{}, err
	}
	now, err := t.canonical(row, found)
	if err != nil {
		return verdict{}, permanent(err)
	}
	if diff := differs(now, d.Target); diff != "" {
		v := verdict{outcome: schemas.Superseded, reason: "the target row is no longer as the drift recorded it: " + diff}
		if want, ok := t.wanted(cmd); ok && differsFrom(now, want) == "" {
			v.reason = "the target row is already as the command would make it"
		}
		return v, nil
	}

	// The statement.
	st = statement{}
	switch cmd.Action {
	case schemas.Delete:
		st.sql = st.where(t, "DELETE FROM "+t.dialect.quoteTable(t.name), keyCols, cmd.Key)
	case schemas.SoftDelete:
		if len(cmd.Row) != 1 || byName[cmd.Row[0].Name] == nil {
			return verdict{}, permanent(fmt.Errorf("soft delete: the command names no column of %s", t.name))
		}
		st.sets = []setCol{{byName[cmd.Row[0].Name], cmd.Row[0]}}
		st.sql = st.where(t, st.update(t), keyCols, cmd.Key)
	case schemas.Upsert:
		if err := st.upsertColumns(t, cmd, cols, byName, found); err != nil {
			t.forget()
			return verdict{}, permanent(err)
		}
		if found {
			st.sql = st.where(t, st.update(t), keyCols, cmd.Key)
		} else {
			st.sql = st.insert(t, keyCols, cmd.Key)
		}
	}
	if st.err != nil {
		return verdict{}, permanent(st.err)
	}
	if err := t.readsBack(cmd, &st, keyCols); err != nil {
		return verdict{}, permanent(err)
	}
	v := verdict{outcome: schemas.Applied, reason: "the target row was as the drift recorded it", statement: st.sql, params: st.params}
	if dry {
		return v, nil
	}
	// With arguments both drivers prepare the statement on the server and
	// bind the values: no value is ever part of the SQL text.
	res, err := tx.ExecContext(ctx, st.sql, st.args...)
	if err != nil {
		return verdict{}, err
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return verdict{}, permanent(fmt.Errorf("the statement affected %d rows, not 1: rolled back", n))
	}
	if err := tx.Commit(); err != nil {
		return verdict{}, err
	}
	return v, nil
}

// read runs the row's SELECT: found is false when the key has no row.
func (t *target) read(ctx context.Context, tx *sql.Tx, q string, args []any, cols []*column) (bool, debezium.Row, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return false, nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, nil, rows.Err()
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return false, nil, err
	}
	row := make(debezium.Row, 0, len(cols))
	for i, c := range cols {
		v, err := readValue(c, vals[i])
		if err != nil {
			return false, nil, permanent(err)
		}
		row = append(row, canon.Column{Name: c.name, Value: v})
	}
	if rows.Next() {
		return false, nil, permanent(fmt.Errorf("the key selects more than one row of %s", t.name))
	}
	return true, row, rows.Err()
}

// canonical maps a row of the target table as the table's target side
// maps Debezium's events: nil for an absent (or soft-deleted) row.
func (t *target) canonical(row debezium.Row, found bool) (map[string]string, error) {
	if !found {
		return nil, nil
	}
	ev := debezium.Event{Kind: debezium.RowEvent, Op: debezium.Read, After: row}
	ch, err := t.norm.Map(normalize.Target, &ev, nil)
	if err != nil {
		return nil, err
	}
	if ch.Row == nil {
		return nil, nil
	}
	var h canon.Hasher
	out := make(map[string]string, len(ch.Row))
	for _, c := range ch.Row {
		out[c.Name] = fmt.Sprintf("%016x", h.Value(c.Value))
	}
	return out, nil
}

// targetDigests is a row in the target's names by canonical column name;
// nil when absent.
func targetDigests(t *target, cs schemas.Columns) map[string]string {
	if cs == nil {
		return nil
	}
	out := make(map[string]string, len(cs))
	for _, c := range cs {
		name, _ := t.norm.CanonicalColumn(normalize.Target, c.Name)
		out[name] = c.Digest
	}
	return out
}

// wanted is the canonical row the command makes.
func (t *target) wanted(cmd *schemas.Compensation) (map[string]string, bool) {
	switch cmd.Action {
	case schemas.Upsert:
		return targetDigests(t, cmd.Row), true
	case schemas.Delete, schemas.SoftDelete:
		return nil, true
	}
	return nil, false
}

// differs says how a row read now differs from a recorded one, "" when
// they agree. Both are digests by canonical column; nil is absent.
func differs(now map[string]string, recorded schemas.Columns) string {
	return differsFrom(now, recordedDigests(recorded))
}

func recordedDigests(cs schemas.Columns) map[string]string {
	if cs == nil {
		return nil
	}
	out := make(map[string]string, len(cs))
	for _, c := range cs {
		out[c.Name] = c.Digest
	}
	return out
}

func differsFrom(now, recorded map[string]string) string {
	switch {
	case now == nil && recorded == nil:
		return ""
	case now == nil:
		return "the row is now absent"
	case recorded == nil:
		return "the row is now present"
	}
	var cols []string
	for name, dg := range recorded {
		if now[name] != dg {
			cols = append(cols, name)
		}
	}
	for name := range now {
		if _, ok := recorded[name]; !ok {
			cols = append(cols, name)
		}
	}
	if len(cols) == 0 {
		return ""
	}
	slices.Sort(cols)
	return strings.Join(cols, ", ") + " differ"
}

// statement is a statement being built: its SQL, its arguments and their
// columns as the audit shows them.
type statement struct {
	sql    string
	sets   []setCol
	args   []any
	params schemas.Columns
	err    error
}

type setCol struct {
	col *column
	val schemas.Column // Value "null" sets NULL
}

func (st *statement) add(t *target, c *column, v schemas.Column) string {
	var p any
	if v.Value != "" || !v.Redacted {
		var err error
		p, err = param(c, orNull(v.Value))
		if err != nil && st.err == nil {
			st.err = err
		}
	}
	st.args = append(st.args, p)
	shown := v
	shown.Name = c.name
	if name, _ := t.norm.CanonicalColumn(normalize.Target, c.name); t.norm.Redacted(name) {
		shown.Value, shown.Redacted = "", true
	}
	st.params = append(st.params, shown)
	return t.dialect.param(len(st.args), c)
}

// orNull is a value's JSON text, null for a redacted (empty) one.
func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

func (st *statement) where(t *target, head string, keyCols []*column, key schemas.Columns) string {
	conds := make([]string, len(keyCols))
	for i, c := range keyCols {
		conds[i] = t.dialect.quote(c.name) + " = " + st.add(t, c, key[i])
	}
	return head + " WHERE " + strings.Join(conds, " AND ")
}

func (st *statement) update(t *target) string {
	sets := make([]string, len(st.sets))
	for i, s := range st.sets {
		sets[i] = t.dialect.quote(s.col.name) + " = " + st.add(t, s.col, s.val)
	}
	return "UPDATE " + t.dialect.quoteTable(t.name) + " SET " + strings.Join(sets, ", ")
}

func (st *statement) insert(t *target, keyCols []*column, key schemas.Columns) string {
	var names, vals []string
	for i, c := range keyCols {
		names = append(names, t.dialect.quote(c.name))
		vals = append(vals, st.add(t, c, key[i]))
	}
	for _, s := range st.sets {
		names = append(names, t.dialect.quote(s.col.name))
		vals = append(vals, st.add(t, s.col, s.val))
	}
	return "INSERT INTO " + t.dialect.quoteTable(t.name) + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")"
}

// upsertColumns sets every compared column of the table: to the command's
// value, or NULL when the command has none (a canonical row leaves nulls
// out). A soft-deleted row found is undeleted. Columns the table does not
// compare — ignored, owned by the target, outside compare — are never
// written.
func (st *statement) upsertColumns(t *target, cmd *schemas.Compensation, cols []*column, byName map[string]*column, found bool) error {
	given := map[string]schemas.Column{}
	for _, c := range cmd.Row {
		if byName[c.Name] == nil {
			return fmt.Errorf("table %s has no column %s", t.name, c.Name)
		}
		given[c.Name] = c
	}
	for _, c := range cols {
		_, role := t.norm.CanonicalColumn(normalize.Target, c.name)
		switch role {
		case normalize.Compared:
			v, ok := given[c.name]
			if !ok {
				v = schemas.Column{Name: c.name, Value: "null"}
			}
			st.sets = append(st.sets, setCol{c, v})
		case normalize.SoftDeleteColumn:
			if found {
				st.sets = append(st.sets, setCol{c, schemas.Column{Name: c.name, Value: t.undeleted()}})
			}
		}
	}
	return nil
}

// undeleted is the soft-delete column's value for a live row: false when
// deleted rows say true, and the other way round; NULL otherwise.
func (t *target) undeleted() string {
	_, v, _ := t.norm.SoftDelete(normalize.Target)
	if v.Kind() == canon.Bool {
		if b, _ := v.Bool(); b {
			return "false"
		}
		return "true"
	}
	return "null"
}

// readsBack checks that every value the statement writes reads back, under
// the table's normalisation, as the command's canonical value: what the
// target cannot hold exactly is refused, never written approximately.
func (t *target) readsBack(cmd *schemas.Compensation, st *statement, keyCols []*column) error {
	if cmd.Action != schemas.Upsert {
		return nil
	}
	row := make(debezium.Row, 0, len(keyCols)+len(st.sets))
	for i, c := range keyCols {
		v, err := t.parseParam(c, cmd.Key[i].Value)
		if err != nil {
			return err
		}
		row = append(row, canon.Column{Name: c.name, Value: v})
	}
	for _, s := range st.sets {
		v, err := t.parseParam(s.col, s.val.Value)
		if err != nil {
			return err
		}
		row = append(row, canon.Column{Name: s.col.name, Value: v})
	}
	got, err := t.canonical(row, true)
	if err != nil {
		return err
	}
	want := targetDigests(t, cmd.Row)
	if diff := differsFrom(got, want); diff != "" {
		return fmt.Errorf("the target's columns cannot hold the command's values exactly (%s when read back): nothing written", diff)
	}
	return nil
}

// parseParam is the value a parameter reads back as.
func (t *target) parseParam(c *column, text string) (canon.Value, error) {
	p, err := param(c, orNull(text))
	if err != nil {
		return canon.Value{}, err
	}
	switch x := p.(type) {
	case nil:
		return canon.NullValue(), nil
	case []byte:
		return canon.BytesValue(x), nil
	case string:
		return parseText(c, x)
	}
	return canon.Value{}, fmt.Errorf("column %s: unexpected parameter %T", c.name, p)
}

// attempt runs a command with retries after transient errors.
func (t *target) attempt(ctx context.Context, cmd *schemas.Compensation, d *schemas.Drift, dry bool, a config.Apply) (verdict, int32) {
	backoff := a.Backoff
	for n := int32(1); ; n++ {
		actx, cancel := context.WithTimeout(ctx, a.Timeout)
		v, err := t.run(actx, cmd, d, dry)
		cancel()
		if err == nil {
			return v, n
		}
		var perm permanentError
		switch {
		case errors.As(err, &perm) || !t.dialect.transient(err):
			return verdict{outcome: schemas.Failed, reason: err.Error(), statement: v.statement, params: v.params}, n
		case int(n) > a.Retries || ctx.Err() != nil:
			return verdict{outcome: schemas.Failed, reason: fmt.Sprintf("%v (%d attempts)", err, n)}, n
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}
