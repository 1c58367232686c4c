package api

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/queue"
)

// InvocationBody is one invocation: the row in picloud.invocations.
type InvocationBody struct {
	ID              int64              `json:"id" example:"42"`
	Function        string             `json:"function" example:"hello"`
	FunctionVersion int                `json:"function_version" doc:"Version of the function this invocation runs."`
	Trigger         string             `json:"trigger" enum:"http,api,sql,schedule,function" doc:"What created the invocation; function means another invocation's script (see parent_id)."`
	Status          string             `json:"status" enum:"queued,running,succeeded,failed,timed_out,cancelled"`
	Request         *RequestBody       `json:"request,omitempty" doc:"The HTTP request, for trigger http."`
	Payload         json.RawMessage    `json:"payload,omitempty" doc:"The JSON payload, for triggers other than http."`
	Result          json.RawMessage    `json:"result,omitempty" doc:"For trigger http the HTTP response {status, headers, body} (body_base64 instead of body when it is not UTF-8); otherwise the function's return value."`
	Error           string             `json:"error,omitempty" doc:"Why the latest attempt failed, with the Lua line where there is one."`
	Errors          []AttemptErrorBody `json:"errors,omitempty" doc:"Every failed attempt's error."`
	Logs            []LogEntryBody     `json:"logs,omitempty" doc:"Lines the function printed or logged in its latest attempt."`
	Attempt         int                `json:"attempt" doc:"Attempts started so far."`
	MaxAttempts     int                `json:"max_attempts"`
	TimeoutMS       int64              `json:"timeout_ms" doc:"Wall-clock limit of an attempt."`
	IdempotencyKey  string             `json:"idempotency_key,omitempty"`
	RunAt           *time.Time         `json:"run_at,omitempty" doc:"When the pending attempt is due, if it was scheduled."`
	ParentID        *int64             `json:"parent_id,omitempty" doc:"The invocation whose script enqueued this one."`
	CreatedAt       time.Time          `json:"created_at"`
	StartedAt       *time.Time         `json:"started_at" doc:"Start of the latest attempt."`
	FinishedAt      *time.Time         `json:"finished_at"`
	WaitMS          *float64           `json:"wait_ms" doc:"Time from creation to start of the latest attempt, in milliseconds."`
	RunMS           *float64           `json:"run_ms" doc:"Time from start to finish, in milliseconds."`
	Links           map[string]string  `json:"links,omitempty" doc:"Related resources."`
}

// RequestBody is the HTTP request an invocation answers.
type RequestBody struct {
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Query      map[string]string `json:"query"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body,omitempty" doc:"The request body when it is UTF-8 text."`
	BodyBase64 *string           `json:"body_base64,omitempty" doc:"The request body, base64-encoded, when it is not UTF-8."`
}

