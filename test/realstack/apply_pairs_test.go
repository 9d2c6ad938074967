package realstack

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The kinds tables: a column of every type the database and the
// normaliser share, the same on both sides. Floats hold values a float32
// holds exactly: Debezium sends a FLOAT widened to a double. MariaDB's has
// no BLOB: Debezium 2.6's MySQL connector reads one through MariaDB's JDBC
// driver, in snapshots and re-reads, as null ("Unexpected JDBC BINARY
// value"); VARBINARY is read right.
var kindsDDL = map[string]string{
	"postgres": `CREATE TABLE kinds (id integer PRIMARY KEY, i2 smallint, i8 bigint, dec numeric(12, 4), f4 real, f8 double precision,
		flag boolean, txt text, vc varchar(20), ch char(4), bin bytea, d date, tm time(3), ts timestamp(6), tstz timestamptz,
		doc json, docb jsonb, u uuid, mood mood);
	CREATE TABLE members (id integer PRIMARY KEY, name text NOT NULL);`,
	"mariadb": `CREATE TABLE kinds (id INT PRIMARY KEY, i1 TINYINT, i8 BIGINT, u8 BIGINT UNSIGNED, ` + "`dec`" + ` DECIMAL(12, 4), f4 FLOAT, f8 DOUBLE,
		flag TINYINT(1), txt TEXT, vc VARCHAR(20), bin VARBINARY(16), d DATE, tm TIME(3), dt DATETIME(6), ts TIMESTAMP(3) NULL,
		doc JSON, e ENUM('a', 'b', 'c'), yr YEAR) DEFAULT CHARSET = utf8mb4;
	CREATE TABLE members (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL) DEFAULT CHARSET = utf8mb4;`,
}

var kindsRows = map[string]string{
	"postgres": `INSERT INTO kinds VALUES
		(1, 7, 9007199254740993, 1234.5678, 1.5, 2.718281828459045, true, 'héllo ☃', 'v', 'ab', '\xdeadbeef', '2026-01-31', '12:34:56.789',
		 '2026-11-21 10:00:00.123456', '2026-11-21 10:00:00.5+02', '{"a": [1, 2.50], "b": "x"}', '{"c": null, "a": 1}', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'sad'),
		(2, -32768, -1, -0.0001, -2.25, 1e300, false, '', 'w', 'abcd', '\x00ff', '1970-01-01', '00:00:00', '1999-12-31 23:59:59.999999',
		 '2000-01-01 00:00:00+00', '[]', '"s"', '00000000-0000-0000-0000-000000000001', 'happy'),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(4, 1, 1, 1, 1, 1, true, 'untouched', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	INSERT INTO members VALUES (1, 'Ada'), (2, 'Grace');`,
	"mariadb": `INSERT INTO kinds VALUES
		(1, 7, 9007199254740993, 18446744073709551, 1234.5678, 1.5, 2.718281828459045, 1, 'héllo ☃', 'v', X'deadbeef', '2026-01-31', '12:34:56.789',
		 '2026-11-21 10:00:00.123456', '2026-11-21 08:00:00.5', '{"a": [1, 2.50], "b": "x"}', 'b', 2026),
		(2, -128, -1, 0, -0.0001, -2.25, 1e300, 0, '', 'w', X'00ff', '1970-01-02', '-01:00:00', '1999-12-31 23:59:59.999999',
		 '2000-01-01 00:00:00', '[]', 'c', 1999),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(4, 1, 1, 1, 1, 1, 1, 1, 'untouched', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	INSERT INTO members VALUES (1, 'Ada'), (2, 'Grace');`,
}

// kindsTamper changes every column of kinds 1 on the target.
var kindsTamper = map[string]string{
	"postgres": `UPDATE kinds SET i2 = 0, i8 = 0, dec = 0, f4 = 0, f8 = 0, flag = false, txt = 'x', vc = 'x', ch = 'x', bin = '\x00',
		d = '2000-01-01', tm = '00:00', ts = '2000-01-01', tstz = '2000-01-01 00:00+00', doc = '{}', docb = '{}',
		u = '00000000-0000-0000-0000-000000000000', mood = 'happy' WHERE id = 1`,
	"mariadb": "UPDATE kinds SET i1 = 0, i8 = 0, u8 = 0, `dec` = 0, f4 = 0, f8 = 0, flag = 0, txt = 'x', vc = 'x', bin = X'00', " +
		"d = '2000-01-01', tm = '00:00', dt = '2000-01-01', ts = '2000-01-01 00:00:00', doc = '{}', e = 'a', yr = 2000 WHERE id = 1",
}

// kindsNullsTamper gives kinds 3's NULLs values on the target.
var kindsNullsTamper = map[string]string{
	"postgres": "UPDATE kinds SET i2 = 1, txt = 't', d = '2001-01-01', doc = '{}' WHERE id = 3",
	"mariadb":  "UPDATE kinds SET i1 = 1, txt = 't', d = '2001-01-01', doc = '{}' WHERE id = 3",
}

// rowsByID reads "id rest" lines.
func rowsByID(out string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if id, rest, ok := strings.Cut(line, " "); ok {
			rows[id] = rest
		}
	}
	return rows
}

