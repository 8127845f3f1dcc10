package funchost

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
)

// The listener receives messages with a 10-minute visibility and renews it at half that
// while the function runs, so a crashed host's messages come back after 10 minutes.
const (
	receiveVisibility = 10 * time.Minute
	minPollInterval   = 100 * time.Millisecond
)

// developmentStorage is what UseDevelopmentStorage=true stands for: Azurite's well-known
// account on its default loopback ports.
const developmentStorage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
	"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
	"QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"

// queueClients resolves binding connections to queue clients, one service client per
// connection setting, and remembers which queues it has created.
type queueClients struct {
	env     map[string]string
	mu      sync.Mutex
	svcs    map[string]*azqueue.ServiceClient
	created map[string]bool
}

// connectionString resolves a binding's connection name the way the host does: the
// setting itself, else the setting with the AzureWebJobs prefix; empty means
// AzureWebJobsStorage.
func (c *queueClients) connectionString(name string) (string, error) {
	if name == "" {
		name = "AzureWebJobsStorage"
	}
	for _, k := range []string{name, "AzureWebJobs" + name} {
		if v := strings.TrimSpace(c.env[k]); v != "" {
			if strings.EqualFold(strings.TrimSuffix(v, ";"), "UseDevelopmentStorage=true") {
				return developmentStorage, nil
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("the connection setting %q is not set (identity-based connections are not imitated)", name)
}

func (c *queueClients) service(conn string) (*azqueue.ServiceClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.svcs[conn]; ok {
		return s, nil
	}
	cs, err := c.connectionString(conn)
	if err != nil {
		return nil, err
	}
	s, err := azqueue.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", conn, err)
	}
	c.svcs[conn] = s
	return s, nil
}

func (c *queueClients) queue(conn, name string) (*azqueue.QueueClient, error) {
	s, err := c.service(conn)
	if err != nil {
		return nil, err
	}
	return s.NewQueueClient(name), nil
}

// ensure creates a queue once, as the output binding and the poison path do.
func (c *queueClients) ensure(ctx context.Context, conn, name string) (*azqueue.QueueClient, error) {
	q, err := c.queue(conn, name)
	if err != nil {
		return nil, err
	}
	key := conn + "\x00" + name
	c.mu.Lock()
	done := c.created[key]
	c.mu.Unlock()
	if done {
		return q, nil
	}
	if _, err := q.Create(ctx, nil); err != nil && !isCode(err, "QueueAlreadyExists") {
		return nil, err
	}
	c.mu.Lock()
	c.created[key] = true
	c.mu.Unlock()
	return q, nil
}

// send writes one message as the queue extension does, base64-encoded unless
// messageEncoding is none.
func (c *queueClients) send(ctx context.Context, conn, name string, body []byte, encode bool) error {
	q, err := c.ensure(ctx, conn, name)
	if err != nil {
		return err
	}
	text := string(body)
	if encode {
		text = base64.StdEncoding.EncodeToString(body)
	}
	_, err = q.EnqueueMessage(ctx, text, nil)
	return err
}

func isCode(err error, code string) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == code
}

func (h *Host) startQueues() error {
	h.queues = &queueClients{env: h.env, svcs: map[string]*azqueue.ServiceClient{}, created: map[string]bool{}}
	for _, f := range h.functions {
		if !f.isQueue() || f.Disabled {
			continue
		}
		name := expandEnv(f.Trigger.QueueName, h.env)
		if name == "" {
			return fmt.Errorf("function %s: queueTrigger has no queueName", f.Name)
		}
		q, err := h.queues.queue(f.Trigger.Connection, name)
		if err != nil {
			return fmt.Errorf("function %s: %w", f.Name, err)
		}
		wake := make(chan struct{}, 1)
		h.wake[strings.ToLower(name)] = wake
		l := &listener{h: h, fn: f, queueName: name, q: q, wake: wake}
		h.pollers.Add(1)
		go func() {
			defer h.pollers.Done()
			l.run(h.pollCtx)
		}()
	}
	return nil
}

// wakeListener tells the listener of a queue this host writes to that a message is
// there, as the host's shared queue watcher does.
func (h *Host) wakeListener(queue string) {
	if ch, ok := h.wake[strings.ToLower(queue)]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// listener polls one queue for one function.
type listener struct {
	h         *Host
	fn        *function
	queueName string
	q         *azqueue.QueueClient
	wake      chan struct{}
}

func (l *listener) run(ctx context.Context) {
	o := l.h.cfg.Queues
	var running sync.WaitGroup
	defer running.Wait()
	var count struct {
		sync.Mutex
		n    int
		cond *sync.Cond
	}
	count.cond = sync.NewCond(&count.Mutex)
	delay := time.Duration(0)
	for {
		if delay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
				delay = 0
			case <-time.After(delay):
			}
		}
		if ctx.Err() != nil {
			return
		}
		n := int32(o.BatchSize)
		vis := int32(receiveVisibility / time.Second)
		resp, err := l.q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !isCode(err, "QueueNotFound") {
				l.h.logger.Warn("receiving queue messages failed", "function", l.fn.Name, "queue", l.queueName, "err", err)
			}
			delay = nextPollDelay(delay, o.MaxPollingInterval)
			continue
		}
		if len(resp.Messages) == 0 {
			delay = nextPollDelay(delay, o.MaxPollingInterval)
			continue
		}
		delay = 0
		for _, m := range resp.Messages {
			count.Lock()
			count.n++
			count.Unlock()
			running.Add(1)
			go func() {
				defer running.Done()
				l.process(ctx, m)
				count.Lock()
				count.n--
				count.cond.Broadcast()
				count.Unlock()
			}()
		}
		// Fetch the next batch once the in-flight count has fallen to newBatchThreshold.
		count.Lock()
		for count.n > o.NewBatchThreshold {
			count.cond.Wait()
		}
		count.Unlock()
	}
}

