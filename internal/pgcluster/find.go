package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotFound reports that no PostgreSQL server installation was found.
// The error returned by Find wraps it and explains the fixes.
var ErrNotFound = errors.New("PostgreSQL server binaries (postgres, initdb, pg_ctl) not found")

// Binaries are the absolute paths of one PostgreSQL installation. They always
// come from a single directory because pg_ctl and initdb locate the postgres
// executable next to themselves; mixing installations does not work.
type Binaries struct {
	Dir      string
	Postgres string
	Initdb   string
	PgCtl    string
}

// defaultRoots are where distributions put versioned installations that are
// not on PATH (Debian/Ubuntu, then the PGDG RPMs). A '*' stands for the major
// version and is compared numerically.
func defaultRoots() []string {
	return []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"}
}

// Find locates postgres, initdb and pg_ctl: on PATH first, else the highest
// version in the usual distribution directories. It never downloads anything.
func Find() (Binaries, error) {
	return find(os.Getenv("PATH"), defaultRoots())
}

func find(pathEnv string, roots []string) (Binaries, error) {
	if b, ok := findOnPath(pathEnv); ok {
		return b, nil
	}
	var (
		best    Binaries
		bestVer []int
		found   bool
	)
	for _, pattern := range roots {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return Binaries{}, fmt.Errorf("pgcluster: bad search pattern %q: %w", pattern, err)
		}
		for _, dir := range matches {
			b, ok := complete(dir)
			if !ok {
				continue
			}
			ver := parseVersion(starMatch(pattern, dir))
			if !found || slices.Compare(ver, bestVer) > 0 {
				best, bestVer, found = b, ver, true
			}
		}
	}
	if !found {
		return Binaries{}, fmt.Errorf("pgcluster: %w on PATH or in %s. Either set DATABASE_URL to an existing PostgreSQL server, "+
			"or install the PostgreSQL server package (e.g. `apt-get install postgresql`, `dnf install postgresql-server` "+
			"or `brew install postgresql`); PiCloud never downloads PostgreSQL binaries",
			ErrNotFound, strings.Join(roots, ", "))
	}
	return best, nil
}

// findOnPath takes the first pg_ctl on PATH and resolves symlinks, because
// distributions and users commonly symlink the tools into a bin directory
// while postgres itself stays in the real installation directory.
func findOnPath(pathEnv string) (Binaries, bool) {
	for _, dir := range filepath.SplitList(pathEnv) {
		// Relative entries would make the result depend on the working
		// directory, which we change for child processes.
		if !filepath.IsAbs(dir) {
			continue
		}
		pgCtl := filepath.Join(dir, "pg_ctl")
		if !isExecutable(pgCtl) {
			continue
		}
		if real, err := filepath.EvalSymlinks(pgCtl); err == nil {
			if b, ok := complete(filepath.Dir(real)); ok {
				return b, true
			}
		}
		if b, ok := complete(dir); ok {
			return b, true
		}
	}
	return Binaries{}, false
}

func complete(dir string) (Binaries, bool) {
	b := Binaries{
		Dir:      dir,
		Postgres: filepath.Join(dir, "postgres"),
		Initdb:   filepath.Join(dir, "initdb"),
		PgCtl:    filepath.Join(dir, "pg_ctl"),
	}
	ok := isExecutable(b.Postgres) && isExecutable(b.Initdb) && isExecutable(b.PgCtl)
	return b, ok
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// starMatch returns the part of path that the single '*' of pattern matched.
func starMatch(pattern, path string) string {
	prefix, suffix, ok := strings.Cut(pattern, "*")
	if !ok || len(path) < len(prefix)+len(suffix) {
		return ""
	}
	return path[len(prefix) : len(path)-len(suffix)]
}

// parseVersion turns "9.6" or "16beta1" into comparable numbers; a plain
// string sort would rank 9.6 above 16.
func parseVersion(s string) []int {
	var v []int
	for part := range strings.SplitSeq(s, ".") {
		end := 0
		for end < len(part) && part[end] >= '0' && part[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(part[:end])
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}
