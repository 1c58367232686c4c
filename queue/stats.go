package queue

import (
	"context"
	"fmt"
	"time"
)

// StatusCounts counts finished invocations by final status.
type StatusCounts struct {
	Succeeded, Failed, TimedOut, Cancelled int
}

func (s *StatusCounts) add(status string, n int) {
	switch Status(status) {
	case StatusSucceeded:
		s.Succeeded += n
	case StatusFailed:
		s.Failed += n
	case StatusTimedOut:
		s.TimedOut += n
	case StatusCancelled:
		s.Cancelled += n
	}
}

// Total is the sum over every status.
func (s StatusCounts) Total() int { return s.Succeeded + s.Failed + s.TimedOut + s.Cancelled }

// StatsBucket is the invocations that finished in [Start, Start+bucket).
type StatsBucket struct {
	Start time.Time
	StatusCounts
}

// FunctionStats is one function's share of a window, and its newest
// invocation of all time.
type FunctionStats struct {
	Function string
	StatusCounts
	// LastID is zero when the function was never invoked.
	LastID        int64
	LastStatus    Status
	LastCreatedAt time.Time
}

// Stats summarises the invocations that finished in a window.
type Stats struct {
	Since, Until time.Time
	Bucket       time.Duration
	Buckets      []StatsBucket
	Totals       StatusCounts
	// Functions lists every existing function by name, including those
	// with nothing in the window.
	Functions []FunctionStats
}

// Stats counts the invocations that finished in the last window by bucket
// (at least a minute) and by function. The buckets are aligned to
// multiples of the bucket width, so successive calls line up; the last one
// holds now and is still filling.
func (c *Client) Stats(ctx context.Context, window, bucket time.Duration) (Stats, error) {
	bucket = max(bucket.Truncate(time.Minute), time.Minute)
	n := max(int((window+bucket-1)/bucket), 1)
	now := time.Now()
	until := now.Truncate(bucket).Add(bucket)
	st := Stats{Since: until.Add(-time.Duration(n) * bucket), Until: until, Bucket: bucket, Buckets: make([]StatsBucket, n)}
	for i := range st.Buckets {
		st.Buckets[i].Start = st.Since.Add(time.Duration(i) * bucket)
	}
	perBucket, err := c.queries.FinishedPerBucket(ctx, st.Since, int32(bucket/time.Second))
	if err != nil {
		return Stats{}, fmt.Errorf("count invocations per bucket: %w", err)
	}
	for _, r := range perBucket {
		if r.Bucket >= 0 && int(r.Bucket) < n {
			st.Buckets[r.Bucket].add(r.Status, int(r.N))
			st.Totals.add(r.Status, int(r.N))
		}
	}
	last, err := c.queries.LastInvocationPerFunction(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("read last invocations: %w", err)
	}
	lastOf := make(map[string]int, len(last))
	for i, r := range last {
		lastOf[r.Name] = i
	}
	fns, err := c.queries.ListFunctions(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("list functions: %w", err)
	}
	index := make(map[string]int, len(fns))
	st.Functions = make([]FunctionStats, len(fns))
	for i, f := range fns {
		index[f.Name] = i
		st.Functions[i].Function = f.Name
		if j, ok := lastOf[f.Name]; ok {
			st.Functions[i].LastID = last[j].LastID
			st.Functions[i].LastStatus = Status(last[j].LastStatus)
			st.Functions[i].LastCreatedAt = last[j].LastCreatedAt
		}
	}
	perFunction, err := c.queries.FinishedPerFunction(ctx, st.Since)
	if err != nil {
		return Stats{}, fmt.Errorf("count invocations per function: %w", err)
	}
	for _, r := range perFunction {
		if i, ok := index[r.Function]; ok {
			st.Functions[i].add(r.Status, int(r.N))
		}
	}
	return st, nil
}

// Running is the number of invocations running on this node.
func (c *Client) Running() int {
	c.running.mu.Lock()
	defer c.running.mu.Unlock()
	return len(c.running.byID)
}

// Depth counts the queued invocations of the whole database by what they
// wait for.
type Depth struct {
	// Due waits for a worker: its attempt is due now.
	Due int64
	// Scheduled waits for its time: a run_at or a retry's backoff.
	Scheduled int64
	// Parked waits for its function's max_concurrency.
	Parked int64
}

// QueueDepth counts the queued invocations. It is one query; call it when
// asked (a metrics scrape), never on a timer.
func (c *Client) QueueDepth(ctx context.Context) (Depth, error) {
	row, err := c.queries.QueueDepth(ctx)
	if err != nil {
		return Depth{}, fmt.Errorf("count queued invocations: %w", err)
	}
	return Depth{Due: row.Due, Scheduled: row.Scheduled, Parked: row.Parked}, nil
}
