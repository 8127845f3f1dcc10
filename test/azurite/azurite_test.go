package azurite_test

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/stack"
)

// repoRoot is the repository root, where npm installs node_modules.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// queueClient returns a client for queue name on s, built from the connection string as
// the application builds its own, with retries off so a failure shows at once.
func queueClient(t *testing.T, s *azurite.Server, name string) *azqueue.QueueClient {
	t.Helper()
	svc, err := azqueue.NewServiceClientFromConnectionString(s.ConnectionString, &azqueue.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewQueueClient(name)
}

func portOf(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Fatalf("endpoint %q is not on 127.0.0.1", endpoint)
	}
	return u.Port()
}

func TestQueueMessageLifecycle(t *testing.T) {
	t.Parallel()
	s := azurite.StartT(t, azurite.Options{RepoRoot: repoRoot(t)})
	if !strings.HasSuffix(s.QueueEndpoint, "/"+azurite.AccountName) {
		t.Errorf("QueueEndpoint %q does not name the development account", s.QueueEndpoint)
	}
	if !strings.Contains(s.ConnectionString, "QueueEndpoint="+s.QueueEndpoint) {
		t.Errorf("ConnectionString %q does not carry QueueEndpoint %q", s.ConnectionString, s.QueueEndpoint)
	}
	ctx := t.Context()
	q := queueClient(t, s, "orders-in")
	if _, err := q.Create(ctx, nil); err != nil {
		t.Fatalf("create queue: %v", err)
	}

	const text = `{"orderId":"o-1","note":"ünïcode & <markup>"}`
	enq, err := q.EnqueueMessage(ctx, text, nil)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if len(enq.Messages) != 1 || enq.Messages[0].MessageID == nil {
		t.Fatalf("enqueue answered %d messages, want 1 with an id", len(enq.Messages))
	}
	sentID := *enq.Messages[0].MessageID

	deq, err := q.DequeueMessage(ctx, nil)
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	if len(deq.Messages) != 1 {
		t.Fatalf("dequeue returned %d messages, want 1", len(deq.Messages))
	}
	m := deq.Messages[0]
	if got := *m.MessageText; got != text {
		t.Errorf("message text = %q, want %q", got, text)
	}
	if got := *m.MessageID; got != sentID {
		t.Errorf("message id = %q, want the enqueued %q", got, sentID)
	}
	if got := *m.DequeueCount; got != 1 {
		t.Errorf("dequeue count = %d, want 1", got)
	}

	if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
		t.Fatalf("delete message: %v", err)
	}
	// A peek also sees messages that are still invisible after the dequeue, so an empty
	// answer proves the message is gone rather than hidden.
	props, err := q.GetProperties(ctx, nil)
	if err != nil {
		t.Fatalf("queue properties: %v", err)
	}
	if props.ApproximateMessagesCount == nil || *props.ApproximateMessagesCount != 0 {
		t.Errorf("approximate message count after delete = %v, want 0", props.ApproximateMessagesCount)
	}
	if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err == nil {
		t.Error("deleting the same message twice succeeded; the first delete did not take")
	}
}

func TestTwoServersRunIndependently(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	a := azurite.StartT(t, azurite.Options{RepoRoot: root})
	b := azurite.StartT(t, azurite.Options{RepoRoot: root})
	if portOf(t, a.QueueEndpoint) == portOf(t, b.QueueEndpoint) {
		t.Fatalf("both servers use %s", a.QueueEndpoint)
	}
	ctx := t.Context()
	qa, qb := queueClient(t, a, "shared-name"), queueClient(t, b, "shared-name")
	for _, q := range []*azqueue.QueueClient{qa, qb} {
		if _, err := q.Create(ctx, nil); err != nil {
			t.Fatalf("create queue at %s: %v", q.URL(), err)
		}
	}
	if _, err := qa.EnqueueMessage(ctx, "only-in-a", nil); err != nil {
		t.Fatal(err)
	}
	peekB, err := qb.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: toPtr(int32(32))})
	if err != nil {
		t.Fatal(err)
	}
	if len(peekB.Messages) != 0 {
		t.Errorf("server b holds %d messages sent to server a", len(peekB.Messages))
	}
	peekA, err := qa.PeekMessage(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(peekA.Messages) != 1 || *peekA.Messages[0].MessageText != "only-in-a" {
		t.Errorf("server a peek = %d messages, want the one sent", len(peekA.Messages))
	}
}

func TestCloseStopsServerAndFreesPort(t *testing.T) {
	t.Parallel()
	s, err := azurite.Start(t.Context(), azurite.Options{RepoRoot: repoRoot(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", portOf(t, s.QueueEndpoint))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Close waits for the process, so the port must already be free to bind again.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	l.Close()
}

func TestDirKeepsQueuesAcrossRestarts(t *testing.T) {
	t.Parallel()
	root, dir := repoRoot(t), t.TempDir()
	first := azurite.StartT(t, azurite.Options{RepoRoot: root, Dir: dir})
	q := queueClient(t, first, "durable")
	if _, err := q.Create(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.EnqueueMessage(t.Context(), "kept", nil); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := azurite.StartT(t, azurite.Options{RepoRoot: root, Dir: dir})
	peek, err := queueClient(t, second, "durable").PeekMessage(t.Context(), nil)
	if err != nil {
		t.Fatalf("peek after restart: %v", err)
	}
	if len(peek.Messages) != 1 || *peek.Messages[0].MessageText != "kept" {
		t.Fatalf("after restart the queue holds %d messages, want the one sent before", len(peek.Messages))
	}
}

func TestStartRejectsPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := azurite.Start(t.Context(), azurite.Options{RepoRoot: repoRoot(t), Port: port})
	if err == nil {
		s.Close()
		t.Fatalf("Start on a port another listener holds succeeded")
	}
}

func TestStartWithoutPackageExplainsInstall(t *testing.T) {
	t.Parallel()
	_, err := azurite.Start(t.Context(), azurite.Options{RepoRoot: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Fatalf("Start without node_modules: err = %v, want advice to run npm ci", err)
	}
	var pathErr *os.PathError
	if !errors.As(err, &pathErr) {
		t.Errorf("error %v does not wrap the missing-file error", err)
	}
}

func TestStartRequiresRepoRoot(t *testing.T) {
	t.Parallel()
	if _, err := azurite.Start(t.Context(), azurite.Options{}); err == nil {
		t.Fatal("Start without RepoRoot succeeded")
	}
}

func toPtr[T any](v T) *T { return &v }
