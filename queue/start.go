package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/picloud/picloud/internal/db"
)

// maxStartBatch bounds how many invocations one start statement claims: a
// River fetch hands over at most InFlight jobs at once, so this is rarely
// reached.
const maxStartBatch = 1000

// startTimeout bounds one start statement.
const startTimeout = 10 * time.Second

// newStarter returns the group commit that starts the invocations of the
// jobs River hands this node: the jobs of one fetch arrive together, and
// picloud.start_invocations starts them in one statement instead of one
// plpgsql call each. The result for an id is nil when its invocation did
// not start (final already, running elsewhere, or parked).
func (c *Client) newStarter() *groupCommit[int64, *db.StartInvocationsRow] {
	return newGroupCommit(maxStartBatch, func(ids []int64) []batchResult[*db.StartInvocationsRow] {
		results := make([]batchResult[*db.StartInvocationsRow], len(ids))
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		rows, err := c.queries.StartInvocations(ctx, ids)
		if err != nil {
			err = fmt.Errorf("start %d invocations: %w", len(ids), err)
			for i := range results {
				results[i].err = err
			}
			return results
		}
		byID := make(map[int64]*db.StartInvocationsRow, len(rows))
		for i := range rows {
			byID[rows[i].ID] = &rows[i]
		}
		for i, id := range ids {
			results[i].out = byID[id]
		}
		return results
	})
}
