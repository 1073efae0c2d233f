// Command bot is rebootbot: a Slack bot that reboots Tencent Cloud CVM
// instances once the policy's approvals are in. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"rebootbot/cloud/emulator"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// memoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT sets
// another: with a hundred requests of a hundred instances in flight the
// garbage collector would otherwise let the heap grow to twice what is
// live, while it can keep the bot in a small container's memory. What is
// live peaks at about 14 MiB there, so 32 MiB leaves the collector room
// to run no more often than it would anyway; what the runtime takes
// beyond the heap (stacks, its own tables) counts within it.
const memoryLimit = 32 << 20

// gcPercent is the garbage collector's GOGC unless GOGC sets another. The
// bot's heap is small between bursts, so at Go's default of 100 a burst of
// clicks ran a collection every 50–100 ms, each taking CPU from the
// answers; at 400 the heap grows to five times what is live before a
// collection, and the memory limit above still caps it.
const gcPercent = 400

func main() {
	// The limits are the bot's. The other commands keep Go's defaults:
	// bot bench holds every message and call of its Slack stand-in, and
	// collecting under the bot's limit would take the CPU it measures the
	// bot on.
	if len(os.Args) < 2 || os.Args[1] == "serve" {
		if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
			debug.SetMemoryLimit(memoryLimit)
		}
		if _, set := os.LookupEnv("GOGC"); !set {
			debug.SetGCPercent(gcPercent)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			if exit.Msg != "" {
				fmt.Fprintln(os.Stderr, exit.Msg)
			}
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "bot:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only supplies the process's context,
// arguments, environment and streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", []string(nil)
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return demo(ctx, rest, stdout, stderr)
	case "slack-standin":
		return slackStandin(ctx, rest, stdout)
	case "emulator":
		err := emulator.Command(ctx, rest, stdout, stderr)
		if ue, ok := errors.AsType[*emulator.UsageError](err); ok {
			return usageError("bot emulator", ue.Err)
		}
		return err
	case "bench":
		return benchCommand(ctx, rest, stdout, stderr)
	case "audit":
		return audit(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-v":
		if ok, err := noFlags("bot version", rest, versionHelp, stdout); !ok {
			return err
		}
		fmt.Fprintln(stdout, "rebootbot", version)
		return nil
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if strings.HasPrefix(cmd, "-") {
		return usageError("bot", unknownFlag(cmd))
	}
	return usageError("bot", fmt.Errorf("unknown command %q", cmd))
}
