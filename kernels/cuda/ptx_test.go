package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readSource returns kernels.cu. go test runs in the package directory; a
// compiled test binary run from elsewhere (on a GPU machine) skips the
// source checks, which the build machine has made.
func readSource(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("kernels.cu")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("kernels.cu is not in the working directory: run in kernels/cuda to check the PTX against it")
	}
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestPTXFresh fails when kernels.cu changed after kernels.ptx was generated
// from it: the committed PTX, which is what runs, would be stale.
func TestPTXFresh(t *testing.T) {
	src := readSource(t)
	sum := sha256.Sum256(src)
	got := hex.EncodeToString(sum[:])
	if want := SourceSum(); got != want {
		t.Fatalf("kernels.ptx is older than kernels.cu: run make kernels (scripts/cuda-check.sh ptx)\n"+
			"kernels.cu sha256 %s, kernels.ptx.sha256 records %s", got, want)
	}
	if !strings.HasSuffix(strings.TrimSpace(ptxSum), "  kernels.cu") {
		t.Errorf("kernels.ptx.sha256 = %q, want sha256sum's line for kernels.cu", ptxSum)
	}
}

// TestPTXTarget checks the PTX is for the ISA and architecture the backend
// requires of the driver and device.
func TestPTXTarget(t *testing.T) {
	for _, want := range []string{"\n.version 7.8\n", "\n.target sm_80\n", "\n.address_size 64\n"} {
		if !strings.Contains(PTX, want) {
			t.Errorf("kernels.ptx lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestKernelNames checks that kernelNames lists exactly the kernels of
// kernels.cu, and that each is an entry point of the PTX.
func TestKernelNames(t *testing.T) {
	src := readSource(t)
	var inSource []string
	for _, m := range regexp.MustCompile(`extern "C" __global__ void (\w+)\(`).FindAllStringSubmatch(string(src), -1) {
		inSource = append(inSource, m[1])
	}
	names := kernelNames[:]
	if !slices.Equal(slices.Sorted(slices.Values(inSource)), slices.Sorted(slices.Values(names))) {
		t.Errorf("kernels.cu defines %v, kernelNames lists %v", inSource, names)
	}
	for k, name := range names {
		if name == "" {
			t.Errorf("kernel %d has no name", k)
		}
		if !strings.Contains(PTX, ".entry "+name+"(") {
			t.Errorf("kernels.ptx has no entry %s", name)
		}
	}
}