// AttemptErrorBody is why one attempt failed.
type AttemptErrorBody struct {
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// LogEntryBody is one log line.
type LogEntryBody struct {
	Time    time.Time       `json:"time"`
	Level   string          `json:"level" enum:"debug,info,warn,error"`
	Message string          `json:"message"`
	Fields  json.RawMessage `json:"fields,omitempty" doc:"Structured fields, from log.info(\"message\", {key = value})."`
}

func invocationBody(inv queue.Invocation) InvocationBody {
	b := InvocationBody{
		ID: inv.ID, Function: inv.Function, FunctionVersion: inv.FunctionVersion,
		Trigger: string(inv.Trigger), Status: string(inv.Status),
		Payload: inv.Payload, Result: inv.Result, Error: inv.Error,
		Attempt: inv.Attempt, MaxAttempts: inv.MaxAttempts, TimeoutMS: inv.Timeout.Milliseconds(),
		IdempotencyKey: inv.IdempotencyKey, RunAt: inv.RunAt, ParentID: inv.ParentID,
		CreatedAt: inv.CreatedAt, StartedAt: inv.StartedAt, FinishedAt: inv.FinishedAt,
		Links: map[string]string{"self": fmt.Sprintf("/v1/invocations/%d", inv.ID), "function": "/v1/functions/" + inv.Function},
	}
	if inv.Logs != nil {
		b.Logs = make([]LogEntryBody, len(inv.Logs))
		for i, l := range inv.Logs {
			b.Logs[i] = LogEntryBody(l)
		}
	}
	for _, e := range inv.Errors {
		b.Errors = append(b.Errors, AttemptErrorBody(e))
	}
	if inv.StartedAt != nil {
		b.WaitMS = milliseconds(inv.StartedAt.Sub(inv.CreatedAt))
		if inv.FinishedAt != nil {
			b.RunMS = milliseconds(inv.FinishedAt.Sub(*inv.StartedAt))
		}
	}
	if r := inv.Request; r != nil {
		b.Request = &RequestBody{Method: r.Method, Path: r.Path, Query: r.Query, Headers: r.Headers}
		if len(r.Body) > 0 {
			if utf8.Valid(r.Body) {
				body := string(r.Body)
				b.Request.Body = &body
			} else {
				body := base64.StdEncoding.EncodeToString(r.Body)
				b.Request.BodyBase64 = &body
			}
		}
	}
	return b
}

func milliseconds(d time.Duration) *float64 {
	ms := float64(d.Microseconds()) / 1000
	return &ms
}

// Invocations is what the API needs of the invocation lifecycle:
// *queue.Client.
type Invocations interface {
	// Invoke enqueues and returns at once.
	Invoke(ctx context.Context, p queue.InvokeParams) (queue.Enqueued, error)
	// Call enqueues and waits for the outcome, up to the invocation's
	// timeout plus grace.
	Call(ctx context.Context, p queue.InvokeParams, grace time.Duration) (queue.Invocation, error)
	InvokeMany(ctx context.Context, function string, trigger queue.Trigger, items []queue.BatchItem) ([]queue.BatchInvocation, error)
	GetInvocation(ctx context.Context, id int64) (queue.Invocation, error)
	ListInvocations(ctx context.Context, p queue.ListParams) (invs []queue.Invocation, more bool, err error)
	// Wait long-polls an invocation until it finishes or ctx ends.
	Wait(ctx context.Context, id int64) (queue.Invocation, error)
	Cancel(ctx context.Context, id int64) (queue.Status, error)
}

type getInvocationInput struct {
	ID   int64  `path:"id" minimum:"1" example:"42" doc:"Invocation id, as in the X-Invocation-Id header of a /fn response."`
	Wait string `query:"wait" pattern:"^([0-9]+(\\.[0-9]+)?(ms|s|m))?$" example:"10s" doc:"Long-poll: wait up to this long (e.g. 500ms, 10s, 1m; at most 5m) for the invocation to finish before answering."`
}

// maxLongPoll caps ?wait=; proxies and load balancers rarely keep a quiet
// request open longer.
const maxLongPoll = 5 * time.Minute

type invocationOutput struct {
	Body InvocationBody
}

type invokeInput struct {
	Name              string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name."`
	IdempotencyHeader string `header:"Idempotency-Key" maxLength:"255" doc:"Same as idempotency_key in the body; the body wins when both are set."`
	Body              struct {
		Payload        any        `json:"payload,omitempty" example:"{\"name\": \"Ada\"}" doc:"Any JSON value; the script sees it as req.payload. Strings and keys must not contain \\u0000, which PostgreSQL's jsonb cannot store."`
		Async          bool       `json:"async,omitempty" doc:"Answer 202 at once instead of waiting for the result."`
		IdempotencyKey string     `json:"idempotency_key,omitempty" maxLength:"255" example:"order-1234" doc:"A repeated call with the same key for the same function, within 24 h, returns the first invocation instead of running again."`
		RunAt          *time.Time `json:"run_at,omitempty" doc:"Run at this time instead of now; needs async. Between 2000-01-01T00:00:00Z and 9999-12-31T23:59:59Z."`
		TimeoutMS      int        `json:"timeout_ms,omitempty" minimum:"1" maximum:"900000" doc:"Wall-clock limit of an attempt, overriding the function's."`
	}
}

type invokeOutput struct {
	Status   int
	Location string `header:"Location" doc:"The invocation, for async calls."`
	Body     InvocationBody
}

type listInvocationsInput struct {
	Function string `query:"function" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Only this function's invocations."`
	Status   string `query:"status" enum:"queued,running,succeeded,failed,timed_out,cancelled" doc:"Only invocations in this status."`
	Limit    int    `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"Page size."`
	Cursor   string `query:"cursor" doc:"The next_cursor of the previous page."`
}

type listInvocationsOutput struct {
	Link string `header:"Link" doc:"The next page: <url>; rel=\"next\"."`
	Body struct {
		Invocations []InvocationBody `json:"invocations" doc:"Newest first, without request, payload, result and logs."`
		NextCursor  string           `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page."`
	}
}

type cancelInput struct {
	ID int64 `path:"id" minimum:"1" doc:"Invocation id."`
}

func (s *Server) registerInvocations() {
	tags := []string{"invocations"}
	register(s.api, huma.Operation{
		OperationID: "get-invocation",
		Method:      http.MethodGet,
		Path:        "/v1/invocations/{id}",
		Summary:     "Get an invocation",
		Description: "The invocation row: status, timings, request, result, error and logs. With ?wait= the answer waits for the invocation to finish (woken by the database's notification, not by polling) and returns its state when the wait ends either way.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound},
	}, s.getInvocation)
	register(s.api, huma.Operation{
		OperationID: "invoke-function",
		Method:      http.MethodPost,
		Path:        "/v1/functions/{name}/invocations",
		Summary:     "Invoke a function",
		Description: "Runs the function with a JSON payload (req.payload; req.trigger is \"api\"). By default the call waits and answers 200 with the finished invocation; " +
			"with async it answers 202 with the queued invocation and a Location header. Asynchronous invocations get the function's max_attempts; synchronous ones run once.",
		Tags:          tags,
		DefaultStatus: http.StatusOK,
		Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusGatewayTimeout},
	}, s.invoke)
	accepted := *s.api.OpenAPI().Paths["/v1/functions/{name}/invocations"].Post.Responses["200"]
	accepted.Description = "Accepted (async): the invocation is queued."
	s.api.OpenAPI().Paths["/v1/functions/{name}/invocations"].Post.Responses["202"] = &accepted
	register(s.api, huma.Operation{
		OperationID: "list-invocations",
		Method:      http.MethodGet,
		Path:        "/v1/invocations",
		Summary:     "List invocations",
		Description: "Newest first, a page at a time: follow next_cursor, or the Link header with rel=\"next\". An error longer than 1024 bytes is cut to its first 1024 characters, marked \"... [cut in lists: ...]\", so that a page stays small; GET /v1/invocations/{id} has the whole error.",
		Tags:        tags,
	}, s.listInvocations)
	register(s.api, huma.Operation{
		OperationID: "cancel-invocation",
		Method:      http.MethodPost,
		Path:        "/v1/invocations/{id}/cancel",
		Summary:     "Cancel an invocation",
		Description: "A queued invocation never runs; a running one is stopped in its sandbox. Answers with the invocation, now cancelled (also when it already was); 409 when it had already finished otherwise.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, s.cancelInvocation)
}

func (s *Server) getInvocation(ctx context.Context, in *getInvocationInput) (*invocationOutput, error) {
	var inv queue.Invocation
	var err error
	if in.Wait == "" {
		inv, err = s.config.Invocations.GetInvocation(ctx, in.ID)
	} else {
		wait, perr := time.ParseDuration(in.Wait)
		if perr != nil || wait > maxLongPoll {
			return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("wait must be a duration of at most %v, like 10s", maxLongPoll))
		}
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		inv, err = s.config.Invocations.Wait(waitCtx, in.ID)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			inv, err = s.config.Invocations.GetInvocation(ctx, in.ID)
		}
	}
	if errors.Is(err, queue.ErrInvocationNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("invocation %d does not exist", in.ID))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &invocationOutput{Body: invocationBody(inv)}, nil
}

