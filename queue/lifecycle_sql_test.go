package queue_test

import (
	"context"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// TestBatchedLifecycleSQL drives the batched start, hand-back and finish
// functions directly, inside a transaction that is rolled back, so that
// each step's effect on the rows is checked without a worker in the way.
func TestBatchedLifecycleSQL(t *testing.T) {
	ctx := context.Background()
	pool := platformtest.Database(t)
	client, err := queue.NewClient(pool, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, client, "noop", `function handle(req) end`, queue.FunctionOptions{})
	put(t, client, "single", `function handle(req) end`, queue.FunctionOptions{MaxConcurrency: 1})

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
