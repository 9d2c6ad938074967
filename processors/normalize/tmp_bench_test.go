package normalize_test

import (
	"context"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/valyala/fastjson"
)

func BenchmarkTmpParts(b *testing.B) {
	cfg, _ := config.Parse([]byte(benchConfig), "bench.yaml")
	m, _ := normalize.NewMapper(cfg)
	tbl, side, _ := m.Route("shop.public.orders")
	value := []byte(benchEvent(false))
	key := []byte(`{"id":100042}`)
	dec := debezium.NewDecoder(debezium.Config{})
	ctx := context.Background()
	var h canon.Hasher
	b.Run("1-fastjson-parse", func(b *testing.B) {
		var p fastjson.Parser
		for b.Loop() { p.ParseBytes(value) }
	})
	b.Run("2-decode", func(b *testing.B) {
		for b.Loop() { dec.Decode(ctx, key, value) }
	})
	b.Run("3-decode-map", func(b *testing.B) {
		for b.Loop() { ev, _ := dec.Decode(ctx, key, value); tbl.Map(side, &ev, value) }
	})
	b.Run("4-decode-map-digest", func(b *testing.B) {
		for b.Loop() { ev, _ := dec.Decode(ctx, key, value); c, _ := tbl.Map(side, &ev, value); tbl.Digest(&h, c.Row) }
	})
}

func BenchmarkTmpDigestOnly(b *testing.B) {
	cfg, _ := config.Parse([]byte(benchConfig), "bench.yaml")
	m, _ := normalize.NewMapper(cfg)
	tbl, side, _ := m.Route("shop.public.orders")
	value := []byte(benchEvent(false))
	dec := debezium.NewDecoder(debezium.Config{})
	ev, _ := dec.Decode(context.Background(), nil, value)
	c, _ := tbl.Map(side, &ev, value)
	var h canon.Hasher
	b.ReportAllocs()
	for b.Loop() { tbl.Digest(&h, c.Row) }
}
