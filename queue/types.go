package queue

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/picloud/picloud/catalog"
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

// HTTPResponse is the result of an HTTP-triggered invocation. In JSON its
// body is a string when it is UTF-8 text, else base64 in body_base64, so
// that binary responses survive the trip through a jsonb column (which
// also refuses the NUL character, valid UTF-8 though it is).
type HTTPResponse struct {
	Status  int
	Headers map[string]string
	Body    []byte
}

type httpResponseJSON struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body,omitempty"`
	BodyBase64 *string           `json:"body_base64,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (r HTTPResponse) MarshalJSON() ([]byte, error) {
	out := httpResponseJSON{Status: r.Status, Headers: r.Headers}
	if utf8.Valid(r.Body) && bytes.IndexByte(r.Body, 0) < 0 {
		s := string(r.Body)
		out.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(r.Body)
		out.BodyBase64 = &s
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *HTTPResponse) UnmarshalJSON(data []byte) error {
	var in httpResponseJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*r = HTTPResponse{Status: in.Status, Headers: in.Headers}
	switch {
	case in.Body != nil:
		r.Body = []byte(*in.Body)
	case in.BodyBase64 != nil:
		body, err := base64.StdEncoding.DecodeString(*in.BodyBase64)
		if err != nil {
			return err
		}
		r.Body = body
	}
	return nil
}

// LogEntry is one line a function logged.
type LogEntry struct {
	Time    time.Time       `json:"time"`
	Level   string          `json:"level"`
	Message string          `json:"message"`
	Fields  json.RawMessage `json:"fields,omitempty"`
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
	// Result is an HTTPResponse for TriggerHTTP, else the return value.
	Result json.RawMessage
	// Error is the latest attempt's error; Errors has every failed attempt's.
	Error          string
	Errors         []AttemptError
	Logs           []LogEntry
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
	response *HTTPResponse
}

// AttemptError is why one attempt failed.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// Response decodes Result as the HTTP response of an HTTP-triggered invocation.
func (inv *Invocation) Response() (HTTPResponse, error) {
	if inv.response != nil {
		return *inv.response, nil
	}
	var r HTTPResponse
	if len(inv.Result) == 0 {
		return r, errors.New("invocation has no result")
	}
	err := json.Unmarshal(inv.Result, &r)
	return r, err
}
