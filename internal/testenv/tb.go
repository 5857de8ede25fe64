package testenv

// TB is the part of testing.TB the environment uses. Tests pass their
// *testing.T or *testing.B; the benchmark tool passes its own, so that it
// starts the very same servers.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}
