package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/queue/internal/db"
)

// invocationArgs is the River job that carries an invocation to a worker.
// picloud.enqueue_invocation inserts these rows with plain SQL.
type invocationArgs struct {
	InvocationID int64 `json:"invocation_id"`
}

func (invocationArgs) Kind() string { return "picloud.invocation" }

type invocationWorker struct {
	river.WorkerDefaults[invocationArgs]
	client *Client
}

// finishTimeout bounds the write of an outcome, which must happen even when
// the job's context was cancelled by a shutdown.
const finishTimeout = 10 * time.Second

// Work runs one invocation and records its outcome.
//
// The outcome is written, and announced, by this method itself rather than by
// River's completer: River batches job completions every 250 ms, which would
// delay every synchronous caller. The River job row is completed later in
// River's batch; if the process dies in between, the job is delivered again,
// finds its invocation finished and does nothing.
func (w *invocationWorker) Work(ctx context.Context, job *river.Job[invocationArgs]) error {
	c := w.client
	started, err := c.queries.StartInvocation(ctx, job.Args.InvocationID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // already finished or cancelled
	}
	if err != nil {
		return fmt.Errorf("start invocation %d: %w", job.Args.InvocationID, err)
	}
	inv := invocationFromStart(started)
	logger := c.logger.With("invocation", inv.ID, "function", inv.Function)

	var res executor.Result
	if started.Source == nil {
		res = executor.Result{Status: executor.Failed, Error: fmt.Sprintf("function %q was deleted before this invocation ran", inv.Function)}
	} else {
		fn := executor.Function{Name: inv.Function, Version: int(started.FunctionVersionID), Source: *started.Source}
		res = c.config.Executor.Run(ctx, fn, executorRequest(inv), executor.Limits{Timeout: inv.Timeout})
	}

	inv.Status = Status(res.Status)
	inv.Error = res.Error
	inv.Logs = make([]LogEntry, len(res.Logs))
	for i, l := range res.Logs {
		inv.Logs[i] = LogEntry(l)
	}
	if res.Status == executor.Succeeded {
		if inv.Trigger == TriggerHTTP {
			if inv.Result, err = json.Marshal(HTTPResponse(res.Response)); err != nil {
				return fmt.Errorf("encode response of invocation %d: %w", inv.ID, err)
			}
		} else {
			inv.Result = res.Value
		}
	}
	logs, err := json.Marshal(inv.Logs)
	if err != nil {
		return fmt.Errorf("encode logs of invocation %d: %w", inv.ID, err)
	}

	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	params := db.FinishInvocationParams{ID: inv.ID, Status: string(inv.Status), Result: inv.Result, Logs: logs}
	if inv.Error != "" {
		params.Error = &inv.Error
	}
	finished, err := c.queries.FinishInvocation(finishCtx, params)
	if unstorable(err) {
		// The outcome breaks a database limit (jsonb refuses \u0000 in
		// strings, and values over 255 MB): record the failure instead, so
		// the row does not stay running forever.
		inv.Status, inv.Result, inv.Error = StatusFailed, nil, "the function's result could not be stored: "+err.Error()
		params.Status, params.Result, params.Error = string(inv.Status), nil, &inv.Error
		finished, err = c.queries.FinishInvocation(finishCtx, params)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // cancelled while it ran
	}
	if err != nil {
		return fmt.Errorf("finish invocation %d: %w", inv.ID, err)
	}
	inv.StartedAt, inv.FinishedAt = finished.StartedAt, finished.FinishedAt
	logger.DebugContext(ctx, "invocation finished", "status", inv.Status, "duration", res.Duration)
	c.finished.finish(inv.ID, &inv)
	return nil
}

func invocationFromStart(r db.StartInvocationRow) Invocation {
	inv := Invocation{
		ID:              r.ID,
		Function:        r.Function,
		FunctionVersion: int(r.FunctionVersion),
		Trigger:         Trigger(r.Trigger),
		Status:          StatusRunning,
		Payload:         r.Payload,
		Attempt:         int(r.Attempt),
		MaxAttempts:     int(r.MaxAttempts),
		Timeout:         time.Duration(r.TimeoutMs) * time.Millisecond,
		CreatedAt:       r.CreatedAt,
		StartedAt:       r.StartedAt,
	}
	if r.Request != nil {
		inv.Request = &HTTPRequest{}
		// The column is written only by Invoke from an HTTPRequest; a row
		// that does not decode runs with an empty request.
		_ = json.Unmarshal(r.Request, inv.Request)
		inv.Request.Body = r.RequestBody
	}
	return inv
}

func executorRequest(inv Invocation) executor.Request {
	req := executor.Request{Trigger: string(inv.Trigger), Payload: inv.Payload}
	if r := inv.Request; r != nil {
		req.Method, req.Path, req.Query, req.Headers, req.Body = r.Method, r.Path, r.Query, r.Headers, r.Body
	}
	return req
}

// unstorable reports a database error caused by the values written rather
// than by the database's state: a data exception (class 22) or a program
// limit (class 54).
func unstorable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "54"))
}
