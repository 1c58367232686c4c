package queue

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/keys"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrFunctionNotFound: the invocation names a function that does not
	// exist. It is the catalog's error, so that one errors.Is covers both.
	ErrFunctionNotFound   = catalog.ErrFunctionNotFound
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
