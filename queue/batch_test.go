package queue

import (
	"sync"
	"testing"
	"time"
)

// TestGroupCommit: a lone item is flushed at once, items submitted while a
// flush is in flight go together in the next, within maxBatch, and each
// caller gets its own result.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	g := newGroupCommit(4, func(items []int) []batchResult[int] {
		mu.Lock()
		batches = append(batches, append([]int(nil), items...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release // hold the first flush while the others pile up
		}
		out := make([]batchResult[int], len(items))
		for i, v := range items {
			out[i].out = v * 10
		}
		return out
	})

	results := make(chan [2]int, 10)
	submit := func(v int) {
		got, err := g.do(v)
		if err != nil {
			t.Error(err)
		}
		results <- [2]int{v, got}
	}
	go submit(0)
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })
	for v := 1; v <= 6; v++ {
		go submit(v)
	}
	waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.pending) == 6 })
	close(release)
	for range 7 {
		r := <-results
		if r[1] != r[0]*10 {
			t.Errorf("do(%d) = %d, want %d", r[0], r[1], r[0]*10)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	sizes := make([]int, len(batches))
	for i, b := range batches {
		sizes[i] = len(b)
	}
	if len(sizes) != 3 || sizes[0] != 1 || sizes[1] != 4 || sizes[2] != 2 {
		t.Errorf("batch sizes %v, want [1 4 2]: the lone first at once, then the rest by maxBatch", sizes)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
