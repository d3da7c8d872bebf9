//go:build !unix

package progress

import "os"

// columns is the width of the terminal f, or 0 when it cannot be told.
func columns(*os.File) int { return 0 }
