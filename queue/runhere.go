package queue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/picloud/picloud/internal/db"
)

// A synchronous call that reaches a node with a free slot runs on that node:
// picloud.enqueue_invocation, given this node, writes the invocation already
// started, so the call skips the two wake-ups and the two writes between an enqueue and the start
// of Lua on a worker (River's fetch, then the start), and the finish reaches
// the waiter in memory rather than by NOTIFY. No River job carries the
// attempt; its row in picloud.running_attempts lets rescue_overdue take it
// back if this node dies mid-run. Everything else is as for any attempt:
// the row, the events, the hand-back on shutdown.
//
// Slots are this node's run slots (Client.sandboxes), shared with the
// attempts River hands it: a call runs here only when one is free at once.

// reserveSlot takes one of this node's slots for a call to run here; false
// when the node runs no invocations, is stopping, or is busy.
func (c *Client) reserveSlot() bool {
	if c.worker == nil || !c.here.accepting() {
		return false
	}
	select {
	case c.sandboxes <- struct{}{}:
		return true
	default:
		return false
	}
}

// invokeHere writes the invocation and, when the database started it here,
// runs it in the background under the node's lifetime, not the caller's: a
// caller who leaves does not stop the invocation. It owns the slot that
// reserveSlot took.
func (c *Client) invokeHere(ctx context.Context, params db.EnqueueInvocationParams, request *HTTPRequest) (Enqueued, error) {
	begun := time.Now()
	row, err := c.queries.InvokeHere(ctx, db.InvokeHereParams{
		Function:      params.Function,
		Trigger:       params.Trigger,
		Request:       params.Request,
		RequestBody:   params.RequestBody,
		Payload:       params.Payload,
		TimeoutMs:     params.TimeoutMs,
		MaxAttempts:   params.MaxAttempts,
		Authenticated: params.Authenticated,
		TraceParent:   params.TraceParent,
		Node:          c.river.id(),
	})
	if err != nil || row.StartedAt == nil {
		// An error, or the general path enqueued it for any worker.
		c.releaseSandbox()
		return c.enqueued(db.EnqueueInvocationRow{ID: row.ID, Status: string(StatusQueued), TimeoutMs: row.TimeoutMs}, err, params.Function)
	}
	started := db.StartInvocationsRow(row)
	// The waiter hears from this run itself, once its outcome is recorded
	// and counted, rather than from the finish's NOTIFY, which may arrive
	// before the run has returned.
	done := make(chan *Invocation, 1)
	if !c.here.run(func(runCtx context.Context) {
		var inv Invocation // attempt frees the slot
		if err := c.worker.attempt(runCtx, started, request, begun, &inv); err != nil {
			c.logger.ErrorContext(runCtx, "run invocation here", "invocation_id", row.ID, "error", err)
			// The row stays running: rescue_overdue takes it back after
			// its timeout, and the waiter reads whatever it becomes.
		}
		if inv.ID == 0 {
			done <- nil // handed back, cancelled or unrecorded: read the row
			return
		}
		done <- &inv
	}) {
		// Stopped between the reservation and now: the rescue takes the
		// started row back, as for a node that died.
		c.releaseSandbox()
		return Enqueued{}, errors.New("the node is stopping")
	}
	return Enqueued{ID: row.ID, Status: StatusRunning, Timeout: time.Duration(row.TimeoutMs) * time.Millisecond, ranHere: done}, nil
}

// hereRuns tracks the calls running on this node, so that Stop can drain
// them and then hand back what is left.
type hereRuns struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stopped bool
	wg      sync.WaitGroup
}

// errStopping is the cause of a run cut short when the drain ran out: the
// executor reports it cancelled, and the worker hands it back.
var errStopping = errors.New("the node is stopping")

func (h *hereRuns) start(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ctx, h.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
}

func (h *hereRuns) accepting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ctx != nil && !h.stopped
}

// run starts f unless the node is stopping.
func (h *hereRuns) run(f func(context.Context)) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil || h.stopped {
		return false
	}
	h.wg.Go(func() { f(h.ctx) })
	return true
}

// stop refuses new runs and waits for the running ones; when ctx ends
// first, it cancels them (they hand their invocations back) and waits for
// that.
func (h *hereRuns) stop(ctx context.Context) {
	h.mu.Lock()
	h.stopped = true
	cancel := h.cancel
	h.mu.Unlock()
	if cancel == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		cancel(errStopping)
		<-done
	}
	cancel(nil)
}
