// Command metaids trains and evaluates few-shot and meta-learning network
// intrusion detectors on KDD Cup 99 and NSL-KDD.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/metaids/metaids/kernels"
)

// command is one subcommand. Each lives in a file of its own and registers
// itself in init.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: its output streams.
type env struct {
	stdout, stderr io.Writer
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// errUsage marks a command line that is wrong (exit status 2, not 1).
var errUsage = errors.New("invalid arguments")

// subcommandError is the error of a command's subcommand (data stats), so
// that the message names the subcommand that failed.
type subcommandError struct {
	name string
	err  error
}

func (s subcommandError) Error() string { return s.err.Error() }
func (s subcommandError) Unwrap() error { return s.err }

// inSubcommand tags err, if any, with the subcommand it came from.
func inSubcommand(name string, err error) error {
	if err == nil {
		return nil
	}
	return subcommandError{name, err}
}

// errReported marks a usage error that the flag package has already printed.
var errReported = fmt.Errorf("%w (reported)", errUsage)

// usageErrorf returns an error wrapping errUsage.
func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// intFlag is an integer flag's name and value and the least it may be.
type intFlag struct {
	name     string
	got, min int
}

// checkMins returns a usage error naming the first flag below its least
// value, checked before any work so that a bad flag is named as the flag.
func checkMins(flags ...intFlag) error {
	for _, f := range flags {
		if f.got < f.min {
			return usageErrorf("%s must be at least %d (got %d)", f.name, f.min, f.got)
		}
	}
	return nil
}

// checkDeviceFlag checks a --device value given on the command line: one of
// auto, cpu and cuda, and cuda only in a build that has it.
func checkDeviceFlag(device string) error {
	switch device {
	case "auto", "cpu":
	case "cuda":
		if !kernels.Compiled("cuda") {
			return usageErrorf("--device cuda: this build has no cuda backend (build with -tags metaids_cuda); use cpu, or auto for cuda where it is compiled in and working")
		}
	default:
		return usageErrorf("--device %q: want auto, cpu or cuda", device)
	}
	return nil
}

func main() {
	// Ctrl-C and a polite kill (a batch scheduler's SIGTERM) both stop a run
	// cleanly: finished seeds kept, nothing half-written.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal asks for a clean stop, which a command checks for
	// between steps; a second one ends the program at once, so that a
	// command blocked where it does not check (loading a large data file,
	// opening a FIFO that no one writes) can still be stopped.
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(runMain(ctx, &env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

// runMain runs one command line and returns the exit status.
func runMain(ctx context.Context, e *env, args []string) int {
	if len(args) > 1 && args[0] == "help" {
		// metaids help COMMAND [SUBCOMMAND] is metaids COMMAND [SUBCOMMAND] -h.
		args = append(args[1:], "-h")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "metaids: unknown command %q (run 'metaids help' for the list)\n", args[0])
		return 2
	}
	err := c.run(ctx, e, args[1:])
	name := c.name
	var sub subcommandError
	if errors.As(err, &sub) {
		name += " " + sub.name
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(e.stderr, "metaids %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "metaids %s: %v\n", name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "metaids: few-shot and meta-learning network intrusion detection")
	fmt.Fprintln(w, "\nusage: metaids COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'metaids COMMAND -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: metaids %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments; a
// "--" ends the flags, so that what follows is positional even if it
// starts with "-". Asked for with -h, the usage goes to stdout, to be paged
// or searched; after a wrong flag it goes to stderr with the error. What the
// flag package prints is held until it is known which: a "-h" can be a
// flag's value (--note -h), and "-h=x" asks for help too.
func parseFlags(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	args, tail := splitAtTerminator(fs, args)
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	defer fs.SetOutput(e.stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.stdout.Write(msg.Bytes())
				return nil, err
			}
			e.stderr.Write(msg.Bytes())
			return nil, errReported
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		if strings.HasPrefix(args[0], "-") && args[0] != "-" {
			continue
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// splitAtTerminator splits args at the first "--" that ends the flags
// rather than being a flag's value (--out -- names a folder "--"). The flag
// package alone cannot tell: parsing again after positional arguments, it
// would take a "-x" after the "--" for a flag.
func splitAtTerminator(fs *flag.FlagSet, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args[:i], args[i+1:]
		}
		name, isFlag := strings.CutPrefix(a, "-")
		if !isFlag || name == "" {
			continue // positional, or "-" (standard input)
		}
		name = strings.TrimPrefix(name, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			i++ // its value
		}
	}
	return args, nil
}
