package schemas

import (
	"fmt"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"
)

// The conversions between Go types and goavro's native form: records are
// maps, arrays []any, unions nil or a one-entry map keyed by the branch's
// type name, timestamp-millis time.Time.

func (cs Columns) native() []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		var v any
		if !c.Redacted {
			v = goavro.Union("string", c.Value)
		}
		out[i] = map[string]any{"name": c.Name, "value": v, "digest": c.Digest}
	}
	return out
}

func (cs Columns) optNative() any {
	if cs == nil {
		return nil
	}
	return goavro.Union("array", cs.native())
}

func stringsNative(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func optTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return goavro.Union("long.timestamp-millis", *t)
}

func optString(s string) any {
	if s == "" {
		return nil
	}
	return goavro.Union("string", s)
}

func optBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return goavro.Union("bytes", b)
}

// nativeReader takes a record's fields from goavro's native form. A field
// the writer's schema lacks reads as the zero value, the reader's default;
// a field of an unexpected type is an error, the first one kept.
type nativeReader struct {
	m    map[string]any
	path string
	err  *error
}

// get returns a field's value, unwrapping a union: a one-entry map, unless
// a record is wanted and the entry is not keyed by a named type's full name
// (our records all have several fields).
func (r *nativeReader) get(name string, wantRecord bool) (any, bool) {
	v, ok := r.m[name]
	if !ok || v == nil {
		return nil, false
	}
	if u, isMap := v.(map[string]any); isMap && len(u) == 1 {
		for branch, inner := range u {
			if !wantRecord || strings.Contains(branch, ".") {
				return inner, inner != nil
			}
		}
	}
	return v, true
}

func (r *nativeReader) fail(name, want string, got any) {
	if *r.err == nil {
		*r.err = fmt.Errorf("field %s%s: want %s, got %T", r.path, name, want, got)
	}
}

func field[T any](r *nativeReader, name, want string) T {
	var zero T
	_, wantRecord := any(zero).(map[string]any)
	v, ok := r.get(name, wantRecord)
	if !ok {
		return zero
	}
	t, ok := v.(T)
	if !ok {
		r.fail(name, want, v)
		return zero
	}
	return t
}

func (r *nativeReader) str(name string) string   { return field[string](r, name, "string") }
func (r *nativeReader) long(name string) int64   { return field[int64](r, name, "long") }
func (r *nativeReader) int32(name string) int32  { return field[int32](r, name, "int") }
func (r *nativeReader) bool(name string) bool    { return field[bool](r, name, "boolean") }
func (r *nativeReader) bytes(name string) []byte { return field[[]byte](r, name, "bytes") }
func (r *nativeReader) time(name string) time.Time {
	return field[time.Time](r, name, "timestamp").UTC()
}

func (r *nativeReader) optTime(name string) *time.Time {
	if _, ok := r.get(name, false); !ok {
		return nil
	}
	t := r.time(name)
	return &t
}

// each calls fn with a reader for every record of an array field.
func (r *nativeReader) each(name string, fn func(*nativeReader)) {
	for i, e := range field[[]any](r, name, "array") {
		m, ok := e.(map[string]any)
		if !ok {
			r.fail(fmt.Sprintf("%s[%d]", name, i), "record", e)
			return
		}
		fn(&nativeReader{m: m, path: fmt.Sprintf("%s%s[%d].", r.path, name, i), err: r.err})
	}
}

func (r *nativeReader) strings(name string) []string {
	vs := field[[]any](r, name, "array")
	out := make([]string, 0, len(vs))
	for i, v := range vs {
		s, ok := v.(string)
		if !ok {
			r.fail(fmt.Sprintf("%s[%d]", name, i), "string", v)
			return nil
		}
		out = append(out, s)
	}
	return out
}

// columns reads an array of Column, or a null one as nil.
func (r *nativeReader) columns(name string) Columns {
	if _, ok := r.get(name, false); !ok {
		return nil
	}
	cs := Columns{}
	r.each(name, func(c *nativeReader) {
		_, present := c.get("value", false)
		cs = append(cs, Column{Name: c.str("name"), Value: c.str("value"), Digest: c.str("digest"), Redacted: !present})
	})
	return cs
}

func (r *nativeReader) sideDigest(name string) SideDigest {
	m := field[map[string]any](r, name, "record")
	sub := &nativeReader{m: m, path: r.path + name + ".", err: r.err}
	var d SideDigest
	d.Count = sub.long("count")
	if b := sub.bytes("digest"); len(b) == len(d.Digest) {
		copy(d.Digest[:], b)
	} else if b != nil {
		sub.fail("digest", "16 bytes", b)
	}
	return d
}
