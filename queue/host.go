package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/db"
)

// maxInvokesPerRun bounds the invocations one invocation may make.
const maxInvokesPerRun = 100

// invocationHost answers the host calls of one invocation (executor.Host).
// It lives in the worker, which holds the database connections and the
// network access that the sandbox has not.
//
// kv writes and invocations of other functions are buffered and committed
// by finish_invocations together with the result, so that a failed
// invocation leaves no trace; reads see the invocation's own buffered
// writes. kv.incr is the exception: a counter shared by concurrent
// invocations must be atomic, so it commits at once.
type invocationHost struct {
	c          *Client
	invocation int64
	function   string
	attempt    int
	// depth is the invocation's depth in a chain of invocations made by
	// scripts, and maxDepth the deepest one may be (SQL's
	// picloud.max_invocation_depth, read with the start).
	depth, maxDepth int
	http            *hostapi.HTTPFetcher
	logger          func() *slog.Logger // names the invocation and function
	// secrets are redacted from live log lines, as from the stored ones.
	secrets *hostapi.SecretRedactor

	// budget caps the bytes kv's and invokes' buffered writes hold.
	budget *hostapi.Budget
	kv     *hostapi.KV

	mu      sync.Mutex
	invokes []reservedInvoke
}

type reservedInvoke struct {
	ID             int64           `json:"id"`
	Function       string          `json:"function"`
	Payload        json.RawMessage `json:"payload"`
	IdempotencyKey *string         `json:"idempotency_key,omitempty"`
	RunAt          *time.Time      `json:"run_at,omitempty"`
}

func newInvocationHost(c *Client, inv Invocation, started db.StartInvocationsRow, logger func() *slog.Logger) *invocationHost {
	budget := &hostapi.Budget{}
	return &invocationHost{
		c: c, invocation: inv.ID, function: inv.Function, attempt: inv.Attempt, logger: logger,
		depth: int(started.Depth), maxDepth: int(started.MaxDepth),
		http:   hostapi.NewHTTPFetcher(started.HttpAllow, c.config.HTTP),
		budget: budget,
		kv:     hostapi.NewKV(c.queries, inv.Function, budget),
	}
}

// scriptError is an error the script should see as it is; other errors are
// the platform's and are logged, the script seeing only that the call
// failed.
func scriptError(format string, args ...any) error { return hostapi.Scriptf(format, args...) }

// Call implements executor.Host.
func (h *invocationHost) Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error) {
	var result any
	var err error
	switch method {
	case "kv.get":
		result, err = h.kv.Get(ctx, args)
	case "kv.set":
		result, err = h.kv.Set(args)
	case "kv.delete":
		result, err = h.kv.Delete(args)
	case "kv.incr":
		result, err = h.kv.Incr(ctx, args)
	case "kv.list":
		result, err = h.kv.List(ctx, args)
	case "http.request":
		result, err = h.http.Fetch(ctx, args)
	case "picloud.invoke":
		result, err = h.invoke(ctx, args)
	case "log":
		return nil, h.streamLog(ctx, args)
	default:
		return nil, scriptError("unknown host call %q", method)
	}
	if err != nil {
		var he *hostapi.ScriptError
		if errors.As(err, &he) || ctx.Err() != nil {
			return nil, err
		}
		h.logger().ErrorContext(ctx, "host call failed", "method", method, "error", err)
		return nil, fmt.Errorf("%s failed; the server log has the details", method)
	}
	return json.Marshal(result)
}

func decodeArgs(args json.RawMessage, v any) error { return hostapi.DecodeArgs(args, v) }

// The times a script may schedule an invocation for, in epoch seconds: the
// range picloud.create_invocations accepts.
const (
	minRunAtUnix = 946684800    // 2000-01-01T00:00:00Z
	maxRunAtUnix = 253402300800 // 10000-01-01T00:00:00Z, exclusive
)

// maxIdempotencyKeyLength is picloud.max_idempotency_key_length().
const maxIdempotencyKeyLength = 255

// payloadCheckFrom is the JSON length from which picloud.invoke asks the
// database for a payload's stored size. The stored (jsonb) form of a small
// number takes up to 6 times its text, so below an eighth of
// picloud.max_payload_bytes() (8 MiB) no payload can be over it, and
// ordinary calls cost no extra round trip.
const payloadCheckFrom = 1 << 20

