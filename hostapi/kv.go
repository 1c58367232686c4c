package hostapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/internal/db"
)

// Bounds on what one invocation may do through kv.
const (
	maxKVValueBytes    = 1 << 20
	maxKVKeyBytes      = 1024
	maxBufferedWrites  = 1000
	maxKVListPage      = 1000
	defaultKVListLimit = 100
)

// MaxBufferedBytes caps the bytes one invocation's buffered writes hold in
// the worker (kv.set and kv.delete keys and values, and the function names,
// payloads and idempotency keys of picloud.invoke) until its finish commits
// them. The buffer lives in the worker process, outside the sandbox's memory
// limit, so without it 1,000 writes of 1 MiB each (within the per-call
// limits) took a serve process to 2.9 GB. 16 MiB is the size of the largest
// result a script may return (the executor's maxValueBytes), so an
// invocation's writes cost the worker no more than its result; a script
// with more to store can fan the work out over invocations.
const MaxBufferedBytes = 16 << 20

// Budget counts the bytes an invocation's buffered writes hold, kv's and
// picloud.invoke's together, against MaxBufferedBytes.
type Budget struct {
	mu   sync.Mutex
	used int
}

// Charge counts n more buffered bytes, or refuses them when they would
// take the invocation over MaxBufferedBytes.
func (b *Budget) Charge(n int, what string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > MaxBufferedBytes-b.used {
		return scriptError("%s: an invocation may buffer at most %d bytes of kv writes and invocation payloads (%d used)",
			what, MaxBufferedBytes, b.used)
	}
	b.used += n
	return nil
}

// Refund gives back n bytes charged for a write that was not kept.
func (b *Budget) Refund(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// KV answers the kv calls of one invocation. Writes are buffered and
// committed by finish_invocations together with the result (Writes), so
// that a failed invocation leaves no trace; reads see the invocation's
// own buffered writes.
type KV struct {
	queries  *db.Queries
	function string
	budget   *Budget

	mu     sync.Mutex
	ops    []kvOp
	latest map[string]kvOp // last buffered op per key
}

// NewKV returns the kv of one invocation of function.
func NewKV(queries *db.Queries, function string, budget *Budget) *KV {
	return &KV{queries: queries, function: function, budget: budget, latest: make(map[string]kvOp)}
}

// Writes returns the buffered writes as finish_invocations takes them,
// nil when there are none.
func (k *KV) Writes() ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.ops) == 0 {
		return nil, nil
	}
	return json.Marshal(k.ops)
}

type kvOp struct {
	Op    string          `json:"op"` // set or delete
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	TTL   *float64        `json:"ttl,omitempty"` // seconds
}

func checkKey(key string) error {
	if key == "" || len(key) > maxKVKeyBytes {
		return scriptError("kv key must be 1 to %d bytes", maxKVKeyBytes)
	}
	if strings.IndexByte(key, 0) >= 0 {
		return scriptError("kv key must not contain a NUL character (PostgreSQL cannot store one)")
	}
	return nil
}

// HasEscapedNUL reports a NUL character in a JSON document: jsonb refuses
// \u0000, so a value holding one would be refused at the finish, after the
// script has run, failing the whole invocation. Refusing it at the call
// tells the script where. (A NUL cannot appear raw in valid JSON; \\u0000 is
// an escaped backslash followed by text, and is storable.)
func HasEscapedNUL(doc []byte) bool {
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

// Get answers kv.get: the invocation's own buffered write of the key, if
// any, else the stored value.
func (k *KV) Get(ctx context.Context, args json.RawMessage) (any, error) {
	var a kvKeyArgs
	if err := DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	k.mu.Lock()
	op, buffered := k.latest[a.Key]
	k.mu.Unlock()
	if buffered {
		if op.Op == "delete" {
			return map[string]any{"found": false}, nil
		}
		return map[string]any{"found": true, "value": op.Value}, nil
	}
	value, err := k.queries.KVGet(ctx, k.function, a.Key)
	if errors.Is(err, pgx.ErrNoRows) {
		return map[string]any{"found": false}, nil
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"found": true, "value": json.RawMessage(value)}, nil
}

func (k *KV) buffer(op kvOp) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.ops) >= maxBufferedWrites {
		return scriptError("too many kv writes in one invocation (limit %d)", maxBufferedWrites)
	}
	if err := k.budget.Charge(len(op.Key)+len(op.Value), "kv."+op.Op); err != nil {
		return err
	}
	k.ops = append(k.ops, op)
	k.latest[op.Key] = op
	return nil
}

// Set answers kv.set, buffering the write; a null value deletes.
func (k *KV) Set(args json.RawMessage) (any, error) {
	var a struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
		TTL   *float64        `json:"ttl"`
	}
	if err := DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	if len(a.Value) > maxKVValueBytes {
		return nil, scriptError("kv value too large (limit %d bytes of JSON)", maxKVValueBytes)
	}
	if HasEscapedNUL(a.Value) {
		return nil, scriptError("kv value must not contain a NUL character (PostgreSQL cannot store one)")
	}
	if a.TTL != nil && *a.TTL <= 0 {
		return nil, scriptError("kv ttl must be positive seconds")
	}
	if len(a.Value) == 0 || string(a.Value) == "null" {
		return nil, k.buffer(kvOp{Op: "delete", Key: a.Key})
	}
	return nil, k.buffer(kvOp{Op: "set", Key: a.Key, Value: a.Value, TTL: a.TTL})
}

// Delete answers kv.delete, buffering the delete.
func (k *KV) Delete(args json.RawMessage) (any, error) {
	var a kvKeyArgs
	if err := DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	return nil, k.buffer(kvOp{Op: "delete", Key: a.Key})
}

// Incr answers kv.incr, which commits at once.
func (k *KV) Incr(ctx context.Context, args json.RawMessage) (any, error) {
	var a struct {
		Key string   `json:"key"`
		By  *float64 `json:"by"`
	}
	if err := DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkKey(a.Key); err != nil {
		return nil, err
	}
	k.mu.Lock()
	_, buffered := k.latest[a.Key]
	k.mu.Unlock()
	if buffered {
		return nil, scriptError("kv.incr of %q after kv.set or kv.delete of it in the same invocation: incr commits at once, the others with the result", a.Key)
	}
	by := 1.0
	if a.By != nil {
		by = *a.By
	}
	sum, err := k.queries.KVIncr(ctx, k.function, a.Key, by)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "PC400" {
		return nil, scriptError("%s", strings.TrimPrefix(pgErr.Message, "picloud: "))
	}
	return sum, err
}

// List answers kv.list: the stored keys with the invocation's buffered
// writes laid over them.
func (k *KV) List(ctx context.Context, args json.RawMessage) (any, error) {
	var a struct {
		Prefix string `json:"prefix"`
		After  string `json:"after"`
		Limit  int    `json:"limit"`
	}
	if err := DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Limit <= 0 {
		a.Limit = defaultKVListLimit
	}
	a.Limit = min(a.Limit, maxKVListPage)
	k.mu.Lock()
	overlay := make(map[string]kvOp)
	for k, op := range k.latest {
		if strings.HasPrefix(k, a.Prefix) && k > a.After {
			overlay[k] = op
		}
	}
	k.mu.Unlock()
	rows, err := k.queries.KVList(ctx, db.KVListParams{
		Function: k.function, Prefix: a.Prefix, After: a.After, MaxRows: int32(a.Limit + len(overlay)),
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
