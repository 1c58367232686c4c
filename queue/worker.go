package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/picloud/picloud/executor"
	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/db"
)

// invocationWorker runs attempts: those River fetches (river.go) and those
// a call starts on this node (runhere.go).
type invocationWorker struct {
	client *Client
}

// errCancelledByRequest is the cause of a run stopped through Cancel.
var errCancelledByRequest = errors.New("cancelled by request")

// finishTimeout bounds the write of an outcome, which must happen even when
// the job's context was cancelled by a shutdown.
const finishTimeout = 10 * time.Second

// maxRetryBackoff caps the exponential backoff between attempts.
const maxRetryBackoff = time.Hour

// work runs one attempt of the invocation id, whose job River handed over
// (riverWorker.Work says why the start and the outcome are written here),
// and records its outcome. errStartLater asks for the job again after
// startRetry.
func (w *invocationWorker) work(ctx context.Context, id int64) error {
	c := w.client
	begun := time.Now()
	started, err := c.starter.do(id)
	if err != nil {
		// Nothing committed, most likely (the database is unreachable):
		// the job comes back after the snooze, and the promote timer is
		// armed for it. A start that did commit before its answer was lost
		// is taken back by the rescue, as for a worker that died.
		c.logger.WarnContext(ctx, "start invocation; trying again shortly", "invocation_id", id, "error", err)
		c.timers.hintDue(time.Now().Add(startRetry))
		return errStartLater
	}
	if started == nil {
		return nil // final already, running elsewhere, or parked until a concurrency slot frees
	}
	if !w.waitForSandbox(ctx, started) {
		return nil // handed back to the queue
	}
	return w.attempt(ctx, *started, nil, begun, nil)
}

// startRetry is how long a job waits before it is tried again when its
// invocation could not be started.
const startRetry = time.Second

// errStartLater is work's answer when the invocation could not be started.
var errStartLater = errors.New("start the invocation later")

// waitForSandbox waits for one of this node's run slots. A node starts
// more invocations than it has sandboxes (River hands it a whole fetch), so
// a started invocation may wait here; the wait must end well before the
// rescue would take the invocation as lost (its start plus timeout plus the
// rescue grace), so after half of the grace it is handed back to the queue
// unrun, and the attempt does not count. False means it was handed back.
func (w *invocationWorker) waitForSandbox(ctx context.Context, started *db.StartInvocationsRow) bool {
	c := w.client
	select {
	case c.sandboxes <- struct{}{}:
		return true
	default:
	}
	patience := time.NewTimer(max(time.Duration(started.RescueGraceMs)*time.Millisecond/2, minHandBackWait))
	defer patience.Stop()
	select {
	case c.sandboxes <- struct{}{}:
		return true
	case <-patience.C:
	case <-ctx.Done():
	}
	handCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if _, err := c.queries.HandBack(handCtx, started.ID, started.Attempt); err != nil {
		// It stays running; the rescue takes it back after its deadline.
		c.logger.WarnContext(ctx, "hand back an invocation that waited too long for a sandbox", "invocation_id", started.ID, "error", err)
	}
	return false
}

// minHandBackWait is the least a started invocation waits for a run slot
// before it is handed back, whatever the rescue grace: with a grace of 0,
// half of it would hand back every invocation that cannot run at once, and
// the node would fetch and hand back the same jobs in a loop.
const minHandBackWait = 100 * time.Millisecond

// releaseSandbox frees the run slot that waitForSandbox or reserveSlot took.
func (c *Client) releaseSandbox() { <-c.sandboxes }

