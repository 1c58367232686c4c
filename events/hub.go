// Package events fans the database's announcements of invocation steps
// out to the subscribers of one node, and keeps the writers announcing
// while anyone subscribes.
//
// The hub knows nothing of what an event holds: the caller gives it a
// decoder for a notification's payload and, per subscription, a filter.
// Writers announce queued and running steps only while a lease is held
// (picloud.event_watch); the hub takes it on the first subscription and
// renews it until the last one ends.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// watchLease is how far ahead a node with subscribers keeps
// picloud.event_watch; it renews at half of it, so the writers' check never
// lapses while anyone watches, and lapses within a lease after the last
// subscriber leaves.
const watchLease = time.Minute

// subscriberBuffer is how many events a slow subscriber may fall behind
// before it is told it lost some.
const subscriberBuffer = 256

// Subscription receives events until its context ends.
type Subscription[E any] struct {
	// C delivers the events in the order the database announced them.
	C <-chan E
	// Lost is closed when the subscriber fell so far behind that events
	// were dropped; it should reread what it shows.
	Lost <-chan struct{}
}

type subscriber[E any] struct {
	match    func(E) bool
	ch       chan E
	lost     chan struct{}
	lostOnce sync.Once
}

// Hub fans announcements out to subscribers and keeps the database's
// writers announcing while there are any.
type Hub[E any] struct {
	watch  func(ctx context.Context, until time.Time) error
	decode func(payload string) ([]E, error)
	logger *slog.Logger

	mu          sync.Mutex
	subscribers map[*subscriber[E]]struct{}
	stopWatch   context.CancelFunc
}

// NewHub returns a hub. watch takes or renews the writers' lease until
// the given time; decode turns a notification's payload into the events
// it announces, leaving out those it cannot deliver.
func NewHub[E any](watch func(ctx context.Context, until time.Time) error, decode func(payload string) ([]E, error), logger *slog.Logger) *Hub[E] {
	return &Hub[E]{watch: watch, decode: decode, logger: logger}
}

// Subscribe streams the events match accepts until ctx ends. The first
// subscription on a node takes the writers' lease (one UPDATE now and one
// each 30 seconds while anyone watches); nothing is announced for queued
// and running steps, and nothing is written, while nobody watches.
func (h *Hub[E]) Subscribe(ctx context.Context, match func(E) bool) (*Subscription[E], error) {
	s := &subscriber[E]{match: match, ch: make(chan E, subscriberBuffer), lost: make(chan struct{})}
	h.mu.Lock()
	if h.subscribers == nil {
		h.subscribers = make(map[*subscriber[E]]struct{})
	}
	h.subscribers[s] = struct{}{}
	first := h.stopWatch == nil
	var watchCtx context.Context
	if first {
		watchCtx, h.stopWatch = context.WithCancel(context.WithoutCancel(ctx))
	}
	h.mu.Unlock()
	if first {
		// The first lease is taken before the subscriber is handed out, so
		// that a step made after Subscribe returns is announced.
		if err := h.watch(ctx, time.Now().Add(watchLease)); err != nil {
			h.unsubscribe(s)
			return nil, err
		}
		go h.renewWatch(watchCtx)
	}
	context.AfterFunc(ctx, func() { h.unsubscribe(s) })
	return &Subscription[E]{C: s.ch, Lost: s.lost}, nil
}

func (h *Hub[E]) unsubscribe(s *subscriber[E]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subscribers, s)
	if len(h.subscribers) == 0 && h.stopWatch != nil {
		h.stopWatch()
		h.stopWatch = nil
	}
}

func (h *Hub[E]) renewWatch(ctx context.Context) {
	tick := time.NewTicker(watchLease / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := h.watch(ctx, time.Now().Add(watchLease)); err != nil && ctx.Err() == nil {
				h.logger.WarnContext(ctx, "renew the event watch", "error", err)
			}
		}
	}
}

// Publish hands an announcement to the matching subscribers. A full buffer
// drops the event for that subscriber and tells it so, rather than holding
// up the listener that every waiter of this node depends on. With no
// subscribers the payload is not even decoded.
func (h *Hub[E]) Publish(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subscribers) == 0 {
		return
	}
	events, err := h.decode(payload)
	if err != nil {
		return
	}
	for _, e := range events {
		for s := range h.subscribers {
			if !s.match(e) {
				continue
			}
			select {
			case s.ch <- e:
			default:
				s.lostOnce.Do(func() { close(s.lost) })
			}
		}
	}
}

// HandleNotification publishes a notification's payload, for the node's
// listener.
func (h *Hub[E]) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.Publish(n.Payload)
	return nil
}
