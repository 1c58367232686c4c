package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/picloud/picloud/queue"
)

// DefaultHeartbeat keeps idle event streams alive through proxies that
// close silent connections (nginx's default is 60 s) and lets the server
// notice a client that left.
const DefaultHeartbeat = 15 * time.Second

// EventSource is what the API needs of the live events: *queue.Client.
type EventSource interface {
	SubscribeEvents(ctx context.Context, filter queue.EventFilter) (*queue.Subscription, error)
	ChangedSince(ctx context.Context, filter queue.EventFilter, since time.Time) ([]queue.Event, error)
}

// InvocationEventBody is an invocation right after one of its steps.
type InvocationEventBody struct {
	ID          int64      `json:"id" example:"42"`
	Function    string     `json:"function" example:"hello"`
	Status      string     `json:"status" enum:"queued,running,succeeded,failed,timed_out,cancelled" example:"running"`
	Trigger     string     `json:"trigger" enum:"http,api,sql,schedule,function" example:"http"`
	Attempt     int        `json:"attempt" example:"1"`
	MaxAttempts int        `json:"max_attempts" example:"1"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
}

// LogEventBody is a line an invocation logged.
type LogEventBody struct {
	InvocationID int64 `json:"invocation_id" example:"42"`
	Attempt      int   `json:"attempt" example:"1" doc:"The attempt that logged the line."`
	LogEntryBody
}

// The inputs repeat the stream parameters: huma reads no parameters from
// embedded structs of unexported types.
type allEventsInput struct {
	Function    string `query:"function" pattern:"^[a-z][a-z0-9_-]{0,62}$" example:"hello" doc:"Only this function's invocations."`
	AccessToken string `query:"access_token" doc:"An API key, for clients that cannot send an Authorization header (a browser's EventSource). Prefer the header: URLs end up in logs."`
	LastEventID string `header:"Last-Event-ID" doc:"Resume after this event: the id of the last event received (EventSource sends it when it reconnects)."`
}

type functionEventsInput struct {
	Name        string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name."`
	AccessToken string `query:"access_token" doc:"An API key, for clients that cannot send an Authorization header (a browser's EventSource). Prefer the header: URLs end up in logs."`
	LastEventID string `header:"Last-Event-ID" doc:"Resume after this event: the id of the last event received (EventSource sends it when it reconnects)."`
}

type invocationEventsInput struct {
	ID          int64  `path:"id" minimum:"1" example:"42" doc:"Invocation id."`
	AccessToken string `query:"access_token" doc:"An API key, for clients that cannot send an Authorization header (a browser's EventSource). Prefer the header: URLs end up in logs."`
	LastEventID string `header:"Last-Event-ID" doc:"Resume after this event: the id of the last event received (EventSource sends it when it reconnects)."`
}

func (s *Server) registerEvents() {
	tags := []string{"events"}
	describe := "Server-Sent Events (text/event-stream), driven by the database's notifications, not by polling. " +
		"An `invocation` event carries the invocation's state right after each step (queued, running, and its final status); " +
		"its id is the step's time in microseconds since 1970, and a client that reconnects with Last-Event-ID gets the current state of " +
		"every invocation that changed since (events are snapshots: one may repeat). A `reset` event says the client fell behind and " +
		"should reread the list. A comment line every 15 s keeps the connection alive."
	register(s.api, huma.Operation{
		OperationID: "stream-events",
		Method:      http.MethodGet,
		Path:        "/v1/events",
		Summary:     "Stream every invocation's steps",
		Description: describe,
		Tags:        tags,
		Metadata:    map[string]any{"queryToken": true},
	}, func(ctx context.Context, in *allEventsInput) (*huma.StreamResponse, error) {
		return s.eventStream(queue.EventFilter{Function: in.Function}, in.LastEventID), nil
	})
	register(s.api, huma.Operation{
		OperationID: "stream-function-events",
		Method:      http.MethodGet,
		Path:        "/v1/functions/{name}/events",
		Summary:     "Stream a function's invocation steps",
		Description: describe,
		Tags:        tags,
		Metadata:    map[string]any{"queryToken": true},
	}, func(ctx context.Context, in *functionEventsInput) (*huma.StreamResponse, error) {
		return s.eventStream(queue.EventFilter{Function: in.Name}, in.LastEventID), nil
	})
	register(s.api, huma.Operation{
		OperationID: "stream-invocation-events",
		Method:      http.MethodGet,
		Path:        "/v1/invocations/{id}/events",
		Summary:     "Stream one invocation's steps and logs",
		Description: "Server-Sent Events for one invocation: an `invocation` event with its current state at once, one at each later step, " +
			"and when it has finished, a `log` event per line of its latest attempt followed by the final `invocation` event; then the " +
			"stream ends. Reconnecting after the end (Last-Event-ID at or past the final event) answers 204, which tells EventSource to " +
			"stop. Log lines arrive as the script writes them (a line written before the stream opened comes with the final state).",
		Tags:     tags,
		Errors:   []int{http.StatusNotFound},
		Metadata: map[string]any{"queryToken": true},
	}, s.invocationEvents)
	for _, path := range []string{"/v1/events", "/v1/functions/{name}/events", "/v1/invocations/{id}/events"} {
		s.documentEventStream(s.api.OpenAPI().Paths[path].Get)
	}
}

