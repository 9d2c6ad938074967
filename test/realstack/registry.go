package realstack

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// java21 finds a Java of version 21 or newer, which Apicurio Registry 3
// needs (its classes are of version 65): $JAVA21_HOME, or a JDK under
// /usr/lib/jvm; "" when there is none.
func java21() string {
	var homes []string
	if h := os.Getenv("JAVA21_HOME"); h != "" {
		homes = append(homes, h)
	}
	m, _ := filepath.Glob("/usr/lib/jvm/*")
	homes = append(homes, m...)
	for _, h := range homes {
		bin := filepath.Join(h, "bin", "java")
		out, err := exec.Command(bin, "-version").CombinedOutput()
		if err != nil {
			continue
		}
		var major int
		if i := strings.Index(string(out), `version "`); i >= 0 {
			fmt.Sscanf(string(out)[i+len(`version "`):], "%d", &major)
		}
		if major >= 21 {
			return bin
		}
	}
	return ""
}

// StartRegistry starts Apicurio Registry 3 (its Quarkus application from
// Maven Central's apicurio-registry-app ...-all.tar.gz, which the pom
// resolves into lib/registry) on a free port, in memory, and waits until
// its Confluent-compatible API answers. It returns the registry's base
// URL.
func (s *Stack) StartRegistry() string {
	s.t.Helper()
	java := java21()
	if java == "" {
		skip(s.t, "Apicurio Registry 3 needs Java 21 or newer: set JAVA21_HOME or install one under /usr/lib/jvm")
	}
	tars, _ := filepath.Glob(filepath.Join(s.lib, "registry", "apicurio-registry-app-*-all.tar.gz"))
	if len(tars) == 0 {
		skip(s.t, "Apicurio Registry is not resolved: run make realstack-jars")
	}
	app := filepath.Join(s.dir, "apicurio")
	if err := os.MkdirAll(app, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if out, err := exec.Command("tar", "xzf", tars[0], "-C", app).CombinedOutput(); err != nil {
		s.t.Fatalf("unpacking %s: %v\n%s", tars[0], err, out)
	}
	port, mgmt := FreePort(s.t), FreePort(s.t)
	cmd := exec.Command(java, "-Xmx384m", "-XX:+UseSerialGC", "-Dquarkus.http.host=127.0.0.1",
		fmt.Sprintf("-Dquarkus.http.port=%d", port), fmt.Sprintf("-Dquarkus.management.port=%d", mgmt),
		"-jar", filepath.Join(app, "quarkus-run.jar"))
	s.start(cmd, filepath.Join(s.dir, "registry.log"))
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	s.waitFor("Apicurio Registry answering", 90*time.Second, func() error {
		if exited(cmd) {
			s.t.Fatalf("Apicurio Registry exited (its log follows at the end)")
		}
		resp, err := http.Get(url + "/apis/ccompat/v7/subjects")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return url
}
