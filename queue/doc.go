// Package queue is the invocation lifecycle: it enqueues invocations, runs
// them through an Executor, and tells waiting callers when they finish
// (Call invokes and waits in one). What is deployed (functions, versions,
// env, secrets, schedules) is package catalog's; queue reads a function's
// source and options from the row its start statement returns, and fires
// the catalog's schedules (cron.go).
//
// # The life of an invocation
//
// An invocation row (picloud.invocations) moves through these states:
//
//	queued ──start──► running ──finish──► succeeded | failed | timed_out | cancelled
//	  ▲  │                │
//	  │  └─ parked        ├─ retry: an attempt failed and attempts remain → queued, due after a backoff
//	  │     (waits for a  ├─ hand back: it waited too long on its node for a sandbox → queued, attempt not counted
//	  │      concurrency  └─ rescue: its node stopped reporting past start + timeout + grace → queued, or failed
//	  │      slot)
//	  └────────────────── cancel (from queued or running) ──► cancelled
//
// Each phase has a Go file and SQL functions of its own (the SQL lives in
// sql/functions/, see docs/architecture.md, "Where the SQL lives").
//
// Enqueue (enqueue.go: Invoke, InvokeMany, Call; SQL picloud.invoke, a cron tick,
// a script's picloud.invoke at its parent's finish) writes the row queued
// and the River job that carries it, and sends River's insert NOTIFY in the same
// transaction, so a worker is woken exactly when the row becomes visible.
// A synchronous call on a node with a free run slot is written already
// running instead and runs there (runhere.go).
//
// Start, or claim (start.go): River's producer fetches up to
// Config.InFlight jobs and hands each to Work; the invocations of the jobs that arrive together are
// started by one statement (picloud.start_invocations), which returns what
// their runs need. A function with max_concurrency takes a slot under its
// row's lock, or parks the invocation until a slot frees.
//
// Run (worker.go): an attempt waits for one of the node's run slots, runs
// in the Executor, and frees the slot as the Executor returns. What the run
// decided becomes the row's values in outcome.go, the one place where the
// executor's values become the queue's.
//
// Finish (finish.go): the outcomes that end together are recorded by one
// statement (picloud.finish_invocations) with the kv writes and child
// invocations of the successful ones, and announced, per statement, on
// picloud_finished as a JSON array. Wait hears that announcement through a
// dedicated LISTEN connection (pgxlisten, finished.go), or, when the attempt
// ran in the same process, straight from it with the finished row in hand
// (wait.go).
//
// Rescue: every statement that makes an attempt running records it in
// picloud.running_attempts, and whatever ends the attempt deletes the row
// (the statement trigger invocations_updated). picloud.rescue_overdue,
// run by the promote timer, takes back the attempts past their start +
// timeout + grace, so an invocation reaches a final status even when its
// worker died or failed after the start, whatever became of its River job.
//
// Start and finish are group commits (batch.go): the first item goes at
// once, and the items that arrive while a statement is in flight go
// together in the next, so a lone invocation waits for nobody and a burst
// costs a few statements.
//
// # How River is bent
//
// River is the transport, not the record: the record is the invocation row.
// Only river.go and river_wake.go import River; the rest of the package
// reaches it through their unexported riverClient, riverWorker and
// migration functions (a depguard rule in .golangci.yml fails lint
// otherwise). Its defaults are changed where they would cost latency or
// idle load, and each change says why where it is made (river.go:
// newRiverClient, riverWorker.Work): FetchCooldown is 1 ms instead of 100
// ms, the fetch poll is a ten-minute safety net because work arrives by
// NOTIFY, no client leads (PiCloud's own timers promote, rescue and sweep),
// starts and outcomes are written by the worker itself rather than by
// River's completer, which batches completions every 250 ms, and River's
// listener is fed from the node's own LISTEN connection (river_wake.go)
// rather than holding one of its own, so that a reconnect wakes River's
// producers at once.
package queue
