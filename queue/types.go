package queue

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/keys"
)

// Errors callers tell apart with errors.Is.
var (
	ErrFunctionNotFound   = errors.New("function not found")
	ErrInvocationNotFound = errors.New("invocation not found")
	// ErrUnauthenticated: the call needs an API key and came without a
	// valid one. It is the keys package's error, so that one errors.Is covers a key
	// refused by Authenticate and a call refused by Enqueue.
	ErrUnauthenticated = keys.ErrUnauthenticated
)

// Status is where an invocation is in its life.
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed_out"
	StatusCancelled Status = "cancelled"
)

// Final reports whether the status can no longer change.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimedOut, StatusCancelled:
		return true
	}
	return false
}

// Trigger says what created an invocation.
type Trigger string

const (
	TriggerHTTP     Trigger = "http"
	TriggerAPI      Trigger = "api"
	TriggerSQL      Trigger = "sql"
	TriggerSchedule Trigger = "schedule"
	// TriggerFunction is an invocation a script made with picloud.invoke.
	TriggerFunction Trigger = "function"
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

// HTTPRequest is the request that an HTTP-triggered invocation answers.
type HTTPRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   map[string]string `json:"query"`
	Headers map[string]string `json:"headers"`
	// Body is stored apart from the rest, as bytes.
	Body []byte `json:"-"`
}

// Invocation is one run of a function: the row in picloud.invocations.
type Invocation struct {
	ID              int64
	Function        string
	FunctionVersion int
	Trigger         Trigger
	Status          Status
	// Request is set for TriggerHTTP.
	Request *HTTPRequest
	Payload json.RawMessage
	// Result is the HTTP response for TriggerHTTP (see Response), else the
	// return value.
	Result json.RawMessage
	// Error is the latest attempt's error; Errors has every failed attempt's.
	Error          string
	Errors         []AttemptError
	Logs           []executor.LogEntry
	Attempt        int
	MaxAttempts    int
	Timeout        time.Duration
	IdempotencyKey string
	// RunAt is when the pending attempt is due; nil means at once.
	RunAt *time.Time
	// ParentID is the invocation whose script enqueued this one.
	ParentID   *int64
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time

	// response is Result before it was encoded, when this node ran the
	// invocation: the waiting HTTP handler answers from it (Response).
	response *executor.Response
}

// AttemptError is why one attempt failed.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}
