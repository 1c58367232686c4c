// Package deploy validates PiCloud's deployment artifacts offline: the
// Kubernetes manifests and KEDA objects in kubernetes/, the Caddyfile, and
// the repository's Dockerfile and .dockerignore. It is a module of its own so
// that the main module never depends on Kubernetes libraries.
//
//	cd docs/deploy && go test ./...
//
// Nothing here needs a cluster, a Docker engine or the network (given a
// filled module cache): manifests are decoded strictly into the typed structs
// of k8s.io/api, KEDA objects into structs mirroring the fields of KEDA's
// CRDs that these manifests use, and the Dockerfile's `go build` line is run
// for every platform the image is published for.
package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"go/version"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Paths, relative to this directory.
const (
	repoRoot      = "../.."
	kubernetesDir = "kubernetes"
	caddyfilePath = "Caddyfile"
)

// Facts about PiCloud that the artifacts must agree with. Those that the
// source states are read from it (see picloudFacts); these are the rest.
const (
	// Subcommands of the binary (cmd/picloud/main.go) that run a node, and
	// the one that migrates.
	roleServe   = "serve"
	roleAPI     = "api"
	roleWorker  = "worker"
	roleMigrate = "migrate"

	healthzPath = "/healthz"
	readyzPath  = "/readyz"

	// Connections a node may hold (docs/architecture.md, "Roles"): a worker
	// (or serve) 2 x concurrency + 8 in its pool plus two LISTEN
	// connections; an api node 8 plus one LISTEN; `picloud migrate` a pool
	// of 2 plus the connection that holds the migration lock.
	apiConnections     = 8 + 1
	migrateConnections = 3
	// The KEDA operator's pool for the postgresql scaler, and its metrics
	// server's when metrics are not cached.
	kedaConnections = 2
	// PostgreSQL's default max_connections less its 3
	// superuser_reserved_connections. Raise it here together with the
	// server's setting.
	postgresConnections = 100 - 3

	// Memory a sandbox process has beyond its RLIMIT_DATA budget: the cap
	// is set on top of the data segment the Go runtime has already mapped
	// (about 40 MB; executor/sandbox_linux.go), which is not resident in
	// full but may become so.
	sandboxOverhead = 40 << 20
	// Memory for the worker process itself (about 20 MiB idle).
	workerParentMemory = 256 << 20
)

// platforms are those the image is built for (docker buildx --platform).
var platforms = []struct{ goos, goarch string }{
	{"linux", "amd64"},
	{"linux", "arm64"},
}

// ---------------------------------------------------------------------------
// Strict decoding

// decodeStrict decodes JSON into v the way the API server's strict field
// validation does: unknown fields, duplicate fields and fields spelled with
// the wrong case are errors (encoding/json alone would accept
// "Replicas" for "replicas").
func decodeStrict(data []byte, v any) error {
	strictErrs, err := kjson.UnmarshalStrict(data, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// yamlDocuments splits a YAML stream into its documents and converts each
// to JSON, refusing duplicate keys. Documents that hold only comments are
// dropped.
func yamlDocuments(data []byte) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		docs = append(docs, js)
	}
}

// ---------------------------------------------------------------------------
// KEDA and kustomize objects: no Go types for these without a large
// dependency, so these structs mirror the fields of KEDA's CRD schema
// (keda.sh/v1alpha1, apis/keda/v1alpha1 in kedacore/keda) and of kustomize's
// Kustomization that the manifests use. Decoded strictly, a field that is
// not here is an error: add it here, checked against the CRD, to use it.

type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       scaledObjectSpec  `json:"spec"`
}

type scaledObjectSpec struct {
	ScaleTargetRef  *scaleTarget    `json:"scaleTargetRef"`
	PollingInterval *int32          `json:"pollingInterval,omitempty"`
	CooldownPeriod  *int32          `json:"cooldownPeriod,omitempty"`
	MinReplicaCount *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32          `json:"maxReplicaCount,omitempty"`
	Fallback        *kedaFallback   `json:"fallback,omitempty"`
	Triggers        []scaleTriggers `json:"triggers"`
}

type scaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

type kedaFallback struct {
	FailureThreshold int32  `json:"failureThreshold"`
	Replicas         int32  `json:"replicas"`
	Behavior         string `json:"behavior,omitempty"`
}

type scaleTriggers struct {
	Type              string             `json:"type"`
	Name              string             `json:"name,omitempty"`
	UseCachedMetrics  bool               `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string  `json:"metadata"`
	AuthenticationRef *authenticationRef `json:"authenticationRef,omitempty"`
	MetricType        string             `json:"metricType,omitempty"`
}

type authenticationRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

type triggerAuthentication struct {
	APIVersion string                    `json:"apiVersion"`
	Kind       string                    `json:"kind"`
	Metadata   metav1.ObjectMeta         `json:"metadata"`
	Spec       triggerAuthenticationSpec `json:"spec"`
}

type triggerAuthenticationSpec struct {
	SecretTargetRef []authSecretTargetRef `json:"secretTargetRef,omitempty"`
}

type authSecretTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Namespace  string           `json:"namespace,omitempty"`
	Resources  []string         `json:"resources"`
	Images     []kustomizeImage `json:"images,omitempty"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// The postgresql scaler's settings (pkg/scalers/postgresql_scaler.go in
// kedacore/keda): trigger metadata keys, and the parameters a
// TriggerAuthentication may provide. KEDA ignores unknown metadata keys, so
// a misspelt one would pass silently without this list.
var (
	postgresqlMetadataKeys = []string{
		"query", "targetQueryValue", "activationTargetQueryValue",
		"connectionFromEnv", "host", "port", "userName", "dbName", "sslmode", "passwordFromEnv",
	}
	postgresqlAuthParams = []string{"connection", "password", "host", "port", "userName", "dbName", "sslmode"}
)

// ---------------------------------------------------------------------------
// Loading the manifests

// object is one decoded document.
type object struct {
	file string // relative to kubernetes/
	kind string
	name string
	obj  any
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.kind, o.name, o.file) }

// manifests are the objects of kubernetes/ by kind.
type manifests struct {
	files          []string // every YAML file, relative to kubernetes/
	all            []object
	kustomizations map[string]*kustomization // by file
	namespaces     []*corev1.Namespace
	secrets        []*corev1.Secret
	configMaps     []*corev1.ConfigMap
	services       []*corev1.Service
	deployments    []*appsv1.Deployment
	jobs           []*batchv1.Job
	pdbs           []*policyv1.PodDisruptionBudget
	scaledObjects  []*scaledObject
	triggerAuths   []*triggerAuthentication
}

// newObject returns the typed value a document of this apiVersion and kind
// decodes into.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "keda.sh/v1alpha1 ScaledObject":
		return &scaledObject{}, true
	case "keda.sh/v1alpha1 TriggerAuthentication":
		return &triggerAuthentication{}, true
	}
	return nil, false
}

func isKustomizationFile(name string) bool {
	switch path.Base(name) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// decodeDocument decodes one JSON document by its apiVersion and kind.
func decodeDocument(js []byte) (object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &meta); err != nil {
		return object{}, err
	}
	v, ok := newObject(meta.APIVersion, meta.Kind)
	if !ok {
		return object{}, fmt.Errorf("apiVersion %q kind %q: no decoder for it in validate_test.go (add one, with its checks)", meta.APIVersion, meta.Kind)
	}
	if err := decodeStrict(js, v); err != nil {
		return object{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	return object{kind: meta.Kind, name: meta.Metadata.Name, obj: v}, nil
}

func (m *manifests) add(o object) {
	m.all = append(m.all, o)
	switch v := o.obj.(type) {
	case *corev1.Namespace:
		m.namespaces = append(m.namespaces, v)
	case *corev1.Secret:
		m.secrets = append(m.secrets, v)
	case *corev1.ConfigMap:
		m.configMaps = append(m.configMaps, v)
	case *corev1.Service:
		m.services = append(m.services, v)
	case *appsv1.Deployment:
		m.deployments = append(m.deployments, v)
	case *batchv1.Job:
		m.jobs = append(m.jobs, v)
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, v)
	case *scaledObject:
		m.scaledObjects = append(m.scaledObjects, v)
	case *triggerAuthentication:
		m.triggerAuths = append(m.triggerAuths, v)
	}
}

func loadManifests(dir string) (*manifests, error) {
	m := &manifests{kustomizations: map[string]*kustomization{}}
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		isYAML := strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") || d.Name() == "Kustomization"
		if d.IsDir() || !isYAML {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		m.files = append(m.files, rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		docs, err := yamlDocuments(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rel, err))
			return nil
		}
		for i, js := range docs {
			if isKustomizationFile(rel) {
				k := &kustomization{}
				if err := decodeStrict(js, k); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", rel, err))
				} else {
					m.kustomizations[rel] = k
				}
				continue
			}
			o, err := decodeDocument(js)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s, document %d: %w", rel, i+1, err))
				continue
			}
			o.file = rel
			m.add(o)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, errors.Join(errs...)
}

