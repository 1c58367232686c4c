package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/picloud/picloud/catalog"
	"go.yaml.in/yaml/v3"
)

// manifestFile is the name of a project's manifest in its folder.
const manifestFile = "picloud.yaml"

// manifest is a picloud.yaml: the functions of a project, each with its
// source file, options, configuration, secret names and schedules. Every
// field is documented in docs/manifest.md.
type manifest struct {
	Functions map[string]*manifestFunction `yaml:"functions"`
}

type manifestFunction struct {
	File            string                       `yaml:"file"`
	Timeout         *duration                    `yaml:"timeout,omitempty"`
	Auth            string                       `yaml:"auth,omitempty"`
	HTTPAllow       []string                     `yaml:"http_allow,omitempty,flow"`
	MaxConcurrency  int64                        `yaml:"max_concurrency,omitempty"`
	MaxAttempts     int64                        `yaml:"max_attempts,omitempty"`
	RetryBackoff    *duration                    `yaml:"retry_backoff,omitempty"`
	MaxInstructions int64                        `yaml:"max_instructions,omitempty"`
	LogRetention    *duration                    `yaml:"log_retention,omitempty"`
	ExposeErrors    bool                         `yaml:"expose_errors,omitempty"`
	Env             map[string]string            `yaml:"env,omitempty"`
	Secrets         []string                     `yaml:"secrets,omitempty,flow"`
	Schedules       map[string]*manifestSchedule `yaml:"schedules,omitempty"`

	// line is where the function starts in the file, for errors.
	line int
	// source is the content of File, read by loadManifest.
	source string
}

type manifestSchedule struct {
	Cron     string `yaml:"cron"`
	Timezone string `yaml:"timezone,omitempty"`
	Payload  any    `yaml:"payload,omitempty"`
	// Enabled is a pointer: absent means enabled.
	Enabled *bool `yaml:"enabled,omitempty"`

	line int
}

// duration is a time.Duration written as Go writes one: 5s, 1m30s, 24h.
type duration struct{ time.Duration }

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write it like 5s, 1m30s or 24h)", n.Line, s)
	}
	d.Duration = v
	return nil
}

func (d duration) MarshalYAML() (any, error) { return shortDuration(d.Duration), nil }

// shortDuration writes 5s, 90s as 1m30s, and 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d != 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// envKeyPattern is the form of an env or secret name, as the API takes it.
var envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// loadManifest reads dir/picloud.yaml strictly (an unknown key is an error
// naming its line), checks what can be checked without a server, and reads
// every function's source file.
func loadManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, manifestFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, name := range m.names() {
		fn := m.Functions[name]
		src := fn.File
		if !filepath.IsAbs(src) {
			src = filepath.Join(dir, src)
		}
		source, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: function %s: read its file: %w", path, fn.line, name, err)
		}
		fn.source = string(source)
	}
	return m, nil
}

// parseManifest decodes and checks a manifest's text.
func parseManifest(raw []byte) (*manifest, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var m manifest
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	if doc.Kind == 0 {
		return nil, errors.New("the manifest is empty; it needs a functions: map (picloud init writes one)")
	}
	// Decode the node again for the strict field check: Node.Decode does
	// not take KnownFields, so go through a second decoder.
	dec = yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, yamlError(err)
	}
	recordLines(&doc, &m)
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// yamlError turns yaml's "yaml: unmarshal errors:\n  line 5: field x not
// found in type main.manifestFunction" into one line.
func yamlError(err error) error {
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		msgs := make([]string, len(typeErr.Errors))
		for i, e := range typeErr.Errors {
			e = strings.Replace(e, " in type main.manifestFunction", " (a function has file, timeout, auth, http_allow, max_concurrency, max_attempts, retry_backoff, max_instructions, log_retention, expose_errors, env, secrets, schedules)", 1)
			e = strings.Replace(e, " in type main.manifestSchedule", " (a schedule has cron, timezone, payload, enabled)", 1)
			e = strings.Replace(e, " in type main.manifest", " (the manifest has functions)", 1)
			msgs[i] = strings.Replace(e, "field ", "unknown key ", 1)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// recordLines notes where each function and schedule starts, for errors
// found after decoding.
func recordLines(doc *yaml.Node, m *manifest) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	fns := mappingValue(root, "functions")
	if fns == nil {
		return
	}
	for i := 0; i+1 < len(fns.Content); i += 2 {
		fn := m.Functions[fns.Content[i].Value]
		if fn == nil {
			continue
		}
		fn.line = fns.Content[i].Line
		scheds := mappingValue(fns.Content[i+1], "schedules")
		if scheds == nil {
			continue
		}
		for j := 0; j+1 < len(scheds.Content); j += 2 {
			if s := fn.Schedules[scheds.Content[j].Value]; s != nil {
				s.line = scheds.Content[j].Line
			}
		}
	}
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// check finds what the server would refuse, with the line, before anything
// is sent.
func (m *manifest) check() error {
	if m.Functions == nil {
		return errors.New("the manifest has no functions: map (picloud init writes one)")
	}
	for _, name := range m.names() {
		fn := m.Functions[name]
		if fn == nil {
			return fmt.Errorf("function %s is empty; it needs at least a file", name)
		}
		at := fmt.Sprintf("line %d: function %s", fn.line, name)
		switch {
		case !catalog.ValidFunctionName(name):
			return fmt.Errorf("line %d: %q is not a function name: a lower-case letter, then up to 62 lower-case letters, digits, '-' or '_'", fn.line, name)
		case fn.File == "":
			return fmt.Errorf("%s: file: is missing (the Lua source, relative to the manifest)", at)
		case fn.Auth != "" && fn.Auth != "public" && fn.Auth != "key":
			return fmt.Errorf("%s: auth must be public or key, not %q", at, fn.Auth)
		case fn.Timeout != nil && fn.Timeout.Duration < time.Millisecond:
			return fmt.Errorf("%s: timeout must be at least 1ms", at)
		case fn.LogRetention != nil && fn.LogRetention.Duration%time.Hour != 0:
			return fmt.Errorf("%s: log_retention must be whole hours (24h, 168h)", at)
		}
		for key := range fn.Env {
			if !envKeyPattern.MatchString(key) {
				return fmt.Errorf("%s: env %q is not a valid name (a letter or _, then letters, digits or _)", at, key)
			}
		}
		for _, key := range fn.Secrets {
			if !envKeyPattern.MatchString(key) {
				return fmt.Errorf("%s: secret %q is not a valid name (a letter or _, then letters, digits or _)", at, key)
			}
			if _, both := fn.Env[key]; both {
				return fmt.Errorf("%s: %s is both in env and in secrets", at, key)
			}
		}
		for _, sname := range sortedKeys(fn.Schedules) {
			s := fn.Schedules[sname]
			if s == nil || s.Cron == "" {
				return fmt.Errorf("%s: schedule %s: cron: is missing", at, sname)
			}
			if !catalog.ValidFunctionName(sname) {
				return fmt.Errorf("line %d: function %s: %q is not a schedule name (lower-case letters, digits, '-' or '_')", s.line, name, sname)
			}
			if err := catalog.CheckSchedule(s.Cron, scheduleZone(s.Timezone)); err != nil {
				return fmt.Errorf("line %d: function %s: schedule %s: %w", s.line, name, sname, err)
			}
			if _, err := json.Marshal(s.Payload); err != nil {
				return fmt.Errorf("line %d: function %s: schedule %s: payload is not JSON: %w", s.line, name, sname, err)
			}
		}
	}
	return nil
}

func (m *manifest) names() []string { return sortedKeys(m.Functions) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
