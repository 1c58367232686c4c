package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// enqueueOnly is a fresh database with functions bulk (timeout 2.5 s, three
// attempts) and plain (the defaults) and no worker: what invoke_many writes
// stays as it wrote it.
func enqueueOnly(t *testing.T) (*queue.Client, *pgxpool.Pool) {
	t.Helper()
	pool := platformtest.Database(t)
	client, err := queue.NewClient(pool, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, client, "bulk", echoPayload, catalog.FunctionOptions{Timeout: 2500 * time.Millisecond, MaxAttempts: 3})
	put(t, client, "plain", echoPayload, catalog.FunctionOptions{})
	return client, pool
}

// rolledBack runs f in a transaction that is rolled back afterwards, so
// that subtests sharing a database see none of each other's rows.
func rolledBack(t *testing.T, pool *pgxpool.Pool, f func(ctx context.Context, tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Errorf("rollback: %v", err)
		}
	}()
	f(ctx, tx)
}

// ids runs a query returning invocation ids, one per row.
func ids(t *testing.T, ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

func TestInvokeManySQL(t *testing.T) {
	t.Parallel()
	_, pool := enqueueOnly(t)

	t.Run("ids in payload order, rows and jobs as invoke writes them", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			got := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{"i": 1}', NULL, '"x"', '[1, 2]', 'null']::jsonb[])`)
			if len(got) != 5 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != 5 {
				t.Fatalf("ids = %v, want 5 distinct ascending ones", got)
			}
			rows, err := tx.Query(ctx, `SELECT id, payload::text, trigger, status, timeout_ms, max_attempts, attempt,
				idempotency_key IS NULL AND run_at IS NULL AND parent_id IS NULL AND trace_parent IS NULL
				FROM picloud.invocations ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			type row struct {
				ID                              int64
				Payload, Trigger, Status        string
				TimeoutMS, MaxAttempts, Attempt int
				Bare                            bool
			}
			stored, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
			if err != nil {
				t.Fatal(err)
			}
			// A NULL element is '{}', as picloud.invoke's NULL payload; JSON
			// null stays null.
			payloads := []string{`{"i": 1}`, `{}`, `"x"`, `[1, 2]`, `null`}
			for i, r := range stored {
				want := row{ID: got[i], Payload: payloads[i], Trigger: "sql", Status: "queued", TimeoutMS: 2500, MaxAttempts: 3, Bare: true}
				if r != want {
					t.Errorf("invocation %d = %+v, want %+v", i, r, want)
				}
			}
			// The River jobs are schedule_attempts', in the same order.
			rows, err = tx.Query(ctx, `SELECT (args->>'invocation_id')::bigint, kind, queue, priority, max_attempts, state::text,
				scheduled_at <= now() FROM picloud.river_job ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			type job struct {
				Invocation         int64
				Kind, Queue        string
				Priority, Attempts int
				State              string
				Due                bool
			}
			jobs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[job])
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) != len(got) {
				t.Fatalf("%d jobs for %d invocations", len(jobs), len(got))
			}
			for i, j := range jobs {
				want := job{Invocation: got[i], Kind: "picloud.invocation", Queue: "picloud", Priority: 1, Attempts: 1, State: "available", Due: true}
				if j != want {
					t.Errorf("job %d = %+v, want %+v", i, j, want)
				}
			}
		})
	})

	t.Run("a function without settings gets enqueue_invocation's defaults", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			got := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('plain', ARRAY['{}'::jsonb])`)
			var timeout, attempts int
			if err := tx.QueryRow(ctx, `SELECT timeout_ms, max_attempts FROM picloud.invocations WHERE id = $1`, got[0]).Scan(&timeout, &attempts); err != nil || timeout != 10000 || attempts != 1 {
				t.Errorf("timeout_ms %d, max_attempts %d, %v; want 10000 and 1", timeout, attempts, err)
			}
		})
	})

	t.Run("run_at", func(t *testing.T) {
		for _, tc := range []struct {
			name, runAt, state string
		}{
			{"in the future is scheduled", "now() + interval '1 hour'", "scheduled"},
			{"in the past is due", "now() - interval '1 hour'", "available"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
					got := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}', '{}']::jsonb[], run_at => `+tc.runAt+`)`)
					if n := countTx(t, tx, `SELECT count(*) FROM picloud.river_job j JOIN picloud.invocations i
						ON i.id = (j.args->>'invocation_id')::bigint
						WHERE i.id = ANY($1) AND j.state::text = $2 AND i.run_at = `+tc.runAt+`
						  AND j.scheduled_at = CASE WHEN $2 = 'scheduled' THEN i.run_at ELSE now() END`, got, tc.state); n != 2 {
						t.Errorf("%d of 2 jobs %s at run_at", n, tc.state)
					}
				})
			})
		}
	})

	t.Run("idempotency keys", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			var first int64
			if err := tx.QueryRow(ctx, `SELECT picloud.invoke('bulk', '{"n": 0}', 'k1')`).Scan(&first); err != nil {
				t.Fatal(err)
			}
			got := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk',
				ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}', '{"n": 5}']::jsonb[],
				ARRAY['k1', 'k2', NULL, 'k2', 'k3'])`)
			if len(got) != 5 || got[0] != first || got[1] != got[3] || len(slices.Compact(slices.Sorted(slices.Values([]int64{first, got[1], got[2], got[4]})))) != 4 {
				t.Fatalf("ids = %v (k1 first made %d); want k1's, then k2's twice, and two new ones", got, first)
			}
			// The live key ran nothing new; a repeated key ran its first payload.
			if n := countTx(t, tx, `SELECT count(*) FROM picloud.invocations`); n != 4 {
				t.Errorf("%d invocations, want 4", n)
			}
			if n := countTx(t, tx, `SELECT count(*) FROM picloud.river_job`); n != 4 {
				t.Errorf("%d river jobs, want 4", n)
			}
			var payload string
			if err := tx.QueryRow(ctx, `SELECT payload::text FROM picloud.invocations WHERE id = $1 AND idempotency_key = 'k2'`, got[1]).Scan(&payload); err != nil || payload != `{"n": 2}` {
				t.Errorf("k2's invocation has payload %s, %v; want the first element's", payload, err)
			}
			// Later calls get the same invocations back, and picloud.invoke
			// agrees with them.
			if again := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}', '{}']::jsonb[], ARRAY['k3', 'k2'])`); !slices.Equal(again, []int64{got[4], got[1]}) {
				t.Errorf("repeated keys k3, k2 = %v, want %v", again, []int64{got[4], got[1]})
			}
			var viaInvoke int64
			if err := tx.QueryRow(ctx, `SELECT picloud.invoke('bulk', '{}', 'k3')`).Scan(&viaInvoke); err != nil || viaInvoke != got[4] {
				t.Errorf("picloud.invoke with k3 = %d, %v; want %d", viaInvoke, err, got[4])
			}
			// An expired key makes a new invocation and takes the key over.
			if _, err := tx.Exec(ctx, `UPDATE picloud.idempotency_keys SET expires_at = now() WHERE key = 'k2'`); err != nil {
				t.Fatal(err)
			}
			renewed := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}']::jsonb[], ARRAY['k2'])`)
			var owner int64
			if err := tx.QueryRow(ctx, `SELECT invocation_id FROM picloud.idempotency_keys WHERE key = 'k2'`).Scan(&owner); err != nil || renewed[0] == got[1] || owner != renewed[0] {
				t.Errorf("expired k2 gave %d (was %d), key now owned by %d, %v", renewed[0], got[1], owner, err)
			}
		})
	})

	t.Run("keys of other functions are theirs", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			a := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}']::jsonb[], ARRAY['same'])`)
			b := ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('plain', ARRAY['{}']::jsonb[], ARRAY['same'])`)
			if a[0] == b[0] {
				t.Errorf("two functions share invocation %d through one key", a[0])
			}
		})
	})

	t.Run("trace parent from the transaction's setting", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			if _, err := tx.Exec(ctx, `SELECT set_config('picloud.trace_parent', $1, true)`, tp); err != nil {
				t.Fatal(err)
			}
			ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}', '{}']::jsonb[])`)
			if n := countTx(t, tx, `SELECT count(*) FROM picloud.invocations WHERE trace_parent = $1`, tp); n != 2 {
				t.Errorf("%d of 2 invocations carry the trace parent", n)
			}
		})
	})

	t.Run("a rollback leaves nothing", func(t *testing.T) {
		rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
			ids(t, ctx, tx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 100)), ARRAY(SELECT 'rb-' || g FROM generate_series(1, 100) g))`)
		})
		for _, table := range []string{"invocations", "river_job", "idempotency_keys"} {
			if n := count(t, pool, `SELECT count(*) FROM picloud.`+table); n != 0 {
				t.Errorf("%d rows in %s after the rollback", n, table)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, sql, code, mention string
		}{
			{"unknown function", `picloud.invoke_many('nope', ARRAY['{}']::jsonb[])`, "PC404", `"nope"`},
			{"null function", `picloud.invoke_many(NULL, ARRAY['{}']::jsonb[])`, "PC400", "function_name"},
			{"null payloads", `picloud.invoke_many('bulk', NULL)`, "PC400", "payloads"},
			{"empty payloads", `picloud.invoke_many('bulk', '{}'::jsonb[])`, "PC400", "payloads"},
			{"two-dimensional payloads", `picloud.invoke_many('bulk', '{{"{}"},{"{}"}}'::jsonb[])`, "PC400", "payloads"},
			{"fewer keys than payloads", `picloud.invoke_many('bulk', ARRAY['{}', '{}']::jsonb[], ARRAY['a'])`, "PC400", "idempotency_keys has 1 elements, payloads has 2"},
			{"more keys than payloads", `picloud.invoke_many('bulk', ARRAY['{}']::jsonb[], ARRAY['a', 'b'])`, "PC400", "idempotency_keys"},
			{"empty keys", `picloud.invoke_many('bulk', ARRAY['{}']::jsonb[], '{}'::text[])`, "PC400", "idempotency_keys"},
			{"a key over 255 characters", `picloud.invoke_many('bulk', ARRAY['{}']::jsonb[], ARRAY[repeat('k', 256)])`, "PC400", "idempotency key of 256 characters"},
			{"a single call's null function", `picloud.invoke(NULL)`, "PC400", "function_name"},
			{"a single call's key over 255 characters", `picloud.invoke('bulk', '{}', repeat('é', 256))`, "PC400", "the most is 255"},
			{"too many payloads", `picloud.invoke_many('bulk', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, picloud.invoke_many_max() + 1)))`, "PC400", "at most"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rolledBack(t, pool, func(ctx context.Context, tx pgx.Tx) {
					_, err := tx.Exec(ctx, `SELECT * FROM `+tc.sql)
					var pgErr *pgconn.PgError
					if !errors.As(err, &pgErr) || pgErr.Code != tc.code || !strings.Contains(pgErr.Message, tc.mention) {
						t.Errorf("error %v, want SQLSTATE %s mentioning %s", err, tc.code, tc.mention)
					}
				})
			})
		}
		if n := count(t, pool, `SELECT count(*) FROM picloud.invocations`); n != 0 {
			t.Errorf("%d invocations after the errors", n)
		}
	})
}

func countTx(t *testing.T, tx pgx.Tx, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestInvokeManyWakesOnce: a committed batch sends one wake-up to River's
// producers and arms the rescue clock, or, scheduled, announces its due
// time, as schedule_attempts does.
func TestInvokeManyWakesOnce(t *testing.T) {
	ctx := context.Background()
	_, pool := enqueueOnly(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN "picloud.river_insert"; LISTEN picloud_due`); err != nil {
		t.Fatal(err)
	}
	heard := func() []string {
		var got []string
		for {
			waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			n, err := conn.Conn().WaitForNotification(waitCtx)
			cancel()
			if err != nil {
				return got
			}
			got = append(got, n.Channel)
		}
	}

	ids(t, ctx, pool, `SELECT * FROM picloud.invoke_many('bulk', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, 50)))`)
	if got := heard(); !slices.Equal(got, []string{"picloud.river_insert", "picloud_due"}) {
		t.Errorf("a due batch sent %v, want one river_insert and the rescue clock's picloud_due", got)
	}
	var armed bool
	if err := pool.QueryRow(ctx, `SELECT next_at > now() FROM picloud.rescue_clock`).Scan(&armed); err != nil || !armed {
		t.Errorf("rescue clock armed: %t, %v", armed, err)
	}

	var runAt time.Time
	if err := pool.QueryRow(ctx, `SELECT date_trunc('second', now()) + interval '1 hour'`).Scan(&runAt); err != nil {
		t.Fatal(err)
	}
	ids(t, ctx, pool, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}', '{}']::jsonb[], run_at => $1)`, runAt)
	if got := heard(); !slices.Equal(got, []string{"picloud_due"}) {
		t.Errorf("a scheduled batch sent %v, want one picloud_due", got)
	}
}

