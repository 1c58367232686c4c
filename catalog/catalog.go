// Package catalog holds what is deployed: functions and their versions,
// their configuration values and secrets, and their schedules. It checks
// what it stores (names, options, that a source compiles and defines
// handle, cron expressions) and answers with errors of its own, so that a
// caller maps them to its answers without knowing the sandbox.
//
// The invocation lifecycle that runs these functions is package queue's;
// the catalog takes only the database.
package catalog

import (
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/internal/db"
)

// ErrFunctionNotFound: no function has that name. Package queue returns
// it too, for an invocation of a function that does not exist.
var ErrFunctionNotFound = errors.New("function not found")

// Catalog reads and writes the deployed functions, their versions,
// configuration, secrets and schedules.
type Catalog struct {
	pool    *pgxpool.Pool
	queries *db.Queries
}

// New returns a catalog on pool, whose database PiCloud's migrations have
// set up (queue.Migrate).
func New(pool *pgxpool.Pool) *Catalog {
	return &Catalog{pool: pool, queries: db.New(pool)}
}
