package queue

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/picloud/picloud/executor"
)

// TestStoredResponse pins the result column's shape for HTTP-triggered
// invocations: rows of earlier releases, picloud.result and the REST API
// read it as it is.
func TestStoredResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp executor.Response
		want string
	}{
		{"text", executor.Response{Status: 200, Headers: map[string]string{"Content-Type": "text/html"}, Body: []byte("<b>hé</b>")},
			`{"status":200,"headers":{"Content-Type":"text/html"},"body":"\u003cb\u003ehé\u003c/b\u003e"}`},
		{"binary", executor.Response{Status: 201, Headers: map[string]string{}, Body: []byte{0xff, 0x00}},
			`{"status":201,"headers":{},"body_base64":"/wA="}`},
		{"NUL is valid UTF-8 that jsonb refuses", executor.Response{Status: 200, Body: []byte("a\x00b")},
			`{"status":200,"headers":null,"body_base64":"YQBi"}`},
		{"no body", executor.Response{Status: 204, Headers: map[string]string{}},
			`{"status":204,"headers":{},"body":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeResponse(tc.resp)
			if err != nil || string(got) != tc.want {
				t.Fatalf("encodeResponse = %s, %v; want %s", got, err, tc.want)
			}
			back, err := decodeResponse(got)
			if err != nil || back.Status != tc.resp.Status || !bytes.Equal(back.Body, tc.resp.Body) || len(back.Headers) != len(tc.resp.Headers) {
				t.Errorf("decodeResponse = %+v, %v; want %+v", back, err, tc.resp)
			}
		})
	}
}

func TestRecordOutcome(t *testing.T) {
	for _, tc := range []struct {
		res     executor.Result
		trigger Trigger
		status  Status
		result  string
	}{
		{executor.Result{Status: executor.Succeeded, Value: json.RawMessage(`{"ok":true}`)}, TriggerAPI, StatusSucceeded, `{"ok":true}`},
		{executor.Result{Status: executor.Succeeded, Value: json.RawMessage(`"hi"`), Response: executor.Response{Status: 200, Headers: map[string]string{}, Body: []byte("hi")}},
			TriggerHTTP, StatusSucceeded, `{"status":200,"headers":{},"body":"hi"}`},
		{executor.Result{Status: executor.Failed, Error: "boom"}, TriggerHTTP, StatusFailed, ``},
		{executor.Result{Status: executor.TimedOut}, TriggerAPI, StatusTimedOut, ``},
		{executor.Result{Status: executor.Cancelled}, TriggerAPI, StatusCancelled, ``},
		{executor.Result{Status: "exploded"}, TriggerAPI, StatusFailed, ``},
	} {
		inv := Invocation{Trigger: tc.trigger}
		logs, err := inv.recordOutcome(tc.res)
		if err != nil {
			t.Fatal(err)
		}
		// The column's partial index takes "no lines" to be [].
		if string(logs) != "[]" || inv.Logs == nil {
			t.Errorf("%s: logs %s (%v), want []", tc.res.Status, logs, inv.Logs)
		}
		if inv.Status != tc.status || string(inv.Result) != tc.result || inv.Error != tc.res.Error {
			t.Errorf("%s: status %s, result %s, error %q; want %s, %s, %q", tc.res.Status, inv.Status, inv.Result, inv.Error, tc.status, tc.result, tc.res.Error)
		}
		if tc.trigger == TriggerHTTP && tc.status == StatusSucceeded {
			if resp, err := inv.Response(); err != nil || string(resp.Body) != "hi" {
				t.Errorf("Response() = %+v, %v", resp, err)
			}
		}
	}

	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	inv := Invocation{Trigger: TriggerAPI}
	logs, err := inv.recordOutcome(executor.Result{Status: executor.Succeeded, Value: json.RawMessage(`null`), Logs: []executor.LogEntry{
		{Time: at, Level: "info", Message: "plain"},
		{Time: at, Level: "warn", Message: "with fields", Fields: json.RawMessage(`{"k":1}`)},
	}})
	want := `[{"time":"2026-12-07T14:00:00Z","level":"info","message":"plain"},{"time":"2026-12-07T14:00:00Z","level":"warn","message":"with fields","fields":{"k":1}}]`
	if err != nil || string(logs) != want {
		t.Errorf("logs = %s, %v; want %s", logs, err, want)
	}
}

// TestLiveLogEvent: a live line travels between nodes as an Event on
// picloud_events; a node of the previous release wrote the line's fields in
// another order, which must still decode.
func TestLiveLogEvent(t *testing.T) {
	wire, err := json.Marshal(executor.LiveLog{Index: 3, LogEntry: executor.LogEntry{Level: "info", Message: "hi", Fields: json.RawMessage(`{"k":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	line, err := decodeLiveLog(wire, 2)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal([]Event{{ID: 7, Function: "f", Log: &line}})
	if err != nil {
		t.Fatal(err)
	}
	previous := `[{"id":7,"function":"f","status":"","trigger":"","attempt":0,"max_attempts":0,"created_at":"0001-01-01T00:00:00Z","started_at":null,"finished_at":null,` +
		`"log":{"index":3,"attempt":2,"time":"0001-01-01T00:00:00Z","level":"info","message":"hi","fields":{"k":1}}}]`
	for _, p := range []string{string(payload), previous} {
		events, err := decodeEvents(p)
		if err != nil || len(events) != 1 || events[0].Log == nil {
			t.Fatalf("decodeEvents(%s) = %+v, %v", p, events, err)
		}
		l := events[0].Log
		if l.Index != 3 || l.Attempt != 2 || l.Message != "hi" || string(l.Fields) != `{"k":1}` {
			t.Errorf("decoded %+v from %s", *l, p)
		}
	}
}
