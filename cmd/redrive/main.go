// Command redrive moves poisoned messages back to the queue they came from, once the
// cause is fixed: by default every message in orders-poison that the handler poisoned
// with a reason goes back to orders, with its deferral history reset so it gets a fresh
// attempt budget.
//
// Usage:
//
//	go run ./cmd/redrive [-from orders-poison] [-to orders] [-reason r1,r2]
//	    [-include-unreasoned] [-max N] [-dry-run] [-account NAME]
//
// The queue connection is AzureWebJobsStorage from the environment, else from
// local.settings.json, else from local.settings.sample.json. Any account but the local
// emulator is refused unless -account names it.
//
// Nothing is lost if the run is interrupted: each message is enqueued to the target
// before it is deleted from the poison queue. Ctrl-C lets the message in hand finish;
// a crash between the two steps leaves one message in both queues, which the idempotent
// process function absorbs. Messages the run takes but does not move are hidden for
// -visibility and made visible again at the end, or by themselves after it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/queues"
)

func main() {
	var o Options
	flag.StringVar(&o.From, "from", "orders-poison", "poison queue to read")
	flag.StringVar(&o.To, "to", "", "queue to move messages to (default: -from without -poison)")
	reasons := flag.String("reason", "", "comma-separated reasons to move (default: every reason)")
	flag.BoolVar(&o.IncludeUnreasoned, "include-unreasoned", false, "also move the host's bare copies, which carry no reason")
	flag.IntVar(&o.Max, "max", 0, "move at most this many messages (0: no limit)")
	flag.BoolVar(&o.DryRun, "dry-run", false, "count what would be moved, move nothing")
	confirmed := flag.String("account", "", "storage account to allow when it is not the local emulator")
	flag.DurationVar(&o.Visibility, "visibility", 5*time.Minute, "how long a message being handled stays hidden in the poison queue")
	root := flag.String("root", ".", "folder holding local.settings.json")
	verbose := flag.Bool("v", false, "log every message moved")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q; every option is a flag (see -h)", flag.Args()))
	}
	for r := range strings.SplitSeq(*reasons, ",") {
		if r = strings.TrimSpace(r); r != "" {
			o.Reasons = append(o.Reasons, r)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, *root, *confirmed, o, os.LookupEnv, os.Stdout)
	if err != nil {
		fail(err)
	}
	if rep.Failed+rep.Duplicated > 0 || rep.Interrupted {
		os.Exit(1)
	}
}

// queueNameRE is Storage's rule for queue names, less the length.
var queueNameRE = regexp.MustCompile(`^[a-z0-9](-?[a-z0-9])+$`)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "redrive:", err)
	os.Exit(1)
}

// run checks the options and the account, moves the messages and prints the report.
func run(ctx context.Context, root, confirmed string, o Options, getenv func(string) (string, bool), out io.Writer) (*Report, error) {
	if o.To == "" {
		to, ok := strings.CutSuffix(o.From, queues.PoisonSuffix)
		if !ok || to == "" {
			return nil, fmt.Errorf("-from %s is not a poison queue (<queue>%s); give -to", o.From, queues.PoisonSuffix)
		}
		o.To = to
	}
	if o.To == o.From {
		return nil, errors.New("-to is the same queue as -from")
	}
	for _, q := range []string{o.From, o.To} {
		if len(q) < 3 || len(q) > 63 || !queueNameRE.MatchString(q) {
			return nil, fmt.Errorf("%q is not a queue name: 3 to 63 lower-case letters, digits and single hyphens", q)
		}
	}
	if o.Max < 0 {
		return nil, errors.New("-max must not be negative")
	}
	settings, source, err := queues.FromSettings(root, getenv)
	if err != nil {
		return nil, err
	}
	acct, err := queues.CheckAccount(settings, confirmed)
	if err != nil {
		return nil, err
	}
	q, err := queues.New(settings)
	if err != nil {
		return nil, err
	}
	mode := ""
	if o.DryRun {
		mode = " (dry run: nothing is moved)"
	}
	fmt.Fprintf(out, "redrive %s → %s on storage account %s, from %s%s\n", o.From, o.To, acct, source, mode)
	rep, err := Redrive(ctx, q, o)
	if rep != nil {
		rep.print(out, o)
	}
	return rep, err
}

func (r *Report) print(w io.Writer, o Options) {
	if r.Missing {
		fmt.Fprintf(w, "queue %s does not exist: nothing to move\n", o.From)
		return
	}
	verb := "moved"
	if o.DryRun {
		verb = "would move"
	}
	line := func(label string, m map[string]int) {
		if n := total(m); n == 0 {
			fmt.Fprintf(w, "%s 0\n", label)
		} else {
			fmt.Fprintf(w, "%s %d: %s\n", label, n, summary(m))
		}
	}
	line(verb, r.Moved)
	line("left in "+o.From, r.Skipped)
	if r.Skipped[Unreasoned] > 0 && !o.IncludeUnreasoned {
		fmt.Fprintf(w, "  %s: bare copies the host poisoned; add -include-unreasoned to move them\n", Unreasoned)
	}
	if r.Skipped[Undecodable] > 0 {
		fmt.Fprintf(w, "  %s: the host cannot decode these; they are never moved\n", Undecodable)
	}
	if r.Failed > 0 {
		fmt.Fprintf(w, "failed %d: not enqueued, still in %s (see the log)\n", r.Failed, o.From)
	}
	if r.Duplicated > 0 {
		fmt.Fprintf(w, "in both queues %d: enqueued to %s but not deleted from %s (see the log)\n", r.Duplicated, o.To, o.From)
	}
	if r.Interrupted {
		fmt.Fprintf(w, "interrupted: run it again to move the rest\n")
	}
}
