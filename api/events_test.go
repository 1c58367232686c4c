package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/picloud/picloud/api"
	"github.com/picloud/picloud/internal/platformtest"
)

// sseEvent is one event as a client receives it; a comment line is an
// event named ":".
type sseEvent struct {
	name, id, data string
}

// openStream connects a real HTTP client to an event stream and delivers
// what it reads until the test ends.
func openStream(t *testing.T, url string, header ...string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan sseEvent, 100)
	go func() {
		defer close(events)
		defer res.Body.Close()
		scanner := bufio.NewScanner(res.Body)
		var e sseEvent
		for scanner.Scan() {
			line := scanner.Text()
			switch {
			case line == "":
				if e.name != "" {
					events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				events <- sseEvent{name: ":"}
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				e.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return events, res
}

// next returns the next event other than a heartbeat, or fails after a
// few seconds.
func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if e.name != ":" {
				return e
			}
		case <-timeout:
			t.Fatal("no event within 10 s")
		}
	}
}

func decodeEvent(t *testing.T, e sseEvent) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(e.data), &v); err != nil {
		t.Fatalf("event %s data %q: %v", e.name, e.data, err)
	}
	return v
}

// TestEventStream: a client watching all invocations sees each step of an
// HTTP call as it happens, and a reconnect with Last-Event-ID gets what
// changed since.
func TestEventStream(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	admin := []string{"Authorization", "Bearer " + p.AdminKey}
	invokeKey := p.Key(t, "invoke")
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/hello", map[string]string{"source": `function handle(req) return "hi" end`}, admin...); res.status != http.StatusCreated {
		t.Fatalf("deploy: %d %s", res.status, res.body)
	}

	// EventSource cannot send headers: the key may come as access_token.
	events, res := openStream(t, p.URL+"/v1/events?function=hello&access_token="+invokeKey)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	call := do(t, http.MethodGet, p.URL+"/fn/hello", nil)
	id := call.header.Get("X-Invocation-Id")
	var statuses []string
	var firstID string
	for len(statuses) == 0 || statuses[len(statuses)-1] != "succeeded" {
		e := next(t, events)
		if e.name != "invocation" {
			t.Fatalf("event %q, want invocation", e.name)
		}
		v := decodeEvent(t, e)
		if fmt.Sprint(v["id"]) != id || v["function"] != "hello" || v["trigger"] != "http" {
			t.Fatalf("event for %v, want invocation %s: %s", v["id"], id, e.data)
		}
		if firstID == "" {
			firstID = e.id
		}
		statuses = append(statuses, v["status"].(string))
	}
	// A synchronous call on a node with a free slot starts as it is
	// written: it never waits in the queue.
	if strings.Join(statuses, ",") != "running,succeeded" {
		t.Errorf("steps %v, want running, succeeded", statuses)
	}

	// Resume after the first event: the invocation's current state.
	resumed, _ := openStream(t, p.URL+"/v1/functions/hello/events", "Authorization", "Bearer "+invokeKey, "Last-Event-ID", firstID)
	if v := decodeEvent(t, next(t, resumed)); fmt.Sprint(v["id"]) != id || v["status"] != "succeeded" {
		t.Errorf("replayed %v, want invocation %s succeeded", v, id)
	}

	// The query key is for event streams only, and a stream needs a key.
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations?access_token="+invokeKey, nil), http.StatusUnauthorized, "needs an API key")
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/events?access_token=pic_nope", nil), http.StatusUnauthorized, "unknown or revoked")
}

