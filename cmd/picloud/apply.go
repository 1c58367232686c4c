package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	picloud "github.com/picloud/picloud/sdk/go"
)

type applyCmd struct {
	clientFlags
	Dir    string `arg:"" optional:"" default:"." type:"existingdir" help:"Project folder holding picloud.yaml (default: the current one)."`
	DryRun bool   `help:"Show what would change and change nothing."`
	Prune  bool   `help:"Delete functions that are on the server but not in the manifest (their schedules, env and secrets go with them), and secrets a function has that the manifest does not list."`
	Watch  bool   `help:"After applying, apply again whenever a file in the folder changes, until interrupted (Ctrl-C)."`
}

func (c *applyCmd) Run(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	a := applier{client: client, dir: c.Dir, dryRun: c.DryRun, prune: c.Prune, json: c.json(), out: kctx.Stdout}
	if c.Watch {
		return a.watch(ctx, kctx.Stderr)
	}
	return a.run(ctx)
}

// applier makes a server match a project folder.
type applier struct {
	client *picloud.ClientWithResponses
	dir    string
	dryRun bool
	prune  bool
	json   bool // print the plan as one JSON document instead
	out    io.Writer
}

// planJSON is apply's -o json output.
type planJSON struct {
	DryRun    bool               `json:"dry_run"`
	Applied   bool               `json:"applied"`
	Counts    map[string]int     `json:"counts"`
	Functions []functionPlanJSON `json:"functions"`
}

type functionPlanJSON struct {
	Name    string   `json:"name"`
	State   string   `json:"state"`
	Changes []string `json:"changes"`
	Notes   []string `json:"notes"`
}

// functionPlan is what apply does to one function.
type functionPlan struct {
	name string
	// state is created, changed, unchanged, deleted, or stray (on the
	// server, not in the manifest, kept without --prune).
	state string
	// patch is sent when the function's code or options change.
	patch      *picloud.PatchFunctionJSONRequestBody
	lines      []string // what changes, one a line, for people
	notes      []string // what stays as it is but deserves a word
	setEnv     map[string]string
	delEnv     []string
	setSecrets map[string]string
	delSecrets []string
	putScheds  map[string]picloud.PutScheduleJSONRequestBody
	delScheds  []string
}

// run applies the folder once: load, plan, print, then carry out.
func (a *applier) run(ctx context.Context) error {
	m, err := loadManifest(a.dir)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	plans, err := a.plan(ctx, m)
	if err != nil {
		return err
	}
	counts := map[string]int{"created": 0, "changed": 0, "unchanged": 0, "deleted": 0}
	for _, p := range plans {
		counts[p.state]++
		if !a.json {
			printPlan(a.out, p)
		}
	}
	summary := fmt.Sprintf("%d created, %d changed, %d unchanged, %d deleted", counts["created"], counts["changed"], counts["unchanged"], counts["deleted"])
	if !a.dryRun {
		for _, p := range plans {
			if err := a.carryOut(ctx, p); err != nil {
				return fmt.Errorf("apply %s: %w", p.name, err)
			}
		}
	}
	switch {
	case a.json:
		return a.printJSON(plans, counts)
	case a.dryRun:
		fmt.Fprintf(a.out, "dry run (%s): nothing was changed\n", summary)
	default:
		fmt.Fprintf(a.out, "applied: %s\n", summary)
	}
	return nil
}

// printJSON writes the plan, after it was carried out (or not, in a dry
// run), as one JSON document.
func (a *applier) printJSON(plans []functionPlan, counts map[string]int) error {
	out := planJSON{DryRun: a.dryRun, Applied: !a.dryRun, Counts: counts, Functions: []functionPlanJSON{}}
	for _, p := range plans {
		f := functionPlanJSON{Name: p.name, State: p.state, Changes: p.lines, Notes: p.notes}
		if f.Changes == nil {
			f.Changes = []string{}
		}
		if f.Notes == nil {
			f.Notes = []string{}
		}
		out.Functions = append(out.Functions, f)
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode the plan: %w", err)
	}
	return printJSON(a.out, raw)
}

