package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// TestBatchedLifecycleSQL drives the batched start, hand-back and finish
// functions directly, inside a transaction that is rolled back, so that
// each step's effect on the rows is checked without a worker in the way.
func TestBatchedLifecycleSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	client, err := queue.NewClient(pool, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, client, "noop", `function handle(req) end`, catalog.FunctionOptions{})
	put(t, client, "single", `function handle(req) end`, catalog.FunctionOptions{MaxConcurrency: 1})

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	one := func(sql string, args ...any) (v any) {
		t.Helper()
		if err := tx.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	queued := ids(t, ctx, tx, `SELECT picloud.invoke('noop') FROM generate_series(1, 3)`)
	limited := ids(t, ctx, tx, `SELECT picloud.invoke('single') FROM generate_series(1, 2)`)
	all := append(append([]int64{}, queued...), limited...)

	// One call starts the three unlimited ones and one of the two limited
	// ones; the other waits, parked, for the slot.
	started := ids(t, ctx, tx, `SELECT id FROM picloud.start_invocations($1) ORDER BY id`, all)
	if len(started) != 4 || started[3] != limited[0] {
		t.Fatalf("started %v of %v; want the three unlimited and the first limited one", started, all)
	}
	if parked := one(`SELECT parked FROM picloud.invocations WHERE id = $1`, limited[1]); parked != true {
		t.Errorf("the second limited invocation is not parked")
	}
	// Starting again starts nothing: they run already.
	if again := ids(t, ctx, tx, `SELECT id FROM picloud.start_invocations($1)`, queued); len(again) != 0 {
		t.Errorf("a second start started %v", again)
	}

	// Hand back the first: queued again, attempt not counted, a new job.
	if ok := one(`SELECT picloud.hand_back($1, 1)`, queued[0]); ok != true {
		t.Fatal("hand_back refused a running attempt")
	}
	if got := one(`SELECT status || ' ' || attempt FROM picloud.invocations WHERE id = $1`, queued[0]); got != "queued 0" {
		t.Errorf("after hand_back: %v, want queued 0", got)
	}
	if jobs := one(`SELECT count(*) FROM picloud.river_job WHERE (args->>'invocation_id')::bigint = $1`, queued[0]); jobs != int64(2) {
		t.Errorf("%v jobs after the hand-back, want 2", jobs)
	}
	if ok := one(`SELECT picloud.hand_back($1, 1)`, queued[0]); ok != false {
		t.Error("hand_back of an attempt no longer running went through")
	}

	// Finish four outcomes at once: a success with a kv write, a failure,
	// one for a wrong attempt (fenced off), and the limited one, whose slot
	// frees and admits the parked invocation.
	finished := ids(t, ctx, tx, `SELECT i.id FROM picloud.finish_invocations(
			ARRAY[$1, $2, $3, $4]::bigint[], ARRAY[1, 1, 7, 1], ARRAY['succeeded', 'failed', 'succeeded', 'succeeded'],
			ARRAY['1', NULL, '2', NULL]::jsonb[], ARRAY['', 'boom', '', ''], ARRAY['[]', '[]', '[]', '[]']::jsonb[],
			ARRAY['[{"op": "set", "key": "k", "value": 42, "ttl": null}]', NULL, NULL, NULL]::jsonb[],
			ARRAY[NULL, NULL, NULL, NULL]::jsonb[]) i ORDER BY i.id`,
		queued[1], queued[2], queued[0], limited[0])
	if len(finished) != 3 {
		t.Fatalf("finished %v; want the three running attempts, not the fenced one", finished)
	}
	for _, tc := range []struct {
		id   int64
		want string
	}{
		{queued[1], "succeeded  1"},
		{queued[2], "failed boom 1"},
		{queued[0], "queued  0"},
		{limited[0], "succeeded  1"},
	} {
		if got := one(`SELECT status || ' ' || coalesce(error, '') || ' ' || attempt FROM picloud.invocations WHERE id = $1`, tc.id); got != tc.want {
			t.Errorf("invocation %d: %v, want %q", tc.id, got, tc.want)
		}
	}
	if v := one(`SELECT value FROM picloud.kv WHERE function = 'noop' AND key = 'k'`); v != float64(42) {
		t.Errorf("kv k = %v, want 42", v)
	}
	if got := one(`SELECT jsonb_array_length(errors)::bigint FROM picloud.invocations WHERE id = $1`, queued[2]); got != int64(1) {
		t.Errorf("the failure recorded %v errors, want 1", got)
	}
	if parked := one(`SELECT parked FROM picloud.invocations WHERE id = $1`, limited[1]); parked != false {
		t.Error("the parked invocation was not admitted when the slot freed")
	}

	// Rolled back, none of it happened.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.invocations`); n != 0 {
		t.Errorf("%d invocations after the rollback", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.kv`); n != 0 {
		t.Errorf("%d kv rows after the rollback", n)
	}
}

// TestLifecycleSQLPieces drives the functions that each concept has one
// definition in (sql/functions/), in rolled-back transactions.
func TestLifecycleSQLPieces(t *testing.T) {
	t.Parallel()
	_, pool := enqueueOnly(t)
	scalar := func(t *testing.T, ctx context.Context, tx pgx.Tx, sql string, args ...any) (v any) {
		t.Helper()
		if err := tx.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}

	t.Run("claim_idempotency_keys claims free and expired keys, not live ones", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			first := ids(t, ctx, tx, `SELECT picloud.invoke('plain', '{}', k) FROM unnest(ARRAY['live', 'expired']) k`)
			if _, err := tx.Exec(ctx, `UPDATE picloud.idempotency_keys SET expires_at = now() - interval '1 s' WHERE key = 'expired'`); err != nil {
				t.Fatal(err)
			}
			claimed := ids(t, ctx, tx, `SELECT c.claimed_id FROM picloud.claim_idempotency_keys('plain',
				ARRAY['live', 'expired', 'new'], ARRAY[900000001, 900000002, 900000003]::bigint[]) c ORDER BY c.claimed_id`)
			if want := []int64{900000002, 900000003}; !slices.Equal(claimed, want) {
				t.Errorf("claimed %v, want %v (the expired and the new key)", claimed, want)
			}
			if owner := scalar(t, ctx, tx, `SELECT invocation_id FROM picloud.idempotency_keys WHERE key = 'live'`); owner != first[0] {
				t.Errorf("the live key now belongs to %v, want its first invocation %d", owner, first[0])
			}
		})
	})

	t.Run("create_invocations writes queued or running rows in order, and no job", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			if _, err := tx.Exec(ctx, `SELECT picloud.create_invocations('plain', f.version, f.version_id, 'api',
					ARRAY[900000011, NULL, 900000012]::bigint[], ARRAY['{"a": 1}', '{}', NULL]::jsonb[], NULL, NULL,
					1234, 2, NULL, NULL, 77, running)
				FROM picloud.function_head('plain') f, (VALUES (false)) AS r(running)`); err != nil {
				t.Fatal(err)
			}
			got := scalar(t, ctx, tx, `SELECT string_agg(id || ' ' || status || ' ' || attempt || ' ' || timeout_ms || ' ' ||
				max_attempts || ' ' || parent_id || ' ' || coalesce(payload::text, 'null'), ', ' ORDER BY id)
				FROM picloud.invocations`)
			if want := `900000011 queued 0 1234 2 77 {"a": 1}, 900000012 queued 0 1234 2 77 null`; got != want {
				t.Errorf("rows: %v\nwant:  %s", got, want)
			}
			if n := scalar(t, ctx, tx, `SELECT (picloud.queue_depth()).due`); n != int64(0) {
				t.Errorf("%v jobs due: create_invocations must leave the transport to its callers", n)
			}
		})
	})

	t.Run("enqueue_invocation with a node starts here, or queues when it must wait", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			for _, tc := range []struct {
				name, key, runAt, want string
			}{
				{"nothing makes it wait", "", "", "running 1 1 1"},
				{"an idempotency key", "k", "", "queued 0 0 0"},
				{"a run_at", "", "2100-01-01", "queued 0 0 0"},
			} {
				id := scalar(t, ctx, tx, `SELECT id FROM picloud.enqueue_invocation('plain', 'api', NULL, NULL, '{}', NULL, NULL,
					nullif($1, ''), nullif($2, '')::timestamptz, true, NULL, 'node-a')`, tc.key, tc.runAt)
				got := scalar(t, ctx, tx, `SELECT i.status || ' ' || i.attempt || ' ' ||
					(SELECT count(*) FROM picloud.running_attempts a WHERE a.invocation_id = i.id) || ' ' ||
					(SELECT count(*) FROM picloud.running_attempts a WHERE a.invocation_id = i.id AND a.node = 'node-a')
					FROM picloud.invocations i WHERE i.id = $1`, id)
				if got != tc.want {
					t.Errorf("%s: %v, want %s", tc.name, got, tc.want)
				}
			}
		})
	})

	t.Run("schedule_attempts: due now is available, later is scheduled", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			queued := ids(t, ctx, tx, `SELECT picloud.invoke('plain') FROM generate_series(1, 3)`)
			if _, err := tx.Exec(ctx, `SELECT picloud.schedule_attempts($1, ARRAY[NULL, now() - interval '1 h', now() + interval '1 h'])`, queued); err != nil {
				t.Fatal(err)
			}
			// Each invoke scheduled one due attempt, and the call above one
			// due, one past and one later.
			if got := scalar(t, ctx, tx, `SELECT d.due || ' ' || d.scheduled FROM picloud.queue_depth() d`); got != "5 1" {
				t.Errorf("due, scheduled = %v, want 5 1", got)
			}
		})
	})

	t.Run("overdue_at is start plus timeout plus the rescue grace", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			if _, err := tx.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '3 s'`); err != nil {
				t.Fatal(err)
			}
			if got := scalar(t, ctx, tx, `SELECT picloud.overdue_at('2030-01-01 00:00:00+00', 1500) = '2030-01-01 00:00:04.5+00'`); got != true {
				t.Errorf("overdue_at is off")
			}
		})
	})

	t.Run("rescue_overdue takes back overdue attempts, carried by a job or run here", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			if _, err := tx.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '0 s'`); err != nil {
				t.Fatal(err)
			}
			// Run here, by a node that died: overdue once its 1 ms timeout passes.
			here := scalar(t, ctx, tx, `SELECT id FROM picloud.enqueue_invocation('plain', 'api', NULL, NULL, '{}', 1, 1,
				NULL, NULL, true, NULL, 'ghost')`)
			if _, err := tx.Exec(ctx, `SELECT pg_sleep(0.01)`); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `SELECT picloud.rescue_overdue()`); err != nil {
				t.Fatal(err)
			}
			if got := scalar(t, ctx, tx, `SELECT status || ' ' || error FROM picloud.invocations WHERE id = $1`, here); got != "failed the worker running this attempt stopped responding (it may have crashed)" {
				t.Errorf("run-here attempt after the rescue: %v", got)
			}
			if n := scalar(t, ctx, tx, `SELECT count(*) FROM picloud.running_attempts`); n != int64(0) {
				t.Errorf("%v run-here deadlines left", n)
			}
		})
	})

	t.Run("every running attempt is rescued, whatever became of its job", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			if _, err := tx.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '0 s'`); err != nil {
				t.Fatal(err)
			}
			// Started from a job, whose worker then stopped without a finish
			// (an error after the start, or a start whose answer was lost):
			// River completed or discarded the job, or it waits again.
			queued := ids(t, ctx, tx, `SELECT picloud.invoke('plain') FROM generate_series(1, 3)`)
			started := ids(t, ctx, tx, `SELECT id FROM picloud.start_invocations($1) ORDER BY id`, queued)
			if len(started) != 3 {
				t.Fatalf("started %v", started)
			}
			if n := scalar(t, ctx, tx, `SELECT count(*) FROM picloud.running_attempts WHERE invocation_id = ANY($1)`, started); n != int64(3) {
				t.Fatalf("%v running attempts recorded, want 3", n)
			}
			if _, err := tx.Exec(ctx, `UPDATE picloud.invocations SET timeout_ms = 1, started_at = started_at - interval '1 s' WHERE id = ANY($1)`, started); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `SELECT picloud.rescue_overdue()`); err != nil {
				t.Fatal(err)
			}
			// max_attempts 1: each fails with the rescue's reason, and its
			// record of running ends.
			if got := scalar(t, ctx, tx, `SELECT string_agg(DISTINCT status || ': ' || error, '; ') FROM picloud.invocations WHERE id = ANY($1)`, started); got != "failed: the worker running this attempt stopped responding (it may have crashed)" {
				t.Errorf("after the rescue: %v", got)
			}
			if n := scalar(t, ctx, tx, `SELECT count(*) FROM picloud.running_attempts`); n != int64(0) {
				t.Errorf("%v running attempts left", n)
			}
		})
	})

	t.Run("a run_at outside 2000 to 9999 is refused with PC400", func(t *testing.T) {
		for _, tc := range []struct {
			runAt   string
			refused bool
		}{
			{"-infinity", true},
			{"infinity", true},
			{"4713-01-01 BC", true},
			{"1999-12-31 23:59:59+00", true},
			{"10000-01-01 00:00:00+00", true},
			{"294276-01-01", true},
			{"2000-01-01 00:00:00+00", false},
			{"9999-12-31 23:59:59+00", false},
		} {
			for _, call := range []string{
				`SELECT picloud.invoke('plain', '{}', NULL, $1::timestamptz)`,
				`SELECT picloud.invoke_many('plain', ARRAY['{}'::jsonb], NULL, $1::timestamptz)`,
			} {
				rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
					_, err := tx.Exec(ctx, call, tc.runAt)
					var pgErr *pgconn.PgError
					refused := errors.As(err, &pgErr) && pgErr.Code == "PC400" && strings.Contains(pgErr.Message, "run_at")
					if refused != tc.refused || (!tc.refused && err != nil) {
						t.Errorf("%s with %s: %v, want refused %t", call, tc.runAt, err, tc.refused)
					}
				})
			}
		}
	})

	t.Run("a payload over 8 MiB as stored is refused with PC400", func(t *testing.T) {
		for _, tc := range []struct {
			name, payload string // SQL for the jsonb
			refused       bool
		}{
			{"small", `'{"a": 1}'::jsonb`, false},
			{"a 7 MB string", `jsonb_build_object('s', repeat('x', 7000000))`, false},
			{"a 9 MB string", `jsonb_build_object('s', repeat('x', 9000000))`, true},
			// 3,000,000 elements, which killed the sandbox: 6 MB as text,
			// far more as stored.
			{"3,000,000 zeros", `(SELECT jsonb_agg(0) FROM generate_series(1, 3000000))`, true},
		} {
			for _, call := range []string{
				`SELECT picloud.invoke('plain', %s)`,
				`SELECT picloud.invoke_many('plain', ARRAY['{}'::jsonb, %s])`,
			} {
				call := fmt.Sprintf(call, tc.payload)
				rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
					_, err := tx.Exec(ctx, call)
					var pgErr *pgconn.PgError
					refused := errors.As(err, &pgErr) && pgErr.Code == "PC400" && strings.Contains(pgErr.Message, "over the limit of 8388608 bytes")
					if refused != tc.refused || (!tc.refused && err != nil) {
						t.Errorf("%s with %s: %v, want refused %t", call[:40], tc.name, err, tc.refused)
					}
				})
			}
		}
	})

	t.Run("worker_demand counts due and running work and due ticks", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			ids(t, ctx, tx, `SELECT picloud.invoke('plain') FROM generate_series(1, 2)`)
			ids(t, ctx, tx, `SELECT picloud.invoke('plain', '{}', NULL, now() + interval '1 day')`)
			if _, err := tx.Exec(ctx, `INSERT INTO picloud.schedules (function, name, cron, next_run_at)
				VALUES ('plain', 'tick', '* * * * *', now() - interval '1 s')`); err != nil {
				t.Fatal(err)
			}
			if got := scalar(t, ctx, tx, `SELECT picloud.worker_demand()`); got != int64(3) {
				t.Errorf("worker_demand = %v, want 3 (two due invocations and a due tick, not tomorrow's)", got)
			}
		})
	})
}
