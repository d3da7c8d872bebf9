package kernels

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// registry holds the backends compiled in under build tags. It is the
// package's only mutable state.
var registry = struct {
	mu    sync.Mutex
	opens map[string]func() (Backend, error)
	// fallback makes Open("auto") report falling back to the CPU only once
	// per process; a pointer so tests can reset it.
	fallback *sync.Once
}{fallback: new(sync.Once)}

// Register makes a backend available to Open under name. It is meant to be
// called from the init function of a backend package built under a tag
// (kernels/cuda registers "cuda"). It panics if name is empty, reserved
// ("auto", "cpu") or already registered, or if open is nil.
func Register(name string, open func() (Backend, error)) {
	if name == "" || name == "auto" || name == "cpu" {
		panic(fmt.Sprintf("kernels: Register: reserved backend name %q", name))
	}
	if open == nil {
		panic(fmt.Sprintf("kernels: Register %q: nil open function", name))
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if _, dup := registry.opens[name]; dup {
		panic(fmt.Sprintf("kernels: Register: backend %q registered twice", name))
	}
	if registry.opens == nil {
		registry.opens = make(map[string]func() (Backend, error))
	}
	registry.opens[name] = open
}

// errNoCUDA is returned by Open("cuda") in builds without the cuda tag.
var errNoCUDA = errors.New("cuda backend not compiled in (build with -tags metaids_cuda)")

// Open returns the backend called name:
//
//   - "cpu": the plain-Go backend; never fails.
//   - "cuda": the GPU backend; fails if it is not compiled in or cannot start.
//   - "auto": cuda when it is compiled in and starts, else cpu. The reason
//     for falling back is passed to log (which may be nil) once per process.
//
// Any other registered backend may also be opened by its name.
func Open(name string, log func(msg string)) (Backend, error) {
	switch name {
	case "cpu":
		return NewCPU(), nil
	case "auto":
		b, err := openRegistered("cuda")
		if err == nil {
			return b, nil
		}
		if log != nil {
			registry.mu.Lock()
			once := registry.fallback
			registry.mu.Unlock()
			once.Do(func() { log("kernels: cuda unavailable, using cpu: " + err.Error()) })
		}
		return NewCPU(), nil
	}
	if _, ok := lookup(name); !ok && name != "cuda" {
		return nil, fmt.Errorf("kernels: unknown backend %q (valid: %s)", name, strings.Join(validNames(), ", "))
	}
	b, err := openRegistered(name)
	if err != nil && err != errNoCUDA {
		return nil, fmt.Errorf("kernels: open %s backend: %w", name, err)
	}
	return b, err
}

// openRegistered opens a registered backend, returning its open's error
// unwrapped, or errNoCUDA for an unregistered "cuda".
func openRegistered(name string) (Backend, error) {
	open, ok := lookup(name)
	if !ok {
		if name == "cuda" {
			return nil, errNoCUDA
		}
		return nil, fmt.Errorf("backend %q not registered", name)
	}
	b, err := open()
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("open returned no backend")
	}
	return b, nil
}

func lookup(name string) (func() (Backend, error), bool) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	open, ok := registry.opens[name]
	return open, ok
}

// Compiled reports whether a backend is available to Open by name in this
// build: cpu always, another when its package is compiled in (cuda under
// the metaids_cuda tag). Whether its device works is Open's to find out.
func Compiled(name string) bool {
	if name == "cpu" {
		return true
	}
	_, ok := lookup(name)
	return ok
}

// validNames lists the names Open accepts: the fixed ones, then any other
// registered backends in order.
func validNames() []string {
	names := []string{"auto", "cpu", "cuda"}
	registry.mu.Lock()
	for n := range registry.opens {
		if n != "cuda" {
			names = append(names, n)
		}
	}
	registry.mu.Unlock()
	sort.Strings(names[3:])
	return names
}
