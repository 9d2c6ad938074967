package canon

import (
	"strings"
	"time"

	"golang.org/x/text/cases"
)

// Truncate returns an Instant or Duration rounded down to a multiple of
// unit (a positive divisor of one second: time.Second, time.Millisecond,
// time.Microsecond...). Other values are returned unchanged.
func Truncate(v Value, unit time.Duration) Value {
	if unit <= 1 {
		return v
	}
	u := int64(unit)
	switch v.kind {
	case Instant:
		if u >= 1e9 {
			v.n = 0
		} else {
			v.n -= v.n % int32(u)
		}
	case Duration:
		r := v.i % u
		if r < 0 {
			r += u
		}
		v.i -= r
	case Array:
		v = mapElems(v, func(e Value) Value { return Truncate(e, unit) })
	}
	return v
}

// mapElems returns an Array of f applied to each of v's elements.
func mapElems(v Value, f func(Value) Value) Value {
	elems := make([]Value, len(v.Elems()))
	for i, e := range v.Elems() {
		elems[i] = f(e)
	}
	return ArrayValue(elems)
}

// Round returns v, an Instant or Duration (or an Array of them), rounded
// to the nearest multiple of unit, halves away from the past: what
// PostgreSQL and MySQL do to fractional seconds stored at a lower
// precision. Other kinds are returned as they are.
func Round(v Value, unit time.Duration) Value {
	if unit <= 1 {
		return v
	}
	u := int64(unit)
	switch v.kind {
	case Instant:
		ns := int64(v.n) + u/2
		if u >= 1e9 {
			ns = 0
			if int64(v.n) >= 5e8 {
				v.i++
			}
		} else if ns >= 1e9 {
			v.i++
			ns -= 1e9
		}
		v.n = int32(ns - ns%u)
	case Duration:
		v.i += u / 2
		return Truncate(v, unit)
	case Array:
		v = mapElems(v, func(e Value) Value { return Round(e, unit) })
	}
	return v
}

// Trim returns a String without leading and trailing white space.
func Trim(v Value) Value {
	if v.kind == String {
		v.s = strings.TrimSpace(v.s)
	}
	return v
}

// Fold returns a String case-folded, so that strings equal under Unicode
// case folding become one value.
func Fold(v Value) Value {
	if v.kind == String {
		v.s = cases.Fold().String(v.s)
	}
	return v
}

// WithinTolerance reports whether a and b are Numbers at most tol apart.
// Non-numbers are within tolerance only when Equal.
func WithinTolerance(a, b Value, tol float64) bool {
	if Equal(a, b) {
		return true
	}
	x, ok1 := a.Float64()
	y, ok2 := b.Float64()
	if !ok1 || !ok2 {
		return false
	}
	d := x - y
	if d < 0 {
		d = -d
	}
	// A relative epsilon absorbs binary rounding of decimal tolerances:
	// 0.30 − 0.29 is 0.010000000000000009, within a tolerance of 0.01.
	return d <= tol*(1+1e-9)
}
