package apply

import (
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/schemas"
)

// What a command's drift and policy allow, before the database is read.
func TestPrecheck(t *testing.T) {
	open := &schemas.Drift{ID: "d", Status: schemas.Open, Decision: schemas.Compensate}
	cmd := &schemas.Compensation{ID: "c", DriftID: "d", Action: schemas.Upsert, Policy: "orders@v2", Verification: schemas.Confirmed}
	with := func(f func(d *schemas.Drift, c *schemas.Compensation)) (*schemas.Drift, *schemas.Compensation) {
		d, c := *open, *cmd
		f(&d, &c)
		return &d, &c
	}
	for _, tc := range []struct {
		name   string
		verify bool
		drift  *schemas.Drift
		cmd    *schemas.Compensation
		want   schemas.Outcome // "" passes
		reason string
	}{
		{name: "open, confirmed", verify: true, drift: open, cmd: cmd},
		{name: "no drift record", drift: nil, cmd: cmd, want: schemas.Skipped, reason: "no record of drift"},
		{name: "resolved", drift: func() *schemas.Drift {
			d, _ := with(func(d *schemas.Drift, _ *schemas.Compensation) { d.Status = schemas.Resolved })
			return d
		}(),
			cmd: cmd, want: schemas.Superseded, reason: "resolved"},
		{name: "not confirmed", verify: true, drift: open,
			cmd: func() *schemas.Compensation {
				_, c := with(func(_ *schemas.Drift, c *schemas.Compensation) { c.Verification = "" })
				return c
			}(),
			want: schemas.Skipped, reason: "not confirmed"},
		{name: "unconfirmed without re-reads", verify: false, drift: open,
			cmd: func() *schemas.Compensation {
				_, c := with(func(_ *schemas.Drift, c *schemas.Compensation) { c.Verification = "" })
				return c
			}()},
		{name: "manual", drift: func() *schemas.Drift {
			d, _ := with(func(d *schemas.Drift, _ *schemas.Compensation) { d.Decision = schemas.ManualCheck })
			return d
		}(),
			cmd: cmd, want: schemas.Skipped, reason: "decided manual"},
		{name: "another policy", drift: open,
			cmd: func() *schemas.Compensation {
				_, c := with(func(_ *schemas.Drift, c *schemas.Compensation) { c.Policy = "orders@v1" })
				return c
			}(),
			want: schemas.Skipped, reason: "decided under policy orders@v1"},
		{name: "unknown action", drift: open,
			cmd: func() *schemas.Compensation {
				_, c := with(func(_ *schemas.Drift, c *schemas.Compensation) { c.Action = "truncate" })
				return c
			}(),
			want: schemas.Failed, reason: "unknown action"},
	} {
		tg := &target{policy: "orders@v2", verify: tc.verify}
		v, pass := tg.precheck(tc.cmd, tc.drift)
		switch {
		case tc.want == "" && !pass:
			t.Errorf("%s: stopped: %s %s", tc.name, v.outcome, v.reason)
		case tc.want != "" && (pass || v.outcome != tc.want || !strings.Contains(v.reason, tc.reason)):
			t.Errorf("%s: %v %s %q, want %s with %q", tc.name, pass, v.outcome, v.reason, tc.want, tc.reason)
		}
	}
}
