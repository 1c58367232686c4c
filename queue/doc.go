// Package queue is PiCloud's hold on PostgreSQL: it stores functions,
// enqueues invocations, runs them through an Executor, and tells waiting
// callers when they finish.
//
// # The life of an invocation
//
// Invoke calls picloud.enqueue_invocation, which in one statement inserts
// the row in picloud.invocations (status queued), inserts the River job that
// carries it, and sends River's insert NOTIFY. Because NOTIFY is
// transactional, a worker is woken exactly when the row becomes visible.
//
// A worker's River producer fetches the job; Work marks the row running,
// runs the function in the Executor, and writes the outcome (succeeded,
// failed, timed_out or cancelled, with result, error and logs) in one UPDATE.
// A trigger on the table announces every final status on the channel
// picloud_finished. Wait hears that announcement through a dedicated LISTEN
// connection (pgxlisten), or, when the worker runs in the same process,
// straight from the worker with the finished row in hand.
//
// # How River is bent
//
// River is the transport, not the record: the record is the invocation
// row. Its defaults are changed where they would cost latency or idle load,
// and each change says why where it is made (newRiverClient, Work):
// FetchCooldown is 1 ms instead of 100 ms, the fetch poll is a one-minute
// safety net because work arrives by NOTIFY, and outcomes are written by the
// worker itself rather than by River's completer, which batches completions
// every 250 ms.
package queue
