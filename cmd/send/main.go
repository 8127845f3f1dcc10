// Command send puts one message on a queue of the app, encoded the way the Functions host
// reads it (base64, as host.json's messageEncoding says), so a queue-triggered function
// can be tried without other tools:
//
//	go run ./cmd/send -queue audit-events '{"event":"login"}'
//	echo '{"id":"o-9","customerId":"c-1","items":[]}' | go run ./cmd/send -queue orders
//
// It finds the storage account as the app does (AzureWebJobsStorage in the environment,
// else local.settings.json, else the sample) and, like redrive, refuses an account other
// than the local emulator unless -account names it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/queues"
)

// maxMessageBytes is what fits in a Storage queue message (64 KiB) once base64 has grown
// it by a third.
const maxMessageBytes = 48 * 1024

func main() {
	queue := flag.String("queue", "orders", "queue to put the message on")
	confirmed := flag.String("account", "", "storage account to allow when it is not the local emulator")
	root := flag.String("root", ".", "folder holding local.settings.json")
	delay := flag.Duration("delay", 0, "keep the message invisible this long")
	flag.Parse()
	if err := run(*root, *queue, *confirmed, *delay, flag.Args(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		os.Exit(1)
	}
}

func run(root, queue, confirmed string, delay time.Duration, args []string, stdin io.Reader, out io.Writer) error {
	var text string
	switch len(args) {
	case 0:
		b, err := io.ReadAll(io.LimitReader(stdin, maxMessageBytes+1))
		if err != nil {
			return err
		}
		text = strings.TrimRight(string(b), "\r\n")
	case 1:
		text = args[0]
	default:
		return errors.New("give the message as one argument, or on standard input")
	}
	if text == "" {
		return errors.New("the message is empty")
	}
	if len(text) > maxMessageBytes {
		return fmt.Errorf("the message is over %d bytes, more than a queue message holds once encoded", maxMessageBytes)
	}
	settings, source, err := queues.FromSettings(root, os.LookupEnv)
	if err != nil {
		return err
	}
	acct, err := queues.CheckAccount(settings, confirmed)
	if err != nil {
		return err
	}
	client, err := queues.New(settings)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Send(ctx, queue, []byte(text), delay); err != nil {
		return fmt.Errorf("queue %s on %s: %w", queue, acct, err)
	}
	fmt.Fprintf(out, "sent %d bytes to queue %s on storage account %s (settings from %s)\n", len(text), queue, acct, source)
	return nil
}
