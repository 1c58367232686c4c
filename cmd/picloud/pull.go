package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	picloud "github.com/picloud/picloud/sdk/go"
)

type pullCmd struct {
	clientFlags
	Dir   string `arg:"" optional:"" default:"." help:"Folder to write picloud.yaml and functions/*.lua into (default: the current one); created if missing."`
	Force bool   `help:"Overwrite an existing picloud.yaml and source files."`
}

func (c *pullCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	path := filepath.Join(c.Dir, manifestFile)
	if _, err := os.Stat(path); err == nil && !c.Force {
		return withExitCode(exitUsage, fmt.Errorf("%s exists; pass --force to overwrite it", path))
	}
	m, sources, err := pullManifest(ctx, client)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "functions"), 0o755); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	for _, name := range m.names() {
		file := filepath.Join(c.Dir, m.Functions[name].File)
		if _, err := os.Stat(file); err == nil && !c.Force {
			return withExitCode(exitUsage, fmt.Errorf("%s exists; pass --force to overwrite it", file))
		}
		if err := os.WriteFile(file, []byte(sources[name]), 0o644); err != nil {
			return fmt.Errorf("pull: %w", err)
		}
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Pulled from %s at %s by picloud pull.\n# Secrets are listed by name only; see docs/manifest.md.\n", c.URL, time.Now().UTC().Format(time.RFC3339))
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("pull: encode the manifest: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	fmt.Fprintf(kctx.Stdout, "wrote %s and %d source files\n", path, len(sources))
	return nil
}

// pullManifest reads every function of the server as a manifest, with its
// sources by name. Options at their defaults are left out, as a person
// would write them.
func pullManifest(ctx context.Context, client *picloud.ClientWithResponses) (*manifest, map[string]string, error) {
	list, err := call(client.ListFunctionsWithResponse(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("list functions: %w", err)
	}
	scheds, err := call(client.ListSchedulesWithResponse(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("list schedules: %w", err)
	}
	m := &manifest{Functions: map[string]*manifestFunction{}}
	sources := map[string]string{}
	if list.JSON200 == nil || list.JSON200.Functions == nil {
		return m, sources, nil
	}
	for _, summary := range *list.JSON200.Functions {
		name := summary.Name
		got, err := call(client.GetFunctionWithResponse(ctx, name))
		if err != nil {
			return nil, nil, fmt.Errorf("get %s: %w", name, err)
		}
		env, err := call(client.GetFunctionEnvWithResponse(ctx, name))
		if err != nil {
			return nil, nil, fmt.Errorf("get %s's env: %w", name, err)
		}
		if got.JSON200 == nil || got.JSON200.Source == nil || env.JSON200 == nil {
			return nil, nil, errors.New("unexpected answer without a function")
		}
		sources[name] = *got.JSON200.Source
		fn := manifestFromFunction(*got.JSON200)
		fn.Env = env.JSON200.Env
		if env.JSON200.Secrets != nil && len(*env.JSON200.Secrets) > 0 {
			fn.Secrets = slices.Sorted(slices.Values(*env.JSON200.Secrets))
		}
		m.Functions[name] = fn
	}
	if scheds.JSON200 != nil && scheds.JSON200.Schedules != nil {
		for _, s := range *scheds.JSON200.Schedules {
			fn := m.Functions[s.Function]
			if fn == nil {
				continue // deleted between the two reads
			}
			if fn.Schedules == nil {
				fn.Schedules = map[string]*manifestSchedule{}
			}
			ms := &manifestSchedule{Cron: s.Cron, Payload: s.Payload}
			if canonicalJSON(s.Payload) == "{}" {
				ms.Payload = nil // what the server stores when none is given
			}
			if s.Timezone != "UTC" {
				ms.Timezone = s.Timezone
			}
			if !s.Enabled {
				ms.Enabled = picloud.Ptr(false)
			}
			fn.Schedules[s.Name] = ms
		}
	}
	return m, sources, nil
}

func manifestFromFunction(f picloud.FunctionBody) *manifestFunction {
	fn := &manifestFunction{File: "functions/" + f.Name + ".lua"}
	ms := func(v *int64) *duration {
		if v == nil || *v == 0 {
			return nil
		}
		return &duration{time.Duration(*v) * time.Millisecond}
	}
	val := func(v *int64) int64 {
		if v == nil {
			return 0
		}
		return *v
	}
	fn.Timeout = ms(f.TimeoutMs)
	if f.Auth != nil && *f.Auth != picloud.FunctionBodyAuthPublic {
		fn.Auth = string(*f.Auth)
	}
	if f.HttpAllow != nil {
		fn.HTTPAllow = *f.HttpAllow
	}
	fn.MaxConcurrency = val(f.MaxConcurrency)
	if n := val(f.MaxAttempts); n > 1 {
		fn.MaxAttempts = n
	}
	if b := f.RetryBackoffMs; b != nil && *b != time.Second.Milliseconds() {
		fn.RetryBackoff = &duration{time.Duration(*b) * time.Millisecond}
	}
	fn.MaxInstructions = val(f.MaxInstructions)
	if h := val(f.LogRetentionHours); h > 0 {
		fn.LogRetention = &duration{time.Duration(h) * time.Hour}
	}
	fn.ExposeErrors = f.ExposeErrors != nil && *f.ExposeErrors
	return fn
}
