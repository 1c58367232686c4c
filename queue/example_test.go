package queue_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/queue"
)

// An all-in-one node: the catalog stores a function, and the queue client
// calls it and waits for the result. A node without an Executor only enqueues and waits, while other
// nodes run the work.
func Example() {
	ctx := context.Background()
	// A program would use its own database, say os.Getenv("DATABASE_URL");
	// the example runs on a fresh one of the tests' server.
	databaseURL, drop, err := dbtest.ExampleDatabase()
	if err != nil {
		log.Fatal(err)
	}
	defer drop()
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if _, err := queue.Migrate(ctx, pool); err != nil {
		log.Fatal(err)
	}

	sandboxes := executor.NewPool(executor.Config{Size: 2})
	defer sandboxes.Close()
	client, err := queue.NewClient(pool, queue.Config{Executor: sandboxes, Concurrency: 2})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer client.Stop(ctx)

	if _, _, err := catalog.New(pool).PutFunction(ctx, "hello", `function handle(req) return "Hello, " .. req.query.name .. "!" end`, catalog.FunctionOptions{}); err != nil {
		log.Fatal(err)
	}
	inv, err := client.Call(ctx, queue.InvokeParams{
		Function: "hello",
		Trigger:  queue.TriggerHTTP,
		Request:  &queue.HTTPRequest{Method: "GET", Path: "/", Query: map[string]string{"name": "Ada"}},
	}, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	resp, _ := inv.Response()
	fmt.Println(inv.Status, resp.Status, string(resp.Body))
	// Output: succeeded 200 Hello, Ada!
}
