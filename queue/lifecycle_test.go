package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

// worker is a node that runs invocations, on a fresh database unless a pool
// is given.
func worker(t *testing.T, pool *pgxpool.Pool) (*queue.Client, *pgxpool.Pool) {
	t.Helper()
	if pool == nil {
		pool = platformtest.Database(t)
	}
	return startClient(t, pool, newExecutor(t)), pool
}

func put(t *testing.T, c *queue.Client, name, source string, opts catalog.FunctionOptions) {
	t.Helper()
	if _, _, err := catalogOf(c).PutFunction(context.Background(), name, source, opts); err != nil {
		t.Fatalf("PutFunction(%s): %v", name, err)
	}
}

func invoke(t *testing.T, c *queue.Client, p queue.InvokeParams) queue.Enqueued {
	t.Helper()
	return enqueue(t, c.Invoke, p)
}

// invokeWaiting enqueues as Call does, for a caller that waits for the
// outcome, and returns without waiting.
func invokeWaiting(t *testing.T, c *queue.Client, p queue.InvokeParams) queue.Enqueued {
	t.Helper()
	return enqueue(t, c.InvokeWaiting, p)
}

func enqueue(t *testing.T, how func(context.Context, queue.InvokeParams) (queue.Enqueued, error), p queue.InvokeParams) queue.Enqueued {
	t.Helper()
	if p.Trigger == "" {
		p.Trigger = queue.TriggerAPI
	}
	enq, err := how(context.Background(), p)
	if err != nil {
		t.Fatalf("enqueue %s: %v", p.Function, err)
	}
	return enq
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

const echoPayload = `function handle(req) return {trigger = req.trigger, payload = req.payload, attempt = req.attempt} end`

type echoed struct {
	Trigger string         `json:"trigger"`
	Payload map[string]any `json:"payload"`
	Attempt int            `json:"attempt"`
}

func resultOf(t *testing.T, inv queue.Invocation) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(inv.Result, &e); err != nil {
		t.Fatalf("result %s: %v", inv.Result, err)
	}
	return e
}

func TestSQLInvoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})

	var id int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT picloud.invoke('echo', '{"n": 1}')`).Scan(&id)
	})
	if err != nil {
		t.Fatal(err)
	}
	inv := waitFor(t, client, id)
	if got := resultOf(t, inv); inv.Status != queue.StatusSucceeded || got.Trigger != "sql" || got.Payload["n"] != float64(1) {
		t.Errorf("SQL invocation = %s %s", inv.Status, inv.Result)
	}
	var status string
	var result []byte
	if err := pool.QueryRow(ctx, "SELECT picloud.status($1), picloud.result($1)", id).Scan(&status, &result); err != nil || status != "succeeded" || !strings.Contains(string(result), `"sql"`) {
		t.Errorf("picloud.status/result = %q %s %v", status, result, err)
	}
	var missing *string
	if err := pool.QueryRow(ctx, "SELECT picloud.status(-1)").Scan(&missing); err != nil || missing != nil {
		t.Errorf("status of a missing invocation: %v %v, want NULL", missing, err)
	}

	// The SQL view of the row has the documented columns.
	var fn, trigger string
	var attempt int
	if err := pool.QueryRow(ctx, `SELECT function, trigger, attempt FROM picloud.invocations WHERE id = $1`, id).Scan(&fn, &trigger, &attempt); err != nil || fn != "echo" || trigger != "sql" || attempt != 1 {
		t.Errorf("row = %s %s %d %v", fn, trigger, attempt, err)
	}

	_, err = pool.Exec(ctx, `SELECT picloud.invoke('nope')`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "PC404" || !strings.Contains(pgErr.Message, `"nope"`) {
		t.Errorf("unknown function: %v, want SQLSTATE PC404 naming it", err)
	}
}

// TestSQLClientHearsFinish: a plain SQL client can LISTEN for its results.
func TestSQLClientHearsFinish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN picloud_finished"); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := conn.QueryRow(ctx, `SELECT picloud.invoke('echo')`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(waitCtx)
	if err != nil {
		t.Fatal(err)
	}
	// Finishes are announced per statement: a JSON array of events.
	var payload []struct {
		ID       int64  `json:"id"`
		Function string `json:"function"`
		Status   string `json:"status"`
	}
	if err := json.Unmarshal([]byte(n.Payload), &payload); err != nil || len(payload) != 1 ||
		payload[0].ID != id || payload[0].Status != "succeeded" || payload[0].Function != "echo" {
		t.Errorf("notification %q, want [id %d succeeded]", n.Payload, id)
	}
}

func TestTriggerInvokes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "on_order", echoPayload, catalog.FunctionOptions{})
	for _, stmt := range []string{
		`CREATE TABLE orders (id int PRIMARY KEY, total numeric)`,
		`CREATE TRIGGER orders_invoke AFTER INSERT OR UPDATE OR DELETE ON orders
		     FOR EACH ROW EXECUTE FUNCTION picloud.invoke_trigger('on_order')`,
		`INSERT INTO orders VALUES (1, 9.5)`,
		`UPDATE orders SET total = 10 WHERE id = 1`,
		`DELETE FROM orders WHERE id = 1`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	invs, _, err := client.ListInvocations(ctx, queue.ListParams{Function: "on_order"})
	if err != nil || len(invs) != 3 {
		t.Fatalf("ListInvocations = %d, %v; want 3", len(invs), err)
	}
	var ops []string
	for _, listed := range slices.Backward(invs) {
		inv := waitFor(t, client, listed.ID)
		got := resultOf(t, inv)
		if got.Trigger != "sql" || got.Payload["table"] != "orders" || got.Payload["schema"] != "public" {
			t.Errorf("trigger payload = %s", inv.Result)
		}
		ops = append(ops, got.Payload["op"].(string))
		if op := got.Payload["op"]; op == "INSERT" && got.Payload["new"].(map[string]any)["total"] != 9.5 {
			t.Errorf("INSERT payload new = %v", got.Payload["new"])
		}
		if op := got.Payload["op"]; op == "DELETE" && (got.Payload["old"] == nil || got.Payload["new"] != nil) {
			t.Errorf("DELETE payload = %v", got.Payload)
		}
	}
	if !slices.Equal(ops, []string{"INSERT", "UPDATE", "DELETE"}) {
		t.Errorf("ops = %v", ops)
	}

	// A rolled-back change leaves no invocation.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders VALUES (2, 1)`); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil || count(t, pool, `SELECT count(*) FROM picloud.invocations`) != 3 {
		t.Errorf("a rolled-back insert invoked the function")
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})

	first := invoke(t, client, queue.InvokeParams{Function: "echo", IdempotencyKey: "order-1"})
	again := invoke(t, client, queue.InvokeParams{Function: "echo", IdempotencyKey: "order-1"})
	other := invoke(t, client, queue.InvokeParams{Function: "echo", IdempotencyKey: "order-2"})
	if first.ID != again.ID || other.ID == first.ID {
		t.Errorf("ids: first %d, again %d, other key %d", first.ID, again.ID, other.ID)
	}
	var fromSQL int64
	if err := pool.QueryRow(ctx, `SELECT picloud.invoke('echo', '{}', 'order-1')`).Scan(&fromSQL); err != nil || fromSQL != first.ID {
		t.Errorf("SQL with the same key = %d, %v; want %d", fromSQL, err, first.ID)
	}
	waitFor(t, client, first.ID)
	waitFor(t, client, other.ID)
	if n := count(t, pool, `SELECT count(*) FROM picloud.invocations`); n != 2 {
		t.Errorf("%d invocations ran, want 2", n)
	}

	// After the window, the key runs again.
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET idempotency_window = '100 milliseconds'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE picloud.idempotency_keys SET expires_at = now()`); err != nil {
		t.Fatal(err)
	}
	if later := invoke(t, client, queue.InvokeParams{Function: "echo", IdempotencyKey: "order-1"}); later.ID == first.ID {
		t.Errorf("an expired key still returned invocation %d", first.ID)
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	client, _ := worker(t, nil)
	flaky := `function handle(req) if req.attempt < 3 then error("flaky " .. req.attempt) end return "ok on " .. req.attempt end`
	put(t, client, "flaky", flaky, catalog.FunctionOptions{MaxAttempts: 5, RetryBackoff: 20 * time.Millisecond})
	put(t, client, "broken", `function handle(req) error("always") end`, catalog.FunctionOptions{MaxAttempts: 3, RetryBackoff: 20 * time.Millisecond})

	t.Run("to success", func(t *testing.T) {
		inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "flaky"}).ID)
		if inv.Status != queue.StatusSucceeded || string(inv.Result) != `"ok on 3"` || inv.Attempt != 3 {
			t.Fatalf("invocation = %s %s attempt %d", inv.Status, inv.Result, inv.Attempt)
		}
		if len(inv.Errors) != 2 || !strings.Contains(inv.Errors[0].Error, "flaky 1") || !strings.Contains(inv.Errors[1].Error, "flaky 2") {
			t.Errorf("errors = %+v, want the two failed attempts", inv.Errors)
		}
	})
	t.Run("to failed", func(t *testing.T) {
		inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "broken"}).ID)
		if inv.Status != queue.StatusFailed || inv.Attempt != 3 || len(inv.Errors) != 3 {
			t.Fatalf("invocation = %s attempt %d errors %+v", inv.Status, inv.Attempt, inv.Errors)
		}
	})
	t.Run("sync calls run once", func(t *testing.T) {
		inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "flaky", MaxAttempts: 1}).ID)
		if inv.Status != queue.StatusFailed || inv.Attempt != 1 {
			t.Errorf("invocation = %s attempt %d, want failed after one attempt", inv.Status, inv.Attempt)
		}
	})
}

// TestRetryBackoffIsTimerDriven: with a backoff longer than the gap between
// attempts could be by chance, each retry starts at its due time, not at
// River's next poll or scheduler tick.
func TestRetryBackoffIsTimerDriven(t *testing.T) {
	client, _ := worker(t, nil)
	put(t, client, "twice", `function handle(req) if req.attempt == 1 then error("first") end return "ok" end`,
		catalog.FunctionOptions{MaxAttempts: 2, RetryBackoff: 300 * time.Millisecond})
	inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "twice"}).ID)
	if inv.Status != queue.StatusSucceeded || len(inv.Errors) != 1 {
		t.Fatalf("invocation = %s, errors %+v", inv.Status, inv.Errors)
	}
	gap := inv.StartedAt.Sub(inv.Errors[0].At)
	// 300 ms ±20% jitter; River alone would wait for its 5 s scheduler.
	if gap < 200*time.Millisecond || gap > 3*time.Second {
		t.Errorf("second attempt started %v after the first failed, want about 300 ms", gap)
	}
}

func TestRunAt(t *testing.T) {
	t.Parallel()
	client, _ := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	runAt := time.Now().Add(400 * time.Millisecond)
	enq := invoke(t, client, queue.InvokeParams{Function: "echo", RunAt: runAt})
	if enq.Status != queue.StatusQueued {
		t.Fatalf("status %s", enq.Status)
	}
	inv := waitFor(t, client, enq.ID)
	if inv.StartedAt.Before(runAt) {
		t.Errorf("started %v before run_at", runAt.Sub(*inv.StartedAt))
	}
	if late := inv.StartedAt.Sub(runAt); late > 2*time.Second {
		t.Errorf("started %v after run_at, want within milliseconds", late)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	// One sandbox: while a spin runs, nothing else can.
	sandbox := executor.NewPool(executor.Config{Size: 1})
	t.Cleanup(sandbox.Close)
	client, err := queue.NewClient(pool, queue.Config{Executor: sandbox, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(ctx) })
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	put(t, client, "spin", `function handle(req) while true do end end`, catalog.FunctionOptions{Timeout: 15 * time.Minute})

	t.Run("queued never runs", func(t *testing.T) {
		enq := invoke(t, client, queue.InvokeParams{Function: "echo", RunAt: time.Now().Add(300 * time.Millisecond)})
		if status, err := client.Cancel(ctx, enq.ID); err != nil || status != queue.StatusCancelled {
			t.Fatalf("Cancel = %s, %v", status, err)
		}
		time.Sleep(600 * time.Millisecond) // past run_at
		inv, err := client.GetInvocation(ctx, enq.ID)
		if err != nil || inv.Status != queue.StatusCancelled || inv.StartedAt != nil {
			t.Errorf("invocation = %s started %v, %v; want cancelled and never started", inv.Status, inv.StartedAt, err)
		}
	})
	t.Run("running stops in its sandbox", func(t *testing.T) {
		enq := invoke(t, client, queue.InvokeParams{Function: "spin", MaxAttempts: 3})
		deadline := time.Now().Add(10 * time.Second)
		for inv, _ := client.GetInvocation(ctx, enq.ID); inv.Status != queue.StatusRunning; inv, _ = client.GetInvocation(ctx, enq.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("spin never started: %s", inv.Status)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancelled := time.Now()
		if status, err := client.Cancel(ctx, enq.ID); err != nil || status != queue.StatusCancelled {
			t.Fatalf("Cancel = %s, %v", status, err)
		}
		// The only sandbox is free again only if the spin really stopped.
		inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "echo"}).ID)
		if inv.Status != queue.StatusSucceeded {
			t.Fatalf("echo after cancel: %s %s", inv.Status, inv.Error)
		}
		if freed := inv.StartedAt.Sub(cancelled); freed > 3*time.Second {
			t.Errorf("the sandbox was busy %v after the cancel, want well under a second", freed)
		}
		spin, err := client.GetInvocation(ctx, enq.ID)
		if err != nil || spin.Status != queue.StatusCancelled || spin.Attempt != 1 {
			t.Errorf("spin = %s attempt %d, %v; want cancelled, not retried", spin.Status, spin.Attempt, err)
		}
	})
	t.Run("finished is left alone", func(t *testing.T) {
		inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "echo"}).ID)
		if status, err := client.Cancel(ctx, inv.ID); err != nil || status != queue.StatusSucceeded {
			t.Errorf("Cancel of a finished invocation = %s, %v", status, err)
		}
	})
	if _, err := client.Cancel(ctx, 1<<40); !errors.Is(err, queue.ErrInvocationNotFound) {
		t.Errorf("Cancel of a missing invocation: %v", err)
	}
	var status string
	if err := pool.QueryRow(ctx, `SELECT picloud.cancel(picloud.invoke('echo', '{}', NULL, now() + interval '1 hour'))`).Scan(&status); err != nil || status != "cancelled" {
		t.Errorf("picloud.cancel from SQL = %q, %v", status, err)
	}
}

func TestMaxConcurrencyAcrossWorkers(t *testing.T) {
	t.Parallel()
	one, pool := worker(t, nil)
	two, _ := worker(t, pool)
	// Each run keeps its sandbox busy for 100 ms of wall time.
	put(t, one, "slow", `function handle(req) while os.clock() < 0.1 do end return req.payload end`,
		catalog.FunctionOptions{MaxConcurrency: 1, Timeout: 10 * time.Second})

	var ids []int64
	for i := range 6 {
		c := []*queue.Client{one, two}[i%2]
		ids = append(ids, invoke(t, c, queue.InvokeParams{Function: "slow", Payload: []byte(`{}`)}).ID)
	}
	type span struct{ start, end time.Time }
	var spans []span
	for _, id := range ids {
		inv := waitFor(t, one, id)
		if inv.Status != queue.StatusSucceeded {
			t.Fatalf("invocation %d: %s %s", id, inv.Status, inv.Error)
		}
		spans = append(spans, span{*inv.StartedAt, *inv.FinishedAt})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start.Compare(b.start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start.Before(spans[i-1].end) {
			t.Errorf("runs overlap: %v..%v and %v..%v", spans[i-1].start, spans[i-1].end, spans[i].start, spans[i].end)
		}
	}
}

// TestLongPollWakesOnFinish: Wait on a running invocation returns as soon as
// it finishes, from the notification.
func TestLongPollWakesOnFinish(t *testing.T) {
	client, pool := worker(t, nil)
	apiNode := startClient(t, pool, nil)
	put(t, client, "slow", `function handle(req) while os.clock() < 0.3 do end return "done" end`, catalog.FunctionOptions{})
	enq := invoke(t, client, queue.InvokeParams{Function: "slow"})
	inv, err := apiNode.Wait(context.Background(), enq.ID)
	if err != nil || inv.Status != queue.StatusSucceeded {
		t.Fatalf("Wait = %s, %v", inv.Status, err)
	}
	// Waiting on a finished invocation answers at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if again, err := apiNode.Wait(ctx, enq.ID); err != nil || again.Status != queue.StatusSucceeded {
		t.Errorf("Wait on a finished invocation = %s, %v", again.Status, err)
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	client, pool := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET retention = '500 milliseconds'`); err != nil {
		t.Fatal(err)
	}
	first := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "echo", IdempotencyKey: "k"}).ID)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := client.GetInvocation(ctx, first.ID)
		if errors.Is(err, queue.ErrInvocationNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invocation %d still there long after its retention", first.ID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if gone := time.Since(*first.FinishedAt); gone < 500*time.Millisecond {
		t.Errorf("deleted %v after finishing, before its retention", gone)
	}
	if n := count(t, pool, `SELECT count(*) FROM picloud.idempotency_keys`); n != 0 {
		t.Errorf("%d idempotency keys outlive their invocation", n)
	}
}