// nextPollDelay is the randomised exponential back-off the listener uses on an empty
// queue: from 100 ms up to maxPollingInterval.
func nextPollDelay(prev, ceiling time.Duration) time.Duration {
	if prev <= 0 {
		return minPollInterval
	}
	next := prev*2 + time.Duration(rand.Int64N(int64(prev)/2+1))
	return min(next, ceiling)
}

// process runs one message through the function and settles it as the host does.
func (l *listener) process(pollCtx context.Context, m *azqueue.DequeuedMessage) {
	// Settling a message must finish even when the host is stopping.
	ctx := context.WithoutCancel(pollCtx)
	o := l.h.cfg.Queues
	id, receipt := deref(m.MessageID), deref(m.PopReceipt)
	raw := deref(m.MessageText)
	dequeueCount := int64(0)
	if m.DequeueCount != nil {
		dequeueCount = *m.DequeueCount
	}
	log := l.h.logger.With("function", l.fn.Name, "queue", l.queueName, "messageId", id, "dequeueCount", dequeueCount)

	if dequeueCount > int64(o.MaxDequeueCount) {
		log.Warn(fmt.Sprintf("Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.", o.MaxDequeueCount, l.poisonName()))
		l.poison(ctx, log, id, receipt, raw)
		return
	}
	body := []byte(raw)
	if o.Base64 {
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			l.h.stats.decodeFailures.Add(1)
			log.Error("Queue message is not a valid base64 string; the queue extension expects base64 (messageEncoding). Moving it to the poison queue without invoking the function.",
				"poisonQueue", l.poisonName(), "err", err)
			l.poison(ctx, log, id, receipt, raw)
			return
		}
		body = b
	}

	var (
		err  error
		stop = make(chan struct{})
		mu   sync.Mutex
	)
	if !utf8.Valid(body) {
		err = errors.New("the queue message is not valid UTF-8, so the string trigger binding failed")
	} else {
		// Renew the 10-minute visibility at half-interval while the function runs.
		go func() {
			t := time.NewTicker(receiveVisibility / 2)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					mu.Lock()
					vis := int32(receiveVisibility / time.Second)
					if r, e := l.q.UpdateMessage(ctx, id, receipt, raw, &azqueue.UpdateMessageOptions{VisibilityTimeout: &vis}); e == nil && r.PopReceipt != nil {
						receipt = *r.PopReceipt
					}
					mu.Unlock()
				}
			}
		}()
		inv := l.queueInvocation(string(body), m, dequeueCount)
		_, err = l.h.invoke(ctx, inv)
		close(stop)
	}
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		if _, derr := l.q.DeleteMessage(ctx, id, receipt, nil); derr != nil {
			log.Warn("deleting a processed message failed; it will be delivered again", "err", derr)
		}
		return
	}
	if dequeueCount >= int64(o.MaxDequeueCount) {
		log.Warn(fmt.Sprintf("Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.", o.MaxDequeueCount, l.poisonName()), "err", err)
		l.poison(ctx, log, id, receipt, raw)
		return
	}
	if strings.HasSuffix(strings.ToLower(l.queueName), "-poison") || len(l.queueName)+len("-poison") > 63 {
		// No poison queue for these; the message comes back when its receive visibility
		// ends.
		return
	}
	vis := int32(o.VisibilityTimeout / time.Second)
	if _, uerr := l.q.UpdateMessage(ctx, id, receipt, raw, &azqueue.UpdateMessageOptions{VisibilityTimeout: &vis}); uerr != nil {
		log.Warn("returning a failed message to the queue failed; it reappears when its visibility ends", "err", uerr)
	}
}

