package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFinished: Call stopped waiting before the invocation finished. It
// runs on, and its row tells how it ends.
var ErrNotFinished = errors.New("the invocation has not finished yet")

// Call invokes and waits for the outcome, for a caller that holds its
// answer open (/fn, a synchronous REST call). It makes one attempt
// whatever the function's max_attempts: the caller is waiting, and a
// retry's backoff would hold it. The wait lasts the invocation's timeout
// plus grace, the time it may spend waiting for a worker; past it, Call
// returns ErrNotFinished. Once the invocation is enqueued, the returned
// Invocation has its ID whatever the error, so that the caller can name
// it.
func (c *Client) Call(ctx context.Context, p InvokeParams, grace time.Duration) (Invocation, error) {
	p.MaxAttempts = 1
	enq, err := c.invoke(ctx, p, true)
	if err != nil {
		return Invocation{}, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, enq.Timeout+grace)
	defer cancel()
	inv, err := c.waitEnqueued(waitCtx, enq)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return Invocation{ID: enq.ID, Status: enq.Status}, fmt.Errorf("invocation %d: %w", enq.ID, ErrNotFinished)
	}
	if err != nil {
		return Invocation{ID: enq.ID}, err
	}
	return inv, nil
}

// Wait blocks until invocation id reaches a final status and returns it, or
// returns ctx's error. It is woken by the database's announcement of the
// finish, not by polling.
func (c *Client) Wait(ctx context.Context, id int64) (Invocation, error) {
	return c.wait(ctx, id, true)
}

// waitEnqueued is Wait for an invocation that invoke just returned: unless
// it was already final (an idempotent repeat), it cannot have been announced
// before invoke returned, so the first read of the row is skipped.
func (c *Client) waitEnqueued(ctx context.Context, e Enqueued) (Invocation, error) {
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
