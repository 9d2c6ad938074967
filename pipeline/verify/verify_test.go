package verify_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/internal/stagetest"
	"github.com/cdcrecon/cdcrecon/pipeline/verify"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

func col(name, value string) schemas.Column { return schemas.Column{Name: name, Value: value} }

func TestCondition(t *testing.T) {
	for _, tc := range []struct {
		keys  []schemas.Columns
		quote string
		want  string
	}{
		{[]schemas.Columns{{col("id", "1")}, {col("id", "22")}}, "", `"id" IN (1, 22)`},
		{[]schemas.Columns{{col("code", `"O'Brien"`)}}, "backtick", "`code` IN ('O''Brien')"},
		{[]schemas.Columns{{col("region", `"eu"`), col("id", "7")}, {col("region", `"us"`), col("id", "8")}}, "double",
			`("region" = 'eu' AND "id" = 7) OR ("region" = 'us' AND "id" = 8)`},
		{[]schemas.Columns{{col(`we"ird`, "true")}}, "", `"we""ird" IN (TRUE)`},
		{[]schemas.Columns{{col("big", "12345678901234567890.5")}}, "", `"big" IN (12345678901234567890.5)`},
	} {
		got, err := verify.Condition(tc.keys, tc.quote)
		if err != nil || got != tc.want {
			t.Errorf("Condition(%v, %q) = %q, %v; want %q", tc.keys, tc.quote, got, err, tc.want)
		}
	}
	if _, err := verify.Condition([]schemas.Columns{{{Name: "id", Redacted: true}}}, ""); err == nil {
		t.Error("a redacted key made a condition")
	}
	if _, err := verify.Condition([]schemas.Columns{{col("id", "null")}}, ""); err == nil {
		t.Error("a null key made a condition")
	}
}

const cfgText = `
verify: {timeout: 1m, rate: 1000}
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders, verify: {signal_topic: pg-signal, prefix: pg}}
    target: {topic: shop.orders, verify: {signal_topic: my-signal, prefix: my, collection: shop.orders, quote: backtick}}
`

// TestSendWritesDebeziumSignals sends requests through a real publisher
// to the embedded broker and reads back what a connector would: one
// record per request on its signal topic, keyed by its prefix, with the
// execute-snapshot document; a request older than the timeout is not
// sent.
func TestSendWritesDebeziumSignals(t *testing.T) {
	cfg, err := config.Parse([]byte(cfgText), "verify.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := stagetest.New(t, map[string]int32{"pg-signal": 1, "my-signal": 1})
	s := verify.New(cfg, env.Publisher, nil)
	now := time.Now()
	reqs := []consistency.Request{
		{ID: "r1", Table: "orders", Side: normalize.Source, Keys: []schemas.Columns{{col("id", "1")}, {col("id", "2")}}, At: now.Add(-time.Second)},
		{ID: "r2", Table: "orders", Side: normalize.Target, Keys: []schemas.Columns{{col("id", "1")}}, At: now},
		{ID: "old", Table: "orders", Side: normalize.Target, Keys: []schemas.Columns{{col("id", "3")}}, At: now.Add(-2 * time.Minute)},
	}
	if err := s.Send(env.Ctx, reqs); err != nil {
		t.Fatal(err)
	}
	type doc struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Collections []string `json:"data-collections"`
			Type        string   `json:"type"`
			Conditions  []struct {
				Collection string `json:"data-collection"`
				Filter     string `json:"filter"`
			} `json:"additional-conditions"`
		} `json:"data"`
	}
	got := map[string]doc{}
	keys := map[string]string{}
	for _, r := range env.Read(t, "pg-signal", "my-signal") {
		var d doc
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("%s: %v: %s", r.Topic, err, r.Value)
		}
		got[r.Topic] = d
		keys[r.Topic] = string(r.Key)
	}
	if len(got) != 2 || keys["pg-signal"] != "pg" || keys["my-signal"] != "my" {
		t.Fatalf("signals %v keyed %v; want one on each topic, keyed by the prefix (the stale request not sent)", got, keys)
	}
	pg, my := got["pg-signal"], got["my-signal"]
	if pg.ID != "r1" || pg.Type != "execute-snapshot" || pg.Data.Type != "incremental" ||
		!reflect.DeepEqual(pg.Data.Collections, []string{"public.orders"}) || pg.Data.Conditions[0].Filter != `"id" IN (1, 2)` {
		t.Errorf("source signal %+v", pg)
	}
	if my.ID != "r2" || my.Data.Conditions[0].Collection != "shop.orders" || my.Data.Conditions[0].Filter != "`id` IN (1)" {
		t.Errorf("target signal %+v", my)
	}
}