var loadedManifests = sync.OnceValues(func() (*manifests, error) { return loadManifests(kubernetesDir) })

// mustManifests returns the manifests, failing the test if any document does
// not decode strictly.
func mustManifests(t *testing.T) *manifests {
	t.Helper()
	m, err := loadedManifests()
	if err != nil {
		t.Fatalf("decoding the manifests in %s/:\n%v", kubernetesDir, err)
	}
	return m
}

// ---------------------------------------------------------------------------
// Facts read from the repository

// picloudFacts are numbers PiCloud's source states; the artifacts are
// checked against them, so that a change there fails here rather than in
// production.
type picloudFacts struct {
	maxBodyBytes       int64         // api.DefaultMaxBodyBytes
	queueGrace         time.Duration // api.Config.QueueGrace's default
	maxFunctionTimeout time.Duration // the API's maximum timeout_ms
	readyTimeout       time.Duration // /readyz's own deadline
	defaultAddr        string        // --addr's default
	defaultDrain       time.Duration // --drain-timeout's default
	defaultSandboxMem  int64         // --sandbox-memory's default
	goDirective        string        // go.mod's go (and toolchain) version
	invocationStatuses []string      // the CHECK constraint on picloud.invocations.status
	tables             []string      // tables the migrations create in schema picloud
	stableFunctions    []string      // functions sql/functions/ declares STABLE or IMMUTABLE
}

// findSubmatch returns the first submatch of re in the named repository
// files, or fails.
func findSubmatch(t *testing.T, re string, files ...string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		if m := rx.FindSubmatch(data); m != nil {
			return string(m[1])
		}
	}
	t.Fatalf("no match for %s in %v: the source changed; update validate_test.go (picloudFacts) to read the fact from its new place", re, files)
	return ""
}

func atoi64(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readFacts(t *testing.T) picloudFacts {
	t.Helper()
	var f picloudFacts
	f.maxBodyBytes = atoi64(t, findSubmatch(t, `DefaultMaxBodyBytes\s*=\s*(\d+)\s*<<\s*20`, "api/server.go")) << 20
	f.queueGrace = time.Duration(atoi64(t, findSubmatch(t, `config\.QueueGrace\s*=\s*(\d+)\s*\*\s*time\.Second`, "api/server.go"))) * time.Second
	f.maxFunctionTimeout = time.Duration(atoi64(t, findSubmatch(t, `TimeoutMS\s+int\s+`+"`"+`json:"timeout_ms[^`+"`"+`]*maximum:"(\d+)"`, "api/functions.go"))) * time.Millisecond
	f.readyTimeout = time.Duration(atoi64(t, findSubmatch(t, `readyTimeout\s*=\s*(\d+)\s*\*\s*time\.Second`, "api/health.go"))) * time.Second
	f.defaultAddr = findSubmatch(t, `Addr\s+string\s+`+"`"+`default:"([^"]+)"`, "cmd/picloud/serve.go")
	f.defaultDrain = mustDuration(t, findSubmatch(t, `DrainTimeout\s+time\.Duration\s+`+"`"+`default:"([^"]+)"`, "cmd/picloud/serve.go"))
	f.defaultSandboxMem = atoi64(t, findSubmatch(t, `SandboxMemory\s+int64\s+`+"`"+`default:"(\d+)"`, "cmd/picloud/serve.go"))

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^go\s+(\S+)`).FindSubmatch(gomod); m != nil {
		f.goDirective = "go" + string(m[1])
	}
	if m := regexp.MustCompile(`(?m)^toolchain\s+(go\S+)`).FindSubmatch(gomod); m != nil && version.Compare(string(m[1]), f.goDirective) > 0 {
		f.goDirective = string(m[1])
	}
	if f.goDirective == "" {
		t.Fatal("go.mod has no go directive")
	}

	migrations, err := filepath.Glob(filepath.Join(repoRoot, "sql", "migrations", "*.sql"))
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations in sql/migrations: %v", err)
	}
	tableRx := regexp.MustCompile(`(?i)CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?picloud\.(\w+)`)
	statusRx := regexp.MustCompile(`(?is)CHECK\s*\(\s*status\s+IN\s*\(([^)]*)\)\s*\)`)
	for _, p := range migrations {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range tableRx.FindAllSubmatch(data, -1) {
			f.tables = append(f.tables, strings.ToLower(string(m[1])))
		}
		if m := statusRx.FindSubmatch(data); m != nil {
			f.invocationStatuses = sqlStringLiterals(string(m[1]))
		}
	}
	if len(f.invocationStatuses) == 0 {
		t.Fatal("no CHECK (status IN (...)) constraint in sql/migrations: update validate_test.go")
	}

	functions, err := filepath.Glob(filepath.Join(repoRoot, "sql", "functions", "*.sql"))
	if err != nil || len(functions) == 0 {
		t.Fatalf("no function files in sql/functions: %v", err)
	}
	// CREATE ... FUNCTION picloud.name(...) RETURNS ... LANGUAGE sql STABLE:
	// the declaration up to its body's opening $$.
	funcRx := regexp.MustCompile(`(?is)CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+picloud\.(\w+)\s*\(([^$]*)\$\$`)
	for _, p := range functions {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range funcRx.FindAllSubmatch(data, -1) {
			if regexp.MustCompile(`(?i)\b(STABLE|IMMUTABLE)\b`).Match(m[2]) {
				f.stableFunctions = append(f.stableFunctions, strings.ToLower(string(m[1])))
			}
		}
	}
	return f
}

var sqlLiteralRx = regexp.MustCompile(`'([^']*)'`)

