package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picloud/picloud/internal/pgcluster"
	"github.com/picloud/picloud/queue"
)

// server is the PostgreSQL server the run measures on.
type server struct {
	admin       string // URL to run CREATE/DROP DATABASE from
	description string
	close       func()
}

// openServer finds PostgreSQL as the tests do: DATABASE_URL, else a private
// cluster from the installed binaries. The private cluster is ephemeral
// (fsync off), like the test clusters, so its figures match what the test
// benchmarks report; DATABASE_URL measures a server configured by the user.
func openServer(ctx context.Context, logger *slog.Logger) (*server, error) {
	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		return &server{admin: dsn, description: "DATABASE_URL", close: func() {}}, nil
	}
	dir, err := os.MkdirTemp("", "picloud-bench-")
	if err != nil {
		return nil, fmt.Errorf("create the cluster directory: %w", err)
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "pg"), Ephemeral: true, Logger: logger})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start a private PostgreSQL cluster: %w", err)
	}
	return &server{
		admin:       cluster.URL("postgres"),
		description: "private cluster, fsync off",
		close: func() {
			_ = cluster.Stop(context.WithoutCancel(ctx))
			_ = os.RemoveAll(dir)
		},
	}, nil
}

// database is a fresh, migrated database that drop removes.
type database struct {
	pool *pgxpool.Pool
	drop func()
}

func (s *server) freshDatabase(ctx context.Context) (*database, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "picloud_bench_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		ctx := context.WithoutCancel(ctx)
		if conn, err := pgx.Connect(ctx, s.admin); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = conn.Close(ctx)
		}
	}
	config, err := pgxpool.ParseConfig(s.admin)
	if err != nil {
		drop()
		return nil, fmt.Errorf("database URL: %w", err)
	}
	config.ConnConfig.Database = name
	// As serve does: no ping before handing out a connection that sat idle,
	// which would add a round trip to the first call after every pause.
	config.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		drop()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	if _, err := queue.Migrate(ctx, pool); err != nil {
		pool.Close()
		drop()
		return nil, fmt.Errorf("migrate database %s: %w", name, err)
	}
	return &database{pool: pool, drop: func() { pool.Close(); drop() }}, nil
}
