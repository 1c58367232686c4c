package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/catalog"
)

// MaxSourceBytes caps a function's Lua source.
const MaxSourceBytes = 1 << 20

// Functions is what the API needs of the deployed functions and their
// versions: *catalog.Catalog.
type Functions interface {
	PutFunction(ctx context.Context, name, source string, opts catalog.FunctionOptions) (fn catalog.Function, created bool, err error)
	PatchFunction(ctx context.Context, name string, p catalog.FunctionPatch, dryRun bool) (before, after catalog.Function, err error)
	CheckFunction(name, source string, opts catalog.FunctionOptions) error
	GetFunction(ctx context.Context, name string) (catalog.Function, error)
	ListFunctions(ctx context.Context) ([]catalog.Function, error)
	DeleteFunction(ctx context.Context, name string) error
	ListFunctionVersions(ctx context.Context, name string) ([]catalog.FunctionVersion, error)
	GetFunctionVersion(ctx context.Context, name string, version int) (catalog.FunctionVersion, error)
	// FunctionExposesErrors tells /fn whether a caller without a key may
	// read a failed invocation's error.
	FunctionExposesErrors(ctx context.Context, name string) (bool, error)
}

// FunctionBody is a deployed function.
type FunctionBody struct {
	Name    string `json:"name" example:"hello" doc:"Function name; its endpoint is /fn/{name}."`
	Version int    `json:"version" example:"3" doc:"Increases each time the source changes."`
	SHA256  string `json:"sha256" doc:"SHA-256 of the source, hex-encoded."`
	URL     string `json:"url" example:"/fn/hello" doc:"Path of the function's HTTP endpoint."`
	Source  string `json:"source,omitempty" doc:"Lua source; omitted in listings."`
	FunctionOptionsBody
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// FunctionOptionsBody are the settings of a function's invocations.
type FunctionOptionsBody struct {
	TimeoutMS         int      `json:"timeout_ms,omitempty" minimum:"1" maximum:"900000" example:"10000" doc:"Wall-clock limit of one attempt, in milliseconds; the platform default (10000) when absent."`
	MaxAttempts       int      `json:"max_attempts,omitempty" minimum:"1" maximum:"100" default:"1" doc:"Attempts of an asynchronous invocation (async API calls, SQL, schedules) before it fails; /fn and synchronous calls always run once."`
	MaxConcurrency    int      `json:"max_concurrency,omitempty" minimum:"1" maximum:"1000000" doc:"How many invocations of the function may run at once across all workers, at most 1000000; unlimited when absent."`
	RetryBackoffMS    *int     `json:"retry_backoff_ms,omitempty" minimum:"0" maximum:"3600000" doc:"Delay before the second attempt, in milliseconds (default 1000); it doubles for each further attempt, with 20% jitter, up to an hour."`
	MaxInstructions   int64    `json:"max_instructions,omitempty" minimum:"1000" maximum:"100000000000" doc:"VM instruction budget of one attempt (default 40 million, about 0.3 to 3.5 s of pure Lua on a small machine); past it the attempt ends as timed_out."`
	LogRetentionHours int      `json:"log_retention_hours,omitempty" minimum:"1" maximum:"87600" example:"24" doc:"Clear the log lines of this function's invocations this many hours after they finish; absent keeps them as long as the invocation (the platform's retention, 7 days by default)."`
	Auth              string   `json:"auth,omitempty" enum:"public,key" default:"public" doc:"Who may call /fn/{name}: anyone (public), or only callers with an API key of either scope (key)."`
	HTTPAllow         []string `json:"http_allow,omitempty" maxItems:"100" example:"[\"api.example.com\", \"*.example.org\"]" doc:"Hosts the script may reach with http.request: a host, *.domain for its subdomains, either optionally with :port. None when absent. Loopback and private addresses are refused unless the server allows them."`
	ExposeErrors      bool     `json:"expose_errors,omitempty" doc:"Show a failed invocation's error text to /fn callers without an API key. Off (absent) by default: they get a generic 500 naming the invocation, whose row keeps the text; callers with a key of either scope always see it."`
}

func (o FunctionOptionsBody) options() catalog.FunctionOptions {
	opts := catalog.FunctionOptions{
		Timeout:         time.Duration(o.TimeoutMS) * time.Millisecond,
		MaxAttempts:     o.MaxAttempts,
		MaxConcurrency:  o.MaxConcurrency,
		RetryBackoff:    time.Second,
		HTTPAllow:       o.HTTPAllow,
		MaxInstructions: o.MaxInstructions,
		Auth:            catalog.Auth(o.Auth),
		LogRetention:    time.Duration(o.LogRetentionHours) * time.Hour,
		ExposeErrors:    o.ExposeErrors,
	}
	if o.RetryBackoffMS != nil {
		opts.RetryBackoff = time.Duration(*o.RetryBackoffMS) * time.Millisecond
	}
	return opts
}

func functionBody(fn catalog.Function) FunctionBody {
	backoff := int(fn.Options.RetryBackoff.Milliseconds())
	return FunctionBody{
		Name: fn.Name, Version: fn.Version, SHA256: fn.SHA256, URL: "/fn/" + fn.Name, Source: fn.Source,
		FunctionOptionsBody: FunctionOptionsBody{
			TimeoutMS:       int(fn.Options.Timeout.Milliseconds()),
			MaxAttempts:     fn.Options.MaxAttempts,
			MaxConcurrency:  fn.Options.MaxConcurrency,
			RetryBackoffMS:  &backoff,
			HTTPAllow:       fn.Options.HTTPAllow,
			MaxInstructions: fn.Options.MaxInstructions,
			Auth:            string(fn.Options.Auth),
			// Rounded up: a retention set below an hour through the Go API
			// still reads as set.
			LogRetentionHours: int((fn.Options.LogRetention + time.Hour - 1) / time.Hour),
			ExposeErrors:      fn.Options.ExposeErrors,
		},
		CreatedAt: fn.CreatedAt, UpdatedAt: fn.UpdatedAt,
	}
}

type functionNameParam struct {
	Name string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name: a lower-case letter, then up to 62 lower-case letters, digits, '-' or '_'."`
}

type putFunctionInput struct {
	Name string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name: a lower-case letter, then up to 62 lower-case letters, digits, '-' or '_'."`
	Body struct {
		Source string `json:"source" maxLength:"1048576" example:"function handle(req)\n  return \"Hello, \" .. (req.query.name or \"world\") .. \"!\"\nend\n" doc:"Lua source defining a global function handle(req)."`
		FunctionOptionsBody
	}
}

type functionOutput struct {
	Status int
	Body   FunctionBody
}

type listFunctionsOutput struct {
	Body struct {
		Functions []FunctionBody `json:"functions"`
	}
}

func (s *Server) registerFunctions() {
	tags := []string{"functions"}
	register(s.api, huma.Operation{
		OperationID: "put-function",
		Method:      http.MethodPut,
		Path:        "/v1/functions/{name}",
		Summary:     "Create or replace a function",
		Description: "Stores the Lua source and options under the name, replacing what was there (absent options take their defaults; " +
			"PATCH changes only what it is given). " +
			"The source is compiled first: a syntax error is a 422 naming the line, and so is a source that never names handle; nothing is stored. " +
			"The version increases only when the source changes. Answers 201 when the function is new, else 200.",
		Tags:          tags,
		DefaultStatus: http.StatusOK,
		Errors:        []int{http.StatusUnprocessableEntity},
		// Room for a source of MaxSourceBytes even when JSON escaping
		// doubles it; huma's default, 1 MiB, would refuse it with a 413
		// before the clearer 422 on the source's length.
		MaxBodyBytes: 2*MaxSourceBytes + 64<<10,
	}, s.putFunction)
	// huma documents only DefaultStatus; the 201 of a new function shares
	// its body.
	put := s.api.OpenAPI().Paths["/v1/functions/{name}"].Put
	created := *put.Responses["200"]
	created.Description = "Created"
	put.Responses["201"] = &created
	register(s.api, huma.Operation{
		OperationID: "list-functions",
		Method:      http.MethodGet,
		Path:        "/v1/functions",
		Summary:     "List functions",
		Description: "Every function, by name, without sources.",
		Tags:        tags,
	}, s.listFunctions)
	register(s.api, huma.Operation{
		OperationID: "get-function",
		Method:      http.MethodGet,
		Path:        "/v1/functions/{name}",
		Summary:     "Get a function",
		Description: "The function with its current source.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound},
	}, s.getFunction)
	register(s.api, huma.Operation{
		OperationID:   "delete-function",
		Method:        http.MethodDelete,
		Path:          "/v1/functions/{name}",
		Summary:       "Delete a function",
		Description:   "Deletes the function and its versions. Its invocations are kept; any still queued fail when a worker reaches them.",
		Tags:          tags,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.deleteFunction)
}

func (s *Server) putFunction(ctx context.Context, in *putFunctionInput) (*functionOutput, error) {
	fn, created, err := s.config.Functions.PutFunction(ctx, in.Name, in.Body.Source, in.Body.options())
	if err != nil {
		return nil, s.putError(ctx, err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return &functionOutput{Status: status, Body: functionBody(fn)}, nil
}

// putError answers a function that cannot be stored: a syntax error at its
// line, options out of range, or the server's own failure. Validation gives
// the same answers, so that an editor shows what a save would say.
func (s *Server) putError(ctx context.Context, err error) error {
	if sourceErr := (*catalog.SourceError)(nil); errors.As(err, &sourceErr) {
		if sourceErr.Line == 0 {
			return huma.Error422UnprocessableEntity("the source does not define handle",
				&huma.ErrorDetail{Location: "body.source", Message: sourceErr.Message})
		}
		// The line and message once, in the detail that names the field:
		// clients print the detail and every error after it.
		return huma.Error422UnprocessableEntity("the source does not compile",
			&huma.ErrorDetail{Location: "body.source", Message: sourceErr.Message, Value: sourceErr.Line})
	}
	if optErr := (*catalog.InvalidOptionsError)(nil); errors.As(err, &optErr) {
		return huma.Error422UnprocessableEntity(optErr.Error())
	}
	return s.internal(ctx, err)
}

func (s *Server) listFunctions(ctx context.Context, _ *struct{}) (*listFunctionsOutput, error) {
	fns, err := s.config.Functions.ListFunctions(ctx)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &listFunctionsOutput{}
	out.Body.Functions = make([]FunctionBody, len(fns))
	for i, fn := range fns {
		out.Body.Functions[i] = functionBody(fn)
	}
	return out, nil
}

func (s *Server) getFunction(ctx context.Context, in *functionNameParam) (*functionOutput, error) {
	fn, err := s.config.Functions.GetFunction(ctx, in.Name)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &functionOutput{Status: http.StatusOK, Body: functionBody(fn)}, nil
}

func (s *Server) deleteFunction(ctx context.Context, in *functionNameParam) (*struct{}, error) {
	err := s.config.Functions.DeleteFunction(ctx, in.Name)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return nil, nil
}

// internal logs an unexpected error and hides its details from the client,
// which may not see database internals.
func (s *Server) internal(ctx context.Context, err error) error {
	s.logger.ErrorContext(ctx, "request failed", "error", err)
	return huma.Error500InternalServerError("internal error; the server log has the details")
}