// attempt runs the attempt that started (by Work, or on this node by
// InvokeHere), holding a run slot (Client.sandboxes) that it frees as soon
// as the executor returns: the outcome is recorded without a slot, so that
// the next runs proceed while finish statements gather outcomes. (Holding
// it through the finish capped a finish batch at the slot count: 650
// invocations/s on the burn-down.) and records its outcome. When the outcome is final and
// recorded, and recorded is not nil, it receives the invocation as stored.
func (w *invocationWorker) attempt(ctx context.Context, started db.StartInvocationsRow, request *HTTPRequest, begun time.Time, recorded *Invocation) (err error) {
	c := w.client
	slotHeld := true
	releaseSlot := func() {
		if slotHeld {
			slotHeld = false
			c.releaseSandbox()
		}
	}
	defer releaseSlot()
	inv := invocationFromStart(started, request)
	// The trace travels in the row: whichever node enqueued the invocation,
	// this attempt continues the enqueuer's trace.
	ctx, span := c.tracer.Start(continueTrace(ctx, started.TraceParent), "picloud.attempt",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(begun))
	var res executor.Result
	retrying := false
	defer func() { endAttempt(span, inv, res, retrying, err) }()
	// Built on first use: slog's With formats its attributes at once, which
	// took 10% of a worker's CPU on the burn-down when every attempt built
	// a logger and almost none logged.
	logger := sync.OnceValue(func() *slog.Logger {
		l := c.logger.With("invocation_id", inv.ID, "function", inv.Function)
		if sc := span.SpanContext(); sc.IsSampled() {
			l = l.With("trace_id", sc.TraceID().String())
		}
		return l
	})
	c.config.Observer.AttemptStarted(inv.Function, queuedFor(inv))

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.running.add(inv.ID, cancel)
	defer c.running.remove(inv.ID)

	host := newInvocationHost(c, inv, started, logger)
	var secrets *hostapi.SecretRedactor
	if started.Source == nil {
		res = executor.Result{Status: executor.Failed, Error: fmt.Sprintf("function %q was deleted before this invocation ran", inv.Function)}
	} else {
		req := executorRequest(inv)
		req.Host = host
		if err := decodeEnv(started.Env, &req.Env); err != nil {
			return fmt.Errorf("decode env of invocation %d: %w", inv.ID, err)
		}
		if err := decodeEnv(started.Secrets, &req.Secrets); err != nil {
			return fmt.Errorf("decode secrets of invocation %d: %w", inv.ID, err)
		}
		secrets = c.redactors.Get(started.Secrets, req.Secrets)
		host.secrets = secrets
		req.StreamLogs = started.Watched
		fn := executor.Function{Name: inv.Function, Version: int(started.FunctionVersionID), Source: *started.Source}
		limits := executor.Limits{Timeout: inv.Timeout}
		if started.MaxInstructions != nil {
			limits.Instructions = *started.MaxInstructions
		}
		res = w.run(runCtx, fn, req, limits)
		releaseSlot()
		c.config.Observer.AttemptRan(inv.Function, res.Duration, string(res.Limit))
	}
	secrets.Result(&res, inv.Trigger == TriggerHTTP)
	// Cut after masking: a cut first could leave half of a secret, which
	// the masking would then no longer recognise.
	res.Error = storableError(res.Error)
	if res.NoRetry {
		// The executor's own line about a dead sandbox cannot name the
		// invocation; this one does.
		logger().WarnContext(ctx, "the sandbox died during the invocation", "attempt", inv.Attempt, "error", res.Error)
	}

	logs, err := inv.recordOutcome(res)
	if err != nil {
		return fmt.Errorf("record the outcome of invocation %d: %w", inv.ID, err)
	}
	finishCtx, cancelFinish := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancelFinish()

	switch {
	case res.Status == executor.Cancelled && errors.Is(context.Cause(runCtx), errCancelledByRequest):
		// picloud.cancel already finished the row.
		logger().DebugContext(ctx, "invocation cancelled while it ran", "attempt", inv.Attempt)
		c.config.Observer.InvocationFinished(inv.Function, string(inv.Trigger), string(StatusCancelled))
		return nil
	case res.Status == executor.Cancelled:
		// The worker is shutting down: hand the invocation back for
		// another worker rather than lose it.
		logger().InfoContext(ctx, "handing the invocation back: the worker is stopping", "attempt", inv.Attempt)
		retrying = true
		return w.retry(finishCtx, inv, "the worker stopped during the run", logs, time.Now())
	case (res.Status == executor.Failed || res.Status == executor.TimedOut) && inv.Attempt < inv.MaxAttempts && !res.NoRetry:
		var base time.Duration
		if started.RetryBackoffMs != nil { // nil once the function is deleted
			base = time.Duration(*started.RetryBackoffMs) * time.Millisecond
		}
		backoff := retryBackoff(base, inv.Attempt)
		logger().DebugContext(ctx, "attempt failed; retrying", "attempt", inv.Attempt, "backoff", backoff, "error", res.Error)
		retrying = true
		return w.retry(finishCtx, inv, res.Error, logs, time.Now().Add(backoff))
	}

	params := finishParams{ID: inv.ID, Attempt: int32(inv.Attempt), Status: string(inv.Status), Result: inv.Result, Logs: logs}
	if res.Status == executor.Succeeded {
		if params.Kv, params.Invokes, err = host.commitArgs(); err != nil {
			return fmt.Errorf("encode writes of invocation %d: %w", inv.ID, err)
		}
	}
	if inv.Error != "" {
		params.Error = &inv.Error
	}
	outcome, err := c.finisher.do(finishItem{params: params, logger: logger})
	if err != nil {
		return fmt.Errorf("finish invocation %d: %w", inv.ID, err)
	}
	if !outcome.found {
		return nil // cancelled while it ran
	}
	finished := outcome.row
	// The database may have refused the outcome as it was (see
	// finishOne): the row holds what was written instead.
	inv.Status, inv.Result = Status(outcome.params.Status), outcome.params.Result
	if outcome.params.Error != nil {
		inv.Error = *outcome.params.Error
	}
	inv.StartedAt, inv.FinishedAt = finished.StartedAt, finished.FinishedAt
	if err := json.Unmarshal(finished.Errors, &inv.Errors); err != nil {
		return fmt.Errorf("decode errors of invocation %d: %w", inv.ID, err)
	}
	logger().DebugContext(ctx, "invocation finished", "status", inv.Status, "attempt", inv.Attempt, "duration", res.Duration)
	c.config.Observer.InvocationFinished(inv.Function, string(inv.Trigger), string(inv.Status))
	c.finished.finish(inv.ID, &inv)
	if recorded != nil {
		*recorded = inv
	}
	return nil
}