// documentEventStream replaces the 200 response huma derives from a
// StreamResponse (none) with the event stream's media type and payloads.
func (s *Server) documentEventStream(op *huma.Operation) {
	registry := s.api.OpenAPI().Components.Schemas
	invocation := registry.Schema(reflect.TypeFor[InvocationEventBody](), true, "")
	logLine := registry.Schema(reflect.TypeFor[LogEventBody](), true, "")
	op.Responses["200"] = &huma.Response{
		Description: "An event stream. Each event's data is a JSON object: an InvocationEventBody for `invocation` events, a LogEventBody for `log` events.",
		Content: map[string]*huma.MediaType{
			"text/event-stream": {Schema: &huma.Schema{
				Type:        huma.TypeString,
				Description: "event: invocation|log|reset, id: <microseconds>, data: <JSON>; see " + invocation.Ref + " and " + logLine.Ref + ".",
				Examples:    []any{"event: invocation\nid: 1764290966123456\ndata: {\"id\":42,\"function\":\"hello\",\"status\":\"running\",...}\n\n"},
			}},
		},
	}
	if op.OperationID == "stream-invocation-events" {
		op.Responses["204"] = &huma.Response{Description: "The stream already ended at the given Last-Event-ID: the invocation has finished."}
	}
}

// sseWriter writes events and keeps the connection's write deadline ahead
// of them: the server's WriteTimeout is sized for one answer, not a stream.
type sseWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	heartbeat time.Duration
}

func (s *Server) newSSEWriter(ctx huma.Context) (*sseWriter, context.Context) {
	r, w := humago.Unwrap(ctx)
	return &sseWriter{w: w, rc: http.NewResponseController(w), heartbeat: s.config.EventHeartbeat}, r.Context()
}

func (w *sseWriter) start() error {
	h := w.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream
	w.w.WriteHeader(http.StatusOK)
	return w.write("retry: 3000\n\n")
}

func (w *sseWriter) write(text string) error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(2*w.heartbeat + 10*time.Second))
	if _, err := w.w.Write([]byte(text)); err != nil {
		return err
	}
	return w.rc.Flush()
}

func (w *sseWriter) event(name string, id int64, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return w.write(fmt.Sprintf("event: %s\nid: %d\ndata: %s\n\n", name, id, b))
}

func (w *sseWriter) invocation(e queue.Event) error {
	return w.event("invocation", e.At().UnixMicro(), InvocationEventBody{
		ID: e.ID, Function: e.Function, Status: string(e.Status), Trigger: string(e.Trigger),
		Attempt: e.Attempt, MaxAttempts: e.MaxAttempts, CreatedAt: e.CreatedAt, StartedAt: e.StartedAt, FinishedAt: e.FinishedAt,
	})
}

// lastEventTime reads Last-Event-ID as the microsecond time it was sent as;
// anything else means "from now".
func lastEventTime(id string) (time.Time, bool) {
	micros, err := strconv.ParseInt(id, 10, 64)
	if err != nil || micros <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(micros), true
}

func (s *Server) eventStream(filter queue.EventFilter, lastEventID string) *huma.StreamResponse {
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		w, ctx := s.newSSEWriter(hctx)
		sub, err := s.config.Events.SubscribeEvents(ctx, filter)
		if err != nil {
			s.logger.ErrorContext(ctx, "subscribe to events", "error", err)
			writeProblem(w.w, http.StatusInternalServerError, "could not subscribe to events; the server log has the details", nil)
			return
		}
		if err := w.start(); err != nil {
			return
		}
		if since, ok := lastEventTime(lastEventID); ok {
			missed, err := s.config.Events.ChangedSince(ctx, filter, since)
			if err != nil {
				s.logger.ErrorContext(ctx, "replay events", "error", err)
				return
			}
			for _, e := range missed {
				if w.invocation(e) != nil {
					return
				}
			}
		}
		s.pump(ctx, w, sub, func(e queue.Event) (bool, error) {
			if e.Log != nil {
				return false, nil // lines go to the invocation's own stream
			}
			return false, w.invocation(e)
		})
	}}
}

