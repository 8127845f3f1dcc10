// Package queues lets the handler write to Storage queues itself, for the two things an
// output binding cannot do: enqueue a message that stays invisible for a while (to retry a
// throttled order later without spending its dequeue count), and poison a message with the
// reason it can never succeed.
package queues

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
)

// DevelopmentConnectionString is what UseDevelopmentStorage=true stands for: Azurite's
// well-known account on its default queue port.
const DevelopmentConnectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
	"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
	"QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"

// Client writes messages the way the Functions host does (base64, per host.json's
// messageEncoding), so the host's queue trigger reads them like any other.
type Client struct {
	svc     *azqueue.ServiceClient
	mu      sync.Mutex
	created map[string]bool
}

// Options says how to reach the queue service: a connection string, or a service URL and
// a managed identity.
type Options struct {
	ConnectionString string
	ServiceURL       string
	ClientID         string
}

// New returns a Client. It dials nothing.
func New(o Options) (*Client, error) {
	var svc *azqueue.ServiceClient
	var err error
	switch {
	case o.ConnectionString != "":
		cs := o.ConnectionString
		if strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(cs), ";"), "UseDevelopmentStorage=true") {
			cs = DevelopmentConnectionString
		}
		svc, err = azqueue.NewServiceClientFromConnectionString(cs, nil)
		if err != nil {
			// The parser's message may quote the string; say only which setting is wrong.
			return nil, errors.New("AzureWebJobsStorage is not a valid storage connection string")
		}
	case o.ServiceURL != "":
		var cred azcore.TokenCredential
		cred, err = credential(o.ClientID)
		if err != nil {
			return nil, err
		}
		svc, err = azqueue.NewServiceClient(o.ServiceURL, cred, nil)
		if err != nil {
			return nil, fmt.Errorf("queue service client: %w", err)
		}
	default:
		return nil, errors.New("no queue connection configured")
	}
	return &Client{svc: svc, created: map[string]bool{}}, nil
}

func credential(clientID string) (azcore.TokenCredential, error) {
	if clientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

// Send enqueues body (base64-encoded, as the host's binding does) to become visible after
// delay. The message never expires: losing a delayed order to the 7-day default
// time-to-live would be losing it silently.
func (c *Client) Send(ctx context.Context, queue string, body []byte, delay time.Duration) error {
	if err := c.ensure(ctx, queue); err != nil {
		return err
	}
	secs := int32(delay.Round(time.Second) / time.Second)
	if delay > 0 && secs == 0 {
		secs = 1
	}
	ttl := int32(-1)
	_, err := c.svc.NewQueueClient(queue).EnqueueMessage(ctx, base64.StdEncoding.EncodeToString(body),
		&azqueue.EnqueueMessageOptions{VisibilityTimeout: &secs, TimeToLive: &ttl})
	if err != nil {
		return fmt.Errorf("enqueue to %s: %w", queue, err)
	}
	return nil
}

func (c *Client) ensure(ctx context.Context, queue string) error {
	c.mu.Lock()
	done := c.created[queue]
	c.mu.Unlock()
	if done {
		return nil
	}
	_, err := c.svc.CreateQueue(ctx, queue, nil)
	var re *azcore.ResponseError
	if err != nil && !(errors.As(err, &re) && (re.ErrorCode == "QueueAlreadyExists" || re.StatusCode == 409)) {
		return fmt.Errorf("create queue %s: %w", queue, err)
	}
	c.mu.Lock()
	c.created[queue] = true
	c.mu.Unlock()
	return nil
}

// PoisonSuffix is the suffix the host gives a queue's poison queue.
const PoisonSuffix = "-poison"

// PoisonMessage is what Sluice writes to <queue>-poison: the original message text,
// untouched, with the reason it was refused. The host's own poison messages are bare
// copies of the original; tools reading the poison queue accept both.
type PoisonMessage struct {
	Reason       string    `json:"reason"`
	Detail       string    `json:"detail,omitempty"`
	Function     string    `json:"function"`
	InvocationID string    `json:"invocationId,omitempty"`
	MessageID    string    `json:"messageId,omitempty"`
	DequeueCount int64     `json:"dequeueCount,omitempty"`
	PoisonedAt   time.Time `json:"poisonedAt"`
	Message      string    `json:"message"`
}

// Poison writes m to queue's poison queue.
func (c *Client) Poison(ctx context.Context, queue string, m PoisonMessage) error {
	if m.PoisonedAt.IsZero() {
		m.PoisonedAt = time.Now().UTC()
	}
	body, err := MarshalJSON(m)
	if err != nil {
		return err
	}
	return c.Send(ctx, queue+PoisonSuffix, body, 0)
}

// MarshalJSON encodes v for a queue message without encoding/json's HTML escaping, which
// writes each '<', '>' and '&' as six bytes: a message of such text, re-enqueued or
// poisoned with its reason, could otherwise outgrow the 64 KiB a queue message holds.
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Service exposes the underlying client for tools (redrive) that read queues.
func (c *Client) Service() *azqueue.ServiceClient { return c.svc }
