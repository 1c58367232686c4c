package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/queue/internal/db"
)

// SQLSTATEs raised by PiCloud's SQL functions.
const (
	sqlStateFunctionNotFound   = "PC404"
	sqlStateInvocationNotFound = "PC405"
	sqlStateUnauthenticated    = "PC401"
)

// InvokeParams describes an invocation to enqueue.
type InvokeParams struct {
	Function string
	Trigger  Trigger
	// Request is required for TriggerHTTP. Invoke replaces any PiCloud
	// API key in it with KeyMask, in place, before the row is written.
	Request *HTTPRequest
	Payload json.RawMessage
	// Timeout overrides the function's; zero keeps it.
	Timeout time.Duration
	// MaxAttempts overrides the function's; zero keeps it.
	MaxAttempts int
	// IdempotencyKey, when set, makes a repeated Invoke with the same key
	// for the same function return the first invocation instead of running
	// again, for as long as picloud.settings.idempotency_window.
	IdempotencyKey string
	// RunAt schedules the invocation; zero means at once.
	RunAt time.Time
	// Authenticated says the caller presented a valid API key. Only
	// TriggerHTTP looks at it: a function with AuthKey refuses an
	// unauthenticated HTTP call with ErrUnauthenticated.
	Authenticated bool
	// Wait promises that the caller waits for the outcome with
	// WaitEnqueued. A node that runs invocations then starts a call due now
	// on itself when it has a free slot, instead of waking a worker
	// through the queue; the row and its guarantees are the same.
	Wait bool
}

// Enqueued is what Invoke knows of the invocation it enqueued (or found by
// its idempotency key).
type Enqueued struct {
	ID      int64
	Status  Status
	Timeout time.Duration
	// ranHere is set when the invocation runs on this node: it receives
	// the finished invocation, or nil when the run ended without a final
	// outcome of its own (handed back, cancelled).
	ranHere chan *Invocation
}

// Invoke writes the invocation row and wakes a worker. An unknown function
// gives ErrFunctionNotFound. Called with an idempotency key whose
// invocation exists, it returns that invocation and enqueues nothing.
func (c *Client) Invoke(ctx context.Context, p InvokeParams) (enq Enqueued, err error) {
	ctx, span := c.tracer.Start(ctx, "picloud.enqueue", trace.WithSpanKind(trace.SpanKindProducer))
	defer func() {
		// Attributes only for a recording span: building them costs
		// allocations that an untraced call should not pay.
		if span.IsRecording() {
			span.SetAttributes(attribute.String(attrFunction, p.Function), attribute.String(attrTrigger, string(p.Trigger)))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			} else {
				span.SetAttributes(attribute.Int64(attrInvocationID, enq.ID))
			}
		}
		span.End()
	}()
	if p.Timeout < 0 || p.Timeout > MaxTimeout {
		return Enqueued{}, &InvalidOptionsError{fmt.Sprintf("timeout must be between 1 ms and %v", MaxTimeout)}
	}
	params := db.EnqueueInvocationParams{
		Function:      p.Function,
		Trigger:       string(p.Trigger),
		Payload:       p.Payload,
		TimeoutMs:     optionalMillis(p.Timeout),
		MaxAttempts:   optionalInt(p.MaxAttempts),
		Authenticated: p.Authenticated,
	}
	if p.IdempotencyKey != "" {
		params.IdempotencyKey = &p.IdempotencyKey
	}
	if tp := traceParent(ctx); tp != "" {
		params.TraceParent = &tp
	}
	if !p.RunAt.IsZero() {
		params.RunAt = &p.RunAt
	}
	if p.Request != nil {
		p.Request.redactKeys()
		request, err := json.Marshal(p.Request)
		if err != nil {
			return Enqueued{}, fmt.Errorf("encode request: %w", err)
		}
		params.Request = request
		params.RequestBody = p.Request.Body
	}
	if p.Wait && p.IdempotencyKey == "" && p.RunAt.IsZero() && c.reserveSlot() {
		return c.invokeHere(ctx, params, p.Request)
	}
	row, err := c.queries.EnqueueInvocation(ctx, params)
	return c.enqueued(row, err, p.Function)
}

// enqueued translates an enqueue's outcome.
func (c *Client) enqueued(row db.EnqueueInvocationRow, err error, function string) (Enqueued, error) {
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlStateFunctionNotFound {
		return Enqueued{}, fmt.Errorf("%w: %s", ErrFunctionNotFound, function)
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlStateUnauthenticated {
		return Enqueued{}, fmt.Errorf("%w: function %s needs an API key", ErrUnauthenticated, function)
	}
	if err != nil {
		return Enqueued{}, fmt.Errorf("enqueue invocation: %w", err)
	}
	return Enqueued{ID: row.ID, Status: Status(row.Status), Timeout: time.Duration(row.TimeoutMs) * time.Millisecond}, nil
}

// recheckAfter is how long Wait trusts notifications alone before it reads
// the row itself. Notifications are not lost while the listener is
// connected, and a reconnect wakes every waiter, so this is a backstop that
// costs one query per waiter every few seconds, and nothing while idle.
const recheckAfter = 5 * time.Second

// Wait blocks until invocation id reaches a final status and returns it, or
// returns ctx's error. It is woken by the database's announcement of the
// finish, not by polling.
func (c *Client) Wait(ctx context.Context, id int64) (Invocation, error) {
	return c.wait(ctx, id, true)
}

// WaitEnqueued is Wait for an invocation that Invoke just returned: unless
// it was already final (an idempotent repeat), it cannot have been announced
// before Invoke returned, so the first read of the row is skipped.
func (c *Client) WaitEnqueued(ctx context.Context, e Enqueued) (Invocation, error) {
	if e.ranHere != nil {
		select {
		case inv := <-e.ranHere:
			if inv != nil {
				return *inv, nil
			}
		case <-ctx.Done():
			return Invocation{}, ctx.Err()
		}
		// Handed back or cancelled: the general wait reads the row.
		return c.wait(ctx, e.ID, true)
	}
	return c.wait(ctx, e.ID, e.Status.Final())
}

func (c *Client) wait(ctx context.Context, id int64, readFirst bool) (Invocation, error) {
	recheck := time.NewTimer(recheckAfter)
	defer recheck.Stop()
	for {
		ch, finished := c.finished.register(id)
		if !finished && readFirst {
			inv, err := c.GetInvocation(ctx, id)
			if err != nil || inv.Status.Final() {
				c.finished.unregister(id, ch)
				return inv, err
			}
		}
		readFirst = true
		if !finished {
			select {
			case inv := <-ch:
				if inv != nil {
					return *inv, nil
				}
			case <-recheck.C:
				c.finished.unregister(id, ch)
				recheck.Reset(recheckAfter)
			case <-ctx.Done():
				c.finished.unregister(id, ch)
				return Invocation{}, ctx.Err()
			}
		}
		inv, err := c.GetInvocation(ctx, id)
		if err != nil || inv.Status.Final() {
			return inv, err
		}
	}
}

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
// payload, result and logs. more reports whether another page follows.
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
		}
		if r.Error != nil {
			invs[i].Error = *r.Error
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
