package queue_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
)

// TestScheduleFiresOncePerTickAcrossWorkers: two workers, one schedule
// ticking every second: one invocation per tick, never two.
func TestScheduleFiresOncePerTickAcrossWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	one, pool := worker(t, nil)
	worker(t, pool)
	put(t, one, "tick", echoPayload, catalog.FunctionOptions{})
	s, created, err := catalogOf(one).PutSchedule(ctx, catalog.Schedule{Function: "tick", Name: "every-second", Cron: "@every 1s", Payload: json.RawMessage(`{"k": 1}`), Enabled: true})
	if err != nil || !created || s.NextRunAt == nil {
		t.Fatalf("PutSchedule = %+v %v %v", s, created, err)
	}
	time.Sleep(3500 * time.Millisecond)
	if _, _, err := catalogOf(one).PutSchedule(ctx, catalog.Schedule{Function: "tick", Name: "every-second", Cron: "@every 1s", Enabled: false}); err != nil {
		t.Fatal(err)
	}
	var n, keys int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT idempotency_key) FROM picloud.invocations WHERE trigger = 'schedule'`).Scan(&n, &keys); err != nil {
		t.Fatal(err)
	}
	if n < 3 || n > 4 || keys != n {
		t.Errorf("%d invocations for %d ticks in 3.5 s of a 1 s schedule on two workers, want 3 or 4, one per tick", n, keys)
	}
	var payload string
	if err := pool.QueryRow(ctx, `SELECT payload::text FROM picloud.invocations WHERE trigger = 'schedule' LIMIT 1`).Scan(&payload); err != nil || payload != `{"k": 1}` {
		t.Errorf("payload = %s, %v", payload, err)
	}
}

// TestScheduleDoesNotReplayMissedTicks: a schedule whose ticks passed while
// no worker ran fires once, then waits for its next tick.
func TestScheduleDoesNotReplayMissedTicks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	client := startClient(t, pool, nil)
	put(t, client, "tick", echoPayload, catalog.FunctionOptions{})
	if _, _, err := catalogOf(client).PutSchedule(ctx, catalog.Schedule{Function: "tick", Name: "s", Cron: "*/2 * * * * *", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	// Everything was down for a minute: thirty ticks missed.
	if _, err := pool.Exec(ctx, `UPDATE picloud.schedules SET next_run_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	worker(t, pool)
	time.Sleep(700 * time.Millisecond)
	rows, err := pool.Query(ctx, `SELECT idempotency_key FROM picloud.invocations WHERE trigger = 'schedule'`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	missed := 0
	for _, k := range keys {
		tick, err := time.Parse(time.RFC3339Nano, k[strings.LastIndex(k, ":s:")+3:])
		if err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		if tick.Before(started) {
			missed++
		}
	}
	// Besides the catch-up, a tick of the */2 schedule may fall in the 700 ms.
	if missed != 1 || len(keys) > 2 {
		t.Errorf("%d invocations for missed ticks (of %d), want 1: %q", missed, len(keys), keys)
	}
	list, err := catalogOf(client).ListSchedules(ctx, "tick")
	if err != nil || len(list) != 1 || list[0].NextRunAt == nil || !list[0].NextRunAt.After(time.Now().Add(-time.Second)) || list[0].LastInvocationID == nil {
		t.Errorf("schedule after the catch-up = %+v, %v", list, err)
	}
}
