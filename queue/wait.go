package queue

import (
	"context"
	"time"
)

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
