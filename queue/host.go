package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/hostapi"
	"github.com/picloud/picloud/internal/db"
)

// Bounds on what one invocation may do through the host API.
const (
	maxKVValueBytes    = 1 << 20
	maxKVKeyBytes      = 1024
	maxBufferedWrites  = 1000
	maxInvokesPerRun   = 100
	maxKVListPage      = 1000
	defaultKVListLimit = 100
)

// maxBufferedBytes caps the bytes one invocation's buffered writes hold in
// the worker (kv.set and kv.delete keys and values, and the function names,
// payloads and idempotency keys of picloud.invoke) until its finish commits
// them. The buffer lives in the worker process, outside the sandbox's memory
// limit, so without it 1,000 writes of 1 MiB each (within the per-call
// limits) took a serve process to 2.9 GB. 16 MiB is the size of the largest
// result a script may return (the executor's maxValueBytes), so an
// invocation's writes cost the worker no more than its result; a script
// with more to store can fan the work out over invocations.
const maxBufferedBytes = 16 << 20

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

	mu       sync.Mutex
	kvOps    []kvOp
	kvLatest map[string]kvOp // last buffered op per key
	invokes  []reservedInvoke
	// buffered is the bytes kvOps and invokes hold, against
	// maxBufferedBytes.
	buffered int
}

type kvOp struct {
	Op    string          `json:"op"` // set or delete
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	TTL   *float64        `json:"ttl,omitempty"` // seconds
}

type reservedInvoke struct {
	ID             int64           `json:"id"`
	Function       string          `json:"function"`
	Payload        json.RawMessage `json:"payload"`
	IdempotencyKey *string         `json:"idempotency_key,omitempty"`
	RunAt          *time.Time      `json:"run_at,omitempty"`
}

