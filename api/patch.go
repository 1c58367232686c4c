package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/catalog"
)

// FunctionChange is one field a PATCH changed.
type FunctionChange struct {
	Field string `json:"field" example:"auth" doc:"The field, as PUT and GET name it; source for the code."`
	From  string `json:"from" example:"key" doc:"The value before, as text: default when the option was not set, empty for a new function's source."`
	To    string `json:"to" example:"public" doc:"The value after, as text; for source, the version it became."`
}

// PatchFunctionBody is a function after a PATCH, with what changed.
type PatchFunctionBody struct {
	FunctionBody
	Created bool             `json:"created" doc:"The function did not exist and was created (or, with dry_run, would be)."`
	Changes []FunctionChange `json:"changes" doc:"Every field that changed (or would), in a fixed order; empty when nothing did."`
}

type patchFunctionInput struct {
	Name   string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name."`
	DryRun bool   `query:"dry_run" doc:"Check and compute the changes without storing anything."`
	Body   struct {
		Source            *string  `json:"source,omitempty" maxLength:"1048576" example:"function handle(req)\n  return \"Hello, \" .. (req.query.name or \"world\") .. \"!\"\nend\n" doc:"New Lua source; absent keeps the current one. Required to create a function."`
		TimeoutMS         *int     `json:"timeout_ms,omitempty" minimum:"1" maximum:"900000"`
		MaxAttempts       *int     `json:"max_attempts,omitempty" minimum:"1" maximum:"100"`
		MaxConcurrency    *int     `json:"max_concurrency,omitempty" minimum:"1" maximum:"1000000"`
		RetryBackoffMS    *int     `json:"retry_backoff_ms,omitempty" minimum:"0" maximum:"3600000"`
		MaxInstructions   *int64   `json:"max_instructions,omitempty" minimum:"1000" maximum:"100000000000"`
		LogRetentionHours *int     `json:"log_retention_hours,omitempty" minimum:"1" maximum:"87600"`
		Auth              *string  `json:"auth,omitempty" enum:"public,key" example:"key"`
		HTTPAllow         []string `json:"http_allow,omitempty" maxItems:"100" doc:"Replaces the list; [] allows no host."`
		ExposeErrors      *bool    `json:"expose_errors,omitempty"`
		Reset             []string `json:"reset,omitempty" enum:"timeout_ms,max_attempts,max_concurrency,retry_backoff_ms,max_instructions,log_retention_hours,auth,http_allow,expose_errors" doc:"Options to put back to their defaults (an option may not be both set and reset)."`
	}
}

type patchFunctionOutput struct {
	Status int
	Body   PatchFunctionBody
}

func (s *Server) registerPatchFunction() {
	register(s.api, huma.Operation{
		OperationID: "patch-function",
		Method:      http.MethodPatch,
		Path:        "/v1/functions/{name}",
		Summary:     "Change a function, or create it",
		Description: "Changes only what the body gives and keeps everything else: a body with only source deploys new code and keeps " +
			"auth, http_allow, max_concurrency and the other options (PUT, by contrast, replaces them all). reset puts options back to their defaults. " +
			"A function that does not exist is created when the body has a source (404 otherwise). The answer is the function with the list of " +
			"fields that changed; with dry_run=true nothing is stored and the answer says what would change. The version increases only when the source changes. " +
			"Answers 201 when the function is new, else 200.",
		Tags:          []string{"functions"},
		DefaultStatus: http.StatusOK,
		Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity},
		MaxBodyBytes:  2*MaxSourceBytes + 64<<10,
	}, s.patchFunction)
	patch := s.api.OpenAPI().Paths["/v1/functions/{name}"].Patch
	created := *patch.Responses["200"]
	created.Description = "Created"
	patch.Responses["201"] = &created
}

func (s *Server) patchFunction(ctx context.Context, in *patchFunctionInput) (*patchFunctionOutput, error) {
	p, err := in.patch()
	if err != nil {
		return nil, err
	}
	before, after, err := s.config.Functions.PatchFunction(ctx, in.Name, p, in.DryRun)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist; send a source to create it", in.Name))
	}
	if err != nil {
		return nil, s.putError(ctx, err)
	}
	out := &patchFunctionOutput{Status: http.StatusOK}
	out.Body.FunctionBody = functionBody(after)
	out.Body.Created = before.Version == 0
	if out.Body.Created {
		out.Status = http.StatusCreated
	}
	out.Body.Changes = functionChanges(functionBody(before), out.Body.FunctionBody, out.Body.Created)
	return out, nil
}