func printPlan(w io.Writer, p functionPlan) {
	mark := map[string]string{"created": "+", "changed": "~", "unchanged": "=", "deleted": "-", "stray": "?"}[p.state]
	state := p.state
	if p.state == "stray" {
		state = "on the server, not in the manifest (kept; --prune deletes it)"
	}
	fmt.Fprintf(w, "%s %s: %s\n", mark, p.name, state)
	for _, l := range p.lines {
		fmt.Fprintf(w, "    %s\n", l)
	}
	for _, n := range p.notes {
		fmt.Fprintf(w, "    (%s)\n", n)
	}
}

// plan compares the manifest with the server. Function changes come from
// the server itself (PATCH with dry_run), so that the diff is what the
// apply will do, defaults included.
func (a *applier) plan(ctx context.Context, m *manifest) ([]functionPlan, error) {
	list, err := call(a.client.ListFunctionsWithResponse(ctx))
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	onServer := map[string]bool{}
	if list.JSON200 != nil && list.JSON200.Functions != nil {
		for _, fn := range *list.JSON200.Functions {
			onServer[fn.Name] = true
		}
	}
	scheds, err := call(a.client.ListSchedulesWithResponse(ctx))
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	schedules := map[string]map[string]picloud.ScheduleBody{}
	if scheds.JSON200 != nil && scheds.JSON200.Schedules != nil {
		for _, s := range *scheds.JSON200.Schedules {
			if schedules[s.Function] == nil {
				schedules[s.Function] = map[string]picloud.ScheduleBody{}
			}
			schedules[s.Function][s.Name] = s
		}
	}

	var plans []functionPlan
	var missing []string
	for _, name := range m.names() {
		p, miss, err := a.planFunction(ctx, name, m.Functions[name], onServer[name], schedules[name])
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", name, err)
		}
		plans = append(plans, p)
		missing = append(missing, miss...)
	}
	for _, name := range sortedKeys(onServer) {
		if _, kept := m.Functions[name]; kept {
			continue
		}
		p := functionPlan{name: name, state: "stray"}
		if a.prune {
			p.state = "deleted"
		}
		plans = append(plans, p)
	}
	if len(missing) > 0 && !a.dryRun {
		return plans, withExitCode(exitUsage, fmt.Errorf("secrets not set on the server and not in the environment: %s; export them and apply again (only names are in the manifest)", strings.Join(missing, ", ")))
	}
	return plans, nil
}

