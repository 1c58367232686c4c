package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long apply --watch waits after the last change
// before applying: an editor's save is often several events (write,
// rename, chmod) within a few milliseconds, and one apply should cover
// them all.
const watchDebounce = 200 * time.Millisecond

// watch applies, then applies again after every change in the folder (and
// in the folders of the functions' files), until ctx ends. A failed apply
// is printed and waits for the next change: a save with a typo must not
// end the loop.
func (a *applier) watch(ctx context.Context, stderr io.Writer) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", a.dir, err)
	}
	defer func() { _ = w.Close() }()
	watched := map[string]bool{}
	watchDirs := func() {
		dirs := []string{a.dir}
		// The manifest may name files outside the folder; watch theirs too.
		if m, err := loadManifest(a.dir); err == nil {
			for _, fn := range m.Functions {
				file := fn.File
				if !filepath.IsAbs(file) {
					file = filepath.Join(a.dir, file)
				}
				dirs = append(dirs, filepath.Dir(file))
			}
		}
		for _, d := range dirs {
			d = filepath.Clean(d)
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				fmt.Fprintf(stderr, "picloud: watch %s: %v\n", d, err)
				continue
			}
			watched[d] = true
		}
	}
	applyOnce := func() {
		if err := a.run(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "picloud:", err)
		}
		watchDirs()
	}
	applyOnce()
	fmt.Fprintf(stderr, "watching %s for changes (Ctrl-C stops)\n", a.dir)

	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch: the watcher stopped")
			}
			if ignoredChange(ev) {
				continue
			}
			timer = time.After(watchDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch: the watcher stopped")
			}
			fmt.Fprintln(stderr, "picloud: watch:", err)
		case <-timer:
			timer = nil
			fmt.Fprintf(a.out, "--- %s: a file changed, applying\n", time.Now().Format(time.TimeOnly))
			applyOnce()
		}
	}
}

// ignoredChange is an event that cannot change what apply sends: editors'
// swap and backup files, and attribute changes.
func ignoredChange(ev fsnotify.Event) bool {
	base := filepath.Base(ev.Name)
	return ev.Op == fsnotify.Chmod || strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") ||
		strings.HasSuffix(base, ".swp") || strings.HasSuffix(base, ".swx")
}
