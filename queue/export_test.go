package queue

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// InvokeWaiting and WaitEnqueued are the two halves of Call, exported to
// the tests that look at a call between its enqueue and its outcome (where
// it runs, what a cancellation or a stop does to it).
func (c *Client) InvokeWaiting(ctx context.Context, p InvokeParams) (Enqueued, error) {
	return c.invoke(ctx, p, true)
}

func (c *Client) WaitEnqueued(ctx context.Context, e Enqueued) (Invocation, error) {
	return c.waitEnqueued(ctx, e)
}

// Pool is the client's pool, for the tests that deploy functions with
// the catalog on the same database.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }
