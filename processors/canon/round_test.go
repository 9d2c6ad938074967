package canon

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRoundAgreesWithTime: Round of an instant is the standard library's
// time.Time.Round (nearest, halves up) at every precision a column takes,
// on random instants before and after the epoch and on exact halves.
func TestRoundAgreesWithTime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, unit := range []time.Duration{time.Microsecond, time.Millisecond, time.Second} {
		for i := range 20000 {
			sec := r.Int64N(4e9) - 1e9
			nanos := r.Int64N(1e9)
			if i%4 == 0 { // an exact half
				nanos = nanos - nanos%int64(unit) + int64(unit)/2
				if nanos >= 1e9 {
					nanos -= int64(unit)
				}
			}
			in := time.Unix(sec, nanos).UTC()
			got := Round(InstantValue(in), unit)
			want := InstantValue(in.Round(unit))
			if got != want {
				t.Fatalf("Round(%s, %s) = %v, want %v", in.Format(time.RFC3339Nano), unit, got, want)
			}
		}
	}
}

// TestRoundDuration: durations round to the nearest unit, halves up.
func TestRoundDuration(t *testing.T) {
	for _, c := range []struct{ in, unit, want time.Duration }{
		{1499 * time.Microsecond, time.Millisecond, time.Millisecond},
		{1500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond},
		{-1500 * time.Microsecond, time.Millisecond, -time.Millisecond},
		{2400 * time.Millisecond, time.Second, 2 * time.Second},
	} {
		if got, want := Round(DurationValue(int64(c.in)), c.unit), DurationValue(int64(c.want)); got != want {
			t.Errorf("Round(%s, %s) = %v, want %v", c.in, c.unit, got, want)
		}
	}
}
