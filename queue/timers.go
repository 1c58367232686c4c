package queue

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Channels the timers listen on.
const (
	// dueChannel carries the due time (epoch seconds) of every attempt
	// scheduled for later: a run_at or a retry.
	dueChannel = "picloud_due"
	// settingsChannel announces a change of picloud.settings.
	settingsChannel = "picloud_settings"
	// cancelChannel carries the id of a running invocation that was
	// cancelled.
	cancelChannel = "picloud_cancel"
)

// timerRetry is how soon a timer whose query failed tries again; the
// database may be restarting.
const timerRetry = 2 * time.Second

// minRearm is the shortest wait between two runs of a timer's statement.
const minRearm = 5 * time.Millisecond

// timers wakes the node for the things that become due with nobody
// asking: scheduled attempts (run_at and retries), cron schedule ticks and
// the rescue of a dead worker's invocations on one timer, and the retention
// of finished invocations on another. Each is one timer armed for the earliest deadline
// the database reports, or none at all: an idle database with nothing
// scheduled costs no statement.
//
// Several nodes may arm the same deadline; the statements they then run are
// idempotent, so the first does the work and the others find none.
type timers struct {
	mu sync.Mutex
	// dueHint is the earliest scheduled time heard of since the loop last
	// looked; zero when none.
	dueHint time.Time
	// finishedHint says an invocation finished: if no sweep is armed, one
	// must be, for its retention deadline.
	finishedHint bool
	// settingsHint says the retention may have changed: sweep again.
	settingsHint bool
	wake         chan struct{}
}

func newTimers() *timers { return &timers{wake: make(chan struct{}, 1)} }

func (t *timers) hintDue(at time.Time) {
	t.mu.Lock()
	if t.dueHint.IsZero() || at.Before(t.dueHint) {
		t.dueHint = at
	}
	t.mu.Unlock()
	t.poke()
}

func (t *timers) hintFinished() {
	t.mu.Lock()
	t.finishedHint = true
	t.mu.Unlock()
	t.poke()
}

func (t *timers) hintSettings() {
	t.mu.Lock()
	t.settingsHint = true
	t.mu.Unlock()
	t.poke()
}

func (t *timers) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *timers) takeHints() (due time.Time, finished, settings bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	due, finished, settings = t.dueHint, t.finishedHint, t.settingsHint
	t.dueHint, t.finishedHint, t.settingsHint = time.Time{}, false, false
	return due, finished, settings
}

// deadline is one armed timer.
type deadline struct {
	at    time.Time // zero: not armed
	timer *time.Timer
}

func (d *deadline) arm(at time.Time) {
	d.at = at
	if d.timer == nil {
		d.timer = time.NewTimer(time.Until(at))
		return
	}
	d.timer.Reset(time.Until(at))
}

func (d *deadline) armEarlier(at time.Time) {
	if d.at.IsZero() || at.Before(d.at) {
		d.arm(at)
	}
}

func (d *deadline) disarm() {
	d.at = time.Time{}
	if d.timer != nil {
		d.timer.Stop()
	}
}

func (d *deadline) fired() <-chan time.Time {
	if d.timer == nil || d.at.IsZero() {
		return nil
	}
	return d.timer.C
}

// runTimers promotes due attempts and sweeps old invocations until ctx
// ends. It starts by doing both, which also catches up on whatever fell due
// while no node was running.
func (c *Client) runTimers(ctx context.Context) {
	var promote, sweep deadline
	defer promote.disarm()
	defer sweep.disarm()
	c.promoteDue(ctx, &promote)
	c.sweep(ctx, &sweep)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.timers.wake:
			due, finished, settings := c.timers.takeHints()
			if !due.IsZero() {
				promote.armEarlier(due)
			}
			// While a sweep is armed, a new finish cannot move it: the
			// armed deadline is the oldest finished row's.
			if settings || (finished && sweep.at.IsZero()) {
				c.sweep(ctx, &sweep)
			}
		case <-promote.fired():
			c.promoteDue(ctx, &promote)
		case <-sweep.fired():
			c.sweep(ctx, &sweep)
		}
	}
}

func (c *Client) promoteDue(ctx context.Context, d *deadline) {
	if err := c.fireSchedules(ctx); err != nil && ctx.Err() == nil {
		c.logger.WarnContext(ctx, "fire schedules", "error", err)
	}
	wait, err := c.queries.PromoteDue(ctx)
	c.rearm(ctx, d, wait, err, "promote scheduled invocations")
}

func (c *Client) sweep(ctx context.Context, d *deadline) {
	wait, err := c.queries.Sweep(ctx)
	c.rearm(ctx, d, wait, err, "delete expired invocations")
}

// rearm arms d for the next deadline the database reported, wait seconds
// from now (negative: none).
func (c *Client) rearm(ctx context.Context, d *deadline, wait float64, err error, what string) {
	switch {
	case err != nil:
		if ctx.Err() == nil {
			c.logger.WarnContext(ctx, what, "error", err, "retry_in", timerRetry)
			d.arm(time.Now().Add(timerRetry))
		}
	case wait < 0 || math.IsNaN(wait):
		d.disarm()
	default:
		// Something already due that the statement did not take (a row
		// another node holds) comes back as 0: look again soon, not in a
		// tight loop.
		d.arm(time.Now().Add(max(time.Duration(wait*float64(time.Second)), minRearm)))
	}
}

// dueHandler turns picloud_due notifications into timer hints.
type dueHandler struct{ c *Client }

func (h dueHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	epoch, err := strconv.ParseFloat(n.Payload, 64)
	if err != nil {
		return err
	}
	sec, frac := math.Modf(epoch)
	h.c.timers.hintDue(time.Unix(int64(sec), int64(frac*1e9)))
	return nil
}

// HandleBacklog re-reads the next due time after a reconnect: a
// notification may have been lost meanwhile.
func (h dueHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.c.timers.hintDue(time.Now())
	return nil
}

// settingsHandler re-reads the retention deadline when the settings change.
type settingsHandler struct{ c *Client }

func (h settingsHandler) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	h.c.timers.hintSettings()
	return nil
}

// cancelHandler stops a cancelled invocation if this node runs it.
type cancelHandler struct{ c *Client }

func (h cancelHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	id, err := strconv.ParseInt(n.Payload, 10, 64)
	if err != nil {
		return err
	}
	h.c.running.cancelRun(id)
	return nil
}

// HandleBacklog checks, after a reconnect, whether any invocation running
// here was cancelled while the notification could not arrive.
func (h cancelHandler) HandleBacklog(ctx context.Context, _ string, _ *pgx.Conn) error {
	ids := h.c.running.ids()
	if len(ids) == 0 {
		return nil
	}
	cancelled, err := h.c.queries.CancelledAmong(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range cancelled {
		h.c.running.cancelRun(id)
	}
	return nil
}

// finishedHandler wakes waiters and, on a worker, the retention timer.
type finishedHandler struct{ c *Client }

func (h finishedHandler) HandleNotification(ctx context.Context, n *pgconn.Notification, conn *pgx.Conn) error {
	h.c.events.Publish(n.Payload)
	if err := h.c.finished.HandleNotification(ctx, n, conn); err != nil {
		return err
	}
	if h.c.river != nil {
		h.c.timers.hintFinished()
	}
	return nil
}

func (h finishedHandler) HandleBacklog(ctx context.Context, channel string, conn *pgx.Conn) error {
	if h.c.finishedListened.Swap(true) {
		h.c.config.Observer.ListenerReconnected()
	}
	return h.c.finished.HandleBacklog(ctx, channel, conn)
}
