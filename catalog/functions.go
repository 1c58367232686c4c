package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/db"
)

// Function is a deployed Lua function.
type Function struct {
	Name    string
	Version int
	// Source is empty in listings.
	Source    string
	SHA256    string
	Options   FunctionOptions
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FunctionOptions tune how a function's invocations run. Zero values mean:
// the platform's default timeout, one attempt, no concurrency limit, and
// retries without delay.
type FunctionOptions struct {
	// Timeout is the wall-clock limit of one attempt.
	Timeout time.Duration
	// MaxAttempts applies to asynchronous invocations (async API calls, SQL,
	// schedules). A synchronous caller is answered after one attempt: it is
	// waiting, and a retry's backoff would hold it.
	MaxAttempts int
	// MaxConcurrency caps how many invocations of the function run at once,
	// across all workers.
	MaxConcurrency int
	// RetryBackoff is the delay before the second attempt; each further
	// attempt doubles it (with 20% jitter, at most an hour).
	RetryBackoff time.Duration
	// MaxInstructions is the VM instruction budget of one attempt; zero
	// means executor.DefaultInstructions.
	MaxInstructions int64
	// HTTPAllow lists the hosts http.request may reach: "api.example.com",
	// "*.example.com" (its subdomains), either with ":port"; empty, none.
	HTTPAllow []string
	// Auth says who may call the function at /fn/{name}; empty means
	// AuthPublic.
	Auth Auth
	// LogRetention, when set, clears the log lines of the function's
	// invocations this long after they finish, before the rows themselves
	// go (picloud.settings.retention).
	LogRetention time.Duration
	// ExposeErrors shows a failed invocation's error text to /fn callers
	// without an API key; otherwise they get a generic 500 naming the
	// invocation, whose row keeps the text for the owner.
	ExposeErrors bool
}

// Auth says who may call a function over HTTP at /fn/{name}.
type Auth string

const (
	// AuthPublic lets anyone call: a deployed function is a URL, as on
	// hosted platforms.
	AuthPublic Auth = "public"
	// AuthKey requires an API key with the invoke or admin scope.
	AuthKey Auth = "key"
)

// FunctionNamePattern is the form of a function name: it appears in URLs
// (/fn/{name}) and as the Lua chunk name in error messages.
const FunctionNamePattern = `^[a-z][a-z0-9_-]{0,62}$`

var functionName = regexp.MustCompile(FunctionNamePattern)

// ValidFunctionName reports whether name matches FunctionNamePattern.
func ValidFunctionName(name string) bool { return functionName.MatchString(name) }

// InvalidFunctionNameError reports a name that does not match FunctionNamePattern.
type InvalidFunctionNameError struct{ Name string }

func (e *InvalidFunctionNameError) Error() string {
	return fmt.Sprintf("invalid function name %q: must match %s", e.Name, FunctionNamePattern)
}

// InvalidOptionsError reports function options out of range.
type InvalidOptionsError struct{ Reason string }

func (e *InvalidOptionsError) Error() string { return "invalid function options: " + e.Reason }

// MaxTimeout is the longest an attempt may run.
const MaxTimeout = 15 * time.Minute

// MaxInstructions is the largest instruction budget a function may set:
// about 10 to 15 minutes of pure Lua, in line with MaxTimeout.
const MaxInstructions = 100_000_000_000

// MaxConcurrencyLimit is the largest max_concurrency: far more than any
// deployment runs at once, and well inside the integer column, where a
// larger value would wrap around.
const MaxConcurrencyLimit = 1_000_000

func (o FunctionOptions) validate() error {
	switch {
	case o.Timeout < 0 || o.Timeout > MaxTimeout:
		return &InvalidOptionsError{fmt.Sprintf("timeout must be between 1 ms and %v", MaxTimeout)}
	case o.MaxAttempts < 0 || o.MaxAttempts > 100:
		return &InvalidOptionsError{"max_attempts must be between 1 and 100"}
	case o.MaxConcurrency < 0 || o.MaxConcurrency > MaxConcurrencyLimit:
		return &InvalidOptionsError{fmt.Sprintf("max_concurrency must be between 1 and %d", MaxConcurrencyLimit)}
	case o.RetryBackoff < 0 || o.RetryBackoff > time.Hour:
		return &InvalidOptionsError{"retry_backoff must be between 0 and 1 h"}
	case o.LogRetention < 0 || (o.LogRetention > 0 && o.LogRetention < time.Second):
		return &InvalidOptionsError{"log_retention must be at least a second"}
	case o.Auth != "" && o.Auth != AuthPublic && o.Auth != AuthKey:
		return &InvalidOptionsError{fmt.Sprintf("auth must be %q or %q", AuthPublic, AuthKey)}
	case o.MaxInstructions != 0 && (o.MaxInstructions < 1000 || o.MaxInstructions > MaxInstructions):
		return &InvalidOptionsError{fmt.Sprintf("max_instructions must be between 1000 and %d", int64(MaxInstructions))}
	}
	for _, h := range o.HTTPAllow {
		if err := hostapi.CheckHTTPAllowEntry(h); err != nil {
			return &InvalidOptionsError{err.Error()}
		}
	}
	return nil
}

// PutFunction creates the function or replaces its source and options. The
// version increases only when the source changes, so deploying the same file
// twice is a no-op. The source must compile and name handle: a syntax
// error or a source that cannot define handle is returned as
// *SourceError, and nothing is stored.
func (c *Catalog) PutFunction(ctx context.Context, name, source string, opts FunctionOptions) (fn Function, created bool, err error) {
	if err := checkFunction(name, source, opts); err != nil {
		return Function{}, false, err
	}
	err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		fn, created, err = storeFunction(ctx, c.queries.WithTx(tx), name, source, opts)
		return err
	})
	if err != nil {
		return Function{}, false, err
	}
	return fn, created, nil
}