func (s *Server) invoke(ctx context.Context, in *invokeInput) (*invokeOutput, error) {
	b := &in.Body
	if b.RunAt != nil && !b.Async {
		return nil, huma.Error422UnprocessableEntity("run_at needs async: true; a synchronous call answers with the result")
	}
	key := cmp.Or(b.IdempotencyKey, in.IdempotencyHeader)
	var payload json.RawMessage
	if b.Payload != nil {
		var err error
		if payload, err = json.Marshal(b.Payload); err != nil {
			return nil, huma.Error422UnprocessableEntity("payload: " + err.Error())
		}
	}
	params := queue.InvokeParams{
		Function:       in.Name,
		Trigger:        queue.TriggerAPI,
		Payload:        payload,
		Timeout:        time.Duration(b.TimeoutMS) * time.Millisecond,
		IdempotencyKey: key,
	}
	if b.RunAt != nil {
		params.RunAt = *b.RunAt
	}
	location := func(id int64) string { return fmt.Sprintf("/v1/invocations/%d", id) }
	if !b.Async {
		inv, err := s.config.Invocations.Call(ctx, params, s.config.QueueGrace)
		switch {
		case errors.Is(err, queue.ErrNotFinished):
			return nil, huma.Error504GatewayTimeout(fmt.Sprintf("invocation %d has not finished yet; its status is at %s", inv.ID, location(inv.ID)))
		case err != nil:
			return nil, s.invokeError(ctx, in.Name, err)
		}
		return &invokeOutput{Status: http.StatusOK, Location: location(inv.ID), Body: invocationBody(inv)}, nil
	}
	enq, err := s.config.Invocations.Invoke(ctx, params)
	if err != nil {
		return nil, s.invokeError(ctx, in.Name, err)
	}
	inv, err := s.config.Invocations.GetInvocation(ctx, enq.ID)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &invokeOutput{Status: http.StatusAccepted, Location: location(enq.ID), Body: invocationBody(inv)}, nil
}

