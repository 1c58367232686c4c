package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/queue"
)

func TestMain(m *testing.M) {
	executor.RunSandboxIfChild() // the process sandboxes of these tests are this binary
	os.Exit(dbtest.Main(m))
}

func emptyDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbtest.CreateDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyDatabase(t)
	migrations, err := queue.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := queue.Pending(ctx, pool); err != nil || len(pending) != len(migrations) {
		t.Fatalf("Pending on an empty database = %v, %v; want all %d", pending, err, len(migrations))
	}

	// Several processes starting at once: each migration applies exactly once.
	var mu sync.Mutex
	var applied []int
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			versions, err := queue.Migrate(ctx, pool)
			if err != nil {
				t.Errorf("Migrate: %v", err)
			}
			mu.Lock()
			applied = append(applied, versions...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(applied)
	var want []int
	for _, m := range migrations {
		want = append(want, m.Version)
	}
	if !slices.Equal(applied, want) {
		t.Errorf("concurrent Migrate applied %v, want each of %v once", applied, want)
	}
	if again, err := queue.Migrate(ctx, pool); err != nil || len(again) != 0 {
		t.Errorf("second Migrate = %v, %v; want nothing to do", again, err)
	}
	if pending, err := queue.Pending(ctx, pool); err != nil || len(pending) != 0 {
		t.Errorf("Pending after Migrate = %v, %v", pending, err)
	}
}

func startClient(t *testing.T, pool *pgxpool.Pool, exec queue.Executor) *queue.Client {
	t.Helper()
	client, err := queue.NewClient(pool, queue.Config{Executor: exec, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return client
}

func newExecutor(t *testing.T) *executor.Pool {
	t.Helper()
	p := executor.NewPool(executor.Config{Size: 2})
	t.Cleanup(p.Close)
	return p
}

func waitFor(t *testing.T, client *queue.Client, id int64) queue.Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inv, err := client.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%d): %v", id, err)
	}
	return inv
}

func httpRequest(query string) *queue.HTTPRequest {
	return &queue.HTTPRequest{Method: "GET", Path: "/", Query: map[string]string{"name": query}, Headers: map[string]string{}}
}

const helloSource = `function handle(req) print("hi"); return "Hello, " .. req.query.name .. "!" end`

func TestInvokeRunsAndRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	client := startClient(t, pool, newExecutor(t))
	if _, _, err := catalogOf(client).PutFunction(ctx, "hello", helloSource, catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}

	enq, err := client.Invoke(ctx, queue.InvokeParams{Function: "hello", Trigger: queue.TriggerHTTP, Request: httpRequest("Ada")})
	if err != nil {
		t.Fatal(err)
	}
	id := enq.ID
	inv := waitFor(t, client, id)
	resp, err := inv.Response()
	if inv.Status != queue.StatusSucceeded || err != nil || string(resp.Body) != "Hello, Ada!" {
		t.Fatalf("invocation = %+v, response %+v %v", inv, resp, err)
	}
	// What Wait returned from the local worker matches the stored row.
	stored, err := client.GetInvocation(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	storedResp, err := stored.Response()
	if err != nil || !reflect.DeepEqual(storedResp, resp) {
		t.Errorf("stored response = %+v, %v; Wait returned %+v", storedResp, err, resp)
	}
	if stored.Status != inv.Status || len(stored.Logs) != 1 || stored.Logs[0].Message != "hi" ||
		stored.StartedAt == nil || stored.FinishedAt == nil || stored.Attempt != 1 || stored.Request.Query["name"] != "Ada" {
		t.Errorf("stored invocation = %+v", stored)
	}
}

func TestInvokeUnknownFunction(t *testing.T) {
	t.Parallel()
	client := startClient(t, platformtest.Database(t), nil)
	_, err := client.Invoke(context.Background(), queue.InvokeParams{Function: "nope", Trigger: queue.TriggerHTTP, Request: httpRequest("x")})
	if !errors.Is(err, queue.ErrFunctionNotFound) {
		t.Errorf("Invoke(nope) = %v, want ErrFunctionNotFound", err)
	}
}

// TestWaitAcrossClients is the api/worker split: the waiting client has no
// executor and learns of the finish only through the database's NOTIFY.
func TestWaitAcrossClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	apiNode := startClient(t, pool, nil)
	startClient(t, pool, newExecutor(t))
	if _, _, err := catalogOf(apiNode).PutFunction(ctx, "hello", helloSource, catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		name := fmt.Sprint("n", i)
		enq, err := apiNode.Invoke(ctx, queue.InvokeParams{Function: "hello", Trigger: queue.TriggerHTTP, Request: httpRequest(name)})
		if err != nil {
			t.Fatal(err)
		}
		id := enq.ID
		inv := waitFor(t, apiNode, id)
		if resp, _ := inv.Response(); string(resp.Body) != "Hello, "+name+"!" {
			t.Fatalf("invocation %d = %+v", id, inv)
		}
	}
}

