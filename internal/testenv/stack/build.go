package stack

import (
	"path/filepath"

	"starling.dev/starling/internal/testenv"
)

// buildBinaries builds cmd/gateway and cmd/api into dir/bin, as "gateway"
// and "api", and returns that folder. It runs from the current folder, which
// must lie inside the module (tests, the bench and make run all do).
func buildBinaries(t testenv.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	testenv.GoBuild(t, bin, "starling.dev/starling/cmd/gateway", "starling.dev/starling/cmd/api")
	return bin
}
