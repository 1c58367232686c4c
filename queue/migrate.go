package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/internal/db"
	picloudsql "github.com/picloud/picloud/sql"
)

// Schema is the PostgreSQL schema that holds PiCloud's tables and River's.
const Schema = "picloud"

// migrationLockKey is the advisory lock that serializes concurrent Migrate
// calls. Any constant works as long as nothing else in the database uses it;
// this one is "picloud" read as ASCII bytes.
const migrationLockKey int64 = 0x7069636c6f7564

// Migration is one of PiCloud's own schema migrations.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists PiCloud's own migrations in the order they apply.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(picloudsql.Migrations(), ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var migrations []Migration
	for _, e := range entries {
		number, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		version, err := strconv.Atoi(number)
		if !ok || err != nil || path.Ext(e.Name()) != ".sql" {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(picloudsql.Migrations(), e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		migrations = append(migrations, Migration{Version: version, Name: name, SQL: string(body)})
	}
	slices.SortFunc(migrations, func(a, b Migration) int { return a.Version - b.Version })
	return migrations, nil
}

// FunctionFile is one of PiCloud's function files: SQL functions, triggers
// and views of one concern, written with CREATE OR REPLACE.
type FunctionFile struct {
	Name string
	SQL  string
}

// Functions lists PiCloud's function files in the order they apply.
func Functions() ([]FunctionFile, error) {
	entries, err := fs.ReadDir(picloudsql.Functions(), ".")
	if err != nil {
		return nil, fmt.Errorf("read function files: %w", err)
	}
	var files []FunctionFile
	for _, e := range entries {
		if path.Ext(e.Name()) != ".sql" {
			return nil, fmt.Errorf("function file %q is not named NN_concern.sql", e.Name())
		}
		body, err := fs.ReadFile(picloudsql.Functions(), e.Name())
		if err != nil {
			return nil, fmt.Errorf("read function file %s: %w", e.Name(), err)
		}
		files = append(files, FunctionFile{Name: e.Name(), SQL: string(body)})
	}
	slices.SortFunc(files, func(a, b FunctionFile) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// functionsDigest names a set of function files by its content.
func functionsDigest(files []FunctionFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00%s", f.Name, len(f.SQL), f.SQL)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SchemaDigest names the whole schema this build migrates to: River's
// migrations, PiCloud's and its function files. Test helpers name their
// template databases after it, so that a changed file never reuses a stale
// template.
func SchemaDigest() (string, error) {
	migrations, err := Migrations()
	if err != nil {
		return "", err
	}
	functions, err := Functions()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range migrations {
		h.Write([]byte(m.SQL))
	}
	h.Write([]byte(functionsDigest(functions)))
	riverSQL, err := riverMigrations()
	if err != nil {
		return "", err
	}
	for _, sql := range riverSQL {
		h.Write([]byte(sql))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Migrate brings the database to the current schema: River's migrations,
// then PiCloud's, then PiCloud's function files. An advisory lock held for
// the whole run serializes processes that start at once, so each migration
// applies exactly once and none of them starts on a half-migrated schema.
// PiCloud's migrations and function files apply in one transaction. It
// returns the versions it applied.
//
// The function files are applied whenever they differ from the code the
// database runs, except by a build whose files were applied before and
// replaced since (see picloud.schema_functions): re-creating every trigger
// takes a lock on the tables, which a node's start should not take for
// nothing, and an older node restarting during a rolling deploy must not
// undo the newer code.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	functions, err := Functions()
	if err != nil {
		return nil, err
	}
	// A connection of its own rather than one from the pool: closing it is
	// what releases the session lock, even when the run fails half-way.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect for migration: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	q := db.New(conn)
	if err := q.LockMigrations(ctx, migrationLockKey); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := conn.Exec(ctx, picloudsql.Bootstrap()); err != nil {
		return nil, fmt.Errorf("bootstrap schema: %w", err)
	}
	if err := migrateRiver(ctx, pool); err != nil {
		return nil, err
	}
	var applied []int
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		q := q.WithTx(tx)
		done, err := q.AppliedMigrationNames(ctx)
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		if err := checkHistory(migrations, done); err != nil {
			return err
		}
		for _, m := range migrations {
			if slices.ContainsFunc(done, func(d db.AppliedMigrationNamesRow) bool { return int(d.Version) == m.Version }) {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if err := q.RecordMigration(ctx, int32(m.Version), m.Name); err != nil {
				return fmt.Errorf("record migration %04d: %w", m.Version, err)
			}
			applied = append(applied, m.Version)
		}

		digests, err := q.FunctionDigests(ctx)
		if err != nil {
			return fmt.Errorf("read applied functions: %w", err)
		}
		digest := functionsDigest(functions)
		if slices.Contains(digests, digest) {
			return nil // current, or older than the database's code
		}
		for _, f := range functions {
			if _, err := tx.Exec(ctx, f.SQL); err != nil {
				return fmt.Errorf("function file %s: %w", f.Name, err)
			}
		}
		if err := q.RecordFunctions(ctx, digest); err != nil {
			return fmt.Errorf("record functions: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// checkHistory refuses a database whose applied migrations contradict this
// build's: the same version under another name. That is a database made
// before the migrations were folded into 0001_baseline (whose first
// migration was named "init"), or by a fork; applying functions written
// for other tables would fail half-way, so say so at once. Versions this
// build does not know are fine: a newer build applied them.
func checkHistory(migrations []Migration, done []db.AppliedMigrationNamesRow) error {
	for _, d := range done {
		i := slices.IndexFunc(migrations, func(m Migration) bool { return m.Version == int(d.Version) })
		if i >= 0 && migrations[i].Name != d.Name {
			return fmt.Errorf("the database's migration %04d is %q, this build's is %q: "+
				"it was made by a pre-release or different build of PiCloud; recreate it "+
				"(for picloud dev: delete its data directory, .picloud by default)",
				d.Version, d.Name, migrations[i].Name)
		}
	}
	return nil
}

// Pending reports the migrations not yet applied; readiness checks use it.
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	q := db.New(pool)
	exists, err := q.SchemaMigrationsExists(ctx)
	if err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	var done []int32
	if exists {
		if done, err = q.AppliedMigrations(ctx); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
	}
	var pending []int
	for _, m := range migrations {
		if !slices.Contains(done, int32(m.Version)) {
			pending = append(pending, m.Version)
		}
	}
	return pending, nil
}
