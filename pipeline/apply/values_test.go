package apply

import (
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// A command's value, formatted for a column and parsed back as the
// database returns it, is the same canonical value — or, where the column
// cannot hold it, visibly another, which the read-back check refuses.
func TestParamReadsBack(t *testing.T) {
	for _, tc := range []struct {
		col   column
		value string // the canonical value's display form
		sent  string // what the database is sent
		exact bool   // reads back as value
	}{
		{column{name: "n", class: cInt}, "42", "42", true},
		{column{name: "n", class: cInt}, "true", "1", false}, // a boolean into an integer: 1, a number
		{column{name: "n", class: cInt}, "4.5", "", false},
		{column{name: "d", class: cDecimal, scale: 4}, "12.5", "12.5000", true},
		{column{name: "d", class: cDecimal, scale: 2}, "0.125", "0.13", false},
		{column{name: "d", class: cDecimal, scale: -1}, "1e+30", "1e+30", true},
		{column{name: "f", class: cFloat64}, "2.718281828459045", "2.718281828459045", true},
		{column{name: "b", class: cBool}, "true", "true", true},
		{column{name: "s", class: cString}, `"héllo"`, "héllo", true},
		{column{name: "j", class: cJSON}, `{"a":[1,2.5]}`, `{"a":[1,2.5]}`, true},
		{column{name: "j", class: cJSON}, `"s"`, `"s"`, true},
		{column{name: "dt", class: cDate}, `"2026-01-31T00:00:00Z"`, "2026-01-31", true},
		{column{name: "dt", class: cDate}, `"2026-01-31T10:00:00Z"`, "2026-01-31", false},
		{column{name: "ts", class: cTimestamp, precision: 3}, `"2026-11-21T10:00:00.123Z"`, "2026-11-21 10:00:00.123", true},
		{column{name: "ts", class: cTimestamp, precision: 3}, `"2026-11-21T10:00:00.1234Z"`, "2026-11-21 10:00:00.123", false},
		{column{name: "tz", dbType: "timestamp with time zone", class: cTimestampTZ, precision: 6}, `"2026-11-21T08:00:00.5Z"`, "2026-11-21 08:00:00.500000+00", true},
		{column{name: "tm", class: cTime, precision: 3}, `"-01:00:00"`, "-01:00:00.000", true},
		{column{name: "tm", class: cTime, precision: 0}, `"12:34:56.789"`, "12:34:56", false},
	} {
		p, err := param(&tc.col, tc.value)
		if tc.sent == "" {
			if err == nil {
				t.Errorf("%s %s: sent %v, want refused", tc.col.name, tc.value, p)
			}
			continue
		}
		if err != nil || p != tc.sent {
			t.Errorf("%s %s: sent %v (%v), want %q", tc.col.name, tc.value, p, err, tc.sent)
			continue
		}
		v, err := parseText(&tc.col, p.(string))
		if err != nil {
			t.Errorf("%s %s: reading %q back: %v", tc.col.name, tc.value, p, err)
			continue
		}
		if got := string(canon.AppendJSON(nil, v)); (got == tc.value) != tc.exact {
			t.Errorf("%s %s: reads back as %s; exact %v", tc.col.name, tc.value, got, tc.exact)
		}
	}
	b, err := param(&column{name: "bin", class: cBytes}, `"3q2+7w=="`)
	if bb, ok := b.([]byte); err != nil || !ok || string(bb) != "\xde\xad\xbe\xef" {
		t.Errorf("bytes: %v %v", b, err)
	}
	if v, err := parseText(&column{name: "bin", class: cBytes}, `\xdeadbeef`); err != nil || string(canon.AppendJSON(nil, v)) != `"3q2+7w=="` {
		t.Errorf("PostgreSQL bytea text: %v %v", v, err)
	}
}

func TestQuoting(t *testing.T) {
	if got := (postgres{}).quoteTable(`public.we"ird`); got != `"public"."we""ird"` {
		t.Errorf("postgres: %s", got)
	}
	if got := (mysqlDialect{}).quoteTable("shop.we`ird"); got != "`shop`.`we``ird`" {
		t.Errorf("mysql: %s", got)
	}
}

// Deadlocks and lost connections are retried; constraint violations and
// missing columns are not.
func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		d    dialect
		err  error
		want bool
	}{
		{postgres{}, &pgconn.PgError{Code: "40P01"}, true},
		{postgres{}, &pgconn.PgError{Code: "40001"}, true},
		{postgres{}, &pgconn.PgError{Code: "08006"}, true},
		{postgres{}, &pgconn.PgError{Code: "23505"}, false},
		{postgres{}, &pgconn.PgError{Code: "42703"}, false},
		{mysqlDialect{}, &mysql.MySQLError{Number: 1213}, true},
		{mysqlDialect{}, &mysql.MySQLError{Number: 1205}, true},
		{mysqlDialect{}, &mysql.MySQLError{Number: 1062}, false},
		{mysqlDialect{}, &mysql.MySQLError{Number: 1054}, false},
		{mysqlDialect{}, mysql.ErrInvalidConn, true},
	} {
		if got := tc.d.transient(tc.err); got != tc.want {
			t.Errorf("%T %v: transient %v, want %v", tc.d, tc.err, got, tc.want)
		}
	}
}
