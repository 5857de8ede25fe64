// Command starling-api is Starling's HTTP API: accounts and posts, published
// durably to NATS JetStream. Configuration: flags or STARLING_* variables
// (see docs/ARCHITECTURE.md); the admin token comes only from the environment.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"starling.dev/starling/internal/app"
)

func main() {
	cfg, err := app.ParseAPI(os.Args[1:], os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling-api:", err)
		os.Exit(2)
	}
	log := app.NewLogger(cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunAPI(ctx, cfg, log, app.APIHooks{}); err != nil {
		log.Error("api failed", "err", err)
		os.Exit(1)
	}
}