func sqlStringLiterals(s string) []string {
	var out []string
	for _, m := range sqlLiteralRx.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// ---------------------------------------------------------------------------
// The Dockerfile

type dockerInstruction struct {
	line int    // of the instruction's first line
	cmd  string // upper case
	args string // the rest, continuation lines joined
}

type dockerStage struct {
	from         string // the base image reference
	platformFlag string
	name         string
	instructions []dockerInstruction
}

type dockerfile struct {
	args   map[string]string // global ARGs (before the first FROM) with defaults
	stages []*dockerStage
}

func (s *dockerStage) all(cmd string) []dockerInstruction {
	var out []dockerInstruction
	for _, in := range s.instructions {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile reads instructions: comments and blank lines dropped,
// backslash continuations joined.
func parseDockerfile(data []byte) (*dockerfile, error) {
	df := &dockerfile{args: map[string]string{}}
	var (
		pending   strings.Builder
		startLine int
	)
	lines := strings.Split(string(data), "\n")
	flush := func() error {
		text := strings.TrimSpace(pending.String())
		pending.Reset()
		if text == "" {
			return nil
		}
		cmd, rest, _ := strings.Cut(text, " ")
		in := dockerInstruction{line: startLine, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		if in.cmd == "FROM" {
			st := &dockerStage{}
			fields := strings.Fields(in.args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				if v, ok := strings.CutPrefix(fields[0], "--platform="); ok {
					st.platformFlag = v
				}
				fields = fields[1:]
			}
			if len(fields) == 0 {
				return fmt.Errorf("line %d: FROM without an image", in.line)
			}
			st.from = fields[0]
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			df.stages = append(df.stages, st)
			return nil
		}
		if len(df.stages) == 0 {
			if in.cmd == "ARG" {
				name, def, _ := strings.Cut(in.args, "=")
				df.args[name] = def
			}
			return nil
		}
		st := df.stages[len(df.stages)-1]
		st.instructions = append(st.instructions, in)
		return nil
	}
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments (parser directives included) and comment lines inside continuations
		}
		if pending.Len() == 0 {
			if trimmed == "" {
				continue
			}
			startLine = i + 1
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return df, nil
}

var loadedDockerfile = sync.OnceValues(func() (*dockerfile, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	return parseDockerfile(data)
})

func mustDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	df, err := loadedDockerfile()
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s); want a build stage and a minimal final stage", len(df.stages))
	}
	return df
}

func (df *dockerfile) final() *dockerStage { return df.stages[len(df.stages)-1] }

// env returns the final stage's ENV settings.
func (df *dockerfile) env() map[string]string {
	env := map[string]string{}
	for _, in := range df.final().all("ENV") {
		for _, kv := range shellWords(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

// user returns the final stage's numeric uid and gid.
func (df *dockerfile) user() (uid, gid int, err error) {
	users := df.final().all("USER")
	if len(users) == 0 {
		return 0, 0, errors.New("the final stage sets no USER: the container would run as root")
	}
	spec := users[len(users)-1].args
	u, g, hasGroup := strings.Cut(spec, ":")
	if uid, err = strconv.Atoi(u); err != nil {
		return 0, 0, fmt.Errorf("USER %s: not numeric; Kubernetes can verify runAsNonRoot only for a numeric user", spec)
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil {
			return 0, 0, fmt.Errorf("USER %s: group not numeric", spec)
		}
	}
	return uid, gid, nil
}

// goBuild is the Dockerfile's `go build` command.
type goBuild struct {
	env  map[string]string // assignments before the command
	args []string          // after "go"
}

// shellWords splits a POSIX shell command line into words: single and
// double quotes, backslash escapes. Enough for a RUN line; no expansion.
func shellWords(s string) []string {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

var envAssignmentRx = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// buildCommand finds the RUN that calls `go build` in the build stage.
func (df *dockerfile) buildCommand() (*dockerStage, goBuild, error) {
	for _, st := range df.stages[:len(df.stages)-1] {
		for _, in := range st.all("RUN") {
			words := shellWords(in.args)
			for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=...
				words = words[1:]
			}
			// One command per RUN here: a chain (&&, ;) would need a shell
			// to reproduce.
			for i := 0; i+1 < len(words); i++ {
				if words[i] != "go" || words[i+1] != "build" {
					continue
				}
				b := goBuild{env: map[string]string{}}
				for _, w := range words[:i] {
					if !envAssignmentRx.MatchString(w) {
						return nil, goBuild{}, fmt.Errorf("line %d: %q before go build is not an environment assignment; keep the build RUN a single command", in.line, w)
					}
					k, v, _ := strings.Cut(w, "=")
					b.env[k] = v
				}
				for _, w := range words[i+1:] {
					if w == "&&" || w == ";" || w == "||" || w == "|" {
						return nil, goBuild{}, fmt.Errorf("line %d: the go build RUN chains commands; keep it a single command", in.line)
					}
				}
				b.args = words[i+1:]
				return st, b, nil
			}
		}
	}
	return nil, goBuild{}, errors.New("no RUN with `go build` in a build stage")
}

// outputPath returns the value of -o in a go build argument list.
func outputPath(args []string) string {
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "-o="); ok {
			return v
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// Building the binary as the Dockerfile does

type builtBinary struct {
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*builtBinary{}
	buildDir string
)

// buildForPlatform runs the Dockerfile's go build line for goos/goarch from
// the repository root, once per test binary, and returns the binary's path.
func buildForPlatform(t *testing.T, goos, goarch string) string {
	t.Helper()
	key := goos + "/" + goarch
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if b, ok := builds[key]; ok {
		if b.err != nil {
			t.Fatal(b.err)
		}
		return b.path
	}
	b := &builtBinary{}
	builds[key] = b
	b.path, b.err = runDockerfileBuild(goos, goarch)
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func runDockerfileBuild(goos, goarch string) (string, error) {
	df, err := loadedDockerfile()
	if err != nil {
		return "", err
	}
	_, build, err := df.buildCommand()
	if err != nil {
		return "", err
	}
	if buildDir == "" {
		// Shared by every test of this process; removed by TestMain.
		if buildDir, err = os.MkdirTemp("", "picloud-deploy-build-"); err != nil {
			return "", err
		}
	}
	out := filepath.Join(buildDir, "picloud-"+goos+"-"+goarch)
	platformArgs := map[string]string{"TARGETOS": goos, "TARGETARCH": goarch}
	expand := func(s string) (string, error) {
		var missing []string
		v := os.Expand(s, func(name string) string {
			if v, ok := platformArgs[name]; ok {
				return v
			}
			missing = append(missing, name)
			return ""
		})
		if len(missing) > 0 {
			return "", fmt.Errorf("the go build line uses %v, which this test does not know how to set", missing)
		}
		return v, nil
	}
	args := slices.Clone(build.args)
	for i, a := range args {
		if i > 0 && args[i-1] == "-o" {
			args[i] = out
			continue
		}
		if args[i], err = expand(a); err != nil {
			return "", err
		}
	}
	if outputPath(build.args) == "" {
		args = slices.Insert(args, 1, "-o", out)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot
	// As in the image build: the Dockerfile's own assignments, no
	// workspace, and no VCS stamping (.git is not in the build context).
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	for k, v := range build.env {
		if v, err = expand(v); err != nil {
			return "", err
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if _, ok := build.env["GOOS"]; !ok {
		return "", errors.New("the go build line does not set GOOS=$TARGETOS: every platform would get the builder's OS")
	}
	if _, ok := build.env["GOARCH"]; !ok {
		return "", errors.New("the go build line does not set GOARCH=$TARGETARCH: every platform would get the builder's architecture")
	}
	start := time.Now()
	output, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s/%s: go %s: %w\n%s", goos, goarch, strings.Join(args, " "), err, output)
	}
	if d := time.Since(start); d > 10*time.Second {
		fmt.Fprintf(os.Stderr, "built %s/%s in %v\n", goos, goarch, d.Round(time.Second))
	}
	return out, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Tests: the validator itself

// TestStrictDecodingRejects makes sure the decoding is as strict as claimed,
// so that the other tests cannot pass by ignoring a field.
func TestStrictDecodingRejects(t *testing.T) {
	cases := map[string]string{
		"unknown field": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 1
  replica: 2
`,
		"field in the wrong case": `
apiVersion: batch/v1
kind: Job
metadata: {name: x}
spec:
  BackoffLimit: 1
`,
		"duplicate key": `
apiVersion: v1
kind: Service
metadata: {name: x}
metadata: {name: y}
`,
		"wrong type": `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x}
spec:
  maxUnavailable: [1]
`,
		"unknown KEDA field": `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: w}
  maxReplicas: 3
  triggers: []
`,
		"KEDA metadata value not a string": `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: w}
  triggers:
    - type: postgresql
      metadata: {targetQueryValue: 4}
`,
		"unknown kind": `
apiVersion: v1
kind: Pod
metadata: {name: x}
`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			docs, err := yamlDocuments([]byte(doc))
			if err != nil {
				return // refused while converting: fine
			}
			if len(docs) != 1 {
				t.Fatalf("%d documents", len(docs))
			}
			if _, err := decodeDocument(docs[0]); err == nil {
				t.Error("decoded without error")
			}
		})
	}
	// And a valid Job decodes, so the Job decoder exists and works.
	docs, err := yamlDocuments([]byte(`
apiVersion: batch/v1
kind: Job
metadata: {name: picloud-migrate}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: migrate, image: picloud, args: [migrate]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeDocument(docs[0]); err != nil {
		t.Errorf("a valid Job: %v", err)
	}
}

func TestShellWords(t *testing.T) {
	got := shellWords(`CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "/out/pi cloud" ./cmd/picloud`)
	want := []string{"CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/pi cloud", "./cmd/picloud"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// ---------------------------------------------------------------------------
// Tests: the Kubernetes manifests

func TestManifestsDecodeStrictly(t *testing.T) {
	m := mustManifests(t)
	if len(m.all) == 0 {
		t.Fatal("no manifests")
	}
	for _, o := range m.all {
		if o.name == "" {
			t.Errorf("%s: no metadata.name", o)
		}
	}
	if len(m.deployments) == 0 || len(m.namespaces) == 0 || len(m.kustomizations) == 0 {
		t.Errorf("want at least a Namespace, a Deployment and kustomization.yaml; have %d, %d, %d",
			len(m.namespaces), len(m.deployments), len(m.kustomizations))
	}
}

func TestKustomizationListsEveryFile(t *testing.T) {
	m := mustManifests(t)
	k, ok := m.kustomizations["kustomization.yaml"]
	if !ok {
		t.Fatalf("no %s/kustomization.yaml", kubernetesDir)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if listed[r] {
			t.Errorf("kustomization.yaml lists %s twice", r)
		}
		listed[r] = true
		if _, err := os.Stat(filepath.Join(kubernetesDir, r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	for _, f := range m.files {
		if !isKustomizationFile(f) && !listed[f] {
			t.Errorf("%s is not listed in kustomization.yaml's resources", f)
		}
	}
	// Every container image is one the kustomization pins.
	pinned := map[string]bool{}
	for _, img := range k.Images {
		pinned[img.Name] = true
		if img.NewTag == "" && img.Digest == "" {
			t.Errorf("kustomization.yaml: image %s has neither newTag nor digest", img.Name)
		}
	}
	forEachPodSpec(m, func(owner string, spec *corev1.PodSpec) {
		for _, c := range allContainers(spec) {
			name := imageName(c.Image)
			if !pinned[name] {
				t.Errorf("%s, container %s: image %q is not in kustomization.yaml's images", owner, c.Name, c.Image)
			}
		}
	})
	// One namespace for everything.
	if len(m.namespaces) != 1 {
		t.Fatalf("%d Namespace objects, want 1", len(m.namespaces))
	}
	ns := m.namespaces[0].Name
	if k.Namespace != ns {
		t.Errorf("kustomization.yaml namespace %q, Namespace object %q", k.Namespace, ns)
	}
	for _, o := range m.all {
		if o.kind == "Namespace" {
			continue
		}
		if got := objectNamespace(o.obj); got != ns {
			t.Errorf("%s: namespace %q, want %q", o, got, ns)
		}
	}
}

// imageName strips the tag and digest from an image reference.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func objectNamespace(obj any) string {
	switch v := obj.(type) {
	case *scaledObject:
		return v.Metadata.Namespace
	case *triggerAuthentication:
		return v.Metadata.Namespace
	case metav1.Object:
		return v.GetNamespace()
	}
	return ""
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// forEachPodSpec calls fn for the pod template of every workload.
func forEachPodSpec(m *manifests, fn func(owner string, spec *corev1.PodSpec)) {
	for _, d := range m.deployments {
		fn("Deployment "+d.Name, &d.Spec.Template.Spec)
	}
	for _, j := range m.jobs {
		fn("Job "+j.Name, &j.Spec.Template.Spec)
	}
}

// role is the picloud subcommand a container runs: its first argument, or
// the image's CMD.
func role(c *corev1.Container) string {
	if len(c.Args) > 0 {
		return c.Args[0]
	}
	return roleServe
}

func isNodeRole(r string) bool { return r == roleServe || r == roleAPI || r == roleWorker }

// envValue returns a literal environment value.
func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// listenAddr is where a node container serves HTTP, or "" for none.
func listenAddr(c *corev1.Container, df *dockerfile, f picloudFacts) string {
	switch role(c) {
	case roleAPI, roleServe:
		if v, ok := envValue(c, "PICLOUD_ADDR"); ok {
			return v
		}
		if v, ok := df.env()["PICLOUD_ADDR"]; ok {
			return v
		}
		return f.defaultAddr
	case roleWorker:
		v, _ := envValue(c, "PICLOUD_HEALTH_ADDR")
		return v
	}
	return ""
}

// containerPort resolves a probe's or Service's port (a name or a number)
// to a port the container declares.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int32, error) {
	for _, p := range c.Ports {
		if port.Type == intstr.String && p.Name == port.StrVal {
			return p.ContainerPort, nil
		}
		if port.Type == intstr.Int && p.ContainerPort == port.IntVal {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("port %s is not declared in container %s's ports", port.String(), c.Name)
}

func TestDeployments(t *testing.T) {
	m := mustManifests(t)
	df := mustDockerfile(t)
	f := readFacts(t)
	uid, gid, err := df.user()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.deployments {
		t.Run(d.Name, func(t *testing.T) {
			spec := &d.Spec.Template.Spec
			// Selector and labels.
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Fatalf("selector %v: %v", d.Spec.Selector, err)
			}
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %v does not match the pod template's labels %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
			for _, other := range m.deployments {
				if other != d && sel.Matches(labels.Set(other.Spec.Template.Labels)) {
					t.Errorf("selector %v also selects the pods of Deployment %s", d.Spec.Selector, other.Name)
				}
			}
			for _, tsc := range spec.TopologySpreadConstraints {
				s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
				if err != nil || !s.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("topologySpreadConstraint %s: its labelSelector does not select this Deployment's pods", tsc.TopologyKey)
				}
			}
			checkPodSecurity(t, spec, df, uid, gid)
			checkContainers(t, m, d, df, f)
		})
	}
}

// checkPodSecurity checks what the "restricted" Pod Security Standard
// requires, and a little more.
func checkPodSecurity(t *testing.T, spec *corev1.PodSpec, df *dockerfile, uid, gid int) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("hostNetwork, hostPID or hostIPC set")
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s: hostPath", v.Name)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: PiCloud does not call the Kubernetes API, and a script escaping its sandbox should find no token")
	}
	if psc.RunAsUser != nil && *psc.RunAsUser != int64(uid) {
		t.Errorf("pod runAsUser %d, the image's USER is %d", *psc.RunAsUser, uid)
	}
	if psc.RunAsGroup != nil && *psc.RunAsGroup != int64(gid) {
		t.Errorf("pod runAsGroup %d, the image's USER group is %d", *psc.RunAsGroup, gid)
	}
	noShell := df.final().from == "scratch" || strings.Contains(df.final().from, "distroless")
	for _, c := range allContainers(spec) {
		csc := c.SecurityContext
		if csc == nil {
			csc = &corev1.SecurityContext{}
		}
		nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) || (csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("container %s: runAsNonRoot is not true (pod or container)", c.Name)
		}
		if u := csc.RunAsUser; u != nil && *u == 0 {
			t.Errorf("container %s: runAsUser 0", c.Name)
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if csc.Privileged != nil && *csc.Privileged {
			t.Errorf("container %s: privileged", c.Name)
		}
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: capabilities do not drop ALL", c.Name)
		} else if len(csc.Capabilities.Add) > 0 {
			t.Errorf("container %s: adds capabilities %v", c.Name, csc.Capabilities.Add)
		}
		seccomp := csc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
			t.Errorf("container %s: no RuntimeDefault (or Localhost) seccomp profile", c.Name)
		}
		if c.Command != nil {
			t.Errorf("container %s: command replaces the image's ENTRYPOINT (the picloud binary); pass the subcommand in args", c.Name)
		}
		if noShell {
			for what, h := range map[string]*corev1.ProbeHandler{
				"livenessProbe": probeHandler(c.LivenessProbe), "readinessProbe": probeHandler(c.ReadinessProbe), "startupProbe": probeHandler(c.StartupProbe),
			} {
				if h != nil && h.Exec != nil {
					t.Errorf("container %s: %s runs a command, and the image has nothing to run but picloud", c.Name, what)
				}
			}
			if c.Lifecycle != nil {
				for what, h := range map[string]*corev1.LifecycleHandler{"preStop": c.Lifecycle.PreStop, "postStart": c.Lifecycle.PostStart} {
					if h != nil && h.Exec != nil {
						t.Errorf("container %s: %s runs a command, and the image has no shell (use a sleep action)", c.Name, what)
					}
				}
			}
		}
	}
}

func probeHandler(p *corev1.Probe) *corev1.ProbeHandler {
	if p == nil {
		return nil
	}
	return &p.ProbeHandler
}

// checkContainers checks each container against what PiCloud does.
func checkContainers(t *testing.T, m *manifests, d *appsv1.Deployment, df *dockerfile, f picloudFacts) {
	t.Helper()
	spec := &d.Spec.Template.Spec
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	hasMigrateInit := false
	for _, c := range spec.InitContainers {
		if role(&c) == roleMigrate {
			hasMigrateInit = true
		}
	}
	nodes := 0
	for _, c := range allContainers(spec) {
		checkResources(t, c)
		checkDatabaseURL(t, m, c)
		r := role(c)
		switch {
		case r == roleMigrate:
			if !slices.ContainsFunc(spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name }) {
				t.Errorf("container %s runs migrate as a long-running container; it exits when done", c.Name)
			}
			continue
		case !isNodeRole(r):
			t.Errorf("container %s: args %q: not a picloud node role (serve, api, worker) nor migrate", c.Name, c.Args)
			continue
		}
		nodes++
		// Migrations: a node that does not migrate needs something that
		// does before it runs.
		if v, ok := envValue(c, "PICLOUD_MIGRATE"); ok && v == "false" && !hasMigrateInit && !hasMigrateJob(m) {
			t.Errorf("container %s: PICLOUD_MIGRATE=false, but no migrate init container or Job applies migrations", c.Name)
		}
		checkProbes(t, c, df, f)
		// Drain: the kubelet's SIGKILL must not cut it short.
		drain := f.defaultDrain
		if v, ok := envValue(c, "PICLOUD_DRAIN_TIMEOUT"); ok {
			drain = mustDuration(t, v)
		}
		var preStop int64
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = c.Lifecycle.PreStop.Sleep.Seconds
		}
		if need := preStop + int64(math.Ceil(drain.Seconds())); grace <= need {
			t.Errorf("terminationGracePeriodSeconds %d: not more than preStop (%d s) + drain timeout (%v): the kubelet kills the node mid-drain", grace, preStop, drain)
		}
		if r == roleWorker || r == roleServe {
			checkWorker(t, c, f)
		}
	}
	if nodes != 1 {
		t.Errorf("%d picloud node containers; want exactly one per pod", nodes)
	}
}

func hasMigrateJob(m *manifests) bool {
	for _, j := range m.jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			if role(&c) == roleMigrate {
				return true
			}
		}
	}
	return false
}

func checkResources(t *testing.T, c *corev1.Container) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		limit, ok := c.Resources.Limits[name]
		if !ok || limit.IsZero() {
			t.Errorf("container %s: no %s limit", c.Name, name)
			continue
		}
		req, ok := c.Resources.Requests[name]
		if !ok || req.IsZero() {
			t.Errorf("container %s: no %s request", c.Name, name)
			continue
		}
		if req.Cmp(limit) > 0 {
			t.Errorf("container %s: %s request %s above its limit %s", c.Name, name, req.String(), limit.String())
		}
	}
}