func TestPostgresPairApplies(t *testing.T) {
	s := New(t)
	src, tgt := s.postgresPair(t)
	for _, pg := range []*Postgres{src, tgt} {
		pg.SQL(t, "shop", "-c", "CREATE TYPE mood AS ENUM ('sad', 'happy'); "+kindsDDL["postgres"])
	}
	tgt.SQL(t, "shop", "-c", "ALTER TABLE members ADD COLUMN deleted boolean NOT NULL DEFAULT false")
	src.SQL(t, "shop", "-c", kindsRows["postgres"]+" ALTER PUBLICATION shop_pub ADD TABLE kinds, members")
	tgt.SQL(t, "shop", "-c", "ALTER SUBSCRIPTION shop_sub REFRESH PUBLICATION")
	eventuallySQL(t, tgt, "the copy of kinds and members", "SELECT (SELECT count(*) FROM kinds) = 4 AND (SELECT count(*) FROM members) = 2")
	s.StartKafka()
	s.StartConnect(s.pgConnectors(t, src, tgt, func() map[string]string {
		return map[string]string{"table.include.list": "public.orders,public.members,public.kinds,public.debezium_signal"}
	}))
	t.Logf("running %s", s.Versions())
	run := func(pg *Postgres) func(string) error {
		return func(sql string) error {
			out, err := exec.Command("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", "shop",
				"-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}
	}
	queries := map[string][2]string{
		"orders":  {"SELECT id || ' ' || row_to_json(r)::text FROM (SELECT id, customer_id, total, status, updated_at FROM orders) r", ""},
		"members": {"SELECT id || ' ' || name FROM members", "SELECT id || ' ' || name FROM members WHERE NOT deleted"},
		"kinds":   {"SELECT id || ' ' || row_to_json(k)::text FROM kinds k", ""},
	}
	runApply(t, s, applyPair{
		name:   "postgres",
		source: func(sql string) { src.SQL(t, "shop", "-c", sql) },
		target: func(sql string) { tgt.SQL(t, "shop", "-c", sql) },
		try:    run(src),
		rows: func(side int, table string) map[string]string {
			q := queries[table][side]
			if q == "" {
				q = queries[table][0]
			}
			return rowsByID([]*Postgres{src, tgt}[side].SQL(t, "shop", "-c", q))
		},
		prefixes: [2]string{"src", "tgt"}, schema: "public", quote: "double", group: "cdcrecon-apply",
		database: fmt.Sprintf("{driver: postgres, host: 127.0.0.1, port: %d, user: postgres, name: shop}", tgt.Port),
		extra:    map[string]string{"kinds": "    normalize:\n      doc: {as: json}\n      docb: {as: json}\n"},
	})
}

func TestMariaDBPairApplies(t *testing.T) {
	s := New(t)
	src, tgt := s.mariadbPair(t)
	src.SQL(t, "USE shop; "+kindsDDL["mariadb"]+kindsRows["mariadb"])
	eventuallyMaria(t, tgt, "kinds and members replicated", "SELECT (SELECT count(*) FROM shop.kinds) = 4 AND (SELECT count(*) FROM shop.members) = 2")
	tgt.SQL(t, "SET SESSION gtid_domain_id = 2; ALTER TABLE shop.members ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE")
	s.StartKafka()
	connectors := s.mariadbConnectors(t, src, tgt)
	for _, c := range connectors {
		c["table.include.list"] = "shop.orders,shop.members,shop.kinds,shop.debezium_signal"
	}
	s.StartMariaDBConnect(connectors)
	t.Logf("running %s, MariaDB %s", s.Versions(), src.SQL(t, "SELECT VERSION()"))
	cols := "IFNULL(i1, 'N'), IFNULL(i8, 'N'), IFNULL(u8, 'N'), IFNULL(`dec`, 'N'), IFNULL(f4, 'N'), IFNULL(f8, 'N'), IFNULL(flag, 'N'), " +
		"IFNULL(txt, 'N'), IFNULL(vc, 'N'), IFNULL(HEX(bin), 'N'), IFNULL(d, 'N'), IFNULL(tm, 'N'), IFNULL(dt, 'N'), " +
		"IFNULL(ts, 'N'), IFNULL(doc, 'N'), IFNULL(e, 'N'), IFNULL(yr, 'N')"
	queries := map[string][2]string{
		"orders": {"SELECT CONCAT(id, ' ', customer_id, '|', CAST(total AS DOUBLE), '|', status, '|', " +
			"LEFT(DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f'), 23)) FROM shop.orders", ""},
		"members": {"SELECT CONCAT(id, ' ', name) FROM shop.members", "SELECT CONCAT(id, ' ', name) FROM shop.members WHERE NOT deleted"},
		"kinds":   {"SELECT CONCAT(id, ' ', CONCAT_WS('|', " + cols + ")) FROM shop.kinds", ""},
	}
	runApply(t, s, applyPair{
		name:   "mariadb",
		source: func(sql string) { src.SQL(t, "USE shop; "+sql) },
		target: func(sql string) { tgt.SQL(t, "SET SESSION gtid_domain_id = 2; USE shop; "+sql) },
		try: func(sql string) error {
			_, err := src.query("USE shop; " + sql)
			return err
		},
		rows: func(side int, table string) map[string]string {
			q := queries[table][side]
			if q == "" {
				q = queries[table][0]
			}
			return rowsByID([]*MariaDB{src, tgt}[side].SQL(t, q))
		},
		prefixes: [2]string{"msrc", "mtgt"}, schema: "shop", quote: "backtick", group: "cdcrecon-mariadb-apply",
		database: fmt.Sprintf("{driver: mysql, host: 127.0.0.1, port: %d, user: cdc, password_env: CDCRECON_TEST_TARGET_PASSWORD, name: shop, params: {gtid_domain_id: '2'}}", tgt.Port),
		env:      []string{"CDCRECON_TEST_TARGET_PASSWORD=cdc"},
		extra: map[string]string{
			"orders": "    normalize:\n      updated_at: {timestamp_precision: ms}\n",
			"kinds":  "    normalize:\n      flag: {as: bool}\n",
			// MariaDB's BOOLEAN is a TINYINT(1): Debezium sends 0 and 1.
			"members": "    normalize:\n      deleted: {as: bool}\n",
		},
	})
}
