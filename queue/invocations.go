package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/queue/internal/db"
)

// sqlStateFunctionNotFound is raised by picloud.enqueue_invocation.
const sqlStateFunctionNotFound = "PC404"

// InvokeParams describes an invocation to enqueue.
type InvokeParams struct {
	Function string
	Trigger  Trigger
	// Request is required for TriggerHTTP.
	Request *HTTPRequest
	Payload json.RawMessage
	// Timeout is the wall-clock limit; zero means the client's default.
	Timeout time.Duration
}

// Invoke writes the invocation row and wakes a worker; it returns the new
// invocation's id. An unknown function gives ErrFunctionNotFound.
func (c *Client) Invoke(ctx context.Context, p InvokeParams) (int64, error) {
	params := db.EnqueueInvocationParams{
		Function:  p.Function,
		Trigger:   string(p.Trigger),
		Payload:   p.Payload,
		TimeoutMs: int32(c.timeout(p.Timeout).Milliseconds()),
	}
	if p.Request != nil {
		request, err := json.Marshal(p.Request)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		params.Request = request
		params.RequestBody = p.Request.Body
	}
	id, err := c.queries.EnqueueInvocation(ctx, params)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlStateFunctionNotFound {
		return 0, fmt.Errorf("%w: %s", ErrFunctionNotFound, p.Function)
	}
	if err != nil {
		return 0, fmt.Errorf("enqueue invocation: %w", err)
	}
	return id, nil
}

func (c *Client) timeout(d time.Duration) time.Duration {
	if d <= 0 {
		return c.config.DefaultTimeout
	}
	return d
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
	recheck := time.NewTimer(recheckAfter)
	defer recheck.Stop()
	for {
		ch, finished := c.finished.register(id)
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
		CreatedAt:       row.CreatedAt,
		StartedAt:       row.StartedAt,
		FinishedAt:      row.FinishedAt,
	}
	if row.Error != nil {
		inv.Error = *row.Error
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
	return inv, nil
}
