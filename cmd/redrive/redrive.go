package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/internal/queues"
	"github.com/sluice-dev/sluice/internal/redelivery"
)

// Labels for the poison messages that carry no reason of their own.
const (
	// Unreasoned is a bare copy of the original message, put in the poison queue by the
	// host after maxDequeueCount failed deliveries (for example while the handler kept
	// crashing), not by the handler.
	Unreasoned = "(no reason)"
	// Undecodable is a message that is not base64, which the host poisons without ever
	// invoking a function. Sending it back would only poison it again.
	Undecodable = "(not base64)"
)

// Options says what to move and how.
type Options struct {
	From, To string
	// Reasons limits the move to poison messages with one of these reasons; empty
	// means every reason.
	Reasons []string
	// IncludeUnreasoned also moves the host's bare copies.
	IncludeUnreasoned bool
	// Max stops after this many messages are moved; 0 means no limit.
	Max int
	// DryRun counts what would be moved and moves nothing.
	DryRun bool
	// Visibility is how long a message taken from the poison queue stays hidden while it
	// is handled; if the run dies, the message reappears after it, untouched.
	Visibility time.Duration
	Logger     *slog.Logger

	// afterEnqueue runs between the enqueue to To and the delete from From. A non-nil
	// error ends the run on the spot, as if the process died there; tests use it.
	afterEnqueue func(n int) error
}

// Report counts what a run did.
type Report struct {
	Moved       map[string]int // by reason; in a dry run, what would be moved
	Skipped     map[string]int // by reason, left in the poison queue
	Failed      int            // could not be enqueued; left in the poison queue
	Duplicated  int            // enqueued, but could not be deleted from the poison queue
	Interrupted bool           // the run was stopped before the poison queue was empty
	Missing     bool           // the poison queue does not exist
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// message is a poison message as found, with what would be sent back.
type message struct {
	id, popReceipt, raw string
	reason              string
	original            string // the text to enqueue again; unset for Undecodable
}

// poisonRecord is what the handler writes to a poison queue (queues.PoisonMessage);
// pointers tell a missing member from an empty one.
type poisonRecord struct {
	Reason     *string `json:"reason"`
	Function   *string `json:"function"`
	PoisonedAt *string `json:"poisonedAt"`
	Message    *string `json:"message"`
}

// classify reads a poison message. A message written by the handler is a JSON record
// with reason, function, poisonedAt and the original text in message; anything else
// that is base64 is a bare copy of the original.
func classify(raw string) message {
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		return message{raw: raw, reason: Undecodable}
	}
	var rec poisonRecord
	if json.Unmarshal(decoded, &rec) == nil && rec.Reason != nil && *rec.Reason != "" &&
		rec.Function != nil && rec.PoisonedAt != nil && rec.Message != nil {
		return message{raw: raw, reason: *rec.Reason, original: resetState(*rec.Message)}
	}
	return message{raw: raw, reason: Unreasoned, original: resetState(string(decoded))}
}

// resetState removes a message's deferral history, so that it starts a fresh attempt
// budget and retry horizon. Text that is not a JSON object, or has no history, is
// returned as it is.
func resetState(text string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &m) != nil || m == nil {
		return text
	}
	if _, ok := m[redelivery.StateField]; !ok {
		return text
	}
	delete(m, redelivery.StateField)
	b, err := json.Marshal(m)
	if err != nil {
		return text
	}
	return string(b)
}

func (o *Options) wants(m message) bool {
	switch m.reason {
	case Undecodable:
		return false
	case Unreasoned:
		return o.IncludeUnreasoned
	}
	return len(o.Reasons) == 0 || slices.Contains(o.Reasons, m.reason)
}

// writeTimeout bounds each write once a message's move has begun; the move is finished
// even after an interrupt, so that an interrupt never leaves a duplicate.
const writeTimeout = 30 * time.Second

