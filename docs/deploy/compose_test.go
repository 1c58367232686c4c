package deploy

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeFile      = "compose/compose.yaml"
	composeCaddyfile = "compose/Caddyfile"
	composeSmoke     = "../../.ci/compose-smoke"
)

// loadCompose loads compose.yaml as `docker compose config` does: schema
// validation (unknown keys are errors), interpolation with env only (not
// this machine's environment), extends and anchors resolved, paths made
// absolute.
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithEnv(env), cli.WithName("picloud"), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s: no service %s", composeFile, name)
	}
	return s
}

func composeEnv(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

// TestCompose checks the compose cluster: what runs, in which order, with
// which settings, and that they agree with the binary, the Dockerfile and
// the Kubernetes manifests' rules.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	f := readFacts(t)
	df := mustDockerfile(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}

	roles := map[string]string{"migrate": roleMigrate, "api": roleAPI, "worker": roleWorker}
	for _, name := range []string{"postgres", "migrate", "api", "worker", "caddy"} {
		composeService(t, p, name)
	}

	// The three picloud services: one image, built from the repository's
	// Dockerfile, each running its role, locked down as in Kubernetes.
	for name, r := range roles {
		s := composeService(t, p, name)
		if s.Image != "picloud" {
			t.Errorf("%s: image %q, want picloud (the image built here)", name, s.Image)
		}
		if s.Build == nil || s.Build.Context != root || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s: build %+v, want the repository's Dockerfile (context %s)", name, s.Build, root)
		}
		if len(s.Command) == 0 || s.Command[0] != r {
			t.Errorf("%s: command %q, want picloud %s", name, s.Command, r)
		}
		if len(s.Entrypoint) != 0 {
			t.Errorf("%s: entrypoint %q overrides the image's", name, s.Entrypoint)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.ContainsFunc(s.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }) {
			t.Errorf("%s: want read_only, cap_drop ALL and no-new-privileges", name)
		}
		u, err := url.Parse(composeEnv(s, "DATABASE_URL"))
		if err != nil || u.Hostname() != "postgres" || u.Port() != "5432" {
			t.Errorf("%s: DATABASE_URL %q does not point at the postgres service", name, composeEnv(s, "DATABASE_URL"))
		} else {
			pg := composeService(t, p, "postgres")
			pw, _ := u.User.Password()
			if u.User.Username() != composeEnv(pg, "POSTGRES_USER") || pw != composeEnv(pg, "POSTGRES_PASSWORD") || strings.TrimPrefix(u.Path, "/") != composeEnv(pg, "POSTGRES_DB") {
				t.Errorf("%s: DATABASE_URL %s: user, password or database differ from the postgres service's", name, u.Redacted())
			}
		}
	}

	// Order: PostgreSQL healthy, then migrate once, then the nodes, which
	// do not migrate themselves.
	if d, ok := composeService(t, p, "migrate").DependsOn["postgres"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("migrate: depends_on postgres %+v, want condition service_healthy", d)
	}
	if composeService(t, p, "postgres").HealthCheck == nil {
		t.Error("postgres: no healthcheck, so service_healthy never holds")
	}
	if r := composeService(t, p, "migrate").Restart; r != "no" && r != "" {
		t.Errorf("migrate: restart %q: a one-shot must not restart", r)
	}
	for _, name := range []string{"api", "worker"} {
		s := composeService(t, p, name)
		if d, ok := s.DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s: depends_on migrate %+v, want service_completed_successfully", name, d)
		}
		if composeEnv(s, "PICLOUD_MIGRATE") != "false" {
			t.Errorf("%s: PICLOUD_MIGRATE=%q, want false (the migrate service migrates)", name, composeEnv(s, "PICLOUD_MIGRATE"))
		}
	}

	// One api, two workers.
	api, worker := composeService(t, p, "api"), composeService(t, p, "worker")
	if n := api.GetScale(); n != 1 {
		t.Errorf("api: %d replicas, want 1", n)
	}
	if n := worker.GetScale(); n != 2 {
		t.Errorf("worker: %d replicas, want 2", n)
	}

	// The api listens where Caddy sends; workers serve no API.
	addr := cmpOr(composeEnv(api, "PICLOUD_ADDR"), df.env()["PICLOUD_ADDR"], f.defaultAddr)
	host, apiPort, err := net.SplitHostPort(addr)
	if err != nil || host != "0.0.0.0" {
		t.Errorf("api: PICLOUD_ADDR %q: want 0.0.0.0:<port>, reachable from Caddy's container", addr)
	}
	if len(api.Ports) > 0 || len(worker.Ports) > 0 {
		t.Error("api or worker publishes a port: only Caddy should be reachable from outside")
	}

	// The worker's memory covers its sandboxes (as checkWorker requires of
	// the Kubernetes worker).
	conc, err := strconv.Atoi(composeEnv(worker, "PICLOUD_CONCURRENCY"))
	if err != nil || conc < 1 {
		t.Fatalf("worker: PICLOUD_CONCURRENCY %q: set it (the default follows the host's CPUs, not the memory limit)", composeEnv(worker, "PICLOUD_CONCURRENCY"))
	}
	if need := int64(conc)*(f.defaultSandboxMem+sandboxOverhead) + workerParentMemory; int64(worker.MemLimit) < need {
		t.Errorf("worker: mem_limit %d bytes, its %d sandboxes may need %d", worker.MemLimit, conc, need)
	}

	// Connections: every node at its ceiling, and migrate, under
	// PostgreSQL's default.
	total := worker.GetScale()*(2*conc+8+2) + api.GetScale()*apiConnections + migrateConnections
	if total > postgresConnections {
		t.Errorf("up to %d connections, more than PostgreSQL's %d", total, postgresConnections)
	}

	// Caddy: the only published port, its Caddyfile mounted, proxying to
	// the api's port with the limits PiCloud needs.
	caddy := composeService(t, p, "caddy")
	if len(caddy.Ports) != 1 || caddy.Ports[0].Target != 80 || caddy.Ports[0].Published != "8080" {
		t.Errorf("caddy: ports %+v, want 8080:80", caddy.Ports)
	}
	caddyfile, _ := filepath.Abs(composeCaddyfile)
	mounted := false
	for _, v := range caddy.Volumes {
		mounted = mounted || (v.Source == caddyfile && v.Target == "/etc/caddy/Caddyfile" && v.ReadOnly)
	}
	if !mounted {
		t.Errorf("caddy: %s is not mounted read-only at /etc/caddy/Caddyfile", composeCaddyfile)
	}
	if len(caddy.Command) < 3 || caddy.Command[0] != "caddy" || !slices.Contains(caddy.Command, "/etc/caddy/Caddyfile") {
		t.Errorf("caddy: command %q, want caddy run --config /etc/caddy/Caddyfile", caddy.Command)
	}
	data, err := os.ReadFile(composeCaddyfile)
	if err != nil {
		t.Fatal(err)
	}
	checkComposeCaddyfile(t, parseCaddyfile(data), "api:"+apiPort, f)
}

