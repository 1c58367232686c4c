package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// Cron is a schedule's cron expression read in its time zone.
type Cron struct {
	schedule cron.Schedule
	location *time.Location
}

// ParseCron reads a cron expression in an IANA time zone, as PutSchedule
// stores it; a bad one is *InvalidScheduleError.
func ParseCron(expr, timezone string) (Cron, error) {
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return Cron{}, &InvalidScheduleError{fmt.Sprintf("time zone %q: %v", timezone, err)}
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return Cron{}, &InvalidScheduleError{fmt.Sprintf("cron %q: %v", expr, err)}
	}
	return Cron{schedule: sched, location: loc}, nil
}

// Next is the first tick after t.
func (c Cron) Next(t time.Time) time.Time { return c.schedule.Next(t.In(c.location)) }

// CheckSchedule reports whether PutSchedule would take the cron expression
// and time zone, as *InvalidScheduleError, so that a client can refuse a
// bad one before it changes anything.
func CheckSchedule(expr, timezone string) error {
	_, err := ParseCron(expr, timezone)
	return err
}

// PutSchedule creates or replaces a schedule. Its next tick is computed
// from now: changing a schedule does not replay ticks.
func (c *Catalog) PutSchedule(ctx context.Context, s Schedule) (Schedule, bool, error) {
	if !ValidFunctionName(s.Name) {
		return Schedule{}, false, &InvalidScheduleError{fmt.Sprintf("name %q must match %s", s.Name, FunctionNamePattern)}
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	cron, err := ParseCron(s.Cron, s.Timezone)
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
		next := cron.Next(time.Now())
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
func (c *Catalog) ListSchedules(ctx context.Context, function string) ([]Schedule, error) {
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
func (c *Catalog) DeleteSchedule(ctx context.Context, function, name string) error {
	n, err := c.queries.DeleteSchedule(ctx, function, name)
	if err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s/%s", ErrScheduleNotFound, function, name)
	}
	return nil
}
