package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/queue"
)

// InvocationBody is one invocation: the row in picloud.invocations.
type InvocationBody struct {
	ID              int64             `json:"id" example:"42"`
	Function        string            `json:"function" example:"hello"`
	FunctionVersion int               `json:"function_version" doc:"Version of the function this invocation runs."`
	Trigger         string            `json:"trigger" enum:"http,api,sql,schedule" doc:"What created the invocation."`
	Status          string            `json:"status" enum:"queued,running,succeeded,failed,timed_out,cancelled"`
	Request         *RequestBody      `json:"request,omitempty" doc:"The HTTP request, for trigger http."`
	Payload         json.RawMessage   `json:"payload,omitempty" doc:"The JSON payload, for triggers other than http."`
	Result          json.RawMessage   `json:"result,omitempty" doc:"For trigger http the HTTP response {status, headers, body} (body_base64 instead of body when it is not UTF-8); otherwise the function's return value."`
	Error           string            `json:"error,omitempty" doc:"Why the invocation failed, with the Lua line where there is one."`
	Logs            []LogEntryBody    `json:"logs" doc:"Lines the function printed or logged."`
	Attempt         int               `json:"attempt"`
	MaxAttempts     int               `json:"max_attempts"`
	TimeoutMS       int64             `json:"timeout_ms" doc:"Wall-clock limit of a run."`
	CreatedAt       time.Time         `json:"created_at"`
	StartedAt       *time.Time        `json:"started_at" doc:"Start of the latest attempt."`
	FinishedAt      *time.Time        `json:"finished_at"`
	WaitMS          *float64          `json:"wait_ms" doc:"Time from creation to start of the latest attempt, in milliseconds."`
	RunMS           *float64          `json:"run_ms" doc:"Time from start to finish, in milliseconds."`
	Links           map[string]string `json:"links,omitempty" doc:"Related resources."`
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

// LogEntryBody is one log line.
type LogEntryBody struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level" enum:"debug,info,warn,error"`
	Message string    `json:"message"`
}

func invocationBody(inv queue.Invocation) InvocationBody {
	b := InvocationBody{
		ID: inv.ID, Function: inv.Function, FunctionVersion: inv.FunctionVersion,
		Trigger: string(inv.Trigger), Status: string(inv.Status),
		Payload: inv.Payload, Result: inv.Result, Error: inv.Error,
		Logs:    make([]LogEntryBody, len(inv.Logs)),
		Attempt: inv.Attempt, MaxAttempts: inv.MaxAttempts, TimeoutMS: inv.Timeout.Milliseconds(),
		CreatedAt: inv.CreatedAt, StartedAt: inv.StartedAt, FinishedAt: inv.FinishedAt,
		Links: map[string]string{"self": fmt.Sprintf("/v1/invocations/%d", inv.ID), "function": "/v1/functions/" + inv.Function},
	}
	for i, l := range inv.Logs {
		b.Logs[i] = LogEntryBody(l)
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

type getInvocationInput struct {
	ID int64 `path:"id" minimum:"1" example:"42" doc:"Invocation id, as in the X-Invocation-Id header of a /fn response."`
}

type invocationOutput struct {
	Body InvocationBody
}

func (s *Server) registerInvocations() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-invocation",
		Method:      http.MethodGet,
		Path:        "/v1/invocations/{id}",
		Summary:     "Get an invocation",
		Description: "The invocation row: status, timings, request, result, error and logs.",
		Tags:        []string{"invocations"},
		Errors:      []int{http.StatusNotFound},
	}, s.getInvocation)
}

func (s *Server) getInvocation(ctx context.Context, in *getInvocationInput) (*invocationOutput, error) {
	inv, err := s.config.Queue.GetInvocation(ctx, in.ID)
	if errors.Is(err, queue.ErrInvocationNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("invocation %d does not exist", in.ID))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &invocationOutput{Body: invocationBody(inv)}, nil
}