func cmpOr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func checkComposeCaddyfile(t *testing.T, lines []caddyLine, upstream string, f picloudFacts) {
	t.Helper()
	args := map[string][]string{}
	for _, l := range lines {
		if _, seen := args[l.tokens[0]]; !seen {
			args[l.tokens[0]] = l.tokens[1:]
		}
	}
	if a := args["reverse_proxy"]; len(a) == 0 || a[0] != upstream {
		t.Errorf("Caddyfile: reverse_proxy %q, want %s", a, upstream)
	}
	if a := args["health_uri"]; len(a) == 0 || a[0] != readyzPath {
		t.Errorf("Caddyfile: health_uri %q, want %s", a, readyzPath)
	}
	if a := args["max_size"]; len(a) == 0 {
		t.Error("Caddyfile: no request_body max_size")
	} else if n, err := caddySize(a[0]); err != nil || n != f.maxBodyBytes {
		t.Errorf("Caddyfile: max_size %s, PiCloud's /fn limit is %d bytes", a[0], f.maxBodyBytes)
	}
	longest := f.maxFunctionTimeout + f.queueGrace
	for _, name := range []string{"response_header_timeout", "write"} {
		if a := args[name]; len(a) == 0 || mustDuration(t, a[0]) < longest {
			t.Errorf("Caddyfile: %s %q: a synchronous call may wait %v", name, a, longest)
		}
	}
	for _, bad := range []string{"unhealthy_status", "unhealthy_latency"} {
		if _, ok := args[bad]; ok {
			t.Errorf("Caddyfile: %s: a failed or slow function says nothing about the node", bad)
		}
	}
}

