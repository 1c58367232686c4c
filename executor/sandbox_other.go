//go:build !linux

package executor

import (
	"os"
	"os/exec"
)

func configureChild(*exec.Cmd) {}

// limitChildMemory is a no-op off Linux: the in-VM heap check remains.
func limitChildMemory(int64) error { return nil }

func pollable(f *os.File) *os.File { return f }