// TestLogRetention: a function's log retention clears its invocations' log
// lines, on the sweep timer, while the rows stay; another function's logs
// are kept.
func TestLogRetention(t *testing.T) {
	ctx := context.Background()
	client, _ := worker(t, nil)
	logger := `function handle(req) log.info("secret-ish detail") return "ok" end`
	put(t, client, "brief", logger, catalog.FunctionOptions{LogRetention: time.Second})
	put(t, client, "kept", logger, catalog.FunctionOptions{})
	fn, err := catalogOf(client).GetFunction(ctx, "brief")
	if err != nil || fn.Options.LogRetention != time.Second {
		t.Fatalf("GetFunction: %v, log retention %v", err, fn.Options.LogRetention)
	}
	brief := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "brief"}).ID)
	kept := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "kept"}).ID)
	if len(brief.Logs) != 1 || len(kept.Logs) != 1 {
		t.Fatalf("logs right after the run: %v, %v", brief.Logs, kept.Logs)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		inv, err := client.GetInvocation(ctx, brief.ID)
		if err != nil {
			t.Fatalf("the invocation itself must stay: %v", err)
		}
		if len(inv.Logs) == 0 {
			if gone := time.Since(*inv.FinishedAt); gone < time.Second {
				t.Errorf("logs cleared %v after finishing, before their retention", gone)
			}
			if inv.Status != queue.StatusSucceeded || len(inv.Result) == 0 {
				t.Errorf("clearing logs changed the rest of the row: %+v", inv)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs still there long after their retention")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if inv, err := client.GetInvocation(ctx, kept.ID); err != nil || len(inv.Logs) != 1 {
		t.Errorf("a function without log retention lost its logs: %v %v", inv.Logs, err)
	}
	if _, _, err := catalogOf(client).PutFunction(ctx, "bad", logger, catalog.FunctionOptions{LogRetention: time.Millisecond}); err == nil {
		t.Error("a log retention under a second was accepted")
	}
}

// TestConcurrentCallersShareNothing runs many invocations from several
// goroutines on one client, under -race.
func TestConcurrentCallersShareNothing(t *testing.T) {
	t.Parallel()
	client, _ := worker(t, nil)
	put(t, client, "echo", echoPayload, catalog.FunctionOptions{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				payload, _ := json.Marshal(map[string]int{"g": g, "i": i})
				inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "echo", Payload: payload}).ID)
				if got := resultOf(t, inv); got.Payload["g"] != float64(g) || got.Payload["i"] != float64(i) {
					t.Errorf("got %v for g=%d i=%d", got.Payload, g, i)
				}
			}
		})
	}
	wg.Wait()
}

