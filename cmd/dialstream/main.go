// Command dialstream runs Dialstream's services:
//
//	dialstream dev        the whole pipeline in one process on embedded defaults
//	dialstream ingest     the HTTP API (POST /v1/api/call)
//	dialstream dialer     places calls through LiveKit
//	dialstream notifier   delivers call events to callback_url
//	dialstream recorder   keeps the call records the API reads (DATABASE_URL)
//	dialstream records    purges a workspace's call records (records purge --workspace ID)
//	dialstream agent      the reference AI agent (a LiveKit agent worker)
//	dialstream broker     the embedded Kafka-protocol broker (franz-go kfake)
//	dialstream phonesim   a simulated phone network for a local LiveKit
//	dialstream topics     applies the topic spec (apply|plan|wait|spec)
//	dialstream redis      an in-process Redis (miniredis) for a local LiveKit
//	dialstream receiver   a recording webhook receiver that checks signatures
//	dialstream probe      an HTTP health probe for images without a shell
//	dialstream hash-key   prints the registry digest of an API key
//	dialstream campaign   creates, watches and controls campaigns over the API
//	dialstream tail       prints a workspace's call events as they happen
//
// Every service reads its configuration from the environment (see README);
// campaign and tail are API clients (DIALSTREAM_API_URL, DIALSTREAM_API_KEY,
// DIALSTREAM_WORKSPACE).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
	// envOnly marks a command configured by the environment alone: it
	// takes no arguments, and refuses any rather than start with settings
	// the user did not mean (`dialstream broker -h` once started a broker).
	envOnly bool
}

var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dialstream:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: dialstream <command> (run `dialstream help`)")

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		usage()
		return errUsage
	}
	if isHelp(args[0]) {
		usage()
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage()
		return fmt.Errorf("unknown command %q", args[0])
	}
	if c.envOnly && len(args) > 1 {
		if isHelp(args[1]) {
			fmt.Fprintf(os.Stderr, "dialstream %s: %s\n\nIt takes no arguments: its settings come from the environment (README, \"Configuration\").\n", args[0], c.summary)
			return nil
		}
		return fmt.Errorf("%s takes no arguments, got %q: its settings come from the environment (README, \"Configuration\")", args[0], args[1:])
	}
	return c.run(ctx, args[1:])
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: dialstream <command>\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}