// checkDatabaseURL: every picloud container gets DATABASE_URL from a Secret
// that the manifests define, with that key.
func checkDatabaseURL(t *testing.T, m *manifests, c *corev1.Container) {
	t.Helper()
	e := envVar(c, "DATABASE_URL")
	if e == nil {
		t.Errorf("container %s: no DATABASE_URL", c.Name)
		return
	}
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Errorf("container %s: DATABASE_URL is not taken from a Secret", c.Name)
		return
	}
	ref := e.ValueFrom.SecretKeyRef
	if !secretHasKey(m, ref.Name, ref.Key) {
		t.Errorf("container %s: DATABASE_URL from Secret %s key %s, which the manifests do not define", c.Name, ref.Name, ref.Key)
	}
}

func secretHasKey(m *manifests, name, key string) bool {
	for _, s := range m.secrets {
		if s.Name != name {
			continue
		}
		if _, ok := s.StringData[key]; ok {
			return true
		}
		if _, ok := s.Data[key]; ok {
			return true
		}
	}
	return false
}

// checkProbes: liveness on /healthz (never the database: a database outage
// must not restart every pod), readiness on /readyz, both on a declared
// port that is the one PiCloud listens on, on an address the kubelet
// reaches.
func checkProbes(t *testing.T, c *corev1.Container, df *dockerfile, f picloudFacts) {
	t.Helper()
	addr := listenAddr(c, df, f)
	if addr == "" {
		t.Errorf("container %s (%s): serves no HTTP, so it cannot be probed; set PICLOUD_HEALTH_ADDR", c.Name, role(c))
		return
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("container %s: listen address %q: %v", c.Name, addr, err)
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Errorf("container %s: listens on %s, which the kubelet's probes (and Services) cannot reach", c.Name, addr)
	}
	listenPort, _ := strconv.Atoi(portStr)
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		paths []string
	}{
		{"livenessProbe", c.LivenessProbe, []string{healthzPath}},
		{"readinessProbe", c.ReadinessProbe, []string{readyzPath}},
		{"startupProbe", c.StartupProbe, []string{healthzPath, readyzPath}},
	} {
		if p.probe == nil {
			if p.what != "startupProbe" {
				t.Errorf("container %s: no %s", c.Name, p.what)
			}
			continue
		}
		get := p.probe.HTTPGet
		if get == nil {
			t.Errorf("container %s: %s is not an httpGet", c.Name, p.what)
			continue
		}
		if !slices.Contains(p.paths, get.Path) {
			t.Errorf("container %s: %s on %s; PiCloud serves %v for it", c.Name, p.what, get.Path, p.paths)
		}
		port, err := containerPort(c, get.Port)
		if err != nil {
			t.Errorf("container %s: %s: %v", c.Name, p.what, err)
		} else if int(port) != listenPort {
			t.Errorf("container %s: %s on port %d, but PiCloud listens on %s", c.Name, p.what, port, addr)
		}
		if get.Path == readyzPath {
			timeout := time.Duration(max(p.probe.TimeoutSeconds, 1)) * time.Second
			if timeout <= f.readyTimeout {
				t.Errorf("container %s: %s timeoutSeconds %v, not above /readyz's own deadline of %v", c.Name, p.what, timeout, f.readyTimeout)
			}
		}
	}
}

