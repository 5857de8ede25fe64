// Package app wires Starling's packages into the two processes. The mains in
// cmd/api and cmd/gateway only read configuration and call RunAPI or
// RunGateway; tests call the same functions, so what they test is what runs.
package app