func newInvocationHost(c *Client, inv Invocation, started db.StartInvocationsRow, logger func() *slog.Logger) *invocationHost {
	return &invocationHost{
		c: c, invocation: inv.ID, function: inv.Function, attempt: inv.Attempt, logger: logger,
		depth: int(started.Depth), maxDepth: int(started.MaxDepth),
		http:     hostapi.NewHTTPFetcher(started.HttpAllow, c.config.HTTP),
		kvLatest: make(map[string]kvOp),
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
		result, err = h.kvGet(ctx, args)
	case "kv.set":
		result, err = h.kvSet(args)
	case "kv.delete":
		result, err = h.kvDelete(args)
	case "kv.incr":
		result, err = h.kvIncr(ctx, args)
	case "kv.list":
		result, err = h.kvList(ctx, args)
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

func checkKey(key string) error {
	if key == "" || len(key) > maxKVKeyBytes {
		return scriptError("kv key must be 1 to %d bytes", maxKVKeyBytes)
	}
	if strings.IndexByte(key, 0) >= 0 {
		return scriptError("kv key must not contain a NUL character (PostgreSQL cannot store one)")
	}
	return nil
}

// hasEscapedNUL reports a NUL character in a JSON document: jsonb refuses
// \u0000, so a value holding one would be refused at the finish, after the
// script has run, failing the whole invocation. Refusing it at the call
// tells the script where. (A NUL cannot appear raw in valid JSON; \\u0000 is
// an escaped backslash followed by text, and is storable.)
func hasEscapedNUL(doc []byte) bool {
	for i := 0; ; {
		j := bytes.Index(doc[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		j += i
		backslashes := 1
		for k := j - 1; k >= 0 && doc[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 1 {
			return true
		}
		i = j + 1
	}
}

type kvKeyArgs struct {
	Key string `json:"key"`
}

func (h *invocationHost) kvGet(ctx context.Context, args json.RawMessage) (any, error) {
	var a kvKeyArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	h.mu.Lock()
	op, buffered := h.kvLatest[a.Key]
	h.mu.Unlock()
	if buffered {
		if op.Op == "delete" {
			return map[string]any{"found": false}, nil
		}
		return map[string]any{"found": true, "value": op.Value}, nil
	}
	value, err := h.c.queries.KVGet(ctx, h.function, a.Key)
	if errors.Is(err, pgx.ErrNoRows) {
		return map[string]any{"found": false}, nil
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"found": true, "value": json.RawMessage(value)}, nil
}

// charge counts n more buffered bytes, or refuses them when they would
// take the invocation over maxBufferedBytes. The caller holds h.mu.
func (h *invocationHost) charge(n int, what string) error {
	if n > maxBufferedBytes-h.buffered {
		return scriptError("%s: an invocation may buffer at most %d bytes of kv writes and invocation payloads (%d used)",
			what, maxBufferedBytes, h.buffered)
	}
	h.buffered += n
	return nil
}

func (h *invocationHost) buffer(op kvOp) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.kvOps) >= maxBufferedWrites {
		return scriptError("too many kv writes in one invocation (limit %d)", maxBufferedWrites)
	}
	if err := h.charge(len(op.Key)+len(op.Value), "kv."+op.Op); err != nil {
		return err
	}
	h.kvOps = append(h.kvOps, op)
	h.kvLatest[op.Key] = op
	return nil
}

func (h *invocationHost) kvSet(args json.RawMessage) (any, error) {
	var a struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
		TTL   *float64        `json:"ttl"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	if len(a.Value) > maxKVValueBytes {
		return nil, scriptError("kv value too large (limit %d bytes of JSON)", maxKVValueBytes)
	}
	if hasEscapedNUL(a.Value) {
		return nil, scriptError("kv value must not contain a NUL character (PostgreSQL cannot store one)")
	}
	if a.TTL != nil && *a.TTL <= 0 {
		return nil, scriptError("kv ttl must be positive seconds")
	}
	if len(a.Value) == 0 || string(a.Value) == "null" {
		return nil, h.buffer(kvOp{Op: "delete", Key: a.Key})
	}
	return nil, h.buffer(kvOp{Op: "set", Key: a.Key, Value: a.Value, TTL: a.TTL})
}

func (h *invocationHost) kvDelete(args json.RawMessage) (any, error) {
	var a kvKeyArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	return nil, h.buffer(kvOp{Op: "delete", Key: a.Key})
}

func (h *invocationHost) kvIncr(ctx context.Context, args json.RawMessage) (any, error) {
	var a struct {
		Key string   `json:"key"`
		By  *float64 `json:"by"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	h.mu.Lock()
	_, buffered := h.kvLatest[a.Key]
	h.mu.Unlock()
	if buffered {
		return nil, scriptError("kv.incr of %q after kv.set or kv.delete of it in the same invocation: incr commits at once, the others with the result", a.Key)
	}
	by := 1.0
	if a.By != nil {
		by = *a.By
	}
	sum, err := h.c.queries.KVIncr(ctx, h.function, a.Key, by)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "PC400" {
		return nil, scriptError("%s", strings.TrimPrefix(pgErr.Message, "picloud: "))
	}
	return sum, err
}

func (h *invocationHost) kvList(ctx context.Context, args json.RawMessage) (any, error) {
	var a struct {
		Prefix string `json:"prefix"`
		After  string `json:"after"`
		Limit  int    `json:"limit"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Limit <= 0 {
		a.Limit = defaultKVListLimit
	}
	a.Limit = min(a.Limit, maxKVListPage)
	h.mu.Lock()
	overlay := make(map[string]kvOp)
	for k, op := range h.kvLatest {
		if strings.HasPrefix(k, a.Prefix) && k > a.After {
			overlay[k] = op
		}
	}
	h.mu.Unlock()
	rows, err := h.c.queries.KVList(ctx, db.KVListParams{
		Function: h.function, Prefix: a.Prefix, After: a.After, MaxRows: int32(a.Limit + len(overlay)),
	})
	if err != nil {
		return nil, err
	}
	type entry struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	merged := make(map[string]json.RawMessage, len(rows)+len(overlay))
	for _, r := range rows {
		merged[r.Key] = r.Value
	}
	for k, op := range overlay {
		if op.Op == "delete" {
			delete(merged, k)
		} else {
			merged[k] = op.Value
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > a.Limit {
		keys = keys[:a.Limit]
	}
	out := make([]entry, len(keys))
	for i, k := range keys {
		out[i] = entry{Key: k, Value: merged[k]}
	}
	return out, nil
}

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
	if !ValidFunctionName(a.Function) {
		return nil, scriptError("invalid function name %q", a.Function)
	}
	if hasEscapedNUL(a.Payload) {
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
	err := h.charge(size, "picloud.invoke")
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	kept := false
	defer func() {
		if !kept {
			h.mu.Lock()
			h.buffered -= size
			h.mu.Unlock()
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
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.kvOps) > 0 {
		if kv, err = json.Marshal(h.kvOps); err != nil {
			return nil, nil, err
		}
	}
	if len(h.invokes) > 0 {
		if invokes, err = json.Marshal(h.invokes); err != nil {
			return nil, nil, err
		}
	}
	return kv, invokes, nil
}
