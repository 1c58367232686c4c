package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/alecthomas/kong"

	picloud "github.com/picloud/picloud/sdk/go"
)

// follow reads the invocation's event stream: the server pushes each step
// and, at the end, the log lines, so nothing here polls.
func (c *logsCmd) follow(ctx context.Context, kctx *kong.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	res, err := client.StreamInvocationEvents(ctx, c.ID, &picloud.StreamInvocationEventsParams{})
	if err != nil {
		return fmt.Errorf("request failed: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return apiError(rawResponse{res})
	}
	var final picloud.InvocationEventBody
	scanner := bufio.NewScanner(res.Body)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	var name string
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			if err := c.followEvent(kctx, name, data, &final); err != nil {
				return err
			}
		}
	}
	if err := scanner.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading the event stream: %w", err)
	}
	switch final.Status {
	case "":
		return fmt.Errorf("the event stream ended before invocation %d finished", c.ID)
	case picloud.InvocationEventBodyStatus("succeeded"):
		return nil
	default:
		return withExitCode(exitRunFail, fmt.Errorf("invocation %d %s", c.ID, final.Status))
	}
}

func (c *logsCmd) followEvent(kctx *kong.Context, name string, data []byte, final *picloud.InvocationEventBody) error {
	switch name {
	case "log":
		if c.json() {
			_, err := fmt.Fprintf(kctx.Stdout, "%s\n", data)
			return err
		}
		var line picloud.LogEventBody
		if err := json.Unmarshal(data, &line); err != nil {
			return fmt.Errorf("decode a log event: %w", err)
		}
		return printLogs(kctx.Stdout, []picloud.LogEntryBody{{Time: line.Time, Level: picloud.LogEntryBodyLevel(line.Level), Message: line.Message, Fields: line.Fields}})
	case "invocation":
		var step picloud.InvocationEventBody
		if err := json.Unmarshal(data, &step); err != nil {
			return fmt.Errorf("decode an invocation event: %w", err)
		}
		fmt.Fprintf(kctx.Stderr, "invocation %d: %s (attempt %d of %d)\n", step.Id, step.Status, step.Attempt, step.MaxAttempts)
		switch step.Status {
		case "succeeded", "failed", "timed_out", "cancelled":
			*final = step
		}
	}
	return nil
}

// rawResponse lets apiError read an answer the generated client did not
// decode.
type rawResponse struct{ res *http.Response }

func (r rawResponse) StatusCode() int { return r.res.StatusCode }

func (r rawResponse) GetBody() []byte {
	body, _ := io.ReadAll(io.LimitReader(r.res.Body, 1<<20))
	return body
}