// pump relays a subscription until the client leaves or handle says the
// stream is over.
func (s *Server) pump(ctx context.Context, w *sseWriter, sub *queue.Subscription, handle func(queue.Event) (done bool, err error)) {
	heartbeat := time.NewTicker(w.heartbeat)
	defer heartbeat.Stop()
	lost := sub.Lost
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if w.write(": ping\n\n") != nil {
				return
			}
		case <-lost:
			lost = nil // once: the subscriber keeps receiving what fits
			if w.event("reset", time.Now().UnixMicro(), map[string]string{"reason": "the client fell behind; reread the list"}) != nil {
				return
			}
		case e := <-sub.C:
			done, err := handle(e)
			if err != nil || done {
				return
			}
		}
	}
}

func (s *Server) invocationEvents(ctx context.Context, in *invocationEventsInput) (*huma.StreamResponse, error) {
	// Subscribe before reading the row, so that no step falls between the
	// read and the subscription. The subscription outlives this function,
	// so it is tied to the request in the stream body instead.
	subCtx, cancel := context.WithCancel(ctx)
	sub, err := s.config.Events.SubscribeEvents(subCtx, queue.EventFilter{Invocation: in.ID})
	if err != nil {
		cancel()
		return nil, s.internal(ctx, err)
	}
	inv, err := s.config.Invocations.GetInvocation(ctx, in.ID)
	if errors.Is(err, queue.ErrInvocationNotFound) {
		cancel()
		return nil, huma.Error404NotFound(fmt.Sprintf("invocation %d does not exist", in.ID))
	}
	if err != nil {
		cancel()
		return nil, s.internal(ctx, err)
	}
	if since, ok := lastEventTime(in.LastEventID); ok && inv.Status.Final() && !eventOf(inv).At().After(since) {
		cancel()
		return &huma.StreamResponse{Body: func(hctx huma.Context) { hctx.SetStatus(http.StatusNoContent) }}, nil
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer cancel()
		w, reqCtx := s.newSSEWriter(hctx)
		stop := context.AfterFunc(reqCtx, cancel)
		defer stop()
		if w.start() != nil {
			return
		}
		// streamed counts the live lines sent of each attempt, so that the
		// final state adds only the lines the stream has not shown.
		streamed := map[int]int{}
		if inv.Status.Final() {
			_ = s.finalEvents(w, inv, 0)
			return
		}
		if w.invocation(eventOf(inv)) != nil {
			return
		}
		s.pump(subCtx, w, sub, func(e queue.Event) (bool, error) {
			switch {
			case e.Log != nil:
				if e.Log.Index != streamed[e.Log.Attempt] {
					return false, nil // a line from before this stream began: the final state has it
				}
				streamed[e.Log.Attempt]++
				return false, w.logLine(e.ID, e.Log.Attempt, LogEntryBody(e.Log.LogEntry))
			case !e.Status.Final():
				return false, w.invocation(e)
			}
			finished, err := s.config.Invocations.GetInvocation(subCtx, e.ID)
			if err != nil {
				return true, err
			}
			return true, s.finalEvents(w, finished, streamed[finished.Attempt])
		})
	}}, nil
}

// finalEvents sends a finished invocation's log lines from the first one
// the stream has not shown, then its final state, which ends the stream.
func (s *Server) finalEvents(w *sseWriter, inv queue.Invocation, shown int) error {
	for _, l := range inv.Logs[min(shown, len(inv.Logs)):] {
		if err := w.logLine(inv.ID, inv.Attempt, LogEntryBody(l)); err != nil {
			return err
		}
	}
	return w.invocation(eventOf(inv))
}

func (w *sseWriter) logLine(id int64, attempt int, l LogEntryBody) error {
	return w.event("log", l.Time.UnixMicro(), LogEventBody{InvocationID: id, Attempt: attempt, LogEntryBody: l})
}

func eventOf(inv queue.Invocation) queue.Event {
	return queue.Event{
		ID: inv.ID, Function: inv.Function, Status: inv.Status, Trigger: inv.Trigger,
		Attempt: inv.Attempt, MaxAttempts: inv.MaxAttempts, CreatedAt: inv.CreatedAt, StartedAt: inv.StartedAt, FinishedAt: inv.FinishedAt,
	}
}