// Redrive moves messages from o.From to o.To: for each one it enqueues the original to
// o.To first and only then deletes it from o.From, with the pop receipt of its dequeue.
// A crash between the two leaves the message in both queues (at least once, never lost);
// the process function is idempotent, so the copy does no harm. Messages it leaves (other
// reasons, a dry run) are made visible again at the end; if the run dies first, they
// reappear after o.Visibility.
func Redrive(ctx context.Context, q *queues.Client, o Options) (*Report, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Visibility < time.Second {
		o.Visibility = time.Second
	}
	from := q.Service().NewQueueClient(o.From)
	rep := &Report{Moved: map[string]int{}, Skipped: map[string]int{}}
	held := map[string]message{} // dequeued and to be made visible again, by id
	seen := map[string]bool{}    // ids already counted
	defer func() {
		// Detached: an interrupt must still release what the run holds.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		for _, m := range held {
			if _, err := from.UpdateMessage(rctx, m.id, m.popReceipt, m.raw, &azqueue.UpdateMessageOptions{VisibilityTimeout: new(int32(0))}); err != nil {
				o.Logger.Warn("could not make a message visible again; it reappears by itself", "message_id", m.id, "after", o.Visibility.String(), "err", err)
			}
		}
	}()
	hold := func(ms ...message) {
		for _, m := range ms {
			held[m.id] = m
		}
	}

	handled := 0 // moved, or counted as movable in a dry run
	for o.Max == 0 || handled < o.Max {
		if ctx.Err() != nil {
			rep.Interrupted = true
			return rep, nil
		}
		batch, err := o.dequeue(ctx, from, handled)
		if err != nil {
			var re *azcore.ResponseError
			switch {
			case errors.As(err, &re) && re.ErrorCode == "QueueNotFound":
				rep.Missing = true
				return rep, nil
			case ctx.Err() != nil:
				rep.Interrupted = true
				return rep, nil
			}
			return rep, fmt.Errorf("reading %s: %w", o.From, err)
		}
		if !slices.ContainsFunc(batch, func(m message) bool { return !seen[m.id] }) {
			// Nothing new: the queue is empty, or all that is visible was skipped
			// earlier and has reappeared since.
			hold(batch...)
			return rep, nil
		}
		for i, m := range batch {
			if ctx.Err() != nil || (o.Max > 0 && handled >= o.Max) {
				hold(batch[i:]...)
				break
			}
			first := !seen[m.id]
			seen[m.id] = true
			switch {
			case !o.wants(m):
				hold(m)
				if first {
					rep.Skipped[m.reason]++
				}
			case o.DryRun:
				hold(m)
				if first {
					rep.Moved[m.reason]++
					handled++
				}
			default:
				ok, err := o.move(ctx, q, from, m, handled+1, rep)
				if err != nil {
					clear(held) // as if the process died here: nothing more is done
					return rep, err
				}
				if !ok {
					hold(m)
				}
				handled++
			}
		}
	}
	return rep, nil
}

// dequeue takes up to 32 messages from the poison queue, hidden for o.Visibility, but no
// more than Max still allows.
func (o *Options) dequeue(ctx context.Context, from *azqueue.QueueClient, handled int) ([]message, error) {
	n := int32(32)
	if o.Max > 0 {
		n = int32(min(32, o.Max-handled))
	}
	secs := int32(o.Visibility.Round(time.Second) / time.Second)
	resp, err := from.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &secs})
	if err != nil {
		return nil, err
	}
	batch := make([]message, 0, len(resp.Messages))
	for _, dm := range resp.Messages {
		m := classify(deref(dm.MessageText))
		m.id, m.popReceipt = deref(dm.MessageID), deref(dm.PopReceipt)
		batch = append(batch, m)
	}
	return batch, nil
}

// move enqueues m's original to To, then deletes m from From; ok is false when the
// enqueue failed and m is still in the poison queue, to be released. Failures are counted
// in rep and logged; only the test hook's error is returned.
func (o *Options) move(ctx context.Context, q *queues.Client, from *azqueue.QueueClient, m message, n int, rep *Report) (ok bool, err error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := q.Send(wctx, o.To, []byte(m.original), 0); err != nil {
		rep.Failed++
		o.Logger.Error("could not enqueue; the message stays in the poison queue", "message_id", m.id, "reason", m.reason, "err", err)
		return false, nil
	}
	if o.afterEnqueue != nil {
		if err := o.afterEnqueue(n); err != nil {
			return true, err
		}
	}
	if _, err := from.DeleteMessage(wctx, m.id, m.popReceipt, nil); err != nil {
		rep.Duplicated++
		o.Logger.Error("enqueued but not deleted from the poison queue: it is now in both", "message_id", m.id, "reason", m.reason, "err", err)
		return true, nil
	}
	rep.Moved[m.reason]++
	o.Logger.Debug("moved", "message_id", m.id, "reason", m.reason)
	return true, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// summary renders counts by reason, most first.
func summary(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
