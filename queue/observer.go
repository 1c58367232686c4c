package queue

import (
	"time"
)

// Observer hears what a Client does, for metrics. The methods run on the
// invocation path and must return quickly; they take plain strings so that
// an implementation need not import this package.
type Observer interface {
	// AttemptStarted is called when this node starts an attempt that waited
	// queued for the given time, from its creation or its due time (run_at,
	// or a retry's) to its start.
	AttemptStarted(function string, queued time.Duration)
	// AttemptRan is called when the executor returns from an attempt. limit
	// names the sandbox limit that stopped it ("timeout", "memory",
	// "instructions"), or is empty.
	AttemptRan(function string, run time.Duration, limit string)
	// InvocationFinished is called when this node wrote an invocation's
	// final status (succeeded, failed, timed_out), or learnt that the
	// attempt it ran was cancelled (cancelled).
	InvocationFinished(function, trigger, status string)
	// ListenerReconnected is called each time the node's LISTEN connection
	// is re-established after the first.
	ListenerReconnected()
}

type noObserver struct{}

func (noObserver) AttemptStarted(string, time.Duration)      {}
func (noObserver) AttemptRan(string, time.Duration, string)  {}
func (noObserver) InvocationFinished(string, string, string) {}
func (noObserver) ListenerReconnected()                      {}
