package queue

import (
	"sync"
)

// groupCommit gathers the items that callers submit into batches and hands
// each batch to flush, one batch at a time. A lone item does not wait for
// company: when nothing is in flight, the first item is flushed at once;
// the items that arrive while a flush is in flight go together in the
// next. So a quiet node pays one statement per item, as before, and a busy
// one pays one statement per batch: the batch size follows the load.
//
// flush returns one result per item, in order. It runs on a goroutine of
// the batcher's own, never on a caller's, so a caller that stops waiting
// does not stop the statement that others depend on.
type groupCommit[In, Out any] struct {
	// maxBatch bounds a batch, so that one statement's arrays and locks stay
	// a reasonable size.
	maxBatch int
	flush    func(items []In) []batchResult[Out]

	mu       sync.Mutex
	pending  []batchItem[In, Out]
	flushing bool
}

type batchResult[Out any] struct {
	out Out
	err error
}

type batchItem[In, Out any] struct {
	in   In
	done chan batchResult[Out]
}

func newGroupCommit[In, Out any](maxBatch int, flush func([]In) []batchResult[Out]) *groupCommit[In, Out] {
	return &groupCommit[In, Out]{maxBatch: maxBatch, flush: flush}
}

// do submits in and waits for its result.
func (g *groupCommit[In, Out]) do(in In) (Out, error) {
	done := make(chan batchResult[Out], 1)
	g.mu.Lock()
	g.pending = append(g.pending, batchItem[In, Out]{in: in, done: done})
	if !g.flushing {
		g.flushing = true
		go g.run()
	}
	g.mu.Unlock()
	r := <-done
	return r.out, r.err
}

// run flushes batches until nothing is pending.
func (g *groupCommit[In, Out]) run() {
	for {
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.flushing = false
			g.mu.Unlock()
			return
		}
		n := min(len(g.pending), g.maxBatch)
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		if len(g.pending) == 0 {
			g.pending = nil // let the backing array go once drained
		}
		g.mu.Unlock()

		ins := make([]In, len(batch))
		for i, item := range batch {
			ins[i] = item.in
		}
		results := g.flush(ins)
		for i, item := range batch {
			item.done <- results[i]
		}
	}
}
