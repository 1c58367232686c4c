package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/internal/db"
)

// maxFinishBatch bounds how many outcomes one finish statement records.
const maxFinishBatch = 1000

// finishParams is one attempt's outcome, as picloud.finish_invocations
// takes it: Kv and Invokes are what a successful script asked for (see
// hostCalls.commitArgs).
type finishParams struct {
	ID      int64
	Attempt int32
	Status  string
	Result  []byte
	Error   *string
	Logs    []byte
	Kv      []byte
	Invokes []byte
}

// finishItem is one attempt's outcome to record.
type finishItem struct {
	params finishParams
	logger func() *slog.Logger
}

// finishOutcome is what was recorded: params as written (a refused outcome
// is recorded as a failure instead), and the row's timings and errors.
// found is false when the attempt no longer ran (cancelled meanwhile).
type finishOutcome struct {
	params finishParams
	row    db.FinishInvocationsRow
	found  bool
}

// newFinisher returns the group commit that records outcomes: the
// attempts that end while a finish statement is in flight are recorded
// together by the next one (picloud.finish_invocations), which also
// announces them in one notification per 30 or so. If the statement fails,
// each outcome is recorded on its own (finishOne), so that one outcome the
// database refuses (a NUL character in a kv value, say) costs only its own
// invocation.
func (c *Client) newFinisher() *groupCommit[finishItem, finishOutcome] {
	return newGroupCommit(maxFinishBatch, func(items []finishItem) []batchResult[finishOutcome] {
		results := make([]batchResult[finishOutcome], len(items))
		ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
		defer cancel()
		params := make([]finishParams, len(items))
		for i, item := range items {
			params[i] = item.params
		}
		rows, err := c.finishInvocations(ctx, params...)
		if err == nil {
			for i, item := range items {
				row, found := rows[item.params.ID]
				results[i].out = finishOutcome{params: item.params, row: row, found: found}
			}
			return results
		}
		if len(items) > 1 {
			c.logger.WarnContext(ctx, "a batched finish failed; recording each outcome on its own", "outcomes", len(items), "error", err)
		}
		for i, item := range items {
			results[i].out, results[i].err = c.finishOne(ctx, item)
		}
		return results
	})
}

// finishInvocations records outcomes in one picloud.finish_invocations
// statement and returns the rows it finished, by id.
func (c *Client) finishInvocations(ctx context.Context, params ...finishParams) (map[int64]db.FinishInvocationsRow, error) {
	arg := db.FinishInvocationsParams{
		Ids:      make([]int64, len(params)),
		Attempts: make([]int32, len(params)),
		Statuses: make([]string, len(params)),
		Results:  make([][]byte, len(params)),
		Errors:   make([]string, len(params)),
		Logs:     make([][]byte, len(params)),
		Kv:       make([][]byte, len(params)),
		Invokes:  make([][]byte, len(params)),
	}
	for i, p := range params {
		arg.Ids[i], arg.Attempts[i], arg.Statuses[i] = p.ID, p.Attempt, p.Status
		arg.Results[i], arg.Logs[i], arg.Kv[i], arg.Invokes[i] = p.Result, p.Logs, p.Kv, p.Invokes
		if p.Error != nil {
			arg.Errors[i] = *p.Error
		}
	}
	rows, err := c.queries.FinishInvocations(ctx, arg)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]db.FinishInvocationsRow, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID, nil
}

// finishOne records one outcome on its own. An outcome the database
// refuses is cleaned (NUL characters) or else recorded as a failure that
// says why, so that the row never stays running.
func (c *Client) finishOne(ctx context.Context, item finishItem) (finishOutcome, error) {
	params := item.params
	rows, err := c.finishInvocations(ctx, params)
	if untranslatable(err) {
		// jsonb has no \u0000; Lua strings may hold NUL bytes. Store them as
		// U+FFFD, as the executor already does with invalid UTF-8.
		if params.Result, err = replaceNUL(params.Result); err == nil {
			rows, err = c.finishInvocations(ctx, params)
		}
	}
	if unstorable(err) {
		item.logger().WarnContext(ctx, "the outcome cannot be stored; recording a failure instead", "error", err)
		// The outcome breaks a database limit (jsonb refuses \u0000 in
		// strings, and values over 255 MB): record the failure instead, so
		// the row does not stay running forever.
		reason := storableError("the function's result could not be stored: " + err.Error())
		params.Status, params.Result, params.Error = string(StatusFailed), nil, &reason
		// A failed outcome applies no kv writes and enqueues no children,
		// and the refused value may be among them: jsonb[] arguments are
		// parsed whole, so sending them again would fail the same way and
		// leave the row running until the rescue.
		params.Kv, params.Invokes = nil, nil
		rows, err = c.finishInvocations(ctx, params)
	}
	if err != nil {
		return finishOutcome{}, err
	}
	row, found := rows[params.ID]
	return finishOutcome{params: params, row: row, found: found}, nil
}

// untranslatable reports PostgreSQL refusing a character, which for jsonb
// means \u0000.
func untranslatable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22P05"
}

// unstorable reports a database error caused by the values written rather
// than by the database's state: a data exception (class 22), a program
// limit (class 54) or PiCloud's own refusal (PC400, as of a child
// invocation's payload over the size limit).
func unstorable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "54") || pgErr.Code == sqlStateBadArgument)
}

// replaceNUL rewrites every NUL character in the JSON's strings (keys
// included) as U+FFFD.
func replaceNUL(doc json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			return strings.ReplaceAll(v, "\x00", "\uFFFD")
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			out := make(map[string]any, len(v))
			for k, e := range v {
				out[walk(k).(string)] = walk(e)
			}
			return out
		}
		return v
	}
	return json.Marshal(walk(v))
}
