package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/queue/internal/db"
)

// SQLSTATEs of a batch the database refuses: PiCloud's own for a malformed
// argument, and PostgreSQL's for text it cannot store (jsonb has no
// \u0000, text no NUL byte).
const (
	sqlStateBadArgument         = "PC400"
	sqlStateUnsupportedEscape   = "22P05"
	sqlStateInvalidByteSequence = "22021"
)

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
