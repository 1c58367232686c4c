package queue

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/picloud/picloud/queue/internal/db"
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

// Migrate brings the database to the current schema: River's migrations,
// then PiCloud's. An advisory lock held for the whole run serializes
// processes that start at once, so each migration applies exactly once and
// none of them starts on a half-migrated schema. PiCloud's own migrations
// apply in one transaction. It returns the versions it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	migrations, err := Migrations()
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
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Schema: Schema,
		// Migrate returns River's errors; its progress lines are noise.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	var applied []int
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		q := q.WithTx(tx)
		done, err := q.AppliedMigrations(ctx)
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		for _, m := range migrations {
			if slices.Contains(done, int32(m.Version)) {
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
		return nil
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
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