// maxErrorBytes caps an invocation's stored error, and each retry's in its
// errors, as the executor caps its logs (64 KiB): a script's error(s) takes
// any string, and a 45 MB one once made a 47 MB problem+json answer and a row
// to match. 64 KiB keeps any stack trace or message a person reads whole;
// with max_attempts at most 100, an invocation's errors stay under 6.4 MiB.
const maxErrorBytes = 64 << 10

// storableError makes an error text PostgreSQL can store, as the executor
// does with log lines: invalid UTF-8 and NUL characters become U+FFFD (a
// script's error() takes any bytes, and error("boom\0") once made every
// retry's finish fail, leaving the row running until the rescue), and a text
// longer than maxErrorBytes is cut at a character boundary, saying so at the
// end; the result is at most maxErrorBytes.
func storableError(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= maxErrorBytes {
		return s
	}
	mark := fmt.Sprintf("... [error truncated: %d bytes in all, an error is stored up to %d]", len(s), maxErrorBytes)
	cut := maxErrorBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// run runs the attempt in the executor, under a span of its own.
func (w *invocationWorker) run(ctx context.Context, fn executor.Function, req executor.Request, limits executor.Limits) executor.Result {
	ctx, span := w.client.tracer.Start(ctx, "picloud.executor.run")
	res := w.client.config.Executor.Run(ctx, fn, req, limits)
	if span.IsRecording() {
		span.SetAttributes(attribute.String(attrStatus, string(res.Status)), attribute.Int64("picloud.function.version_id", int64(fn.Version)))
		if res.Limit != "" {
			span.SetAttributes(attribute.String("picloud.limit", string(res.Limit)))
		}
		if res.Status != executor.Succeeded {
			span.SetStatus(codes.Error, res.Error)
		}
	}
	span.End()
	return res
}

// endAttempt records the attempt's outcome on its span and ends it.
func endAttempt(span trace.Span, inv Invocation, res executor.Result, retrying bool, err error) {
	if span.IsRecording() {
		status := string(inv.Status) // final, as stored
		if retrying || !inv.Status.Final() {
			status = string(res.Status) // this attempt's own outcome
		}
		span.SetAttributes(
			attribute.Int64(attrInvocationID, inv.ID),
			attribute.String(attrFunction, inv.Function),
			attribute.String(attrTrigger, string(inv.Trigger)),
			attribute.Int(attrAttempt, inv.Attempt),
			attribute.String(attrStatus, status),
			attribute.Bool("picloud.retrying", retrying),
		)
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		case status == string(StatusFailed) || status == string(StatusTimedOut):
			span.SetStatus(codes.Error, inv.Error)
		}
	}
	span.End()
}

