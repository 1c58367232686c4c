//go:build unix

package pgcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// account is the OS user that owns the data directory and runs initdb,
// pg_ctl and the server. PostgreSQL refuses to run as root, so a root caller
// switches to the "postgres" system user for every child process.
type account struct {
	cred     *syscall.Credential // nil: run children as ourselves
	uid, gid int
	name     string
}

func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return account{}, fmt.Errorf("pgcluster: running as root, but PostgreSQL refuses to run as root and "+
			"there is no \"postgres\" system user to run it as (%w). Either set DATABASE_URL to an existing "+
			"PostgreSQL server, create the user (e.g. `useradd --system --user-group postgres`), or run as a normal user", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("pgcluster: uid %q of user postgres: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("pgcluster: gid %q of user postgres: %w", u.Gid, err)
	}
	// An empty Groups list drops root's supplementary groups in the child.
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	return account{cred: cred, uid: int(uid), gid: int(gid), name: "postgres"}, nil
}

func (a account) apply(cmd *exec.Cmd) {
	if a.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred}
	}
}

// chown hands a path we created as root over to the server user; without
// it the server cannot write its own data directory or log.
func (a account) chown(path string) error {
	if a.cred == nil {
		return nil
	}
	if err := os.Lchown(path, a.uid, a.gid); err != nil {
		return fmt.Errorf("pgcluster: chown %s to %s: %w", path, a.name, err)
	}
	return nil
}

// checkOwned refuses directories owned by someone else. It matters for the
// socket directory under the shared temp dir: a directory pre-created by
// another user could let them intercept connections.
func (a account) checkOwned(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pgcluster: %s is not a directory", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != a.uid {
		return fmt.Errorf("pgcluster: %s is owned by uid %d, expected %d; remove it", path, st.Uid, a.uid)
	}
	return nil
}

// ensureTraversable makes sure the server user can reach dir when we are
// root: paths such as /root/... or t.TempDir() are created 0700 by root, and
// the server would then fail with a confusing "permission denied". Only the
// search (x) bit is added, never read or write.
func (a account) ensureTraversable(dir string, log *slog.Logger) error {
	if a.cred == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("pgcluster: cannot read file ownership on this platform")
		}
		mode := fi.Mode().Perm()
		// The kernel checks exactly one class: owner, else group, else other.
		var bit fs.FileMode = 0o001
		switch {
		case int(st.Uid) == a.uid:
			bit = 0o100
		case int(st.Gid) == a.gid:
			bit = 0o010
		}
		if mode&bit == 0 {
			log.Warn("pgcluster: making directory traversable for the postgres user",
				slog.String("dir", d), slog.String("mode", (mode|bit).String()))
			if err := os.Chmod(d, mode|bit); err != nil {
				return fmt.Errorf("pgcluster: %s must be traversable by user %s: %w", d, a.name, err)
			}
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}