// checkWorker: a container that runs functions.
func checkWorker(t *testing.T, c *corev1.Container, f picloudFacts) {
	t.Helper()
	if e := envVar(c, "PICLOUD_NODE_ID"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("container %s: PICLOUD_NODE_ID is not the pod's name (downward API, fieldRef metadata.name)", c.Name)
	}
	concurrency, err := workerConcurrency(c)
	if err != nil {
		t.Errorf("container %s: %v", c.Name, err)
		return
	}
	sandboxMem := f.defaultSandboxMem
	if v, ok := envValue(c, "PICLOUD_SANDBOX_MEMORY_BYTES"); ok {
		sandboxMem = atoi64(t, v)
	}
	// Sandboxes are child processes in this container: its memory limit
	// holds them all at their limit, plus the worker itself.
	perSandbox := sandboxMem + sandboxOverhead
	if v, _ := envValue(c, "PICLOUD_SANDBOX"); v == "inprocess" {
		perSandbox = sandboxMem / 2 // the heap budget, in the worker's own process
	}
	need := resource.NewQuantity(int64(concurrency)*perSandbox+workerParentMemory, resource.BinarySI)
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if limit.Cmp(*need) < 0 {
		t.Errorf("container %s: memory limit %s below %d sandboxes x (%d MiB + %d MiB) + %d MiB = %d MiB: a script at its sandbox limit would get the whole container OOM-killed",
			c.Name, limit.String(), concurrency, sandboxMem>>20, sandboxOverhead>>20, workerParentMemory>>20, need.Value()>>20)
	}
}

// workerConcurrency is PICLOUD_CONCURRENCY, which must be explicit: the
// default follows GOMAXPROCS, which follows the CPU limit, and KEDA's
// target and the memory limit are sized from it.
func workerConcurrency(c *corev1.Container) (int, error) {
	v, ok := envValue(c, "PICLOUD_CONCURRENCY")
	if !ok {
		return 0, errors.New("PICLOUD_CONCURRENCY is not set explicitly")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("PICLOUD_CONCURRENCY %q: not a positive integer", v)
	}
	return n, nil
}

// nodeContainer returns the picloud node container of a pod spec.
func nodeContainer(spec *corev1.PodSpec) *corev1.Container {
	for i := range spec.Containers {
		if isNodeRole(role(&spec.Containers[i])) {
			return &spec.Containers[i]
		}
	}
	return nil
}

func TestServices(t *testing.T) {
	m := mustManifests(t)
	for _, s := range m.services {
		t.Run(s.Name, func(t *testing.T) {
			if len(s.Spec.Selector) == 0 {
				t.Fatal("no selector")
			}
			sel := labels.SelectorFromSet(s.Spec.Selector)
			var targets []*appsv1.Deployment
			for _, d := range m.deployments {
				if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					targets = append(targets, d)
				}
			}
			if len(targets) == 0 {
				t.Fatalf("selector %v matches no Deployment's pods", s.Spec.Selector)
			}
			for _, d := range targets {
				c := nodeContainer(&d.Spec.Template.Spec)
				if c == nil {
					t.Errorf("selects Deployment %s, which runs no picloud node", d.Name)
					continue
				}
				if r := role(c); r != roleAPI && r != roleServe {
					t.Errorf("selects Deployment %s, whose pods run %q and serve only probes", d.Name, r)
				}
				for _, p := range s.Spec.Ports {
					target := p.TargetPort
					if target.Type == intstr.Int && target.IntVal == 0 {
						target = intstr.FromInt32(p.Port)
					}
					if _, err := containerPort(c, target); err != nil {
						t.Errorf("port %s: Deployment %s: %v", p.Name, d.Name, err)
					}
				}
			}
		})
	}
}

// autoscaled returns the ScaledObject that scales a Deployment, if any.
func autoscaled(m *manifests, d *appsv1.Deployment) *scaledObject {
	for _, so := range m.scaledObjects {
		ref := so.Spec.ScaleTargetRef
		if ref != nil && ref.Name == d.Name && (ref.Kind == "" || ref.Kind == "Deployment") {
			return so
		}
	}
	return nil
}

