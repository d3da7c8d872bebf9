package train

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"
)

// FuzzLoad: any bytes given to Load or LoadClassifier give a model or an
// error wrapping ErrCheckpoint, never a panic, and allocate no more than the
// memory check allows (the machine taken to have 16 MiB, and the check's
// floor a sixteenth of what is allocated at most). Each input is tried as
// it is and with its checksum made right, so that mutations reach the header
// and payload checks; a checkpoint that loads saves to bytes that load again.
func FuzzLoad(f *testing.F) {
	save := func(write func(*bytes.Buffer) error) []byte {
		var buf bytes.Buffer
		if err := write(&buf); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	extra := map[string][]byte{"encoder": []byte(`{"dim":4}`), "spec": []byte("x")}
	for _, algo := range []string{"protonet", "maml"} {
		l := mustNew(f, tinyConfig(algo, "relu", 1), tiny)
		f.Add(save(func(b *bytes.Buffer) error { return l.SaveCheckpoint(b, extra) }))
	}
	cfg := DefaultClassifierConfig()
	cfg.Hidden, cfg.BatchSize = []int{3}, 4
	c := mustClassifier(f, cfg, 4, 2)
	f.Add(save(func(b *bytes.Buffer) error { return c.Save(b, extra) }))

	f.Fuzz(func(t *testing.T, data []byte) {
		fixed := bytes.Clone(data)
		if len(fixed) >= 4 {
			body := fixed[:len(fixed)-4]
			binary.LittleEndian.PutUint32(fixed[len(body):], crc32.ChecksumIEEE(body))
		}
		const memory = 16 << 20
		for _, in := range [][]byte{data, fixed} {
			var before, after runtime.MemStats
			var l Learner
			var c *Classifier
			var err, cerr error
			withMemory(memory, func() {
				runtime.ReadMemStats(&before)
				l, _, err = Load(bytes.NewReader(in), nil)
				c, _, cerr = LoadClassifier(bytes.NewReader(in), nil)
				runtime.ReadMemStats(&after)
			})
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16*memory+64*uint64(len(in)) {
				t.Fatalf("a %d-byte checkpoint allocated %d bytes", len(in), grew)
			}
			for _, err := range []error{err, cerr} {
				if err != nil && !errors.Is(err, ErrCheckpoint) {
					t.Fatalf("error does not wrap ErrCheckpoint: %v", err)
				}
			}
			if err == nil {
				var buf bytes.Buffer
				if err := l.SaveCheckpoint(&buf, nil); err != nil {
					t.Fatal(err)
				}
				if _, _, err := Load(&buf, nil); err != nil {
					t.Fatalf("a loaded checkpoint saved again does not load: %v", err)
				}
			}
			if cerr == nil {
				var buf bytes.Buffer
				if err := c.Save(&buf, nil); err != nil {
					t.Fatal(err)
				}
				if _, _, err := LoadClassifier(&buf, nil); err != nil {
					t.Fatalf("a loaded classifier saved again does not load: %v", err)
				}
			}
		}
	})
}
