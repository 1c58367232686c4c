// Package sql holds PiCloud's database schema and queries as plain .sql files.
//
//   - bootstrap.sql prepares the schema and the bookkeeping tables;
//   - migrations/ holds the tables, indexes and rows, one numbered file per
//     change, each applied once, in order;
//   - functions/ holds the SQL functions, triggers and views, one file per
//     concern, applied in file-name order with CREATE OR REPLACE whenever
//     they change (see queue.Migrate);
//   - queries/ is compiled by sqlc into typed Go in internal/db.
//
// Keeping the SQL here as files, not strings in Go, lets it be read,
// reviewed and checked against the schema as SQL.
package sql

import (
	"embed"
	"io/fs"
)

//go:embed bootstrap.sql migrations/*.sql functions/*.sql
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
	return sub("migrations")
}

// Functions returns the function files, named NN_concern.sql.
func Functions() fs.FS {
	return sub("functions")
}

func sub(dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return s
}
