package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// The node's LISTEN connection carries every wake-up: finished
// invocations, due times, cancels, key revocations and River's work
// (river_wake.go). While it is down nothing wakes, so it comes back as soon
// as the database takes connections again: attempts 50 ms apart at first,
// doubling to at most reconnectCeiling, so that work enqueued right after a
// restart starts within about a quarter of a second of the database accepting
// connections (picloud-bench's "reconnect wake" scenario measures it). An
// outage costs four refused connection attempts a second per node;
// an idle database sees nothing.
const (
	reconnectFloor   = 50 * time.Millisecond
	reconnectCeiling = 250 * time.Millisecond
	// A connection that drops sooner than flapWindow after it was made is
	// flapping (LISTEN refused, a proxy cutting it): the next connect
	// waits, doubling up to flapCeiling, instead of spinning.
	flapWindow  = time.Second
	flapCeiling = 5 * time.Second
	// While the database stays away, a failed attempt is logged once per
	// reconnectLogEvery, not twice a second.
	reconnectLogEvery = 30 * time.Second
)

// reconnecter makes the node's LISTEN connection, waiting between
// attempts; pgxlisten calls connect again whenever the connection ends.
// It is used by one goroutine, the listener's.
type reconnecter struct {
	logger *slog.Logger
	// reconnected runs when a connection is made after an earlier one
	// ended, before pgxlisten replays the backlogs.
	reconnected func()
	// connected is when the last connection was made; zero before the
	// first.
	connected time.Time
	// flapDelay is the wait before the next connect while the connection
	// keeps dropping right after it is made.
	flapDelay time.Duration
}

func (r *reconnecter) connect(ctx context.Context, config *pgx.ConnConfig) (*pgx.Conn, error) {
	if !r.connected.IsZero() && time.Since(r.connected) < flapWindow {
		r.flapDelay = min(max(2*r.flapDelay, reconnectFloor), flapCeiling)
		if err := sleep(ctx, r.flapDelay); err != nil {
			return nil, err
		}
	} else {
		r.flapDelay = 0
	}
	delay := reconnectFloor
	var down time.Time // when the first attempt failed
	var logged time.Time
	for attempt := 1; ; attempt++ {
		conn, err := pgx.ConnectConfig(ctx, config.Copy())
		if err == nil {
			if !down.IsZero() {
				r.logger.InfoContext(ctx, "listener reconnected", "attempts", attempt, "after", time.Since(down).Round(time.Millisecond))
			}
			if !r.connected.IsZero() && r.reconnected != nil {
				r.reconnected()
			}
			r.connected = time.Now()
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect: %w", ctx.Err())
		}
		if down.IsZero() {
			down = time.Now()
		}
		if time.Since(logged) >= reconnectLogEvery {
			r.logger.WarnContext(ctx, "listener cannot connect; retrying", "attempts", attempt, "error", err)
			logged = time.Now()
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		delay = min(2*delay, reconnectCeiling)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait to reconnect: %w", ctx.Err())
	}
}
