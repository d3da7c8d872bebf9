package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs main itself, with the arguments in METAIDS_TEST_MAIN, when
// a test starts this binary as the command.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("METAIDS_TEST_MAIN"); ok {
		os.Args = append([]string{"metaids"}, strings.Fields(args)...)
		main()
		return
	}
	os.Exit(m.Run())
}

// The first Ctrl-C asks for a clean stop; a command blocked where it does
// not check for one (here opening a FIFO that no one writes) ends at the
// second, instead of holding out until it is killed.
func TestSecondInterruptEndsABlockedCommand(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc to tell when the command blocks")
	}
	fifo := filepath.Join(t.TempDir(), "spec.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFO:", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "METAIDS_TEST_MAIN=validate "+fifo)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	// Blocked in open(2): the signal handlers are in place by then.
	blocked := func() bool {
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "task", "*", "wchan"))
		for _, w := range tasks {
			if b, _ := os.ReadFile(w); strings.Contains(string(b), "wait_for_partner") {
				return true
			}
		}
		return false
	}
	for start := time.Now(); !blocked(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Skip("cannot tell that the command is blocked opening the FIFO")
		}
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		t.Fatalf("the first interrupt ended the command (%v); it asks for a clean stop", err)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the second interrupt did not end the command")
	}
}