// TestComposeImageOverrides: CI (and anyone with a private registry)
// replaces every image through the environment, and .ci/compose-smoke sets
// exactly these variables.
func TestComposeImageOverrides(t *testing.T) {
	vars := map[string][]string{
		"PICLOUD_IMAGE":          {"migrate", "api", "worker"},
		"PICLOUD_POSTGRES_IMAGE": {"postgres"},
		"PICLOUD_CADDY_IMAGE":    {"caddy"},
	}
	var env []string
	for v := range vars {
		env = append(env, v+"=registry.example.com/"+strings.ToLower(v)+":1")
	}
	p := loadCompose(t, append(env, "PICLOUD_HTTP_PORT=18080")...)
	for v, services := range vars {
		for _, name := range services {
			if got := composeService(t, p, name).Image; got != "registry.example.com/"+strings.ToLower(v)+":1" {
				t.Errorf("%s=...: %s's image is %s", v, name, got)
			}
		}
	}
	if ports := composeService(t, p, "caddy").Ports; len(ports) != 1 || ports[0].Published != "18080" {
		t.Errorf("PICLOUD_HTTP_PORT=18080: caddy ports %+v", ports)
	}
	smoke, err := os.ReadFile(composeSmoke)
	if err != nil {
		t.Fatal(err)
	}
	for v := range vars {
		if !strings.Contains(string(smoke), "export "+v+"=") {
			t.Errorf("%s does not set %s: it would try to pull an image", composeSmoke, v)
		}
	}
}

// TestComposeMatchesBinary: every PICLOUD_ variable the compose file sets
// is one its service's role reads (kong ignores unknown variables, so a
// misspelt one would silently keep its default).
func TestComposeMatchesBinary(t *testing.T) {
	if runtime.GOOS != "linux" || !slices.ContainsFunc(platforms, func(p struct{ goos, goarch string }) bool { return p.goarch == runtime.GOARCH }) {
		t.Skipf("no image platform runs on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	p := loadCompose(t)
	bin := buildForPlatform(t, runtime.GOOS, runtime.GOARCH)
	for name, r := range map[string]string{"migrate": roleMigrate, "api": roleAPI, "worker": roleWorker} {
		known := helpEnv(t, bin, r)
		for k := range composeService(t, p, name).Environment {
			if !slices.Contains(known, k) {
				t.Errorf("%s: picloud %s does not read %s", name, r, k)
			}
		}
	}
}

// TestComposeRejects: the loader is strict, so a misspelt key fails here
// rather than being ignored by Docker.
func TestComposeRejects(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new string }{
		{"misspelt key", "read_only:", "readonly:"},
		{"unknown condition", "condition: service_healthy", "condition: service_ready"},
		{"replicas as text", "replicas: 2", "replicas: two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed := strings.Replace(string(data), tt.old, tt.new, 1)
			if changed == string(data) {
				t.Fatalf("%q is not in %s: update the test", tt.old, composeFile)
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "compose.yaml")
			if err := os.WriteFile(f, []byte(changed), 0o600); err != nil {
				t.Fatal(err)
			}
			opts, err := cli.NewProjectOptions([]string{f}, cli.WithEnv(nil), cli.WithName("picloud"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := opts.LoadProject(context.Background()); err == nil {
				t.Error("loaded without an error")
			}
		})
	}
}
