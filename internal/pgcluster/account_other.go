//go:build !unix

package pgcluster

import (
	"errors"
	"log/slog"
	"os/exec"
)

// account exists so the package compiles everywhere; managing a private
// cluster is only implemented for Unix-like systems.
type account struct{ uid, gid int }

func serverAccount() (account, error) {
	return account{}, errors.New("pgcluster: a private cluster is only supported on Unix-like systems; set DATABASE_URL to an existing PostgreSQL server")
}

func (account) apply(*exec.Cmd)                              {}
func (account) chown(string) error                           { return nil }
func (account) checkOwned(string) error                      { return nil }
func (account) ensureTraversable(string, *slog.Logger) error { return nil }