// TestRaisingTheLimitAdmitsParked: parked invocations run as soon as the
// limit is lifted, not when the running one ends.
func TestRaisingTheLimitAdmitsParked(t *testing.T) {
	t.Parallel()
	client, _ := worker(t, nil)
	source := `function handle(req) while os.clock() < (req.payload.seconds or 0) do end return "done" end`
	put(t, client, "f", source, catalog.FunctionOptions{MaxConcurrency: 1, Timeout: time.Minute})
	long := invoke(t, client, queue.InvokeParams{Function: "f", Payload: []byte(`{"seconds": 3}`)})
	time.Sleep(200 * time.Millisecond) // let it take the slot
	short := invoke(t, client, queue.InvokeParams{Function: "f", Payload: []byte(`{}`)})
	time.Sleep(200 * time.Millisecond) // let it park
	put(t, client, "f", source, catalog.FunctionOptions{Timeout: time.Minute})
	quick := waitFor(t, client, short.ID)
	slow := waitFor(t, client, long.ID)
	if quick.Status != queue.StatusSucceeded || !quick.FinishedAt.Before(*slow.FinishedAt) {
		t.Errorf("the parked invocation finished at %v, after the long one (%v): lifting the limit did not admit it", quick.FinishedAt, slow.FinishedAt)
	}
}