// checkFunction validates what storeFunction is about to store: the name,
// the options and that the source compiles.
func checkFunction(name, source string, opts FunctionOptions) error {
	if !ValidFunctionName(name) {
		return &InvalidFunctionNameError{Name: name}
	}
	if err := opts.validate(); err != nil {
		return err
	}
	return checkSource(name, source)
}

// storeFunction writes a checked function inside the caller's transaction.
func storeFunction(ctx context.Context, q *db.Queries, name, source string, opts FunctionOptions) (fn Function, created bool, err error) {
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 1
	}
	if opts.HTTPAllow == nil {
		opts.HTTPAllow = []string{} // the column is NOT NULL; nil encodes as NULL
	}
	if opts.Auth == "" {
		opts.Auth = AuthPublic
	}
	sum := sha256.Sum256([]byte(source))
	locked, err := q.LockFunctionForPut(ctx, name)
	if err != nil {
		return Function{}, false, fmt.Errorf("lock function: %w", err)
	}
	created = locked.Version == 0
	fn = Function{
		Name: name, Version: int(locked.Version), Source: source, SHA256: hex.EncodeToString(sum[:]),
		Options: opts, CreatedAt: locked.CreatedAt,
	}
	sameSource := false
	if !created {
		current, err := q.CurrentSourceHash(ctx, name, locked.Version)
		if err != nil {
			return Function{}, false, fmt.Errorf("read current version: %w", err)
		}
		sameSource = bytes.Equal(current, sum[:])
	}
	if !sameSource {
		fn.Version++
		if _, err := q.InsertFunctionVersion(ctx, db.InsertFunctionVersionParams{
			Name: name, Version: int32(fn.Version), Source: source, SourceSha256: sum[:],
		}); err != nil {
			return Function{}, false, fmt.Errorf("store version: %w", err)
		}
	}
	if fn.UpdatedAt, err = q.UpdateFunction(ctx, db.UpdateFunctionParams{
		Name:            name,
		Version:         int32(fn.Version),
		TimeoutMs:       db.OptionalMillis(opts.Timeout),
		MaxAttempts:     int32(opts.MaxAttempts),
		MaxConcurrency:  db.OptionalInt(opts.MaxConcurrency),
		RetryBackoffMs:  int32(opts.RetryBackoff.Milliseconds()),
		HttpAllow:       opts.HTTPAllow,
		MaxInstructions: db.OptionalInt64(opts.MaxInstructions),
		Auth:            string(opts.Auth),
		LogRetentionMs:  db.OptionalInt64(opts.LogRetention.Milliseconds()),
		ExposeErrors:    opts.ExposeErrors,
	}); err != nil {
		return Function{}, false, fmt.Errorf("update function: %w", err)
	}
	if err := q.AdmitParked(ctx, name); err != nil {
		return Function{}, false, fmt.Errorf("admit parked invocations: %w", err)
	}
	return fn, created, nil
}

// GetFunction returns the function with its source.
func (c *Catalog) GetFunction(ctx context.Context, name string) (Function, error) {
	row, err := c.queries.GetFunction(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return Function{}, fmt.Errorf("%w: %s", ErrFunctionNotFound, name)
	}
	if err != nil {
		return Function{}, fmt.Errorf("get function: %w", err)
	}
	return functionFromRow(row), nil
}

// ListFunctions returns every function by name, without sources.
func (c *Catalog) ListFunctions(ctx context.Context) ([]Function, error) {
	rows, err := c.queries.ListFunctions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	fns := make([]Function, len(rows))
	for i, r := range rows {
		fns[i] = Function{
			Name: r.Name, Version: int(r.Version), SHA256: hex.EncodeToString(r.SourceSha256),
			Options:   functionOptions(r.TimeoutMs, r.MaxAttempts, r.MaxConcurrency, r.RetryBackoffMs, r.HttpAllow, r.MaxInstructions, r.Auth, r.LogRetentionMs, r.ExposeErrors),
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
	}
	return fns, nil
}

// DeleteFunction deletes the function and its versions. Its invocations stay;
// those still queued fail when a worker picks them up.
func (c *Catalog) DeleteFunction(ctx context.Context, name string) error {
	n, err := c.queries.DeleteFunction(ctx, name)
	if err != nil {
		return fmt.Errorf("delete function: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrFunctionNotFound, name)
	}
	return nil
}

func functionFromRow(r db.GetFunctionRow) Function {
	return Function{
		Name: r.Name, Version: int(r.Version), Source: r.Source, SHA256: hex.EncodeToString(r.SourceSha256),
		Options:   functionOptions(r.TimeoutMs, r.MaxAttempts, r.MaxConcurrency, r.RetryBackoffMs, r.HttpAllow, r.MaxInstructions, r.Auth, r.LogRetentionMs, r.ExposeErrors),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

func functionOptions(timeoutMS *int32, maxAttempts int32, maxConcurrency *int32, retryBackoffMS int32, httpAllow []string, maxInstructions *int64, auth string, logRetentionMS int64, exposeErrors bool) FunctionOptions {
	o := FunctionOptions{MaxAttempts: int(maxAttempts), RetryBackoff: time.Duration(retryBackoffMS) * time.Millisecond, HTTPAllow: httpAllow, Auth: Auth(auth),
		LogRetention: time.Duration(logRetentionMS) * time.Millisecond, ExposeErrors: exposeErrors}
	if maxInstructions != nil {
		o.MaxInstructions = *maxInstructions
	}
	if timeoutMS != nil {
		o.Timeout = time.Duration(*timeoutMS) * time.Millisecond
	}
	if maxConcurrency != nil {
		o.MaxConcurrency = int(*maxConcurrency)
	}
	return o
}
