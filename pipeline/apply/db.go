package apply

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cdcrecon/cdcrecon/processors/config"
)

// dialect is what differs between the databases apply writes to.
type dialect interface {
	// quote quotes a possibly schema-qualified table name or a column.
	quoteTable(name string) string
	quote(col string) string
	// param is the n-th placeholder (from 1) for a column of type c.
	param(n int, c *column) string
	// readExpr is how a column is selected for reading.
	readExpr(c *column) string
	// begin runs the session settings a transaction's reads and writes
	// rely on.
	begin(ctx context.Context, tx *sql.Tx) error
	// columns reads the table's columns from the catalog.
	columns(ctx context.Context, db *sql.DB, table string) ([]*column, error)
	// transient reports whether err may pass on retry.
	transient(err error) bool
}

// open opens a target database by its configuration.
func open(d *config.Database) (*sql.DB, dialect, error) {
	switch d.Driver {
	case config.Postgres:
		dsn := d.DSN
		if dsn == "" {
			u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(d.Host, strconv.Itoa(cmpPort(d.Port, 5432))), Path: "/" + d.Name}
			if pw := d.Password(); pw != "" {
				u.User = url.UserPassword(d.User, pw)
			} else {
				u.User = url.User(d.User)
			}
			q := url.Values{}
			for k, v := range d.Params {
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			dsn = u.String()
		}
		cc, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", d.Address(), err)
		}
		if cc.Password == "" {
			cc.Password = d.Password()
		}
		return stdlib.OpenDB(*cc), postgres{}, nil
	case config.MySQL:
		var mc *mysql.Config
		if d.DSN != "" {
			var err error
			if mc, err = mysql.ParseDSN(d.DSN); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", d.Address(), err)
			}
			if mc.Passwd == "" {
				mc.Passwd = d.Password()
			}
		} else {
			mc = mysql.NewConfig()
			mc.User, mc.Passwd, mc.DBName = d.User, d.Password(), d.Name
			mc.Net, mc.Addr = "tcp", net.JoinHostPort(d.Host, strconv.Itoa(cmpPort(d.Port, 3306)))
			mc.Params = map[string]string{}
			for k, v := range d.Params {
				mc.Params[k] = v
			}
		}
		mc.ParseTime = false         // dates and times as the server writes them
		mc.InterpolateParams = false // server-side prepared statements
		mc.ClientFoundRows = true    // rows matched, not rows changed
		c, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", d.Address(), err)
		}
		return sql.OpenDB(c), mysqlDialect{}, nil
	}
	return nil, nil, fmt.Errorf("unknown driver %q", d.Driver)
}