// TestInvocationEventStream: one invocation's stream shows its state at
// once, then its steps, its log lines and its end; reconnecting after the
// end answers 204 so that EventSource stops.
func TestInvocationEventStream(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{})
	deploy(t, p.URL, "hello", "hello.lua")
	runAt := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	queued := do(t, http.MethodPost, p.URL+"/v1/functions/hello/invocations", map[string]any{"async": true, "run_at": runAt, "payload": map[string]string{"name": "Ada"}})
	if queued.status != http.StatusAccepted {
		t.Fatalf("invoke: %d %s", queued.status, queued.body)
	}
	id := fmt.Sprint(queued.json(t)["id"])

	events, _ := openStream(t, p.URL+"/v1/invocations/"+id+"/events")
	var got []string
	var last sseEvent
	for e := range events {
		if e.name == ":" {
			continue
		}
		v := decodeEvent(t, e)
		switch e.name {
		case "invocation":
			got = append(got, v["status"].(string))
		case "log":
			got = append(got, "log "+fmt.Sprint(v["message"]))
		}
		last = e
	}
	if want := "queued,running,log greeting Ada,succeeded"; strings.Join(got, ",") != want {
		t.Errorf("stream %v, want %s", got, want)
	}
	res := do(t, http.MethodGet, p.URL+"/v1/invocations/"+id+"/events", nil, "Last-Event-ID", last.id)
	if res.status != http.StatusNoContent {
		t.Errorf("reconnect after the end: %d, want 204", res.status)
	}
	assertProblem(t, do(t, http.MethodGet, p.URL+"/v1/invocations/999999/events", nil), http.StatusNotFound, "999999")
}

// TestEventHeartbeat: an idle stream gets comment lines.
func TestEventHeartbeat(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{})
	config := p.Services()
	config.DisableAuth, config.EventHeartbeat = true, 20*time.Millisecond
	srv := httptest.NewServer(api.New(config))
	t.Cleanup(srv.Close)
	events, _ := openStream(t, srv.URL+"/v1/events")
	for range 2 {
		select {
		case e := <-events:
			if e.name != ":" {
				t.Fatalf("event %q on an idle stream", e.name)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
}

// TestLiveLogLines: a watched invocation's log lines reach its stream while
// it still runs, each once, and secrets are redacted from them as from the
// stored lines.
func TestLiveLogLines(t *testing.T) {
	t.Parallel()
	for _, processes := range []bool{false, true} {
		t.Run(map[bool]string{false: "in-process", true: "sandbox processes"}[processes], func(t *testing.T) {
			testLiveLogLines(t, platformtest.Start(t, platformtest.Options{Processes: processes}))
		})
	}
}

func testLiveLogLines(t *testing.T, p *platformtest.Platform) {
	source := `function handle(req)
  log.info("one " .. secrets.TOKEN, {[secrets.TOKEN] = secrets.TOKEN})
  local x = 0
  for i = 1, 4000000 do x = x + i end
  log.info("two")
  return x
end`
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/slow", map[string]any{"source": source, "timeout_ms": 60000, "max_instructions": 100000000}); res.status != http.StatusCreated {
		t.Fatalf("deploy: %d %s", res.status, res.body)
	}
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/slow/secrets/TOKEN", map[string]string{"value": "hunter22"}); res.status >= 300 {
		t.Fatalf("secret: %d %s", res.status, res.body)
	}
	runAt := time.Now().Add(500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	queued := do(t, http.MethodPost, p.URL+"/v1/functions/slow/invocations", map[string]any{"async": true, "run_at": runAt})
	id := fmt.Sprint(queued.json(t)["id"])
	events, _ := openStream(t, p.URL+"/v1/invocations/"+id+"/events")

	var got []string
	for e := range events {
		if e.name == ":" {
			continue
		}
		v := decodeEvent(t, e)
		if e.name == "invocation" {
			got = append(got, v["status"].(string))
			continue
		}
		got = append(got, fmt.Sprint(v["message"]))
		if strings.Contains(e.data, "hunter22") {
			t.Errorf("a live line holds the secret: %s", e.data)
		}
		if v["message"] == "one [secret TOKEN]" {
			if fields := fmt.Sprint(v["fields"]); fields != "map[[secret TOKEN]:[secret TOKEN]]" {
				t.Errorf("live fields %s, want the secret masked", fields)
			}
			// Live: the invocation has not finished when its first line
			// arrives.
			if status := do(t, http.MethodGet, p.URL+"/v1/invocations/"+id, nil).json(t)["status"]; status != "running" {
				t.Errorf("first line arrived with the invocation %v, want running", status)
			}
		}
	}
	if want := "queued,running,one [secret TOKEN],two,succeeded"; strings.Join(got, ",") != want {
		t.Errorf("stream %v, want %s", got, want)
	}
}
