package queue

// This file is the boundary between a run and its row: every value the
// executor hands back (executor.Result, a live executor.LiveLog) becomes the
// queue's here, and nowhere else. The queue keeps no copies of executor's
// types: an invocation's logs are executor.LogEntry and its HTTP response is
// executor.Response; what this file owns is how they are stored.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/picloud/picloud/executor"
)

// statusOf is the one conversion from a run's outcome (executor.Status:
// succeeded, failed, timed_out, cancelled) to an invocation's status
// (Status, which also has queued and running). They are two concepts that
// share the final values' names, so the conversion is spelled out rather
// than cast.
func statusOf(s executor.Status) Status {
	switch s {
	case executor.Succeeded:
		return StatusSucceeded
	case executor.TimedOut:
		return StatusTimedOut
	case executor.Cancelled:
		return StatusCancelled
	}
	// executor.Failed, and any outcome this build does not know: a run that
	// cannot be read as a success is not one.
	return StatusFailed
}

// recordOutcome sets what the run decided on inv (status, error, logs, and
// on success the result) and returns the logs encoded for the row's column.
func (inv *Invocation) recordOutcome(res executor.Result) (logs json.RawMessage, err error) {
	inv.Status = statusOf(res.Status)
	inv.Error = res.Error
	inv.Logs = res.Logs
	if inv.Logs == nil {
		// The column and its partial index (invocations_logs_kept) take
		// "no lines" to be [], never null.
		inv.Logs = []executor.LogEntry{}
	}
	if logs, err = json.Marshal(inv.Logs); err != nil {
		return nil, fmt.Errorf("encode logs: %w", err)
	}
	if res.Status != executor.Succeeded {
		return logs, nil
	}
	if inv.Trigger != TriggerHTTP {
		inv.Result = res.Value
		return logs, nil
	}
	if inv.Result, err = encodeResponse(res.Response); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	// A waiter on this node answers from this value rather than decode the
	// JSON just encoded.
	response := res.Response
	inv.response = &response
	return logs, nil
}

// storedResponse is how an HTTP-triggered invocation's response is stored
// in its result column: the body is a string when it is UTF-8 text, else
// base64 in body_base64, so that binary responses survive the trip through
// jsonb (which also refuses the NUL character, valid UTF-8 though it is).
// The SQL functions (picloud.result) and the REST API read this shape, and
// rows written by earlier releases have it: change it only with a
// migration.
type storedResponse struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body,omitempty"`
	BodyBase64 *string           `json:"body_base64,omitempty"`
}

// encodeResponse encodes r for the result column.
func encodeResponse(r executor.Response) (json.RawMessage, error) {
	out := storedResponse{Status: r.Status, Headers: r.Headers}
	if utf8.Valid(r.Body) && bytes.IndexByte(r.Body, 0) < 0 {
		s := string(r.Body)
		out.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(r.Body)
		out.BodyBase64 = &s
	}
	return json.Marshal(out)
}

// decodeResponse reads what encodeResponse wrote.
func decodeResponse(data json.RawMessage) (executor.Response, error) {
	var in storedResponse
	if err := json.Unmarshal(data, &in); err != nil {
		return executor.Response{}, err
	}
	r := executor.Response{Status: in.Status, Headers: in.Headers}
	switch {
	case in.Body != nil:
		r.Body = []byte(*in.Body)
	case in.BodyBase64 != nil:
		body, err := base64.StdEncoding.DecodeString(*in.BodyBase64)
		if err != nil {
			return executor.Response{}, err
		}
		r.Body = body
	}
	return r, nil
}

// Response is the HTTP response of an HTTP-triggered invocation that
// succeeded, decoded from Result.
func (inv *Invocation) Response() (executor.Response, error) {
	if inv.response != nil {
		return *inv.response, nil
	}
	if len(inv.Result) == 0 {
		return executor.Response{}, errors.New("invocation has no result")
	}
	return decodeResponse(inv.Result)
}

// decodeLiveLog reads a line the executor streamed (host method "log", its
// arguments an executor.LiveLog) and stamps it with the attempt that wrote
// it, which the executor does not know.
func decodeLiveLog(args json.RawMessage, attempt int) (LiveLog, error) {
	var line executor.LiveLog
	if err := json.Unmarshal(args, &line); err != nil {
		return LiveLog{}, fmt.Errorf("decode live log line: %w", err)
	}
	return LiveLog{LiveLog: line, Attempt: attempt}, nil
}
