package queue

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/picloud/picloud/events"
	"github.com/picloud/picloud/executor"
)

// eventsChannel carries the queued and running steps of invocations while
// someone watches (picloud.event_watch); final steps come on
// finishedChannel, always.
const eventsChannel = "picloud_events"

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
type Subscription = events.Subscription[Event]

// SubscribeEvents streams invocation steps matching filter until ctx ends.
// The first subscription on a node makes every writer announce queued and
// running steps (one UPDATE now and one each 30 seconds while anyone
// watches); nothing is announced for these steps, and nothing is written,
// while nobody watches.
func (c *Client) SubscribeEvents(ctx context.Context, filter EventFilter) (*Subscription, error) {
	return c.events.Subscribe(ctx, filter.matches)
}

// newEventHub returns the hub of this client's event streams.
func (c *Client) newEventHub() *events.Hub[Event] {
	return events.NewHub(c.queries.WatchEvents, decodeEvents, c.logger)
}

// decodeEvents reads an announcement on eventsChannel or finishedChannel.
func decodeEvents(payload string) ([]Event, error) {
	var all []Event
	if err := decodeAnnouncement(payload, &all); err != nil {
		return nil, err
	}
	// A payload from before migration 0009 carries too little.
	return slices.DeleteFunc(all, func(e Event) bool { return e.ID == 0 }), nil
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

// LiveLog is a log line an invocation wrote while it ran: the executor's
// line, with the attempt that wrote it.
type LiveLog struct {
	executor.LiveLog
	Attempt int `json:"attempt"`
}

// streamLog announces a line the script just logged to the event streams.
// The worker asks for live lines only while someone watches.
func (h *invocationHost) streamLog(ctx context.Context, args json.RawMessage) error {
	line, err := decodeLiveLog(args, h.attempt)
	if err != nil {
		return err
	}
	line.Message = h.secrets.Text(line.Message)
	line.Fields = h.secrets.JSON(line.Fields)
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