// invokeError answers an enqueue's error: 404 and 422 for what the caller
// can fix, 500 for the rest.
func (s *Server) invokeError(ctx context.Context, function string, err error) error {
	if errors.Is(err, queue.ErrFunctionNotFound) {
		return huma.Error404NotFound(fmt.Sprintf("function %q does not exist", function))
	}
	if invalid := (*queue.InvalidInvocationError)(nil); errors.As(err, &invalid) {
		return huma.Error422UnprocessableEntity(invalid.Reason)
	}
	return s.internal(ctx, err)
}

func (s *Server) listInvocations(ctx context.Context, in *listInvocationsInput) (*listInvocationsOutput, error) {
	params := queue.ListParams{Function: in.Function, Status: queue.Status(in.Status), Limit: in.Limit}
	if in.Cursor != "" {
		before, err := strconv.ParseInt(in.Cursor, 10, 64)
		if err != nil || before <= 0 {
			return nil, huma.Error422UnprocessableEntity("cursor: not a cursor from a previous page")
		}
		params.Before = before
	}
	invs, more, err := s.config.Invocations.ListInvocations(ctx, params)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &listInvocationsOutput{}
	out.Body.Invocations = make([]InvocationBody, len(invs))
	for i, inv := range invs {
		out.Body.Invocations[i] = invocationBody(inv)
	}
	if more {
		out.Body.NextCursor = strconv.FormatInt(invs[len(invs)-1].ID, 10)
		next := url.Values{"cursor": {out.Body.NextCursor}, "limit": {strconv.Itoa(in.Limit)}}
		if in.Function != "" {
			next.Set("function", in.Function)
		}
		if in.Status != "" {
			next.Set("status", in.Status)
		}
		out.Link = fmt.Sprintf(`</v1/invocations?%s>; rel="next"`, next.Encode())
	}
	return out, nil
}

func (s *Server) cancelInvocation(ctx context.Context, in *cancelInput) (*invocationOutput, error) {
	status, err := s.config.Invocations.Cancel(ctx, in.ID)
	if errors.Is(err, queue.ErrInvocationNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("invocation %d does not exist", in.ID))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	if status != queue.StatusCancelled {
		return nil, huma.Error409Conflict(fmt.Sprintf("invocation %d already finished: %s", in.ID, status))
	}
	inv, err := s.config.Invocations.GetInvocation(ctx, in.ID)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &invocationOutput{Body: invocationBody(inv)}, nil
}
