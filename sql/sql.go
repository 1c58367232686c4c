// Package sql holds PiCloud's database schema and queries as plain .sql files.
//
// migrations/ is applied in file-name order by queue.Migrate (after River's own
// migrations, in the same transaction); queries/ is compiled by sqlc into typed
// Go in queue/internal/db. Keeping the SQL here as files, not strings in Go,
// lets it be read, reviewed and checked against the schema as SQL.
package sql

import (
	"embed"
	"io/fs"
)

//go:embed bootstrap.sql migrations/*.sql
var files embed.FS

// Bootstrap returns the statements that prepare the schema before any migration.
func Bootstrap() string {
	b, err := files.ReadFile("bootstrap.sql")
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return string(b)
}

// Migrations returns the migration files, named NNNN_description.sql.
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return sub
}