func TestPodDisruptionBudgets(t *testing.T) {
	m := mustManifests(t)
	covered := map[string]bool{}
	for _, pdb := range m.pdbs {
		t.Run(pdb.Name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Fatalf("selector %v: %v", pdb.Spec.Selector, err)
			}
			var matched []*appsv1.Deployment
			for _, d := range m.deployments {
				if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					matched = append(matched, d)
				}
			}
			if len(matched) != 1 {
				t.Fatalf("selects the pods of %d Deployments, want 1", len(matched))
			}
			d := matched[0]
			covered[d.Name] = true
			if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
				t.Fatal("set exactly one of maxUnavailable and minAvailable")
			}
			if so := autoscaled(m, d); so != nil && pdb.Spec.MinAvailable != nil {
				t.Errorf("Deployment %s is autoscaled down to %d: minAvailable would block node drains at the minimum; use maxUnavailable", d.Name, ptrOr(so.Spec.MinReplicaCount, 0))
			}
			if minAvail := pdb.Spec.MinAvailable; minAvail != nil && minAvail.Type == intstr.Int && minAvail.IntVal >= ptrOr(d.Spec.Replicas, 1) {
				t.Errorf("minAvailable %d with %d replicas: no pod may ever be evicted, node drains hang", minAvail.IntVal, ptrOr(d.Spec.Replicas, 1))
			}
			if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal < 1 {
				t.Errorf("maxUnavailable %d: no pod may ever be evicted, node drains hang", mu.IntVal)
			}
		})
	}
	for _, d := range m.deployments {
		if !covered[d.Name] {
			t.Errorf("Deployment %s has no PodDisruptionBudget", d.Name)
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ---------------------------------------------------------------------------
// Tests: KEDA

func TestScaledObjects(t *testing.T) {
	m := mustManifests(t)
	f := readFacts(t)
	if len(m.scaledObjects) == 0 {
		t.Fatal("no ScaledObject")
	}
	for _, so := range m.scaledObjects {
		t.Run(so.Metadata.Name, func(t *testing.T) {
			if so.APIVersion != "keda.sh/v1alpha1" {
				t.Errorf("apiVersion %s", so.APIVersion)
			}
			ref := so.Spec.ScaleTargetRef
			if ref == nil || ref.Name == "" {
				t.Fatal("no scaleTargetRef.name")
			}
			if (ref.APIVersion != "" && ref.APIVersion != "apps/v1") || (ref.Kind != "" && ref.Kind != "Deployment") {
				t.Errorf("scaleTargetRef %s %s: want apps/v1 Deployment", ref.APIVersion, ref.Kind)
			}
			var target *appsv1.Deployment
			for _, d := range m.deployments {
				if d.Name == ref.Name && d.Namespace == so.Metadata.Namespace {
					target = d
				}
			}
			if target == nil {
				t.Fatalf("scaleTargetRef names Deployment %s/%s, which the manifests do not define", so.Metadata.Namespace, ref.Name)
			}
			if target.Spec.Replicas != nil {
				t.Errorf("Deployment %s sets replicas: every kubectl apply would reset what the autoscaler chose", target.Name)
			}
			worker := nodeContainer(&target.Spec.Template.Spec)
			if worker == nil || (role(worker) != roleWorker && role(worker) != roleServe) {
				t.Fatalf("Deployment %s runs no worker: queue depth says nothing about its load", target.Name)
			}
			minR, maxR := ptrOr(so.Spec.MinReplicaCount, 0), ptrOr(so.Spec.MaxReplicaCount, 100)
			if so.Spec.MaxReplicaCount == nil || maxR < 1 || minR < 0 || minR > maxR {
				t.Errorf("minReplicaCount %d, maxReplicaCount %d (state both, max >= 1)", minR, maxR)
			}
			if p := so.Spec.PollingInterval; p != nil && *p < 1 {
				t.Errorf("pollingInterval %d", *p)
			}
			if fb := so.Spec.Fallback; fb != nil && (fb.Replicas < 1 || fb.Replicas > maxR || fb.FailureThreshold < 1) {
				t.Errorf("fallback %+v: replicas must be within 1..maxReplicaCount, failureThreshold >= 1", *fb)
			}
			if len(so.Spec.Triggers) == 0 {
				t.Fatal("no triggers")
			}
			for i, tr := range so.Spec.Triggers {
				if tr.Type != "postgresql" {
					t.Errorf("trigger %d: type %q, want postgresql", i, tr.Type)
					continue
				}
				checkPostgresqlTrigger(t, m, so, tr, worker, f)
			}
		})
	}
	for _, ta := range m.triggerAuths {
		if ta.APIVersion != "keda.sh/v1alpha1" {
			t.Errorf("TriggerAuthentication %s: apiVersion %s", ta.Metadata.Name, ta.APIVersion)
		}
		if len(ta.Spec.SecretTargetRef) == 0 {
			t.Errorf("TriggerAuthentication %s: no secretTargetRef", ta.Metadata.Name)
		}
		for _, ref := range ta.Spec.SecretTargetRef {
			if !slices.Contains(postgresqlAuthParams, ref.Parameter) {
				t.Errorf("TriggerAuthentication %s: parameter %q is not one the postgresql scaler reads (%v)", ta.Metadata.Name, ref.Parameter, postgresqlAuthParams)
			}
			if !secretHasKey(m, ref.Name, ref.Key) {
				t.Errorf("TriggerAuthentication %s: Secret %s key %s is not defined in the manifests", ta.Metadata.Name, ref.Name, ref.Key)
			}
		}
	}
}

func checkPostgresqlTrigger(t *testing.T, m *manifests, so *scaledObject, tr scaleTriggers, worker *corev1.Container, f picloudFacts) {
	t.Helper()
	for k := range tr.Metadata {
		if !slices.Contains(postgresqlMetadataKeys, k) {
			t.Errorf("trigger metadata %q: not a postgresql scaler setting (KEDA would ignore it)", k)
		}
	}
	if tr.MetricType != "" && tr.MetricType != "AverageValue" {
		t.Errorf("metricType %s: the target is per worker (AverageValue)", tr.MetricType)
	}
	// The connection: from a TriggerAuthentication, or from an environment
	// variable of the scaled container.
	hasConnection := false
	if ref := tr.AuthenticationRef; ref != nil {
		if ref.Kind != "" && ref.Kind != "TriggerAuthentication" {
			t.Errorf("authenticationRef kind %s: only TriggerAuthentication is checked here", ref.Kind)
		}
		var ta *triggerAuthentication
		for _, a := range m.triggerAuths {
			if a.Metadata.Name == ref.Name && a.Metadata.Namespace == so.Metadata.Namespace {
				ta = a
			}
		}
		if ta == nil {
			t.Errorf("authenticationRef names TriggerAuthentication %s, which the manifests do not define", ref.Name)
		} else {
			hasConnection = slices.ContainsFunc(ta.Spec.SecretTargetRef, func(r authSecretTargetRef) bool { return r.Parameter == "connection" })
		}
	}
	if env, ok := tr.Metadata["connectionFromEnv"]; ok {
		if envVar(worker, env) == nil {
			t.Errorf("connectionFromEnv %s: container %s has no such variable", env, worker.Name)
		}
		hasConnection = true
	}
	if !hasConnection && tr.Metadata["host"] == "" {
		t.Error("no connection: neither a TriggerAuthentication with parameter connection, nor connectionFromEnv, nor host")
	}

	// targetQueryValue: one worker's worth of due invocations.
	target, err := strconv.ParseFloat(tr.Metadata["targetQueryValue"], 64)
	if err != nil || target <= 0 {
		t.Errorf("targetQueryValue %q: want a positive number", tr.Metadata["targetQueryValue"])
	}
	if concurrency, err := workerConcurrency(worker); err == nil && target != float64(concurrency) {
		t.Errorf("targetQueryValue %v, but a worker runs PICLOUD_CONCURRENCY=%d at once: the autoscaler would aim at the wrong number of workers", target, concurrency)
	}
	if v, ok := tr.Metadata["activationTargetQueryValue"]; ok {
		if a, err := strconv.ParseFloat(v, 64); err != nil || a < 0 {
			t.Errorf("activationTargetQueryValue %q", v)
		}
	}
	if err := checkQuery(tr.Metadata["query"], f); err != nil {
		t.Errorf("query: %v\n%s", err, tr.Metadata["query"])
	}
}

var (
	sqlForbiddenRx = regexp.MustCompile(`(?i)\b(INSERT|UPDATE|DELETE|MERGE|DROP|ALTER|CREATE|TRUNCATE|GRANT|REVOKE|COPY|CALL|DO|LOCK|NOTIFY|LISTEN|VACUUM|PG_SLEEP|SET|INTO)\b`)
	sqlTableRx     = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)`)
	sqlStatusInRx  = regexp.MustCompile(`(?i)\bstatus\s+IN\s*\(([^)]*)\)`)
	sqlStateInRx   = regexp.MustCompile(`(?i)\bstate\s+IN\s*\(([^)]*)\)`)
)

// riverJobStates are River's job states (the river_job_state enum).
var riverJobStates = []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}

var sqlFunctionCallRx = regexp.MustCompile(`(?i)^SELECT\s+picloud\.(\w+)\s*\(\s*\)$`)

// checkQuery is a textual check of the KEDA query: either a call of a
// function of sql/functions that only reads (STABLE), or one read-only
// SELECT that counts picloud.invocations rows, naming only tables and
// statuses the schema has.
func checkQuery(q string, f picloudFacts) error {
	q = strings.Join(strings.Fields(q), " ")
	if q == "" {
		return errors.New("empty")
	}
	if m := sqlFunctionCallRx.FindStringSubmatch(q); m != nil {
		if !slices.Contains(f.stableFunctions, strings.ToLower(m[1])) {
			return fmt.Errorf("picloud.%s: not a STABLE function of sql/functions", m[1])
		}
		return nil
	}
	if !strings.HasPrefix(strings.ToUpper(q), "SELECT ") {
		return errors.New("not a SELECT")
	}
	if strings.Contains(q, ";") {
		return errors.New("more than one statement (;)")
	}
	if m := sqlForbiddenRx.FindString(q); m != "" {
		return fmt.Errorf("%s in a query that must only read", m)
	}
	if strings.Count(q, "(") != strings.Count(q, ")") || strings.Count(q, "'")%2 != 0 {
		return errors.New("unbalanced parentheses or quotes")
	}
	if !regexp.MustCompile(`(?i)\bcount\s*\(`).MatchString(q) {
		return errors.New("counts nothing (no count(...))")
	}
	tables := sqlTableRx.FindAllStringSubmatch(q, -1)
	sawInvocations := false
	for _, m := range tables {
		schema, table, ok := strings.Cut(strings.ToLower(m[1]), ".")
		if !ok || schema != "picloud" {
			return fmt.Errorf("table %s: not schema-qualified in picloud (KEDA's connection may have another search_path)", m[1])
		}
		if table == "invocations" {
			sawInvocations = true
		}
		if table != "river_job" && !slices.Contains(f.tables, table) {
			return fmt.Errorf("table %s: not created by sql/migrations", m[1])
		}
	}
	if !sawInvocations {
		return errors.New("does not read picloud.invocations")
	}
	for _, m := range sqlStatusInRx.FindAllStringSubmatch(q, -1) {
		for _, s := range sqlStringLiterals(m[1]) {
			if !slices.Contains(f.invocationStatuses, s) {
				return fmt.Errorf("status %q: not an invocation status %v", s, f.invocationStatuses)
			}
		}
	}
	for _, m := range sqlStateInRx.FindAllStringSubmatch(q, -1) {
		for _, s := range sqlStringLiterals(m[1]) {
			if !slices.Contains(riverJobStates, s) {
				return fmt.Errorf("state %q: not a River job state %v", s, riverJobStates)
			}
		}
	}
	return nil
}

func TestCheckQueryRejects(t *testing.T) {
	f := picloudFacts{tables: []string{"invocations", "schedules"}, invocationStatuses: []string{"queued", "running", "succeeded"},
		stableFunctions: []string{"worker_demand"}}
	for _, good := range []string{
		"SELECT count(*) FROM picloud.invocations WHERE status IN ('queued', 'running')",
		"SELECT picloud.worker_demand()",
	} {
		if err := checkQuery(good, f); err != nil {
			t.Fatalf("%s: %v", good, err)
		}
	}
	for _, q := range []string{
		"DELETE FROM picloud.invocations",
		"SELECT count(*) FROM picloud.invocations; DROP TABLE picloud.invocations",
		"SELECT count(*) FROM invocations",
		"SELECT count(*) FROM picloud.river_job",
		"SELECT count(*) FROM picloud.invocations WHERE status IN ('waiting')",
		"SELECT count(*) FROM picloud.invocations i JOIN picloud.nope n ON true",
		"SELECT 1 FROM picloud.invocations",
		"SELECT picloud.sweep()",
		"SELECT picloud.worker_demand(); DELETE FROM picloud.invocations",
	} {
		if checkQuery(q, f) == nil {
			t.Errorf("accepted %q", q)
		}
	}
}

// TestConnectionBudget adds up the PostgreSQL connections every pod may
// hold at once, at the peak of a rollout of everything, against the
// server's limit.
func TestConnectionBudget(t *testing.T) {
	m := mustManifests(t)
	total := kedaConnections
	var parts []string
	for _, d := range m.deployments {
		c := nodeContainer(&d.Spec.Template.Spec)
		if c == nil {
			continue
		}
		perPod := apiConnections
		if r := role(c); r == roleWorker || r == roleServe {
			concurrency, err := workerConcurrency(c)
			if err != nil {
				t.Fatalf("Deployment %s: %v", d.Name, err)
			}
			perPod = 2*concurrency + 8 + 2
		}
		replicas := int(ptrOr(d.Spec.Replicas, 1))
		if so := autoscaled(m, d); so != nil {
			replicas = int(ptrOr(so.Spec.MaxReplicaCount, 100))
		}
		surge := 0
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
			s, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, replicas, true)
			if err != nil {
				t.Fatal(err)
			}
			surge = s
		} else if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			surge = int(math.Ceil(float64(replicas) / 4)) // the default 25%
		}
		n := (replicas + surge) * perPod
		if slices.ContainsFunc(d.Spec.Template.Spec.InitContainers, func(c corev1.Container) bool { return role(&c) == roleMigrate }) {
			n += migrateConnections
		}
		parts = append(parts, fmt.Sprintf("%s: (%d+%d) x %d", d.Name, replicas, surge, perPod))
		total += n
	}
	t.Logf("peak connections: %d (%s, KEDA %d) of %d", total, strings.Join(parts, ", "), kedaConnections, postgresConnections)
	if total > postgresConnections {
		t.Errorf("up to %d connections (%s, KEDA %d): more than PostgreSQL's %d; lower maxReplicaCount or concurrency, or raise max_connections (and postgresConnections here)",
			total, strings.Join(parts, ", "), kedaConnections, postgresConnections)
	}
}

// ---------------------------------------------------------------------------
// Tests: the Caddyfile

// caddyLine is one line of a Caddyfile: its tokens, and the block depth at
// its start.
type caddyLine struct {
	n      int
	depth  int
	tokens []string
}

func parseCaddyfile(data []byte) []caddyLine {
	var out []caddyLine
	depth := 0
	for i, raw := range strings.Split(string(data), "\n") {
		var tokens []string
		for _, tok := range strings.Fields(raw) {
			if strings.HasPrefix(tok, "#") {
				break
			}
			tokens = append(tokens, tok)
		}
		if len(tokens) == 0 {
			continue
		}
		start := depth
		if tokens[0] == "}" {
			start--
		}
		out = append(out, caddyLine{n: i + 1, depth: start, tokens: tokens})
		for _, tok := range tokens {
			switch tok {
			case "{":
				depth++
			case "}":
				depth--
			}
		}
	}
	return out
}

// caddySize parses a Caddy size (go-humanize: 6MiB, 6MB, 6291456).
func caddySize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			return int64(v * float64(u.mult)), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func TestCaddyfile(t *testing.T) {
	data, err := os.ReadFile(caddyfilePath)
	if err != nil {
		t.Fatal(err)
	}
	f := readFacts(t)
	m := mustManifests(t)
	df := mustDockerfile(t)
	lines := parseCaddyfile(data)

	// The api port, as the api Deployment (or the image) has it.
	apiPort := ""
	for _, d := range m.deployments {
		if c := nodeContainer(&d.Spec.Template.Spec); c != nil && role(c) == roleAPI {
			_, apiPort, _ = net.SplitHostPort(listenAddr(c, df, f))
		}
	}
	if apiPort == "" {
		t.Fatal("no api Deployment to take the api port from")
	}

	// A site with a host name: automatic HTTPS.
	var sites []string
	for _, l := range lines {
		if l.depth == 0 && l.tokens[len(l.tokens)-1] == "{" && len(l.tokens) > 1 && !strings.HasPrefix(l.tokens[0], "(") {
			sites = append(sites, l.tokens[:len(l.tokens)-1]...)
		}
	}
	if len(sites) == 0 {
		t.Fatal("no site block")
	}
	for _, s := range sites {
		host := strings.TrimSuffix(strings.TrimPrefix(s, "https://"), ",")
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(host, ":") || !strings.Contains(host, ".") {
			t.Errorf("site %q: not a host name, so no automatic HTTPS", s)
		}
	}

	directive := func(name string) []caddyLine {
		var out []caddyLine
		for _, l := range lines {
			if l.tokens[0] == name {
				out = append(out, l)
			}
		}
		return out
	}
	arg := func(name string) (string, bool) {
		ls := directive(name)
		if len(ls) == 0 || len(ls[0].tokens) < 2 {
			return "", false
		}
		return ls[0].tokens[1], true
	}

	proxies := directive("reverse_proxy")
	if len(proxies) == 0 {
		t.Fatal("no reverse_proxy")
	}
	var upstreams []string
	for _, l := range proxies {
		for _, tok := range l.tokens[1:] {
			if tok != "{" && !strings.HasPrefix(tok, "@") && !strings.HasPrefix(tok, "/") && tok != "*" {
				upstreams = append(upstreams, tok)
			}
		}
	}
	for _, l := range directive("to") {
		upstreams = append(upstreams, l.tokens[1:]...)
	}
	if len(upstreams) < 2 {
		t.Errorf("%d upstream(s): list every api node, to balance and fail over", len(upstreams))
	}
	for _, u := range upstreams {
		_, port, err := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		if err != nil || port != apiPort {
			t.Errorf("upstream %s: not on the api port %s", u, apiPort)
		}
	}

	if v, ok := arg("health_uri"); !ok || v != readyzPath {
		t.Errorf("health_uri %q: want active health checks on %s", v, readyzPath)
	}
	if v, ok := arg("health_timeout"); ok && mustDuration(t, v) <= f.readyTimeout {
		t.Errorf("health_timeout %s: not above /readyz's own deadline of %v", v, f.readyTimeout)
	}
	for _, bad := range []string{"unhealthy_status", "unhealthy_latency"} {
		if len(directive(bad)) > 0 {
			t.Errorf("%s: PiCloud answers 500/504 for failed and timed-out functions, and slow functions are slow by design; neither means the node is unhealthy", bad)
		}
	}

	if len(directive("request_body")) == 0 {
		t.Error("no request_body limit")
	} else if v, ok := arg("max_size"); !ok {
		t.Error("request_body without max_size")
	} else if n, err := caddySize(v); err != nil || n != f.maxBodyBytes {
		t.Errorf("request_body max_size %s = %d bytes, PiCloud's /fn limit is %d", v, n, f.maxBodyBytes)
	}

	// A synchronous call waits up to the longest function timeout plus the
	// api's queue grace for its response.
	longest := f.maxFunctionTimeout + f.queueGrace
	if v, ok := arg("response_header_timeout"); ok && mustDuration(t, v) < longest {
		t.Errorf("response_header_timeout %s: a synchronous call may wait %v (the maximum timeout_ms plus %v) for its response", v, longest, f.queueGrace)
	}
	if v, ok := arg("write"); ok && mustDuration(t, v) < longest {
		t.Errorf("server write timeout %s: shorter than the longest synchronous call (%v)", v, longest)
	}
}

// ---------------------------------------------------------------------------
// Tests: the Dockerfile and its build

func TestDockerfile(t *testing.T) {
	df := mustDockerfile(t)
	f := readFacts(t)

	// The Go version: at least go.mod's, or the build would download a
	// toolchain (or fail without network).
	goVersion := df.args["GO_VERSION"]
	build := df.stages[0]
	if !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("build stage FROM %s: want golang:${GO_VERSION}", build.from)
	} else if goVersion == "" {
		t.Error("no ARG GO_VERSION=<version> before the first FROM")
	} else if version.Compare("go"+goVersion, f.goDirective) < 0 {
		t.Errorf("GO_VERSION %s is older than go.mod's %s", goVersion, f.goDirective)
	}
	if build.platformFlag != "$BUILDPLATFORM" {
		t.Errorf("build stage --platform=%q: want $BUILDPLATFORM, so that other architectures are cross-compiled rather than emulated", build.platformFlag)
	}

	st, gb, err := df.buildCommand()
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, in := range st.all("ARG") {
		name, _, _ := strings.Cut(in.args, "=")
		declared[name] = true
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "$TARGETOS", "GOARCH": "$TARGETARCH"} {
		if gb.env[k] != want {
			t.Errorf("go build: %s=%q, want %s", k, gb.env[k], want)
		}
	}
	for _, a := range []string{"TARGETOS", "TARGETARCH"} {
		if !declared[a] {
			t.Errorf("the build stage does not declare ARG %s", a)
		}
	}
	if !slices.Contains(gb.args, "-trimpath") {
		t.Error("go build without -trimpath")
	}
	if !slices.Contains(gb.args, "-ldflags=-s -w") && !slices.Contains(gb.args, "-ldflags=-w -s") {
		t.Errorf("go build without -ldflags='-s -w': %q", gb.args)
	}
	if gb.args[len(gb.args)-1] != "./cmd/picloud" {
		t.Errorf("go build of %s, want ./cmd/picloud", gb.args[len(gb.args)-1])
	}
	out := outputPath(gb.args)
	if out == "" {
		t.Fatal("go build without -o")
	}

	// The final stage: minimal, non-root, CA certificates, the binary.
	final := df.final()
	switch {
	case final.from == "scratch":
		certs := false
		for _, in := range final.all("COPY") {
			certs = certs || strings.Contains(in.args, "ca-certificates")
		}
		if !certs {
			t.Error("FROM scratch without CA certificates: scripts' outbound HTTPS would fail")
		}
	case strings.HasPrefix(final.from, "gcr.io/distroless/static"):
		// CA certificates, tzdata and a nonroot user included.
	default:
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static (nonroot) or scratch", final.from)
	}
	uid, _, err := df.user()
	if err != nil {
		t.Error(err)
	} else if uid == 0 {
		t.Error("USER 0: root")
	}
	var binary string
	for _, in := range final.all("COPY") {
		words := strings.Fields(in.args)
		if len(words) >= 3 && strings.HasPrefix(words[0], "--from=") && words[1] == out {
			binary = words[2]
		}
	}
	if binary == "" {
		t.Fatalf("the final stage does not COPY --from the build stage's %s", out)
	}
	entrypoints := final.all("ENTRYPOINT")
	if len(entrypoints) != 1 || entrypoints[0].args != fmt.Sprintf(`[%q]`, binary) {
		t.Errorf("ENTRYPOINT %v: want [%q] (exec form: the binary is PID 1 and gets SIGTERM)", entrypoints, binary)
	}
	cmds := final.all("CMD")
	if len(cmds) != 1 || cmds[0].args != `["serve"]` {
		t.Errorf(`CMD %v: want ["serve"]`, cmds)
	}
	addr := df.env()["PICLOUD_ADDR"]
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "0.0.0.0" {
		t.Errorf("ENV PICLOUD_ADDR=%q: want 0.0.0.0:<port>, reachable from outside the container", addr)
	}
	exposed := false
	for _, in := range final.all("EXPOSE") {
		for _, p := range strings.Fields(in.args) {
			exposed = exposed || strings.TrimSuffix(p, "/tcp") == port
		}
	}
	if !exposed || port != "8080" {
		t.Errorf("EXPOSE does not name PICLOUD_ADDR's port 8080 (PICLOUD_ADDR=%s)", addr)
	}
}

// TestDockerBuild runs the Dockerfile's go build line for every platform the
// image is published for, and checks what comes out: a static, stripped
// executable for the right machine.
func TestDockerBuild(t *testing.T) {
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, p := range platforms {
		t.Run(p.goos+"/"+p.goarch, func(t *testing.T) {
			bin := buildForPlatform(t, p.goos, p.goarch)
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != machines[p.goarch] {
				t.Errorf("ELF machine %v, want %v", f.Machine, machines[p.goarch])
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Error("has a program interpreter: dynamically linked, it would not start on distroless/static")
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("links %v", libs)
			}
			if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
				t.Error("has a symbol table or DWARF: -ldflags='-s -w' not applied")
			}
		})
	}
}

// helpEnv returns the environment variables `picloud <sub> --help` lists.
func helpEnv(t *testing.T, bin, sub string) []string {
	t.Helper()
	out, err := exec.Command(bin, sub, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("picloud %s --help: %v\n%s", sub, err, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`\(\$([A-Z][A-Z0-9_]*)\)`).FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	return names
}

// TestManifestsMatchBinary runs the binary built for this machine and checks
// that every subcommand and PICLOUD_* variable in the manifests (and the
// Dockerfile's ENV) is one it knows: kong ignores variables it does not
// know, so a misspelt one would silently keep its default.
func TestManifestsMatchBinary(t *testing.T) {
	if runtime.GOOS != "linux" || !slices.ContainsFunc(platforms, func(p struct{ goos, goarch string }) bool { return p.goarch == runtime.GOARCH }) {
		t.Skipf("no image platform runs on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	m := mustManifests(t)
	df := mustDockerfile(t)
	bin := buildForPlatform(t, runtime.GOOS, runtime.GOARCH)
	goRuntime := []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG", "GOTRACEBACK"}
	known := map[string][]string{}
	for _, sub := range []string{roleServe, roleAPI, roleWorker, roleMigrate} {
		known[sub] = helpEnv(t, bin, sub)
	}
	for k := range df.env() {
		if !slices.Contains(known[roleServe], k) {
			t.Errorf("Dockerfile ENV %s: picloud serve does not read it", k)
		}
	}
	forEachPodSpec(m, func(owner string, spec *corev1.PodSpec) {
		for _, c := range allContainers(spec) {
			vars, ok := known[role(c)]
			if !ok {
				t.Errorf("%s, container %s: args %q: not a picloud subcommand", owner, c.Name, c.Args)
				continue
			}
			for _, e := range c.Env {
				if !slices.Contains(vars, e.Name) && !slices.Contains(goRuntime, e.Name) {
					t.Errorf("%s, container %s: picloud %s does not read %s (it reads %v)", owner, c.Name, role(c), e.Name, vars)
				}
			}
		}
	})
}

// TestDockerignoreKeepsBuildInputs checks .dockerignore, with the same
// pattern matcher Docker uses, against the files `go build ./cmd/picloud`
// reads: none may be excluded from the build context, and the things that
// must stay out do.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(rel string) bool {
		ok, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, p := range []string{".git", ".picloud", "node_modules", "web/node_modules", "dbtest.test", "queue/queue.test", "cover.out", "go.work", "go.work.sum"} {
		if !excluded(p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}

	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .SFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./cmd/picloud")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	inputs := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root, line)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, filepath.ToSlash(rel))
	}
	if len(inputs) < 10 {
		t.Fatalf("go list found only %v", inputs)
	}
	for _, rel := range inputs {
		if excluded(rel) {
			t.Errorf(".dockerignore excludes %s, which go build ./cmd/picloud reads", rel)
		}
	}
}

// ---------------------------------------------------------------------------
// Tests: the README

func TestREADMELinks(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`).FindAllStringSubmatch(string(data), -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		if _, err := os.Stat(target); err != nil {
			t.Errorf("README.md links to %s: %v", target, err)
		}
	}
}
