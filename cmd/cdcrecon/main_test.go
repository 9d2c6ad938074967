package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestUsageErrorsExit2WithAReason(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"tail"}, "--topic is required"},
		{[]string{"tail", "--topic", "t", "--from", "middle"}, "--from: want earliest or latest"},
		{[]string{"tail", "--topic", "t", "--brokers", ""}, "brokers"},
		{[]string{"broker", "--partitions", "0"}, "--partitions: must be at least 1"},
		{[]string{"broker", "--listen", "nonsense"}, "listen"},
		{[]string{"produce"}, "requires at least 1 arg"},
		{[]string{"produce", "--brokers", "127.0.0.1:1", "/no/such/file.jsonl"}, "opening dump"},
		{[]string{"--log-level", "loud", "tail", "--topic", "t"}, "--log-level"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(context.Background(), c.args, strings.NewReader(""), &out, &errOut)
		if code != exitFailure {
			t.Errorf("%v: exit %d, want %d", c.args, code, exitFailure)
		}
		if !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: stderr %q does not contain %q", c.args, errOut.String(), c.want)
		}
	}
}

// Every command's help shows examples, and every example names a command
// that exists.
func TestHelpShowsExamplesOfRealCommands(t *testing.T) {
	root := newRootCmd(nil, &bytes.Buffer{}, &bytes.Buffer{})
	known := map[string]bool{}
	for _, c := range root.Commands() {
		known[c.Name()] = true
	}
	for _, c := range append(root.Commands(), root) {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" {
			t.Errorf("%s: no examples in --help", c.Name())
		}
		for _, line := range strings.Split(c.Example, "\n") {
			f := strings.Fields(line)
			for i, w := range f {
				if w == "cdcrecon" && i+1 < len(f) && !known[f[i+1]] {
					t.Errorf("%s: example %q uses unknown command %q", c.Name(), line, f[i+1])
				}
			}
		}
	}
}
