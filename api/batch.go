package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/queue"
)

// MaxBatchInvocations caps the items of one batch request. Enqueueing costs
// the same per item from about a thousand items on (picloud.invoke_many
// keeps its rate from 1,000 to 1,000,000 payloads a call), so a larger cap
// would buy a client little, and would hold a request, its memory and its
// answer longer; SQL callers with more go through picloud.invoke_many,
// whose cap is picloud.invoke_many_max(). The maxItems tag of
// invokeBatchInput repeats it: huma's validation enforces it, as a 422
// naming body.invocations.
const MaxBatchInvocations = 1000

// MaxBatchBodyBytes caps a batch request's body: MaxBatchInvocations items
// of about 6 KiB of JSON each, the /fn body cap (DefaultMaxBodyBytes) for
// the whole batch.
const MaxBatchBodyBytes = DefaultMaxBodyBytes

// BatchItemBody is one invocation of a batch.
type BatchItemBody struct {
	Payload        any        `json:"payload,omitempty" example:"{\"image\": 1}" doc:"Any JSON value; the script sees it as req.payload. Absent means {}. Strings must not contain \\u0000, which PostgreSQL's jsonb cannot store."`
	IdempotencyKey string     `json:"idempotency_key,omitempty" maxLength:"255" example:"image-1" doc:"A later call (single or batch) with the same key for the same function, within 24 h, returns the invocation this one creates; items of one batch with the same key share one invocation."`
	RunAt          *time.Time `json:"run_at,omitempty" doc:"Run at this time instead of now. Between 2000-01-01T00:00:00Z and 9999-12-31T23:59:59Z."`
}

// BatchInvocationBody is what a batch answers for one item.
type BatchInvocationBody struct {
	ID     int64  `json:"id" example:"42"`
	Status string `json:"status" enum:"queued,running,succeeded,failed,timed_out,cancelled" example:"queued" doc:"queued for a new invocation; for an idempotency key still in its window, the current status of the invocation the key first created."`
}

type invokeBatchInput struct {
	Name string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name."`
	Body struct {
		Invocations []BatchItemBody `json:"invocations" minItems:"1" maxItems:"1000" doc:"One item per invocation, at most 1000."`
	}
}

type invokeBatchOutput struct {
	Body struct {
		Invocations []BatchInvocationBody `json:"invocations" doc:"One per item, in the order of the request."`
	}
}

func (s *Server) registerBatch() {
	register(s.api, huma.Operation{
		OperationID: "invoke-function-batch",
		Method:      http.MethodPost,
		// A custom method in the style of Google's API guidelines (AIP-136):
		// the batch acts on the collection /invocations, and the name
		// cannot be mistaken for an invocation id under it. Go's ServeMux,
		// huma and both SDK generators take the colon as a literal.
		Path:    "/v1/functions/{name}/invocations:batch",
		Summary: "Invoke a function many times",
		Description: fmt.Sprintf("Enqueues one asynchronous invocation per item (req.trigger is \"api\"), in one database statement: all items are enqueued or none. "+
			"Answers 202 with each item's invocation id and status, in the order of the request. "+
			"Invocations get the function's timeout and max_attempts, as async calls of POST /v1/functions/{name}/invocations do. "+
			"At most %d items and %d MiB per request; for more, send several requests, or call picloud.invoke_many from SQL.",
			MaxBatchInvocations, MaxBatchBodyBytes>>20),
		Tags:          []string{"invocations"},
		DefaultStatus: http.StatusAccepted,
		Errors:        []int{http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
		MaxBodyBytes:  MaxBatchBodyBytes,
	}, s.invokeBatch)
}

func (s *Server) invokeBatch(ctx context.Context, in *invokeBatchInput) (*invokeBatchOutput, error) {
	items := make([]queue.BatchItem, len(in.Body.Invocations))
	var details []error
	for i, it := range in.Body.Invocations {
		if it.Payload != nil {
			payload, err := json.Marshal(it.Payload)
			if err != nil {
				details = append(details, &huma.ErrorDetail{Location: fmt.Sprintf("body.invocations[%d].payload", i), Message: err.Error()})
				continue
			}
			items[i].Payload = payload
		}
		items[i].IdempotencyKey = it.IdempotencyKey
		if it.RunAt != nil {
			items[i].RunAt = *it.RunAt
		}
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	invs, err := s.config.Invocations.InvokeMany(ctx, in.Name, queue.TriggerAPI, items)
	if errors.Is(err, queue.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if invalid := (*queue.InvalidBatchError)(nil); errors.As(err, &invalid) {
		// The checks above let nothing through that the database refuses;
		// this keeps a gap between them a client error, not a 500.
		return nil, huma.Error422UnprocessableEntity(invalid.Reason)
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &invokeBatchOutput{}
	out.Body.Invocations = make([]BatchInvocationBody, len(invs))
	for i, inv := range invs {
		out.Body.Invocations[i] = BatchInvocationBody{ID: inv.ID, Status: string(inv.Status)}
	}
	return out, nil
}
