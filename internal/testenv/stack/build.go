package stack

import (
	"os"
	"os/exec"
	"path/filepath"

	"starling.dev/starling/internal/testenv"
)

// buildBinaries builds cmd/gateway and cmd/api into dir/bin, as "gateway"
// and "api", and returns that folder. It runs from the current folder, which
// must lie inside the module (tests, the bench and make run all do).
func buildBinaries(t testenv.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goTool, "build", "-o", bin+string(filepath.Separator),
		"starling.dev/starling/cmd/gateway", "starling.dev/starling/cmd/api")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build ./cmd/gateway ./cmd/api: %v\n%s", err, out)
	}
	return bin
}
