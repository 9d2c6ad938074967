package main

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// policyDecision is what one policy made of one drift.
type policyDecision struct {
	Policy       string                `json:"policy"`
	Decision     schemas.Decision      `json:"decision"`
	Compensation *schemas.Compensation `json:"compensation"`
}

// policyDiff is a drift two policies decide differently; a side is null
// when its run had no such drift (the policies compare other columns).
type policyDiff struct {
	DriftID string          `json:"drift_id"`
	Table   string          `json:"table"`
	Key     schemas.Columns `json:"key"`
	Kind    string          `json:"kind"`
	Current *policyDecision `json:"current"`
	Other   *policyDecision `json:"other"`
}

// checkPolicy decides the dumps under the configuration's policies and
// under other's, and prints every drift they decide differently.
func checkPolicy(ctx context.Context, g *globals, cfg, other *config.Config, dumps []string, o checkOptions) error {
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
	cur, err := runCheck(ctx, g, cfg, dumps, o)
	if err != nil {
		return err
	}
	o.dlqFile = "" // written once
	alt, err := runCheck(ctx, g, other, dumps, o)
	if err != nil {
		return err
	}
	diffs := comparePolicies(cur, alt)
	if err := printJSONLines(g, diffs); err != nil {
		return err
	}
	var fewer, more, changed int
	for _, d := range diffs {
		a, b := d.Current != nil && d.Current.Compensation != nil, d.Other != nil && d.Other.Compensation != nil
		switch {
		case a && !b:
			fewer++
		case !a && b:
			more++
		case a && b:
			changed++
		}
	}
	fmt.Fprintf(g.stderr, "cdcrecon: %d drifts decided differently under %s: %d compensation commands fewer, %d more, %d changed\n",
		len(diffs), changedPolicies(other, cfg), fewer, more, changed)
	if err := cur.Compared(); err != nil {
		return fail(err)
	}
	if fewer+more+changed > 0 {
		return &exitError{code: exitDrift}
	}
	return nil
}

// changedPolicies names the policies other has that cfg has not.
func changedPolicies(other, cfg *config.Config) string {
	var names []string
	for i, t := range other.Tables {
		if !reflect.DeepEqual(t.Policy, cfg.Tables[i].Policy) {
			names = append(names, t.Policy.Name(t.Name))
		}
	}
	if len(names) == 0 {
		return "the same policies"
	}
	return fmt.Sprint(names)
}

// comparePolicies pairs two runs' drifts by id and returns those whose
// decision or compensation command differ, in the current run's history
// order, then the other's.
func comparePolicies(cur, alt *offline.Result) []policyDiff {
	decisions := func(res *offline.Result) (map[string]*policyDecision, map[string]*schemas.Drift, []string) {
		by, last := map[string]*policyDecision{}, map[string]*schemas.Drift{}
		var order []string
		for _, d := range res.History {
			if _, seen := last[d.ID]; !seen {
				order = append(order, d.ID)
			}
			last[d.ID] = d
		}
		for id, d := range last {
			by[id] = &policyDecision{Policy: d.Policy, Decision: d.Decision, Compensation: res.Compensation[id]}
		}
		return by, last, order
	}
	a, da, order := decisions(cur)
	b, db, more := decisions(alt)
	for _, id := range more {
		if !slices.Contains(order, id) {
			order = append(order, id)
		}
	}
	same := func(x, y *policyDecision) bool {
		if x == nil || y == nil {
			return x == y
		}
		if x.Decision != y.Decision || (x.Compensation == nil) != (y.Compensation == nil) {
			return false
		}
		if x.Compensation == nil {
			return true
		}
		return x.Compensation.Action == y.Compensation.Action && reflect.DeepEqual(x.Compensation.Row, y.Compensation.Row)
	}
	var out []policyDiff
	for _, id := range order {
		if same(a[id], b[id]) {
			continue
		}
		d := da[id]
		if d == nil {
			d = db[id]
		}
		out = append(out, policyDiff{DriftID: id, Table: d.Table, Key: d.Key, Kind: string(d.Kind), Current: a[id], Other: b[id]})
	}
	return out
}
