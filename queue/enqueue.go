package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/db"
	"github.com/picloud/picloud/keys"
)

// Errors of an enqueue that callers tell apart with errors.Is.
var (
	// ErrFunctionNotFound: the invocation names a function that does not
	// exist. It is the catalog's error, so that one errors.Is covers both.
	ErrFunctionNotFound = catalog.ErrFunctionNotFound
	// ErrUnauthenticated: the call needs an API key and came without a
	// valid one. It is the keys package's error, so that one errors.Is covers a key
	// refused by Authenticate and a call refused by Enqueue.
	ErrUnauthenticated = keys.ErrUnauthenticated
)

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
func (c *Client) Invoke(ctx context.Context, p InvokeParams) (Enqueued, error) {
	return c.invoke(ctx, p, false)
}

// invoke is Invoke. A caller that waits for the outcome (Call) says so:
// a node that runs invocations then starts a call due now on itself when
// it has a free slot, instead of waking a worker through the queue; the
// row and its guarantees are the same.
func (c *Client) invoke(ctx context.Context, p InvokeParams, waiting bool) (enq Enqueued, err error) {
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
	if p.Timeout < 0 || p.Timeout > catalog.MaxTimeout {
		return Enqueued{}, &InvalidInvocationError{fmt.Sprintf("timeout must be between 1 ms and %v", catalog.MaxTimeout)}
	}
	params := db.EnqueueInvocationParams{
		Function:      p.Function,
		Trigger:       string(p.Trigger),
		Payload:       p.Payload,
		TimeoutMs:     db.OptionalMillis(p.Timeout),
		MaxAttempts:   db.OptionalInt(p.MaxAttempts),
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
	if waiting && p.IdempotencyKey == "" && p.RunAt.IsZero() && c.reserveSlot() {
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
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlStateBadArgument {
		// A payload over picloud.max_payload_bytes(), say: the caller's
		// mistake, which the message names.
		return Enqueued{}, &InvalidInvocationError{strings.TrimPrefix(pgErr.Message, "picloud: ")}
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

// SQLSTATEs of a batch the database refuses: PiCloud's own for a malformed
// argument, and PostgreSQL's for text it cannot store (jsonb has no
// \u0000, text no NUL byte).
const (
	sqlStateBadArgument         = "PC400"
	sqlStateUnsupportedEscape   = "22P05"
	sqlStateInvalidByteSequence = "22021"
)

// InvalidInvocationError reports an invocation the database refused as
// given (PC400), such as a payload over the size limit.
type InvalidInvocationError struct{ Reason string }

func (e *InvalidInvocationError) Error() string { return "invalid invocation: " + e.Reason }

// BatchItem is one invocation of InvokeMany.
type BatchItem struct {
	// Payload is any JSON; empty means {}.
	Payload json.RawMessage
	// IdempotencyKey, when set, works as in InvokeParams; items of one
	// batch with the same key share one invocation.
	IdempotencyKey string
	// RunAt schedules the invocation; zero means at once.
	RunAt time.Time
}

// BatchInvocation is what InvokeMany knows of one item's invocation.
type BatchInvocation struct {
	ID int64
	// Status is queued for a new invocation; for an idempotency key still
	// in its window, the status of the invocation the key first created.
	Status Status
}

// InvalidBatchError reports a batch the database refused as malformed.
type InvalidBatchError struct{ Reason string }

func (e *InvalidBatchError) Error() string { return "invalid batch: " + e.Reason }

// InvokeMany enqueues one invocation of function per item in a single
// statement (picloud.enqueue_many: one INSERT for the invocations, one for
// their River jobs, one wake-up) and returns them in item order. The
// invocations get the function's timeout and max_attempts, as an
// asynchronous Invoke does. Either all items are enqueued or none: an
// unknown function gives ErrFunctionNotFound, a malformed batch an
// *InvalidBatchError.
func (c *Client) InvokeMany(ctx context.Context, function string, trigger Trigger, items []BatchItem) (invs []BatchInvocation, err error) {
	ctx, span := c.tracer.Start(ctx, "picloud.enqueue_many", trace.WithSpanKind(trace.SpanKindProducer))
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.String(attrFunction, function), attribute.String(attrTrigger, string(trigger)),
				attribute.Int("picloud.batch.size", len(items)))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
	}()
	params := db.EnqueueManyParams{
		Function: function,
		Trigger:  string(trigger),
		Payloads: make([][]byte, len(items)),
	}
	// Keys and times are sent only when some item has one: without them
	// the database takes its faster path, which claims no keys.
	for i, it := range items {
		params.Payloads[i] = it.Payload
		if it.IdempotencyKey != "" && params.IdempotencyKeys == nil {
			params.IdempotencyKeys = make([]string, len(items))
		}
		if !it.RunAt.IsZero() && params.RunAts == nil {
			params.RunAts = make([]time.Time, len(items))
		}
	}
	for i, it := range items {
		if params.IdempotencyKeys != nil {
			params.IdempotencyKeys[i] = it.IdempotencyKey
		}
		if params.RunAts != nil {
			params.RunAts[i] = it.RunAt
		}
	}
	if tp := traceParent(ctx); tp != "" {
		params.TraceParent = &tp
	}
	rows, err := c.queries.EnqueueMany(ctx, params)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
		switch pgErr.Code {
		case sqlStateFunctionNotFound:
			return nil, fmt.Errorf("%w: %s", ErrFunctionNotFound, function)
		case sqlStateBadArgument, sqlStateUnsupportedEscape, sqlStateInvalidByteSequence:
			return nil, &InvalidBatchError{pgErr.Message}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue %d invocations: %w", len(items), err)
	}
	if len(rows) != len(items) {
		return nil, fmt.Errorf("enqueue %d invocations: the database answered %d rows", len(items), len(rows))
	}
	invs = make([]BatchInvocation, len(rows))
	for i, r := range rows {
		invs[i] = BatchInvocation{ID: r.ID, Status: Status(r.Status)}
	}
	return invs, nil
}