func (w *invocationWorker) retry(ctx context.Context, inv Invocation, reason string, logs []byte, due time.Time) error {
	_, err := w.client.queries.RetryInvocation(ctx, db.RetryInvocationParams{ID: inv.ID, Attempt: int32(inv.Attempt), Error: reason, Logs: logs, Due: due})
	if unstorable(err) {
		// As finishOne does for a last attempt: the retry is recorded with
		// a reason that can be stored, rather than left to the rescue.
		reason = storableError("the attempt's error or logs could not be stored: " + err.Error())
		_, err = w.client.queries.RetryInvocation(ctx, db.RetryInvocationParams{ID: inv.ID, Attempt: int32(inv.Attempt), Error: reason, Logs: []byte("[]"), Due: due})
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("retry invocation %d: %w", inv.ID, err)
	}
	w.client.timers.hintDue(due)
	return nil
}

// queuedFor is how long the attempt inv just started waited: from its due
// time (run_at, set for a retry too) or else its creation, to its start;
// all three are the database's clock.
func queuedFor(inv Invocation) time.Duration {
	if inv.StartedAt == nil {
		return 0
	}
	from := inv.CreatedAt
	if inv.RunAt != nil && inv.RunAt.After(from) {
		from = *inv.RunAt
	}
	return max(inv.StartedAt.Sub(from), 0)
}

// retryBackoff is the delay before the attempt after attempt n: base,
// doubled per attempt, with ±20% jitter so that invocations failing together
// do not retry together.
func retryBackoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, maxRetryBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func decodeEnv(data []byte, into *map[string]string) error {
	if len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, into)
}

// runningSet holds the cancel functions of the invocations this process
// runs, so that a picloud_cancel notification can stop one.
type runningSet struct {
	mu   sync.Mutex
	byID map[int64]context.CancelCauseFunc
}

func (s *runningSet) add(id int64, cancel context.CancelCauseFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[int64]context.CancelCauseFunc)
	}
	s.byID[id] = cancel
}

func (s *runningSet) remove(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

func (s *runningSet) cancelRun(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel, ok := s.byID[id]; ok {
		cancel(errCancelledByRequest)
	}
}

func (s *runningSet) ids() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	return ids
}

// invocationFromStart makes the invocation that started from its row.
// request, when not nil, is the HTTP request as the caller on this node
// made it, which spares decoding the row's copy of it.
func invocationFromStart(r db.StartInvocationsRow, request *HTTPRequest) Invocation {
	inv := Invocation{
		ID:              r.ID,
		Function:        r.Function,
		FunctionVersion: int(r.FunctionVersion),
		Trigger:         Trigger(r.Trigger),
		Status:          StatusRunning,
		Payload:         r.Payload,
		Attempt:         int(r.Attempt),
		MaxAttempts:     int(r.MaxAttempts),
		Timeout:         time.Duration(r.TimeoutMs) * time.Millisecond,
		RunAt:           r.RunAt,
		ParentID:        r.ParentID,
		CreatedAt:       r.CreatedAt,
		StartedAt:       r.StartedAt,
	}
	if r.IdempotencyKey != nil {
		inv.IdempotencyKey = *r.IdempotencyKey
	}
	if request != nil {
		inv.Request = request
	} else if r.Request != nil {
		inv.Request = &HTTPRequest{}
		// The column is written only by Invoke from an HTTPRequest; a row
		// that does not decode runs with an empty request.
		_ = json.Unmarshal(r.Request, inv.Request)
		inv.Request.Body = r.RequestBody
	}
	return inv
}

func executorRequest(inv Invocation) executor.Request {
	req := executor.Request{Trigger: string(inv.Trigger), Payload: inv.Payload, Attempt: inv.Attempt}
	if r := inv.Request; r != nil {
		req.Method, req.Path, req.Query, req.Headers, req.Body = r.Method, r.Path, r.Query, r.Headers, r.Body
	}
	return req
}
