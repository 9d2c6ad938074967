package schemas

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/linkedin/goavro/v2"
)

// Names of the schemas, as in their file names.
const (
	DriftName        = "drift"
	CompensationName = "compensation"
	ChecksumName     = "checksum"
	DeadLetterName   = "deadletter"
	AuditName        = "audit"
)

//go:embed avro/*.avsc
var files embed.FS

// Schema is one version of one schema with its codec, built once. A Schema
// is immutable and safe for concurrent use.
type Schema struct {
	Name     string // as in the file name: drift, compensation, ...
	Version  int    // the "cdcrecon.version" property; 0 when absent
	FullName string // the record's full name, io.cdcrecon.Drift
	Text     string // the schema as written
	Codec    *goavro.Codec
}

// Fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the schema's
// parsing canonical form, as single-object encoding carries it.
func (s *Schema) Fingerprint() uint64 { return s.Codec.Rabin }

func (s *Schema) String() string { return s.Name + " v" + strconv.Itoa(s.Version) }

var (
	all           []*Schema
	latest        = map[string]*Schema{}
	byFingerprint = map[uint64]*Schema{}
	fileName      = regexp.MustCompile(`^([a-z]+)\.v([1-9][0-9]*)\.avsc$`)
)

// MaxArrayBlock bounds the item count of one Avro array block that goavro
// will decode. goavro sizes the array from the count the data claims before
// reading a single item, so a few hostile bytes claiming 2^31 items made it
// allocate gigabytes (FuzzDecode found one that asked for 10 GB). The
// limit is goavro's, process-wide, set here alone; processors/debezium
// imports this package for it, for Avro input.
const MaxArrayBlock = 1 << 20

func init() {
	goavro.MaxBlockCount = MaxArrayBlock
	entries, err := files.ReadDir("avro")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		if err := load(e.Name()); err != nil {
			panic(fmt.Sprintf("schemas: embedded %s: %v", e.Name(), err))
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Name != all[j].Name {
			return all[i].Name < all[j].Name
		}
		return all[i].Version < all[j].Version
	})
}

func load(name string) error {
	m := fileName.FindStringSubmatch(name)
	if m == nil {
		return fmt.Errorf("file name does not read NAME.vN.avsc")
	}
	text, err := files.ReadFile(path.Join("avro", name))
	if err != nil {
		return err
	}
	s, err := Parse(string(text))
	if err != nil {
		return err
	}
	s.Name = m[1]
	if v, _ := strconv.Atoi(m[2]); v != s.Version {
		return fmt.Errorf("file says version %d, cdcrecon.version says %d", v, s.Version)
	}
	if newRecord(s.FullName) == nil {
		return fmt.Errorf("no Go type for %s", s.FullName)
	}
	if other := byFingerprint[s.Fingerprint()]; other != nil {
		return fmt.Errorf("same canonical form as %s", other)
	}
	all = append(all, s)
	byFingerprint[s.Fingerprint()] = s
	if l := latest[s.Name]; l == nil || l.Version < s.Version {
		latest[s.Name] = s
	}
	return nil
}

// Parse builds a Schema from its text, for a schema met on the wire (a
// registry's, perhaps of a newer version). Name is left empty.
func Parse(text string) (*Schema, error) {
	var head struct {
		Type      string          `json:"type"`
		Name      string          `json:"name"`
		Namespace string          `json:"namespace"`
		Version   json.RawMessage `json:"cdcrecon.version"`
	}
	if err := json.Unmarshal([]byte(text), &head); err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("building codec: %w", err)
	}
	s := &Schema{Text: text, Codec: codec, FullName: head.Name}
	if head.Type == "record" && head.Namespace != "" && !strings.Contains(head.Name, ".") {
		s.FullName = head.Namespace + "." + head.Name
	}
	if len(head.Version) > 0 {
		if s.Version, err = strconv.Atoi(string(head.Version)); err != nil {
			return nil, fmt.Errorf("cdcrecon.version: not an integer: %s", head.Version)
		}
	}
	return s, nil
}

// All returns every embedded schema version, by name then version.
func All() []*Schema { return append([]*Schema(nil), all...) }

// Latest returns the newest version of the named schema, the one writers
// use, or nil.
func Latest(name string) *Schema { return latest[name] }

// Version returns version v of the named schema, or nil.
func Version(name string, v int) *Schema {
	for _, s := range all {
		if s.Name == name && s.Version == v {
			return s
		}
	}
	return nil
}

// ByFingerprint returns the embedded schema version with that fingerprint,
// or nil.
func ByFingerprint(fp uint64) *Schema { return byFingerprint[fp] }