// TestEnqueueIsTransactional: an invocation enqueued in a transaction that
// rolls back leaves no row and runs nothing.
func TestEnqueueIsTransactional(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	client := startClient(t, pool, newExecutor(t))
	if _, _, err := catalogOf(client).PutFunction(ctx, "hello", helloSource, catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT picloud.invoke('hello')"); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatal(err)
	}
	var invocations, jobs int
	if err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM picloud.invocations), (SELECT count(*) FROM picloud.river_job)").Scan(&invocations, &jobs); err != nil {
		t.Fatal(err)
	}
	if invocations != 0 || jobs != 0 {
		t.Errorf("after rollback: %d invocations, %d jobs; want none", invocations, jobs)
	}

	_, err = pool.Exec(ctx, "SELECT picloud.invoke('nope')")
	if err == nil || !strings.Contains(err.Error(), `function "nope" does not exist`) || !strings.Contains(err.Error(), "PC404") {
		t.Errorf("enqueue of an unknown function: %v, want a PC404 error naming it", err)
	}
}

func TestQueuedInvocationOfDeletedFunctionFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	apiNode := startClient(t, pool, nil)
	if _, _, err := catalogOf(apiNode).PutFunction(ctx, "hello", helloSource, catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}
	enq, err := apiNode.Invoke(ctx, queue.InvokeParams{Function: "hello", Trigger: queue.TriggerHTTP, Request: httpRequest("x")})
	if err != nil {
		t.Fatal(err)
	}
	id := enq.ID
	if err := catalogOf(apiNode).DeleteFunction(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	startClient(t, pool, newExecutor(t))
	inv := waitFor(t, apiNode, id)
	if inv.Status != queue.StatusFailed || !strings.Contains(inv.Error, "deleted") {
		t.Errorf("invocation = %s %q, want failed because the function was deleted", inv.Status, inv.Error)
	}
}

// TestNULInResult: jsonb has no \u0000, so a NUL in a return value is stored
// as U+FFFD instead of failing the write (or leaving the row running).
func TestNULInResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := startClient(t, platformtest.Database(t), newExecutor(t))
	if _, _, err := catalogOf(client).PutFunction(ctx, "nul", `function handle(req) return {["k\0"] = "a\0b"} end`, catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}
	enq, err := client.Invoke(ctx, queue.InvokeParams{Function: "nul", Trigger: queue.TriggerAPI, Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, enq.ID)
	stored, err := client.GetInvocation(ctx, enq.ID)
	if err != nil {
		t.Fatal(err)
	}
	var result map[string]string
	if err := json.Unmarshal(stored.Result, &result); err != nil || stored.Status != queue.StatusSucceeded || result["k\uFFFD"] != "a\uFFFDb" {
		t.Errorf("invocation = %s %q %s, want succeeded with U+FFFD for NUL", stored.Status, stored.Error, stored.Result)
	}
}

// TestMigrateAppliesFunctionsOnce: the function files are applied by the
// first Migrate, again when they change, and not by a build whose files the
// database has replaced since (an older node restarting mid-deploy).
func TestMigrateAppliesFunctionsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyDatabase(t)
	if _, err := queue.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// A marker: a function body the files do not hold.
	mark := func() {
		t.Helper()
		if _, err := pool.Exec(ctx, `CREATE OR REPLACE FUNCTION picloud.invoke_many_max() RETURNS integer
			LANGUAGE sql IMMUTABLE AS $$ SELECT 7 $$`); err != nil {
			t.Fatal(err)
		}
	}
	limit := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT picloud.invoke_many_max()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	migrate := func() {
		t.Helper()
		if _, err := queue.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}

	mark()
	migrate()
	if n := limit(); n != 7 {
		t.Errorf("Migrate with unchanged files re-applied them (invoke_many_max = %d)", n)
	}

	// A newer build's files were applied after this build's: leave them.
	exec(`INSERT INTO picloud.schema_functions (digest, applied_at) VALUES ('newer', clock_timestamp() + interval '1 s')`)
	migrate()
	if n := limit(); n != 7 {
		t.Errorf("an older build re-applied its files over newer ones (invoke_many_max = %d)", n)
	}

	// This build's files are new to the database: apply them, triggers too.
	exec(`DELETE FROM picloud.schema_functions`)
	exec(`DROP TRIGGER invocations_updated ON picloud.invocations`)
	migrate()
	if n := limit(); n != 1000000 {
		t.Errorf("changed files were not applied (invoke_many_max = %d)", n)
	}
	var triggers int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = 'invocations_updated'`).Scan(&triggers); err != nil || triggers != 1 {
		t.Errorf("the dropped trigger was not re-created: %d, %v", triggers, err)
	}
}

// TestMigrateRefusesAForeignHistory: a database whose migration 1 is not
// this build's (one made before the migrations were folded into a
// baseline) is refused with a message saying what to do.
func TestMigrateRefusesAForeignHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyDatabase(t)
	if _, err := queue.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE picloud.schema_migrations SET name = 'init' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	_, err := queue.Migrate(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), `migration 0001 is "init"`) || !strings.Contains(err.Error(), "recreate it") {
		t.Errorf("Migrate = %v, want a refusal naming the migration and what to do", err)
	}
}
