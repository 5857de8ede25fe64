package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// row is one fault in one phase.
type row struct {
	fault Fault
	phase Phase
}

// form is the suite's size: the short form runs in `make test`, the long
// one (STARLING_CHAOS=long) in `make chaos`.
type form struct {
	servers   []string
	followers int
	rows      []row
	// concurrent runs the rows at once: most of a row's time is a wait
	// (JetStream's ack wait after a gateway dies), not work.
	concurrent bool
}

func suiteForm() form {
	if os.Getenv("STARLING_CHAOS") == "long" {
		var rows []row
		for _, f := range Faults {
			for _, ph := range []Phase{PhaseFanout, PhaseSend} {
				rows = append(rows, row{f, ph})
			}
		}
		return form{servers: []string{"prosody", "ejabberd"}, followers: 20_000, rows: rows}
	}
	// Each fault once, in the phase where the issue found it harmful.
	short := map[string]Phase{
		"kill9": PhaseFanout, "sigterm": PhaseSend, "xmpp-restart": PhaseSend,
		"redis-restart": PhaseFanout, "redis-pause": PhaseSend, "nats-restart": PhaseFanout,
	}
	var rows []row
	for _, f := range Faults {
		rows = append(rows, row{f, short[f.Name]})
	}
	return form{servers: []string{"prosody"}, followers: 5_000, rows: rows, concurrent: true}
}

var reportMu sync.Mutex

// report appends the row to the file named by STARLING_CHAOS_REPORT (JSON
// lines), from which docs/RELIABILITY.md's table is written.
func report(t *testing.T, res Result) {
	path := os.Getenv("STARLING_CHAOS_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	b, _ := json.Marshal(res)
	fmt.Fprintf(f, "%s\n", b)
}

// TestChaos injects each fault in each phase, one row per subtest:
// TestChaos/<server>/<fault>-<phase>. A row passes when the fault landed in
// the stage it was meant for and no follower of the original set lost the
// post; duplicates and stalls are reported, not asserted.
func TestChaos(t *testing.T) {
	fm := suiteForm()
	for _, server := range fm.servers {
		t.Run(server, func(t *testing.T) {
			var wg sync.WaitGroup
			for _, rw := range fm.rows {
				one := func() {
					t.Run(rw.fault.Name+"-"+string(rw.phase), func(t *testing.T) {
						runRow(t, Config{Server: server, Followers: fm.followers, Fault: rw.fault, Phase: rw.phase})
					})
				}
				if !fm.concurrent {
					one()
					continue
				}
				// Not t.Parallel, which `go test` caps at GOMAXPROCS (2 here).
				wg.Add(1)
				go func() {
					defer wg.Done()
					one()
				}()
			}
			wg.Wait()
		})
	}
}

// landingAttempts is how many fresh systems a row may take for its fault to
// land in the stage it is meant for. A small fanout (the short form's 5,000
// followers are 10 batches) can finish between two looks of the harness;
// such a run shows nothing about the fanout stage, so it is run again
// rather than counted. Its losses, if any, still fail the row.
const landingAttempts = 3

func runRow(t *testing.T, cfg Config) {
	for attempt := 1; ; attempt++ {
		res := Execute(t, cfg)
		report(t, res)
		t.Logf("attempt %d: %s %s-%s: delivered %d/%d, lost %d, duplicates %d, longest stall %s, first after %s, took %s, drained %v; follows %d (%d failed, %d served), presences %d",
			attempt, cfg.Server, cfg.Fault.Name, cfg.Phase, res.Delivered, res.Followers, res.Lost, res.Duplicates,
			res.LongestStall.Round(time.Millisecond), res.FirstAfter.Round(time.Millisecond), res.Took.Round(time.Millisecond), res.Drained,
			res.Follows, res.FollowErrors, res.LateServed, res.Presences)
		t.Logf("landed %v: %s", res.Landed, res.Evidence)
		t.Logf("notes: %s", strings.Join(res.Notes, "; "))
		if res.Lost != 0 {
			t.Errorf("%d of %d followers never got the post", res.Lost, res.Followers)
		}
		if res.Landed {
			return
		}
		if attempt == landingAttempts {
			t.Errorf("the fault did not land in the %s stage in %d attempts: %s", cfg.Phase, attempt, res.Evidence)
			return
		}
		t.Logf("the fault did not land in the %s stage; running the row again on a fresh system", cfg.Phase)
	}
}
