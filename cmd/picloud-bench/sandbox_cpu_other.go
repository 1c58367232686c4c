//go:build !unix

package main

import "time"

// processCPU cannot be read here; the CPU-time rows are left out.
func processCPU() (time.Duration, bool) { return 0, false }
