package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, parses and validates the configuration file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	return Parse(b, path)
}

// Parse parses and validates a configuration file's contents; file names
// it in errors. Fields the file leaves out keep Default's values.
func Parse(data []byte, file string) (*Config, error) {
	cfg := Default()
	cfg.File = file
	cfg.lines = map[string]int{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{File: file, Line: yamlLine(err), Err: fmt.Errorf("parsing YAML: %w", trimYAML(err))}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Err: errors.New("empty configuration")}
	}
	root := doc.Content[0]
	if errs := cfg.checkKeys(root, reflect.TypeOf(cfg), ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := root.Decode(&cfg); err != nil {
		return nil, &Error{File: file, Line: yamlLine(err), Err: trimYAML(err)}
	}
	cfg.applyEnv(os.Getenv)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Secrets can come from the environment instead of the file; a variable
// that is set and not empty overrides the file's value.
const (
	EnvKafkaUsername    = "CDCRECON_KAFKA_SASL_USERNAME"
	EnvKafkaPassword    = "CDCRECON_KAFKA_SASL_PASSWORD"
	EnvRegistryUsername = "CDCRECON_SCHEMA_REGISTRY_USERNAME"
	EnvRegistryPassword = "CDCRECON_SCHEMA_REGISTRY_PASSWORD"
	EnvRegistryToken    = "CDCRECON_SCHEMA_REGISTRY_TOKEN"
)

func (c *Config) applyEnv(getenv func(string) string) {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	if s := c.Kafka.SASL; s != nil {
		set(&s.Username, EnvKafkaUsername)
		set(&s.Password, EnvKafkaPassword)
	}
	set(&c.SchemaRegistry.Username, EnvRegistryUsername)
	set(&c.SchemaRegistry.Password, EnvRegistryPassword)
	set(&c.SchemaRegistry.Token, EnvRegistryToken)
}

// checkKeys walks the YAML tree against the Go type it decodes into,
// reporting unknown keys and recording each field's line.
func (c *Config) checkKeys(n *yaml.Node, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		c.lines[path] = n.Line
	}
	switch {
	case n.Kind == yaml.AliasNode:
		return c.checkKeys(n.Alias, t, path)
	case t.Kind() == reflect.Struct && t.String() != "time.Duration":
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return []error{&Error{File: c.File, Line: n.Line, Field: path, Err: fmt.Errorf("want a mapping, got %s", describe(n))}}
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, &Error{File: c.File, Line: k.Line, Field: join(path, k.Value),
					Err: fmt.Errorf("unknown key (known keys: %s)", strings.Join(sortedKeys(fields), ", "))})
				continue
			}
			errs = append(errs, c.checkKeys(v, ft, join(path, k.Value))...)
		}
		return errs
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		var errs []error
		for i, e := range n.Content {
			errs = append(errs, c.checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, c.checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
		}
		return errs
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// yamlLine extracts the line from a yaml.v3 error ("yaml: line 7: ...").
func yamlLine(err error) int {
	var line int
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		fmt.Sscanf(s[i:], "line %d", &line)
	}
	return line
}

// trimYAML strips yaml.v3's "yaml: " and "line N: " prefixes, which the
// Error already carries.
func trimYAML(err error) error {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	if strings.HasPrefix(s, "line ") {
		if _, rest, ok := strings.Cut(s, ": "); ok {
			s = rest
		}
	}
	return errors.New(s)
}