// TestInvokeManyRunsEndToEnd: a running worker burns down a batch, each
// invocation with its own payload.
func TestInvokeManyRunsEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	const n = 300
	got := ids(t, ctx, pool, `SELECT * FROM picloud.invoke_many('echo', ARRAY(SELECT jsonb_build_object('i', g) FROM generate_series(1, $1) g))`, n)
	if len(got) != n {
		t.Fatalf("%d ids, want %d", len(got), n)
	}
	for i, id := range got {
		inv := waitFor(t, client, id)
		if r := resultOf(t, inv); inv.Status != queue.StatusSucceeded || r.Trigger != "sql" || r.Payload["i"] != float64(i+1) {
			t.Fatalf("invocation %d (element %d) = %s %s", id, i+1, inv.Status, inv.Result)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.invocations WHERE status <> 'succeeded'`); n != 0 {
		t.Errorf("%d invocations did not succeed", n)
	}
}

// TestInvokeManyConcurrentKeys: a call that meets keys another transaction
// is claiming waits for it, then answers with that transaction's
// invocations, which its own snapshot could not see.
func TestInvokeManyConcurrentKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := enqueueOnly(t)
	first, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(ctx) }()
	mine := ids(t, ctx, first, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}', '{}']::jsonb[], ARRAY['a', 'b'])`)

	type answer struct {
		ids []int64
		err error
	}
	done := make(chan answer, 1)
	go func() {
		rows, err := pool.Query(ctx, `SELECT * FROM picloud.invoke_many('bulk', ARRAY['{}', '{}', '{}']::jsonb[], ARRAY['b', 'a', 'c'])`)
		if err != nil {
			done <- answer{err: err}
			return
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		done <- answer{got, err}
	}()
	select {
	case a := <-done:
		t.Fatalf("the second call returned %v, %v while the first held its keys", a.ids, a.err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if len(a.ids) != 3 || a.ids[0] != mine[1] || a.ids[1] != mine[0] || slices.Contains(mine, a.ids[2]) {
		t.Errorf("second call = %v; want b's %d, a's %d and a new one", a.ids, mine[1], mine[0])
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.invocations`); n != 3 {
		t.Errorf("%d invocations, want 3", n)
	}
}

func TestClientInvokeMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := enqueueOnly(t)
	existing := invoke(t, client, queue.InvokeParams{Function: "bulk", IdempotencyKey: "seen"})
	if _, err := pool.Exec(ctx, `UPDATE picloud.invocations SET status = 'cancelled' WHERE id = $1`, existing.ID); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	invs, err := client.InvokeMany(ctx, "bulk", queue.TriggerAPI, []queue.BatchItem{
		{Payload: json.RawMessage(`{"n": 1}`)},
		{IdempotencyKey: "seen"},
		{Payload: json.RawMessage(`[2]`), IdempotencyKey: "fresh", RunAt: later},
		{IdempotencyKey: "fresh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.Status{queue.StatusQueued, queue.StatusCancelled, queue.StatusQueued, queue.StatusQueued}
	if len(invs) != 4 || invs[1].ID != existing.ID || invs[2].ID != invs[3].ID || invs[0].ID == invs[2].ID {
		t.Fatalf("InvokeMany = %+v (the key seen made %d)", invs, existing.ID)
	}
	for i, inv := range invs {
		if inv.Status != want[i] {
			t.Errorf("item %d: status %s, want %s", i, inv.Status, want[i])
		}
	}
	for _, check := range []struct {
		id      int64
		payload string
		runAt   *time.Time
		key     string
		trigger queue.Trigger
	}{
		{invs[0].ID, `{"n": 1}`, nil, "", queue.TriggerAPI},
		{invs[2].ID, `[2]`, &later, "fresh", queue.TriggerAPI},
	} {
		inv, err := client.GetInvocation(ctx, check.id)
		if err != nil {
			t.Fatal(err)
		}
		if string(inv.Payload) != check.payload || inv.IdempotencyKey != check.key || inv.Trigger != check.trigger ||
			(check.runAt == nil) != (inv.RunAt == nil) || check.runAt != nil && !inv.RunAt.Equal(*check.runAt) {
			t.Errorf("invocation %d = payload %s key %q trigger %s run_at %v", check.id, inv.Payload, inv.IdempotencyKey, inv.Trigger, inv.RunAt)
		}
	}

	for _, tc := range []struct {
		name     string
		function string
		items    []queue.BatchItem
		want     error
	}{
		{"unknown function", "nope", []queue.BatchItem{{}}, queue.ErrFunctionNotFound},
		{"no items", "bulk", nil, &queue.InvalidBatchError{}},
		{"NUL in a payload", "bulk", []queue.BatchItem{{Payload: json.RawMessage(`{"s": "a\u0000b"}`)}}, &queue.InvalidBatchError{}},
		{"NUL in a key", "bulk", []queue.BatchItem{{IdempotencyKey: "a\x00b"}}, &queue.InvalidBatchError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.InvokeMany(ctx, tc.function, queue.TriggerAPI, tc.items)
			var invalid *queue.InvalidBatchError
			if _, wantInvalid := tc.want.(*queue.InvalidBatchError); wantInvalid && !errors.As(err, &invalid) ||
				!wantInvalid && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %T %v", err, tc.want, tc.want)
			}
		})
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.invocations`); n != 3 {
		t.Errorf("%d invocations, want 3 (the refused batches wrote none)", n)
	}
}
