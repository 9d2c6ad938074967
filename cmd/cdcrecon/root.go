package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// globals holds what every subcommand shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	logLevel       string
	cpuProfile     string
	stopProfile    func() // set while a CPU profile is being written
}

func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: want debug, info, warn or error, got %q", g.logLevel)
	}
	return slog.New(slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: level})), nil
}

// clientConfig is the Kafka client configuration of the --brokers flag, with
// the command's logger; its errors are usage errors.
func (g *globals) clientConfig(brokers []string) (kafka.ClientConfig, error) {
	log, err := g.logger()
	if err != nil {
		return kafka.ClientConfig{}, usageError("%v", err)
	}
	cc := kafka.ClientConfig{Brokers: brokers, Logger: log}
	if err := cc.Validate(); err != nil {
		return cc, usageError("--%v", err)
	}
	return cc, nil
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	return newRootCmdWith(&globals{stdin: stdin, stdout: stdout, stderr: stderr})
}

// versionString is what --version prints after the name: the version,
// the revision when known, and the Go version.
func versionString() string {
	v := ops.Version()
	if r := ops.Revision(); r != "" {
		v += " (" + r[:min(len(r), 12)] + ")"
	}
	return v + " " + runtime.Version()
}

func newRootCmdWith(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "cdcrecon",
		Short: "Reconcile Debezium change streams of a source database and its replica",
		Long: strings.TrimSpace(`
cdcrecon reads the Debezium change topics of a source database and of its
target from Kafka and reports, per row, where the target has drifted, with a
field-level diff and a command that would repair it.

Exit codes: 0 success, 1 drift found (check), 2 usage, configuration or I/O
error.`),
		Example: examples(`
  # a local Kafka-protocol broker, in the background
  cdcrecon broker --listen 127.0.0.1:9092 --data-dir ./broker-data &

  # load a kcat -J dump into it and read it back
  cdcrecon produce --brokers 127.0.0.1:9092 examples/dumps/source.jsonl
  cdcrecon tail --brokers 127.0.0.1:9092 --topic pg.public.orders --exit`),
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("cdcrecon {{.Version}}\n")
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level of the JSON logs on stderr: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file (for go tool pprof)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return usageError("--cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return usageError("--cpuprofile: %v", err)
		}
		g.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitFailure, err: fmt.Errorf("%w (see --help)", err)}
	})
	root.AddCommand(newBrokerCmd(g), newProduceCmd(g), newTailCmd(g), newCheckCmd(g), newRunCmd(g), newReplayCmd(g), newSimulateCmd(g), newDemoCmd(g), newBenchCmd(g), newApplyCmd(g))
	return root
}

// usageError marks an error in the command line itself.
func usageError(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format+" (see --help)", args...)}
}

// examples trims the blank lines around a help example block, keeping the
// indentation of its first line.
func examples(s string) string { return strings.Trim(s, "\n") }

// loadConfig reads the --config file; a missing flag is a usage error.
func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return nil, usageError("--config is required")
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, &exitError{code: exitFailure, err: err}
	}
	return cfg, nil
}
