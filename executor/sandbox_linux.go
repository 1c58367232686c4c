package executor

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// configureChild puts the child in a process group of its own, so that a
// Ctrl+C at the terminal reaches only the parent, which then drains its
// runs; and kills it if the parent dies without closing its input.
func configureChild(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// limitChildMemory caps the data segment, which since Linux 4.7 counts
// every private writable mapping: the Go heap. The runtime's address-space
// reservations are not writable until used, so unlike RLIMIT_AS this tracks
// what the process really allocates. The cap is bytes on top of what is
// mapped already: a Go program starts with about 40 MB of data segment
// (runtime metadata), which is not the script's, and which left a 64 MiB
// child too little to run even trivial scripts.
func limitChildMemory(limit int64) error {
	lim := uint64(limit) + dataSegment()
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: lim, Max: lim})
}

// dataSegment is the process's current data segment size (VmData), or 0
// if /proc cannot tell.
func dataSegment() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(status, []byte("\nVmData:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(line), []byte(" kB"))), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}

// pollable reopens a standard stream in non-blocking mode, so that Go's
// poller waits on it. A blocking read keeps the child's only P (it runs
// with GOMAXPROCS=1) in a system call until sysmon takes it back, which
// added a quarter of a millisecond to every run.
func pollable(f *os.File) *os.File {
	fd := f.Fd() // Fd puts the descriptor in blocking mode: call it once
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		return f
	}
	return os.NewFile(fd, f.Name())
}
