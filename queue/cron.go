package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/db"
)

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
			cron, err := catalog.ParseCron(s.Cron, s.Timezone)
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
			for next := cron.Next(tick); !next.After(now); next = cron.Next(next) {
				tick = next
			}
			key := fmt.Sprintf("schedule:%s:%s", s.Name, tick.UTC().Format(time.RFC3339Nano))
			row, err := q.EnqueueInvocation(ctx, db.EnqueueInvocationParams{
				Function: s.Function, Trigger: string(TriggerSchedule), Payload: s.Payload, IdempotencyKey: &key,
			})
			if err != nil {
				return fmt.Errorf("fire schedule %s/%s: %w", s.Function, s.Name, err)
			}
			next := cron.Next(now)
			if err := q.AdvanceSchedule(ctx, db.AdvanceScheduleParams{
				Function: s.Function, Name: s.Name, NextRunAt: &next, LastRunAt: &tick, LastInvocationID: &row.ID,
			}); err != nil {
				return fmt.Errorf("advance schedule %s/%s: %w", s.Function, s.Name, err)
			}
		}
		return nil
	})
}