// TestRescueOfADeadWorkersInvocation: an invocation whose worker vanished
// mid-run (its River job running, nobody reporting) is taken back at its
// timeout plus the grace, by a timer, on an otherwise idle system, and runs
// again elsewhere.
func TestRescueOfADeadWorkersInvocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, pool := worker(t, nil)
	if _, err := pool.Exec(ctx, `UPDATE picloud.settings SET rescue_grace = '200 milliseconds'`); err != nil {
		t.Fatal(err)
	}
	put(t, client, "job", echoPayload, catalog.FunctionOptions{MaxAttempts: 2, Timeout: 300 * time.Millisecond})
	put(t, client, "once", echoPayload, catalog.FunctionOptions{MaxAttempts: 1, Timeout: 300 * time.Millisecond})

	// A dead worker's trace: the job fetched (running) and the invocation
	// started, then silence. run_at keeps the live worker off it.
	crash := func(function string) int64 {
		t.Helper()
		enq := invoke(t, client, queue.InvokeParams{Function: function, RunAt: time.Now().Add(time.Hour)})
		if _, err := pool.Exec(ctx, `UPDATE picloud.river_job SET state = 'running', attempted_at = now(), attempt = 1
			WHERE args @> jsonb_build_object('invocation_id', $1::bigint)`, enq.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT picloud.start_invocation($1)`, enq.ID); err != nil {
			t.Fatal(err)
		}
		return enq.ID
	}
	crashed := time.Now()
	retried := crash("job")
	failed := crash("once")

	inv := waitFor(t, client, retried)
	if inv.Status != queue.StatusSucceeded || inv.Attempt != 2 || len(inv.Errors) != 1 || !strings.Contains(inv.Errors[0].Error, "stopped responding") {
		t.Errorf("rescued invocation = %s attempt %d errors %+v", inv.Status, inv.Attempt, inv.Errors)
	}
	// Due at start + 300 ms timeout + 200 ms grace.
	if late := inv.Errors[0].At.Sub(crashed); late > 5*time.Second {
		t.Errorf("rescued %v after the crash, want about half a second", late)
	}
	last := waitFor(t, client, failed)
	if last.Status != queue.StatusFailed || !strings.Contains(last.Error, "stopped responding") {
		t.Errorf("rescued invocation without attempts left = %s %q", last.Status, last.Error)
	}
	var discarded int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM picloud.river_job WHERE state = 'discarded'
		AND (args->>'invocation_id')::bigint IN ($1, $2)`, retried, failed).Scan(&discarded); err != nil || discarded != 2 {
		t.Errorf("%d of the dead worker's 2 River jobs discarded, %v", discarded, err)
	}
}

func TestInstructionBudgetPerFunction(t *testing.T) {
	t.Parallel()
	client, _ := worker(t, nil)
	put(t, client, "tight", `function handle(req) while true do end end`, catalog.FunctionOptions{MaxInstructions: 50_000})
	inv := waitFor(t, client, invoke(t, client, queue.InvokeParams{Function: "tight"}).ID)
	if inv.Status != queue.StatusTimedOut || !strings.Contains(inv.Error, "instruction budget exhausted (50000") {
		t.Errorf("invocation = %s %q, want timed_out on the function's own budget", inv.Status, inv.Error)
	}
	fn, err := catalogOf(client).GetFunction(context.Background(), "tight")
	if err != nil || fn.Options.MaxInstructions != 50_000 {
		t.Errorf("stored budget = %d, %v", fn.Options.MaxInstructions, err)
	}
}

// catalogOf is the catalog on the client's database, for deploying the
// functions a test invokes.
func catalogOf(c *queue.Client) *catalog.Catalog { return catalog.New(c.Pool()) }
