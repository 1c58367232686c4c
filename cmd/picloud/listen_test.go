package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAddressInUse: every role with an HTTP listener reports an address in
// use at once, in one line naming the address and the setting, before it
// touches the database. The database URL points at a port nothing listens
// on, so a role that connected (or, for dev, ran initdb) first would fail
// with another error, or take seconds.
func TestAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	noDB := "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=5"
	dataDir := t.TempDir()

	tests := []struct {
		name    string
		args    []string
		setting string
	}{
		{"serve", []string{"serve", "--database-url", noDB, "--addr", addr}, "--addr"},
		{"api", []string{"api", "--database-url", noDB, "--addr", addr}, "--addr"},
		{"worker health", []string{"worker", "--database-url", noDB, "--health-addr", addr}, "--health-addr"},
		{"api metrics", []string{"api", "--database-url", noDB, "--addr", "127.0.0.1:0", "--metrics-addr", addr}, "--metrics-addr"},
		{"dev with a database", []string{"dev", "--database-url", noDB, "--addr", addr}, "--addr"},
		// No database URL: dev would initdb a private cluster first.
		{"dev private cluster", []string{"dev", "--database-url=", "--data-dir", dataDir, "--addr", addr}, "--addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := runCLI(ctx, t, tt.args...)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("started on an address in use")
			}
			msg := err.Error()
			if !strings.Contains(msg, addr+" is already in use") || !strings.Contains(msg, tt.setting) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line saying %s is in use and naming %s", msg, addr, tt.setting)
			}
			if elapsed > 2*time.Second {
				t.Errorf("took %v to report it", elapsed)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dataDir, "pg")); !os.IsNotExist(err) {
		t.Errorf("dev created its cluster before checking the address (stat: %v)", err)
	}
}