// planFunction plans one function of the manifest; missing lists its
// secrets that neither the server nor the environment has.
func (a *applier) planFunction(ctx context.Context, name string, fn *manifestFunction, exists bool, current map[string]picloud.ScheduleBody) (functionPlan, []string, error) {
	p := functionPlan{name: name, state: "unchanged"}
	body := desiredFunction(fn)
	res, err := call(a.client.PatchFunctionWithResponse(ctx, name, &picloud.PatchFunctionParams{DryRun: picloud.Ptr(true)}, body))
	if err != nil {
		return p, nil, err
	}
	would := res.JSON200
	if res.JSON201 != nil {
		would = res.JSON201
	}
	if would == nil {
		return p, nil, fmt.Errorf("unexpected answer %d without a function", res.StatusCode())
	}
	if would.Created {
		p.state = "created"
	}
	if would.Changes != nil && len(*would.Changes) > 0 {
		p.patch = &body
		for _, ch := range *would.Changes {
			if ch.Field == "source" && would.Created {
				continue
			}
			p.lines = append(p.lines, describeChange(ch))
		}
	}

	// Configuration: the manifest's env is the whole env.
	var curEnv map[string]string
	var curSecrets []string
	if exists {
		env, err := call(a.client.GetFunctionEnvWithResponse(ctx, name))
		if err != nil {
			return p, nil, fmt.Errorf("read env: %w", err)
		}
		if env.JSON200 != nil {
			curEnv = env.JSON200.Env
			if env.JSON200.Secrets != nil {
				curSecrets = *env.JSON200.Secrets
			}
		}
	}
	p.setEnv = map[string]string{}
	for _, k := range sortedKeys(fn.Env) {
		v, had := curEnv[k]
		switch {
		case !had:
			p.lines = append(p.lines, fmt.Sprintf("env %s: added (%s)", k, strconv.Quote(fn.Env[k])))
		case v != fn.Env[k]:
			p.lines = append(p.lines, fmt.Sprintf("env %s: %s -> %s", k, strconv.Quote(v), strconv.Quote(fn.Env[k])))
		default:
			continue
		}
		p.setEnv[k] = fn.Env[k]
	}
	for _, k := range sortedKeys(curEnv) {
		if _, keep := fn.Env[k]; !keep {
			p.lines = append(p.lines, fmt.Sprintf("env %s: removed", k))
			p.delEnv = append(p.delEnv, k)
		}
	}

	// Secrets: names only. One the server lacks takes its value from the
	// environment variable of the same name; one the server has is left
	// alone (rotate it with picloud secrets set).
	var missing []string
	p.setSecrets = map[string]string{}
	for _, k := range fn.Secrets {
		if slices.Contains(curSecrets, k) {
			continue
		}
		v, ok := os.LookupEnv(k)
		if !ok {
			p.lines = append(p.lines, fmt.Sprintf("secret %s: missing on the server and $%s is not set", k, k))
			missing = append(missing, name+"."+k)
			continue
		}
		p.lines = append(p.lines, fmt.Sprintf("secret %s: set from $%s", k, k))
		p.setSecrets[k] = v
	}
	for _, k := range curSecrets {
		if slices.Contains(fn.Secrets, k) {
			continue
		}
		if a.prune {
			p.lines = append(p.lines, fmt.Sprintf("secret %s: deleted", k))
			p.delSecrets = append(p.delSecrets, k)
		} else {
			p.notes = append(p.notes, fmt.Sprintf("secret %s is on the server, not in the manifest: kept; --prune deletes it", k))
		}
	}

	// Schedules: the manifest's are the function's.
	p.putScheds = map[string]picloud.PutScheduleJSONRequestBody{}
	for _, sname := range sortedKeys(fn.Schedules) {
		want := fn.Schedules[sname]
		body := picloud.PutScheduleJSONRequestBody{Cron: want.Cron, Timezone: picloud.Ptr(scheduleZone(want.Timezone)),
			Payload: want.Payload, Enabled: picloud.Ptr(want.Enabled == nil || *want.Enabled)}
		cur, had := current[sname]
		if !had {
			p.lines = append(p.lines, fmt.Sprintf("schedule %s: added (%s, %s)", sname, want.Cron, *body.Timezone))
			p.putScheds[sname] = body
			continue
		}
		var diffs []string
		if cur.Cron != want.Cron {
			diffs = append(diffs, fmt.Sprintf("cron %s -> %s", cur.Cron, want.Cron))
		}
		if cur.Timezone != *body.Timezone {
			diffs = append(diffs, fmt.Sprintf("timezone %s -> %s", cur.Timezone, *body.Timezone))
		}
		if from, to := canonicalJSON(cur.Payload), schedulePayload(want.Payload); from != to {
			diffs = append(diffs, fmt.Sprintf("payload %s -> %s", from, to))
		}
		if cur.Enabled != *body.Enabled {
			diffs = append(diffs, fmt.Sprintf("enabled %t -> %t", cur.Enabled, *body.Enabled))
		}
		if len(diffs) > 0 {
			p.lines = append(p.lines, fmt.Sprintf("schedule %s: changed (%s)", sname, strings.Join(diffs, ", ")))
			p.putScheds[sname] = body
		}
	}
	for _, sname := range sortedKeys(current) {
		if _, keep := fn.Schedules[sname]; !keep {
			p.lines = append(p.lines, fmt.Sprintf("schedule %s: removed", sname))
			p.delScheds = append(p.delScheds, sname)
		}
	}
	if p.state == "unchanged" && len(p.lines) > 0 {
		p.state = "changed"
	}
	return p, missing, nil
}

