package queue_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/picloud/picloud/internal/platformtest"
)

// TestNotifyEventsChunks: picloud.notify_events splits any number of
// events into JSON arrays that each fit pg_notify's payload limit, in
// order, none lost. (A limit computed too close once made every finish
// batch of more than about 30 invocations fail.)
func TestNotifyEventsChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := platformtest.Database(t)
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN picloud_test_chunks"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		events, pad int
	}{
		{1, 0},
		{1000, 250},
		{50, 900}, // events near the largest an invocation_event can be
	} {
		if _, err := pool.Exec(ctx, `SELECT picloud.notify_events('picloud_test_chunks',
			ARRAY(SELECT json_build_object('id', g, 'pad', repeat('x', $2))::text FROM generate_series(1, $1) g))`,
			tc.events, tc.pad); err != nil {
			t.Fatalf("%d events of %d bytes: %v", tc.events, tc.pad, err)
		}
		next := 1
		for next <= tc.events {
			waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := conn.WaitForNotification(waitCtx)
			cancel()
			if err != nil {
				t.Fatalf("%d events of %d bytes: got %d, then %v", tc.events, tc.pad, next-1, err)
			}
			if len(n.Payload) >= 8000 {
				t.Errorf("payload of %d bytes", len(n.Payload))
			}
			var chunk []struct{ ID int }
			if err := json.Unmarshal([]byte(n.Payload), &chunk); err != nil {
				t.Fatalf("payload %q: %v", n.Payload, err)
			}
			for _, e := range chunk {
				if e.ID != next {
					t.Fatalf("event %d arrived where %d was due", e.ID, next)
				}
				next++
			}
		}
	}
}
