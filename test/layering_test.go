package test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cdcrecon/cdcrecon/"

// leaves are the packages that import nothing of ours: the rest of the
// module builds on them.
var leaves = []string{
	"processors/canon", "processors/config", "processors/dedupe", "processors/internal/wire", "processors/simulate", "processors/state",
	"schemas", "schemas/compat",
	"pipeline/broker", "pipeline/dump", "pipeline/kafka", "pipeline/ops", "pipeline/owned",
}

// rule is a dependency rule: the packages under a tree, test files
// included, must import nothing under a forbidden path.
type rule struct {
	tree      string
	forbidden []string
	why       string
}

var rules = []rule{
	{"processors", []string{module + "pipeline", module + "cmd", "github.com/ThreeDotsLabs/watermill", "github.com/twmb/franz-go"},
		"processors are the data logic: no Kafka client, no Watermill, no stage"},
	{"schemas", []string{module + "pipeline", module + "processors", module + "cmd", "github.com/ThreeDotsLabs/watermill", "github.com/twmb/franz-go"},
		"the output schemas are a contract of their own"},
	{"pipeline", []string{module + "cmd"}, "stages never reach into the commands"},
}

// imports returns, for each package directory under the module root
// (relative, slash-separated), what its files import, by importing
// file.
func imports(t *testing.T, root string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if out[pkg] == nil {
			out[pkg] = map[string][]string{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[pkg][p] = append(out[pkg][p], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// violations lists the imports of pkgs that break the rules.
func violations(pkgs map[string]map[string][]string) []string {
	var out []string
	for pkg, imps := range pkgs {
		for imp, files := range imps {
			for _, r := range rules {
				if pkg != r.tree && !strings.HasPrefix(pkg, r.tree+"/") {
					continue
				}
				for _, f := range r.forbidden {
					if imp == f || strings.HasPrefix(imp, f+"/") {
						out = append(out, pkg+" ("+strings.Join(files, ", ")+") imports "+imp+": "+r.why)
					}
				}
			}
			// A leaf's tests may use the module: an external test package
			// imports the package itself.
			code := slices.DeleteFunc(slices.Clone(files), func(f string) bool { return strings.HasSuffix(f, "_test.go") })
			if slices.Contains(leaves, pkg) && strings.HasPrefix(imp, module) && len(code) > 0 {
				out = append(out, pkg+" ("+strings.Join(code, ", ")+") imports "+imp+": it is a leaf, importing nothing of ours")
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestForbiddenImports enforces the module's layering: processors and
// schemas, tests included, hold no Kafka client, Watermill or stage;
// nothing but the commands imports cmd; leaf packages import nothing of
// ours outside their tests.
func TestForbiddenImports(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	pkgs := imports(t, filepath.Dir(filepath.Dir(file)))
	for _, leaf := range leaves {
		if pkgs[leaf] == nil {
			t.Errorf("leaf %s has no Go files: the list is stale", leaf)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestForbiddenImportsFails: the rules catch what they forbid.
func TestForbiddenImportsFails(t *testing.T) {
	pkgs := map[string]map[string][]string{
		"processors/simulate": {module + "pipeline/dump": {"simulate.go"}},
		"processors/debezium": {"github.com/twmb/franz-go/pkg/sr": {"decoder_test.go"}},
		"processors/canon":    {module + "schemas": {"canon.go"}},
		"pipeline/ingest":     {module + "processors/canon": {"ingest.go"}},
	}
	got := violations(pkgs)
	if len(got) != 4 {
		t.Fatalf("%d violations, want 4 (a processor on a stage, on franz-go, a leaf on ours twice; a stage on a processor is allowed):\n%s",
			len(got), strings.Join(got, "\n"))
	}
}
