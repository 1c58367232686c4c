package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/db"
)

// ErrInvocationNotFound: no invocation has that id.
var ErrInvocationNotFound = errors.New("invocation not found")

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

// SQLSTATEs raised by PiCloud's SQL functions.
const (
	sqlStateFunctionNotFound   = "PC404"
	sqlStateInvocationNotFound = "PC405"
	sqlStateUnauthenticated    = "PC401"
)

// GetInvocation reads an invocation row.
func (c *Client) GetInvocation(ctx context.Context, id int64) (Invocation, error) {
	row, err := c.queries.GetInvocation(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Invocation{}, fmt.Errorf("%w: %d", ErrInvocationNotFound, id)
	}
	if err != nil {
		return Invocation{}, fmt.Errorf("get invocation: %w", err)
	}
	inv := Invocation{
		ID:              row.ID,
		Function:        row.Function,
		FunctionVersion: int(row.FunctionVersion),
		Trigger:         Trigger(row.Trigger),
		Status:          Status(row.Status),
		Payload:         row.Payload,
		Result:          row.Result,
		Attempt:         int(row.Attempt),
		MaxAttempts:     int(row.MaxAttempts),
		Timeout:         time.Duration(row.TimeoutMs) * time.Millisecond,
		RunAt:           row.RunAt,
		ParentID:        row.ParentID,
		CreatedAt:       row.CreatedAt,
		StartedAt:       row.StartedAt,
		FinishedAt:      row.FinishedAt,
	}
	if row.Error != nil {
		inv.Error = *row.Error
	}
	if row.IdempotencyKey != nil {
		inv.IdempotencyKey = *row.IdempotencyKey
	}
	if row.Request != nil {
		inv.Request = &HTTPRequest{}
		if err := json.Unmarshal(row.Request, inv.Request); err != nil {
			return Invocation{}, fmt.Errorf("decode request of invocation %d: %w", id, err)
		}
		inv.Request.Body = row.RequestBody
	}
	if err := json.Unmarshal(row.Logs, &inv.Logs); err != nil {
		return Invocation{}, fmt.Errorf("decode logs of invocation %d: %w", id, err)
	}
	if err := json.Unmarshal(row.Errors, &inv.Errors); err != nil {
		return Invocation{}, fmt.Errorf("decode errors of invocation %d: %w", id, err)
	}
	return inv, nil
}

// ListParams filters ListInvocations. Zero values match everything.
type ListParams struct {
	Function string
	Status   Status
	// Before lists invocations older than this id: the cursor of the next
	// page is the last id of the previous one.
	Before int64
	// Limit defaults to 50.
	Limit int
}

// ListInvocations returns invocations newest first, without their request,
// payload, result and logs, and with an error over 1024 bytes cut (see the
// query), so that a page's size is bounded. more reports whether another
// page follows.
func (c *Client) ListInvocations(ctx context.Context, p ListParams) (invs []Invocation, more bool, err error) {
	if p.Limit <= 0 {
		p.Limit = 50
	}
	params := db.ListInvocationsParams{MaxRows: int32(p.Limit + 1)}
	if p.Function != "" {
		params.Function = &p.Function
	}
	if p.Status != "" {
		status := string(p.Status)
		params.Status = &status
	}
	if p.Before > 0 {
		params.BeforeID = &p.Before
	}
	rows, err := c.queries.ListInvocations(ctx, params)
	if err != nil {
		return nil, false, fmt.Errorf("list invocations: %w", err)
	}
	if len(rows) > p.Limit {
		rows, more = rows[:p.Limit], true
	}
	invs = make([]Invocation, len(rows))
	for i, r := range rows {
		invs[i] = Invocation{
			ID: r.ID, Function: r.Function, FunctionVersion: int(r.FunctionVersion),
			Trigger: Trigger(r.Trigger), Status: Status(r.Status),
			Attempt: int(r.Attempt), MaxAttempts: int(r.MaxAttempts), Timeout: time.Duration(r.TimeoutMs) * time.Millisecond,
			RunAt: r.RunAt, ParentID: r.ParentID, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			Error: r.Error,
		}
		if r.IdempotencyKey != nil {
			invs[i].IdempotencyKey = *r.IdempotencyKey
		}
	}
	return invs, more, nil
}

// Cancel stops an invocation: a queued one never runs, a running one is
// stopped in its sandbox by the worker that runs it. It returns the status
// afterwards: cancelled, or the final status the invocation already had.
func (c *Client) Cancel(ctx context.Context, id int64) (Status, error) {
	status, err := c.queries.CancelInvocation(ctx, id)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlStateInvocationNotFound {
		return "", fmt.Errorf("%w: %d", ErrInvocationNotFound, id)
	}
	if err != nil {
		return "", fmt.Errorf("cancel invocation: %w", err)
	}
	return Status(status), nil
}
