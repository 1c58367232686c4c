package queue

import (
	"testing"
	"time"
)

func TestFinishHub(t *testing.T) {
	t.Parallel()
	t.Run("finish after register wakes the waiter with the row", func(t *testing.T) {
		h := newFinishHub()
		ch, done := h.register(1)
		if done {
			t.Fatal("unfinished id reported finished")
		}
		inv := &Invocation{ID: 1}
		h.finish(1, inv)
		if got := <-ch; got != inv {
			t.Errorf("waiter got %v, want the local row", got)
		}
	})
	t.Run("finish before register is remembered", func(t *testing.T) {
		h := newFinishHub()
		h.finish(2, nil)
		if _, done := h.register(2); !done {
			t.Error("a late registration missed the finish")
		}
	})
	t.Run("every waiter of an id is woken", func(t *testing.T) {
		h := newFinishHub()
		a, _ := h.register(3)
		b, _ := h.register(3)
		h.finish(3, nil)
		for _, ch := range []chan *Invocation{a, b} {
			select {
			case <-ch:
			case <-time.After(time.Second):
				t.Fatal("a waiter was not woken")
			}
		}
	})
	t.Run("unregister forgets the waiter", func(t *testing.T) {
		h := newFinishHub()
		ch, _ := h.register(4)
		h.unregister(4, ch)
		h.finish(4, nil)
		if len(ch) != 0 || len(h.waiters) != 0 {
			t.Error("an unregistered waiter was woken or kept")
		}
	})
	t.Run("reconnect wakes everyone to re-read", func(t *testing.T) {
		h := newFinishHub()
		ch, _ := h.register(5)
		h.wakeAll()
		if got := <-ch; got != nil {
			t.Errorf("wakeAll sent %v, want nil (read the row)", got)
		}
	})
	t.Run("memory is bounded", func(t *testing.T) {
		h := newFinishHub()
		for id := int64(1); id <= 3*recentCapacity; id++ {
			h.finish(id, nil)
		}
		if len(h.recentSet) != recentCapacity {
			t.Errorf("remembers %d ids, want %d", len(h.recentSet), recentCapacity)
		}
		if _, done := h.register(3 * recentCapacity); !done {
			t.Error("forgot the newest id")
		}
	})
}