func (l *listener) poisonName() string { return l.queueName + "-poison" }

// poison copies the message body, as stored, to <queue>-poison under a new id and
// deletes the original.
func (l *listener) poison(ctx context.Context, log *slog.Logger, id, receipt, raw string) {
	if strings.HasSuffix(strings.ToLower(l.queueName), "-poison") || len(l.poisonName()) > 63 {
		return
	}
	pq, err := l.h.queues.ensure(ctx, l.fn.Trigger.Connection, l.poisonName())
	if err == nil {
		_, err = pq.EnqueueMessage(ctx, raw, nil)
	}
	if err != nil {
		log.Error("copying a message to the poison queue failed; it stays on its queue", "err", err)
		return
	}
	l.h.stats.poisoned.Add(1)
	if _, err := l.q.DeleteMessage(ctx, id, receipt, nil); err != nil {
		log.Error("deleting a poisoned message failed", "err", err)
	}
}

// queueInvocation builds Data and Metadata as the host does for a queue trigger.
func (l *listener) queueInvocation(text string, m *azqueue.DequeuedMessage, dequeueCount int64) *invocation {
	meta := map[string]any{
		"DequeueCount": wireValue(dequeueCount),
		"Id":           wireValue(deref(m.MessageID)),
		"PopReceipt":   wireValue(deref(m.PopReceipt)),
		"sys":          sysMetadata(l.fn.Name, time.Now()),
	}
	if m.InsertionTime != nil {
		meta["InsertionTime"] = wireValue(*m.InsertionTime)
	}
	if m.ExpirationTime != nil {
		meta["ExpirationTime"] = wireValue(*m.ExpirationTime)
	} else {
		meta["ExpirationTime"] = "9999-12-31T23:59:59+00:00"
	}
	if m.TimeNextVisible != nil {
		meta["NextVisibleTime"] = wireValue(*m.TimeNextVisible)
	}
	// The host adds the message's own properties after the trigger's binding data, so a
	// property such as "Id" replaces the message id.
	applyJSONBindingData(meta, text, false)
	finishMetadata(meta)
	data := map[string]any{l.fn.Trigger.Name: wireValue(text)}
	if strings.EqualFold(l.fn.Trigger.DataType, "binary") {
		data[l.fn.Trigger.Name] = wireValue([]byte(text))
	}
	return &invocation{
		fn:       l.fn,
		id:       newGUID(),
		data:     data,
		metadata: meta,
		logger:   l.h.logger,
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