func cmpPort(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

// postgres is PostgreSQL through pgx.
type postgres struct{}

func (postgres) quoteTable(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}

func (postgres) quote(col string) string { return pgx.Identifier{col}.Sanitize() }

// Every parameter goes as text, cast to the column's type: the server
// parses it as it parses a literal, at the column's scale and precision.
func (postgres) param(n int, c *column) string {
	if c.class == cBytes {
		return "$" + strconv.Itoa(n) + "::bytea"
	}
	return "$" + strconv.Itoa(n) + "::text::" + c.dbType
}

// A char(n) cast to text loses its padding, which Debezium keeps: its
// output form has it.
func (p postgres) readExpr(c *column) string {
	if c.dbType == "character" || strings.HasPrefix(c.dbType, "character(") {
		return "CASE WHEN " + p.quote(c.name) + " IS NULL THEN NULL ELSE concat(" + p.quote(c.name) + ") END"
	}
	return p.quote(c.name) + "::text"
}

func (postgres) begin(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL bytea_output = 'hex'; SET LOCAL extra_float_digits = 1")
	return err
}

func (p postgres) columns(ctx context.Context, db *sql.DB, table string) ([]*column, error) {
	rows, err := db.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory,
		coalesce(information_schema._pg_numeric_scale(a.atttypid, a.atttypmod), -1),
		coalesce(information_schema._pg_datetime_precision(a.atttypid, a.atttypmod), -1)
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, p.quoteTable(table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []*column
	for rows.Next() {
		c := &column{}
		var typname, category string
		var scale, precision int
		if err := rows.Scan(&c.name, &c.dbType, &typname, &category, &scale, &precision); err != nil {
			return nil, err
		}
		c.class, c.scale, c.precision = pgClass(typname, category), scale, precision
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func pgClass(typname, category string) class {
	switch typname {
	case "int2", "int4", "int8", "oid":
		return cInt
	case "numeric":
		return cDecimal
	case "float4":
		return cFloat32
	case "float8":
		return cFloat64
	case "bool":
		return cBool
	case "text", "varchar", "bpchar", "name", "uuid", "citext", "xml", "inet", "cidr", "macaddr":
		return cString
	case "bytea":
		return cBytes
	case "date":
		return cDate
	case "timestamp":
		return cTimestamp
	case "timestamptz":
		return cTimestampTZ
	case "time":
		return cTime
	case "json", "jsonb":
		return cJSON
	}
	if category == "E" { // an enum: its label
		return cString
	}
	return cUnsupported
}

func (postgres) transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock
			pe.Code == "55P03", pe.Code == "57014", // lock not available, query cancelled (timeout)
			strings.HasPrefix(pe.Code, "57P"), strings.HasPrefix(pe.Code, "53"): // shutdown, insufficient resources
			return true
		}
		return false
	}
	return connectionError(err)
}

// connectionError reports an error of the connection rather than of the
// statement: the database could not be reached or went away.
func connectionError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, mysql.ErrInvalidConn) || strings.Contains(err.Error(), "driver: bad connection") ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "unexpected EOF")
}

// mysqlDialect is MySQL and MariaDB through go-sql-driver/mysql.
type mysqlDialect struct{}

func (m mysqlDialect) quoteTable(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = m.quote(p)
	}
	return strings.Join(parts, ".")
}

func (mysqlDialect) quote(col string) string { return "`" + strings.ReplaceAll(col, "`", "``") + "`" }

func (mysqlDialect) param(int, *column) string { return "?" }

func (m mysqlDialect) readExpr(c *column) string { return m.quote(c.name) }

func (mysqlDialect) begin(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'")
	return err
}

func (m mysqlDialect) columns(ctx context.Context, db *sql.DB, table string) ([]*column, error) {
	schema, name, ok := strings.Cut(table, ".")
	if !ok {
		schema, name = "", table
	}
	q := `SELECT column_name, column_type, data_type, coalesce(numeric_scale, -1), coalesce(datetime_precision, -1)
		FROM information_schema.columns WHERE table_schema = coalesce(nullif(?, ''), database()) AND table_name = ? ORDER BY ordinal_position`
	rows, err := db.QueryContext(ctx, q, schema, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []*column
	for rows.Next() {
		c := &column{}
		var dataType string
		if err := rows.Scan(&c.name, &c.dbType, &dataType, &c.scale, &c.precision); err != nil {
			return nil, err
		}
		c.class = mysqlClass(strings.ToLower(dataType))
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func mysqlClass(dataType string) class {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		return cInt
	case "decimal", "numeric":
		return cDecimal
	case "float":
		return cFloat32
	case "double", "real":
		return cFloat64
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "uuid", "inet4", "inet6":
		return cString
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return cBytes
	case "date":
		return cDate
	case "datetime":
		return cTimestamp
	case "timestamp":
		return cTimestampTZ
	case "time":
		return cTime
	case "json":
		return cJSON
	}
	return cUnsupported
}

func (mysqlDialect) transient(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1205, 1213, // lock wait timeout, deadlock
			1040, 1053, 2006, 2013, // too many connections, shutdown, gone away, lost
			1927, 4031: // connection killed, disconnected for inactivity
			return true
		}
		return false
	}
	return connectionError(err)
}