// patch turns the body into a catalog.FunctionPatch; a zero value resets.
func (in *patchFunctionInput) patch() (catalog.FunctionPatch, error) {
	b := &in.Body
	p := catalog.FunctionPatch{Source: b.Source, MaxAttempts: b.MaxAttempts, MaxConcurrency: b.MaxConcurrency,
		MaxInstructions: b.MaxInstructions, ExposeErrors: b.ExposeErrors}
	ms := func(v *int, unit time.Duration) *time.Duration {
		if v == nil {
			return nil
		}
		d := time.Duration(*v) * unit
		return &d
	}
	p.Timeout = ms(b.TimeoutMS, time.Millisecond)
	p.RetryBackoff = ms(b.RetryBackoffMS, time.Millisecond)
	p.LogRetention = ms(b.LogRetentionHours, time.Hour)
	if b.Auth != nil {
		p.Auth = new(catalog.Auth(*b.Auth))
	}
	if b.HTTPAllow != nil {
		p.HTTPAllow = &b.HTTPAllow
	}
	zeroDuration, zeroInt, zeroInt64 := time.Duration(0), 0, int64(0)
	for i, field := range b.Reset {
		conflict := false
		switch field {
		case "timeout_ms":
			conflict, p.Timeout = p.Timeout != nil, &zeroDuration
		case "max_attempts":
			conflict, p.MaxAttempts = p.MaxAttempts != nil, &zeroInt
		case "max_concurrency":
			conflict, p.MaxConcurrency = p.MaxConcurrency != nil, &zeroInt
		case "retry_backoff_ms":
			conflict, p.RetryBackoff = p.RetryBackoff != nil, new(catalog.DefaultRetryBackoff)
		case "max_instructions":
			conflict, p.MaxInstructions = p.MaxInstructions != nil, &zeroInt64
		case "log_retention_hours":
			conflict, p.LogRetention = p.LogRetention != nil, &zeroDuration
		case "auth":
			conflict, p.Auth = p.Auth != nil, new(catalog.Auth(""))
		case "http_allow":
			conflict, p.HTTPAllow = p.HTTPAllow != nil, &[]string{}
		case "expose_errors":
			conflict, p.ExposeErrors = p.ExposeErrors != nil, new(false)
		}
		if conflict {
			return p, huma.Error422UnprocessableEntity(fmt.Sprintf("%s is both set and reset", field),
				&huma.ErrorDetail{Location: "body.reset[" + strconv.Itoa(i) + "]", Value: field})
		}
	}
	return p, nil
}

// functionChanges lists the fields that differ between two functions, as
// text: source first, then the options in the order of the reset enum.
func functionChanges(before, after FunctionBody, created bool) []FunctionChange {
	changes := []FunctionChange{}
	if created || before.SHA256 != after.SHA256 {
		from := ""
		if !created {
			from = "version " + strconv.Itoa(before.Version)
		}
		changes = append(changes, FunctionChange{Field: "source", From: from, To: "version " + strconv.Itoa(after.Version)})
	}
	num := func(n int64) string {
		if n == 0 {
			return "default"
		}
		return strconv.FormatInt(n, 10)
	}
	backoff := func(b *int) string {
		if b == nil {
			return "default"
		}
		return strconv.Itoa(*b)
	}
	list := func(l []string) string {
		if l == nil {
			l = []string{}
		}
		raw, _ := json.Marshal(l) // a []string always encodes
		return string(raw)
	}
	fields := []struct {
		name     string
		from, to string
	}{
		{"timeout_ms", num(int64(before.TimeoutMS)), num(int64(after.TimeoutMS))},
		{"max_attempts", num(int64(before.MaxAttempts)), num(int64(after.MaxAttempts))},
		{"max_concurrency", num(int64(before.MaxConcurrency)), num(int64(after.MaxConcurrency))},
		{"retry_backoff_ms", backoff(before.RetryBackoffMS), backoff(after.RetryBackoffMS)},
		{"max_instructions", num(before.MaxInstructions), num(after.MaxInstructions)},
		{"log_retention_hours", num(int64(before.LogRetentionHours)), num(int64(after.LogRetentionHours))},
		{"auth", before.Auth, after.Auth},
		{"http_allow", list(before.HTTPAllow), list(after.HTTPAllow)},
		{"expose_errors", strconv.FormatBool(before.ExposeErrors), strconv.FormatBool(after.ExposeErrors)},
	}
	for _, f := range fields {
		if f.from != f.to {
			changes = append(changes, FunctionChange{Field: f.name, From: f.from, To: f.to})
		}
	}
	return changes
}
