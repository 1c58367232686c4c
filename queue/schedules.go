package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/robfig/cron/v3"

	"github.com/picloud/picloud/internal/db"
)

// Schedule invokes a function on every tick of a cron expression.
type Schedule struct {
	Function string
	Name     string
	// Cron is a standard five-field expression, six fields with seconds
	// first, or a descriptor: @hourly, @daily, @every 10s.
	Cron string
	// Timezone is the IANA zone the expression is read in; default UTC.
	Timezone         string
	Payload          json.RawMessage
	Enabled          bool
	NextRunAt        *time.Time
	LastRunAt        *time.Time
	LastInvocationID *int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// ErrScheduleNotFound is returned for a schedule that does not exist.
var ErrScheduleNotFound = errors.New("schedule not found")

// InvalidScheduleError reports a cron expression or time zone that does
// not parse.
type InvalidScheduleError struct{ Reason string }

func (e *InvalidScheduleError) Error() string { return "invalid schedule: " + e.Reason }

// cronParser reads five fields, or six with seconds first, and the
// descriptors (@every 10s, @hourly, ...).
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func parseSchedule(expr, timezone string) (cron.Schedule, *time.Location, error) {
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, nil, &InvalidScheduleError{fmt.Sprintf("time zone %q: %v", timezone, err)}
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return nil, nil, &InvalidScheduleError{fmt.Sprintf("cron %q: %v", expr, err)}
	}
	return sched, loc, nil
}

// PutSchedule creates or replaces a schedule. Its next tick is computed
// from now: changing a schedule does not replay ticks.
func (c *Client) PutSchedule(ctx context.Context, s Schedule) (Schedule, bool, error) {
	if !ValidFunctionName(s.Name) {
		return Schedule{}, false, &InvalidScheduleError{fmt.Sprintf("name %q must match %s", s.Name, FunctionNamePattern)}
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	sched, loc, err := parseSchedule(s.Cron, s.Timezone)
	if err != nil {
		return Schedule{}, false, err
	}
	if len(s.Payload) == 0 {
		s.Payload = json.RawMessage("{}")
	}
	params := db.PutScheduleParams{
		Function: s.Function, Name: s.Name, Cron: s.Cron, Timezone: s.Timezone, Payload: s.Payload, Enabled: s.Enabled,
	}
	if s.Enabled {
		next := sched.Next(time.Now().In(loc))
		params.NextRunAt = &next
	}
	row, err := c.queries.PutSchedule(ctx, params)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return Schedule{}, false, fmt.Errorf("%w: %s", ErrFunctionNotFound, s.Function)
	}
	if err != nil {
		return Schedule{}, false, fmt.Errorf("put schedule: %w", err)
	}
	return Schedule{
		Function: row.Function, Name: row.Name, Cron: row.Cron, Timezone: row.Timezone, Payload: row.Payload,
		Enabled: row.Enabled, NextRunAt: row.NextRunAt, LastRunAt: row.LastRunAt, LastInvocationID: row.LastInvocationID,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt,
	}, row.Created, nil
}

// ListSchedules lists the schedules of a function, or all of them.
func (c *Client) ListSchedules(ctx context.Context, function string) ([]Schedule, error) {
	var filter *string
	if function != "" {
		filter = &function
	}
	rows, err := c.queries.ListSchedules(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out := make([]Schedule, len(rows))
	for i, r := range rows {
		out[i] = Schedule{
			Function: r.Function, Name: r.Name, Cron: r.Cron, Timezone: r.Timezone, Payload: r.Payload,
			Enabled: r.Enabled, NextRunAt: r.NextRunAt, LastRunAt: r.LastRunAt, LastInvocationID: r.LastInvocationID,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
	}
	return out, nil
}

// DeleteSchedule deletes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, function, name string) error {
	n, err := c.queries.DeleteSchedule(ctx, function, name)
	if err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s/%s", ErrScheduleNotFound, function, name)
	}
	return nil
}

// fireSchedules enqueues one invocation for each due schedule and moves
// it to its next tick after now. Ticks missed while no worker ran are not
// replayed: a schedule that was due several times fires once, for its
// latest missed tick. The row lock, taken with SKIP LOCKED, makes one
// worker fire each tick; the idempotency key naming the tick makes a
// repeated fire harmless.
func (c *Client) fireSchedules(ctx context.Context) error {
	return pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		q := c.queries.WithTx(tx)
		due, err := q.LockDueSchedules(ctx)
		if err != nil {
			return fmt.Errorf("lock due schedules: %w", err)
		}
		now := time.Now()
		for _, s := range due {
			sched, loc, err := parseSchedule(s.Cron, s.Timezone)
			if err != nil {
				// Stored schedules were parsed when written; a zone
				// database that lost a zone should not stop the others.
				c.logger.ErrorContext(ctx, "schedule no longer parses; disabled until it is written again", "function", s.Function, "schedule", s.Name, "error", err)
				if err := q.AdvanceSchedule(ctx, db.AdvanceScheduleParams{Function: s.Function, Name: s.Name, LastRunAt: s.NextRunAt}); err != nil {
					return err
				}
				continue
			}
			tick := *s.NextRunAt
			// The latest tick not after now: the one this fire stands for.
			for next := sched.Next(tick.In(loc)); !next.After(now); next = sched.Next(next) {
				tick = next
			}
			key := fmt.Sprintf("schedule:%s:%s", s.Name, tick.UTC().Format(time.RFC3339Nano))
			row, err := q.EnqueueInvocation(ctx, db.EnqueueInvocationParams{
				Function: s.Function, Trigger: string(TriggerSchedule), Payload: s.Payload, IdempotencyKey: &key,
			})
			if err != nil {
				return fmt.Errorf("fire schedule %s/%s: %w", s.Function, s.Name, err)
			}
			next := sched.Next(now.In(loc))
			if err := q.AdvanceSchedule(ctx, db.AdvanceScheduleParams{
				Function: s.Function, Name: s.Name, NextRunAt: &next, LastRunAt: &tick, LastInvocationID: &row.ID,
			}); err != nil {
				return fmt.Errorf("advance schedule %s/%s: %w", s.Function, s.Name, err)
			}
		}
		return nil
	})
}
