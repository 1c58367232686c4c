package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// eventsChannel carries the queued and running steps of invocations while
// someone watches (picloud.event_watch); final steps come on
// finishedChannel, always.
const eventsChannel = "picloud_events"

// watchLease is how far ahead a node with subscribers keeps
// picloud.event_watch; it renews at half of it, so the writers' check never
// lapses while anyone watches, and lapses within a lease after the last
// subscriber leaves.
const watchLease = time.Minute

// subscriberBuffer is how many events a slow subscriber may fall behind
// before it is told it lost some.
const subscriberBuffer = 256

// Event is a step of an invocation: its state right after the step.
type Event struct {
	ID          int64      `json:"id"`
	Function    string     `json:"function"`
	Status      Status     `json:"status"`
	Trigger     Trigger    `json:"trigger"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	// Log, when set, makes this event a line the invocation logged while it
	// ran rather than a step; the other fields but ID and Function are
	// then empty.
	Log *LiveLog `json:"log,omitempty"`
}

// At is when the step happened.
func (e Event) At() time.Time {
	at := e.CreatedAt
	for _, t := range []*time.Time{e.StartedAt, e.FinishedAt} {
		if t != nil && t.After(at) {
			at = *t
		}
	}
	return at
}

// EventFilter selects the events a subscription receives; the zero value
// selects all.
type EventFilter struct {
	Function   string
	Invocation int64
}

func (f EventFilter) matches(e Event) bool {
	return (f.Function == "" || f.Function == e.Function) && (f.Invocation == 0 || f.Invocation == e.ID)
}

// Subscription receives events until its context ends.
type Subscription struct {
	// C delivers the events in the order the database announced them.
	C <-chan Event
	// Lost is closed when the subscriber fell so far behind that events
	// were dropped; it should reread what it shows.
	Lost <-chan struct{}
}

type subscriber struct {
	filter   EventFilter
	ch       chan Event
	lost     chan struct{}
	lostOnce sync.Once
}

// eventHub fans announcements out to subscribers and keeps the database's
// writers announcing while there are any.
type eventHub struct {
	mu          sync.Mutex
	subscribers map[*subscriber]struct{}
	stopWatch   context.CancelFunc
}

// SubscribeEvents streams invocation steps matching filter until ctx ends.
// The first subscription on a node makes every writer announce queued and
// running steps (one UPDATE now and one each 30 seconds while anyone
// watches); nothing is announced for these steps, and nothing is written,
// while nobody watches.
func (c *Client) SubscribeEvents(ctx context.Context, filter EventFilter) (*Subscription, error) {
	s := &subscriber{filter: filter, ch: make(chan Event, subscriberBuffer), lost: make(chan struct{})}
	h := &c.events
	h.mu.Lock()
	if h.subscribers == nil {
		h.subscribers = make(map[*subscriber]struct{})
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
		// that a step made after SubscribeEvents returns is announced.
		if err := c.queries.WatchEvents(ctx, time.Now().Add(watchLease)); err != nil {
			c.unsubscribe(s)
			return nil, err
		}
		go c.renewWatch(watchCtx)
	}
	context.AfterFunc(ctx, func() { c.unsubscribe(s) })
	return &Subscription{C: s.ch, Lost: s.lost}, nil
}

func (c *Client) unsubscribe(s *subscriber) {
	h := &c.events
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subscribers, s)
	if len(h.subscribers) == 0 && h.stopWatch != nil {
		h.stopWatch()
		h.stopWatch = nil
	}
}

func (c *Client) renewWatch(ctx context.Context) {
	tick := time.NewTicker(watchLease / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := c.queries.WatchEvents(ctx, time.Now().Add(watchLease)); err != nil && ctx.Err() == nil {
				c.logger.WarnContext(ctx, "renew the event watch", "error", err)
			}
		}
	}
}

// publish hands an announcement to the matching subscribers. A full buffer
// drops the event for that subscriber and tells it so, rather than holding
// up the listener that every waiter of this node depends on.
func (h *eventHub) publish(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subscribers) == 0 {
		return
	}
	var events []Event
	if err := decodeAnnouncement(payload, &events); err != nil {
		return
	}
	for _, e := range events {
		if e.ID == 0 {
			continue // a payload from before migration 0009 carries too little
		}
		for s := range h.subscribers {
			if !s.filter.matches(e) {
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

// eventsHandler receives picloud_events.
type eventsHandler struct{ c *Client }

func (h eventsHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.c.events.publish(n.Payload)
	return nil
}

// ChangedSince returns the current state of the invocations matching filter
// whose latest step happened after since, oldest step first, at most 1,000:
// what a resumed event stream missed.
func (c *Client) ChangedSince(ctx context.Context, filter EventFilter, since time.Time) ([]Event, error) {
	var function *string
	var id *int64
	if filter.Function != "" {
		function = &filter.Function
	}
	if filter.Invocation != 0 {
		id = &filter.Invocation
	}
	rows, err := c.queries.ChangedInvocations(ctx, since, function, id)
	if err != nil {
		return nil, err
	}
	events := make([]Event, len(rows))
	for i, r := range rows {
		events[i] = Event{
			ID: r.ID, Function: r.Function, Status: Status(r.Status), Trigger: Trigger(r.Trigger),
			Attempt: int(r.Attempt), MaxAttempts: int(r.MaxAttempts),
			CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		}
	}
	return events, nil
}

// maxLiveLogMessage keeps a live log line's notification under PostgreSQL's
// 8000-byte payload limit; the stored line is whole.
const maxLiveLogMessage = 6000

// LiveLog is a log line an invocation wrote while it ran.
type LiveLog struct {
	Index   int `json:"index"` // position in the attempt's logs
	Attempt int `json:"attempt"`
	LogEntry
}

// streamLog announces a line the script just logged to the event streams.
// The worker asks for live lines only while someone watches.
func (h *invocationHost) streamLog(ctx context.Context, args json.RawMessage) error {
	var line LiveLog
	if err := json.Unmarshal(args, &line); err != nil {
		return fmt.Errorf("decode live log line: %w", err)
	}
	line.Attempt = h.attempt
	line.Message = h.secrets.text(line.Message)
	line.Fields = h.secrets.json(line.Fields)
	if len(line.Message) > maxLiveLogMessage {
		line.Message = strings.ToValidUTF8(line.Message[:maxLiveLogMessage], "") + "…"
	}
	if len(line.Fields) > maxLiveLogMessage {
		line.Fields = nil
	}
	payload, err := json.Marshal(Event{ID: h.invocation, Function: h.function, Log: &line})
	if err != nil {
		return err
	}
	return h.c.queries.NotifyEvent(ctx, string(payload))
}
