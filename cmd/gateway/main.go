// Command starling-gateway is Starling's delivery side: the XEP-0114
// component, the fanout and send stages, and (by default) an embedded NATS
// server with JetStream. Configuration: flags or STARLING_* variables (see
// docs/ARCHITECTURE.md); the component secret comes only from the environment.
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
	cfg, err := app.ParseGateway(os.Args[1:], os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starling-gateway:", err)
		os.Exit(2)
	}
	log := app.NewLogger(cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunGateway(ctx, cfg, log, app.GatewayHooks{}); err != nil {
		log.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}