func (h *invocationHost) invoke(ctx context.Context, args json.RawMessage) (any, error) {
	var a struct {
		Function       string          `json:"function"`
		Payload        json.RawMessage `json:"payload"`
		IdempotencyKey *string         `json:"idempotency_key"`
		RunAt          *float64        `json:"run_at"` // epoch seconds
		Delay          *float64        `json:"delay"`  // seconds from now
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if !catalog.ValidFunctionName(a.Function) {
		return nil, scriptError("invalid function name %q", a.Function)
	}
	if hostapi.HasEscapedNUL(a.Payload) {
		return nil, scriptError("the payload must not contain a NUL character (PostgreSQL cannot store one)")
	}
	if a.IdempotencyKey != nil && strings.IndexByte(*a.IdempotencyKey, 0) >= 0 {
		return nil, scriptError("the idempotency key must not contain a NUL character (PostgreSQL cannot store one)")
	}
	if a.IdempotencyKey != nil && utf8.RuneCountInString(*a.IdempotencyKey) > maxIdempotencyKeyLength {
		return nil, scriptError("the idempotency key has %d characters, the most is %d", utf8.RuneCountInString(*a.IdempotencyKey), maxIdempotencyKeyLength)
	}
	// Charged before the id is reserved, so that a refused call costs the
	// database nothing; given back if the reservation fails.
	size := len(a.Function) + len(a.Payload)
	if a.IdempotencyKey != nil {
		size += len(*a.IdempotencyKey)
	}
	if h.depth >= h.maxDepth {
		return nil, scriptError("invocation chain too deep: this invocation is at depth %d, and invocations made by scripts may go %d deep", h.depth, h.maxDepth)
	}
	h.mu.Lock()
	if len(h.invokes) >= maxInvokesPerRun {
		h.mu.Unlock()
		return nil, scriptError("too many invocations from one invocation (limit %d)", maxInvokesPerRun)
	}
	err := h.budget.Charge(size, "picloud.invoke")
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	kept := false
	defer func() {
		if !kept {
			h.budget.Refund(size)
		}
	}()
	id, err := h.c.queries.ReserveInvocationID(ctx, a.Function)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlStateFunctionNotFound {
		return nil, scriptError("function %q does not exist", a.Function)
	}
	if err != nil {
		return nil, err
	}
	if len(a.Payload) > payloadCheckFrom {
		// Refused here, with a Lua error the script can handle, rather
		// than when the run's finish writes the invocation and the whole
		// run fails.
		fit, err := h.c.queries.PayloadStoredSize(ctx, a.Payload)
		if err != nil {
			return nil, fmt.Errorf("size the payload: %w", err)
		}
		if fit.Size > fit.Max {
			return nil, scriptError("the payload is %d bytes as stored, the most is %d", fit.Size, fit.Max)
		}
	}
	r := reservedInvoke{ID: id, Function: a.Function, Payload: a.Payload, IdempotencyKey: a.IdempotencyKey}
	var at float64 // epoch seconds
	switch {
	case a.RunAt != nil:
		at = *a.RunAt
	case a.Delay != nil:
		at = float64(time.Now().UnixNano())/1e9 + *a.Delay
	}
	if a.RunAt != nil || a.Delay != nil {
		// Checked as a float, before any conversion: a delay of 1e300
		// would overflow time.Duration into a date in the past.
		if !(at >= minRunAtUnix && at < maxRunAtUnix) {
			return nil, scriptError("run_at/delay gives a time outside 2000-01-01 to 9999-12-31 UTC")
		}
		t := time.UnixMilli(int64(at * 1000))
		r.RunAt = &t
	}
	h.mu.Lock()
	h.invokes = append(h.invokes, r)
	h.mu.Unlock()
	kept = true
	return id, nil
}

// commitArgs returns the buffered kv writes and invocations for
// finish_invocations, nil when there are none.
func (h *invocationHost) commitArgs() (kv, invokes []byte, err error) {
	if kv, err = h.kv.Writes(); err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.invokes) > 0 {
		if invokes, err = json.Marshal(h.invokes); err != nil {
			return nil, nil, err
		}
	}
	return kv, invokes, nil
}