// desiredFunction is the PATCH that makes a function what the manifest
// says: every option the manifest gives is set, every other one reset to
// its default, so that deleting a line from the manifest undoes it.
func desiredFunction(fn *manifestFunction) picloud.PatchFunctionJSONRequestBody {
	body := picloud.PatchFunctionJSONRequestBody{Source: picloud.Ptr(fn.source)}
	var reset []picloud.PatchFunctionInputBodyReset
	setInt := func(dst **int64, v int64, field picloud.PatchFunctionInputBodyReset) {
		if v > 0 {
			*dst = picloud.Ptr(v)
		} else {
			reset = append(reset, field)
		}
	}
	setMS := func(dst **int64, d *duration, field picloud.PatchFunctionInputBodyReset) {
		if d != nil {
			*dst = picloud.Ptr(d.Milliseconds())
		} else {
			reset = append(reset, field)
		}
	}
	setMS(&body.TimeoutMs, fn.Timeout, picloud.TimeoutMs)
	setInt(&body.MaxAttempts, fn.MaxAttempts, picloud.MaxAttempts)
	setInt(&body.MaxConcurrency, fn.MaxConcurrency, picloud.MaxConcurrency)
	setMS(&body.RetryBackoffMs, fn.RetryBackoff, picloud.RetryBackoffMs)
	setInt(&body.MaxInstructions, fn.MaxInstructions, picloud.MaxInstructions)
	if fn.LogRetention != nil {
		body.LogRetentionHours = picloud.Ptr(int64(fn.LogRetention.Hours()))
	} else {
		reset = append(reset, picloud.LogRetentionHours)
	}
	if fn.Auth != "" {
		body.Auth = picloud.Ptr(picloud.PatchFunctionInputBodyAuth(fn.Auth))
	} else {
		reset = append(reset, picloud.Auth)
	}
	if len(fn.HTTPAllow) > 0 {
		body.HttpAllow = &fn.HTTPAllow
	} else {
		reset = append(reset, picloud.HttpAllow)
	}
	if fn.ExposeErrors {
		body.ExposeErrors = picloud.Ptr(true)
	} else {
		reset = append(reset, picloud.ExposeErrors)
	}
	body.Reset = &reset
	return body
}

func scheduleZone(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// schedulePayload is the payload the server stores for a schedule's: {}
// when the manifest gives none.
func schedulePayload(v any) string {
	if v == nil {
		return "{}"
	}
	return canonicalJSON(v)
}

// canonicalJSON writes a payload with sorted keys, so that the manifest's
// and the server's spelling compare equal.
func canonicalJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var back any
	if err := json.Unmarshal(raw, &back); err != nil {
		return string(raw)
	}
	raw, _ = json.Marshal(back) // decoded JSON always encodes
	return string(raw)
}

// carryOut makes the changes of one plan.
func (a *applier) carryOut(ctx context.Context, p functionPlan) error {
	name := p.name
	if p.state == "deleted" {
		_, err := call(a.client.DeleteFunctionWithResponse(ctx, name))
		return err
	}
	if p.patch != nil {
		if _, err := call(a.client.PatchFunctionWithResponse(ctx, name, nil, *p.patch)); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(p.setEnv) {
		if _, err := call(a.client.SetFunctionEnvWithResponse(ctx, name, k, picloud.SetFunctionEnvJSONRequestBody{Value: p.setEnv[k]})); err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
	}
	for _, k := range p.delEnv {
		if _, err := call(a.client.DeleteFunctionEnvWithResponse(ctx, name, k)); err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.setSecrets)) {
		if _, err := call(a.client.SetFunctionSecretWithResponse(ctx, name, k, picloud.SetFunctionSecretJSONRequestBody{Value: p.setSecrets[k]})); err != nil {
			return fmt.Errorf("secret %s: %w", k, err)
		}
	}
	for _, k := range p.delSecrets {
		if _, err := call(a.client.DeleteFunctionSecretWithResponse(ctx, name, k)); err != nil {
			return fmt.Errorf("secret %s: %w", k, err)
		}
	}
	for _, s := range sortedKeys(p.putScheds) {
		if _, err := call(a.client.PutScheduleWithResponse(ctx, name, s, p.putScheds[s])); err != nil {
			return fmt.Errorf("schedule %s: %w", s, err)
		}
	}
	for _, s := range p.delScheds {
		if _, err := call(a.client.DeleteScheduleWithResponse(ctx, name, s)); err != nil {
			return fmt.Errorf("schedule %s: %w", s, err)
		}
	}
	return nil
}
