package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	picloud "github.com/picloud/picloud/sdk/go"
)

// printJSON writes an API answer indented, ending in a newline. The bytes
// are the server's, so -o json shows fields this client does not know yet.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func printFunctions(w io.Writer, fns []picloud.FunctionBody) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tVERSION\tAUTH\tTIMEOUT\tMAX ATTEMPTS\tUPDATED\tURL")
	for _, fn := range fns {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n",
			fn.Name, fn.Version, formatAuth(fn.Auth), formatMillis(fn.TimeoutMs), formatInt(fn.MaxAttempts), formatTime(fn.UpdatedAt), fn.Url)
	}
	return tw.Flush()
}

func printFunction(w io.Writer, fn picloud.FunctionBody) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", fn.Name)
	row("version", strconv.FormatInt(fn.Version, 10))
	row("url", fn.Url)
	row("auth", formatAuth(fn.Auth))
	row("sha256", fn.Sha256)
	// The server leaves out what the function does not set.
	row("timeout", orDash(formatMillis(fn.TimeoutMs), "server default"))
	row("max attempts", orDash(formatInt(fn.MaxAttempts), "1"))
	row("max concurrency", orDash(formatInt(fn.MaxConcurrency), "unlimited"))
	row("retry backoff", orDash(formatMillis(fn.RetryBackoffMs), "1s"))
	row("max instructions", orDash(formatInt(fn.MaxInstructions), "server default"))
	if fn.HttpAllow != nil && len(*fn.HttpAllow) > 0 {
		row("http allow", strings.Join(*fn.HttpAllow, ", "))
	}
	if fn.ExposeErrors != nil && *fn.ExposeErrors {
		row("expose errors", "yes")
	}
	row("created", formatTime(fn.CreatedAt))
	row("updated", formatTime(fn.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if fn.Source != nil {
		source := *fn.Source
		if !strings.HasSuffix(source, "\n") {
			source += "\n"
		}
		fmt.Fprintf(w, "\n%s", source)
	}
	return nil
}

// printResult writes a function's return value: a string as it is, so
// that a script's text output can be piped on, anything else as JSON.
func printResult(w io.Writer, result any) error {
	switch r := result.(type) {
	case nil:
		return nil
	case string:
		if !strings.HasSuffix(r, "\n") {
			r += "\n"
		}
		_, err := io.WriteString(w, r)
		return err
	}
	b, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printInvocation(w io.Writer, inv picloud.InvocationBody) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", strconv.FormatInt(inv.Id, 10))
	row("function", fmt.Sprintf("%s (version %d)", inv.Function, inv.FunctionVersion))
	row("status", string(inv.Status))
	row("trigger", string(inv.Trigger))
	row("attempt", fmt.Sprintf("%d of %d", inv.Attempt, inv.MaxAttempts))
	row("created", formatTime(inv.CreatedAt))
	if inv.RunAt != nil {
		row("run at", formatTime(*inv.RunAt))
	}
	if inv.StartedAt != nil {
		row("started", formatTime(*inv.StartedAt))
	}
	if inv.FinishedAt != nil {
		row("finished", formatTime(*inv.FinishedAt))
	}
	if inv.WaitMs != nil {
		row("wait", formatDuration(inv.WaitMs))
	}
	if inv.RunMs != nil {
		row("run", formatDuration(inv.RunMs))
	}
	if inv.Result != nil {
		b, err := json.Marshal(inv.Result)
		if err != nil {
			return fmt.Errorf("encode the result: %w", err)
		}
		row("result", string(b))
	}
	if inv.Error != nil && *inv.Error != "" {
		row("error", *inv.Error)
	}
	if inv.Logs != nil && len(*inv.Logs) > 0 {
		lines := "lines"
		if len(*inv.Logs) == 1 {
			lines = "line"
		}
		row("logs", fmt.Sprintf("%d %s (picloud logs %d)", len(*inv.Logs), lines, inv.Id))
	}
	return tw.Flush()
}

func printInvocations(w io.Writer, invs []picloud.InvocationBody) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tFUNCTION\tSTATUS\tTRIGGER\tATTEMPT\tCREATED\tRUN")
	for _, inv := range invs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\n",
			inv.Id, inv.Function, inv.Status, inv.Trigger, inv.Attempt, inv.MaxAttempts,
			formatTime(inv.CreatedAt), formatDuration(inv.RunMs))
	}
	return tw.Flush()
}

func printLogs(w io.Writer, logs []picloud.LogEntryBody) error {
	for _, l := range logs {
		fields := ""
		if l.Fields != nil {
			b, err := json.Marshal(l.Fields)
			if err != nil {
				return fmt.Errorf("encode log fields: %w", err)
			}
			fields = " " + string(b)
		}
		// Fixed widths rather than a tabwriter: messages may hold tabs.
		_, err := fmt.Fprintf(w, "%s %-5s %s%s\n", l.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"),
			strings.ToUpper(string(l.Level)), l.Message, fields)
		if err != nil {
			return err
		}
	}
	return nil
}

// formatAuth shows an absent auth as public, what the server does with it.
func formatAuth(a *picloud.FunctionBodyAuth) string {
	if a == nil || *a == "" {
		return string(picloud.FunctionBodyAuthPublic)
	}
	return string(*a)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func formatMillis(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return (time.Duration(*ms) * time.Millisecond).String()
}

func formatDuration(ms *float64) string {
	if ms == nil {
		return "-"
	}
	return time.Duration(*ms * float64(time.Millisecond)).Round(time.Microsecond).String()
}

func formatInt(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

func orDash(s, dash string) string {
	if s == "-" {
		return dash
	}
	return s
}
