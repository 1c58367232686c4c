package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// finishedChannel is the NOTIFY channel on which the trigger
// invocations_announce_finished announces every invocation that reached a
// final status.
const finishedChannel = "picloud_finished"

// recentCapacity bounds how many finished ids the hub remembers for callers
// that register a moment after the announcement arrived.
const recentCapacity = 8192

// finishHub routes finish announcements to the callers waiting for them.
//
// A caller learns an invocation's id only when the insert returns, and a fast
// worker can finish the invocation before the caller registers to wait. The
// hub therefore remembers the ids of recently finished invocations, so that a
// late registration still learns of completion without asking the database.
type finishHub struct {
	mu      sync.Mutex
	waiters map[int64][]chan *Invocation
	// recent is a ring of finished ids nobody was waiting for; recentSet
	// indexes it.
	recent    [recentCapacity]int64
	recentPos int
	recentSet map[int64]struct{}
	// ready is closed once the first LISTEN is in place.
	ready     chan struct{}
	readyOnce sync.Once
}

func newFinishHub() *finishHub {
	return &finishHub{
		waiters:   make(map[int64][]chan *Invocation),
		recentSet: make(map[int64]struct{}, recentCapacity),
		ready:     make(chan struct{}),
	}
}

// register returns a channel that receives once when invocation id finishes,
// and whether it is known to have finished already. A nil *Invocation on the
// channel means "finished or possibly finished: read the row".
func (h *finishHub) register(id int64) (ch chan *Invocation, finished bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.recentSet[id]; ok {
		return nil, true
	}
	ch = make(chan *Invocation, 1)
	h.waiters[id] = append(h.waiters[id], ch)
	return ch, false
}

func (h *finishHub) unregister(id int64, ch chan *Invocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.waiters, id)
	} else {
		h.waiters[id] = list
	}
}

// finish announces that invocation id finished. inv, when not nil, is the
// finished row as the local worker wrote it, which spares waiters a read.
func (h *finishHub) finish(id int64, inv *Invocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list, ok := h.waiters[id]
	if !ok {
		h.remember(id)
		return
	}
	delete(h.waiters, id)
	for _, ch := range list {
		ch <- inv
	}
}

func (h *finishHub) remember(id int64) {
	if _, ok := h.recentSet[id]; ok {
		return
	}
	if old := h.recent[h.recentPos]; old != 0 {
		delete(h.recentSet, old)
	}
	h.recent[h.recentPos] = id
	h.recentPos = (h.recentPos + 1) % recentCapacity
	h.recentSet[id] = struct{}{}
}

// wakeAll tells every waiter to read its row. It runs after the listener
// (re)connects: announcements sent while it was disconnected are lost.
func (h *finishHub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, list := range h.waiters {
		for _, ch := range list {
			ch <- nil
		}
		delete(h.waiters, id)
	}
}

type finishedPayload struct {
	ID int64 `json:"id"`
}

// HandleNotification implements pgxlisten.Handler.
func (h *finishHub) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	var finished []finishedPayload
	if err := decodeAnnouncement(n.Payload, &finished); err != nil {
		return fmt.Errorf("decode %s payload %q: %w", finishedChannel, n.Payload, err)
	}
	for _, p := range finished {
		h.finish(p.ID, nil)
	}
	return nil
}

// decodeAnnouncement decodes a notification that carries one event or,
// as picloud.notify_events sends them, a JSON array of events, into the
// slice that into points to.
func decodeAnnouncement[T any](payload string, into *[]T) error {
	if strings.HasPrefix(strings.TrimSpace(payload), "[") {
		return json.Unmarshal([]byte(payload), into)
	}
	var one T
	if err := json.Unmarshal([]byte(payload), &one); err != nil {
		return err
	}
	*into = append((*into)[:0], one)
	return nil
}

// HandleBacklog implements pgxlisten.BacklogHandler; pgxlisten calls it each
// time LISTEN is (re)established.
func (h *finishHub) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.wakeAll()
	h.readyOnce.Do(func() { close(h.ready) })
	return nil
}
