package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/stack"
)

func TestSendPutsBase64MessageOnQueue(t *testing.T) {
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	az := azurite.StartT(t, azurite.Options{RepoRoot: root})
	t.Setenv("AzureWebJobsStorage", az.ConnectionString)

	var out bytes.Buffer
	const msg = `{"event":"login"}`
	if err := run(t.TempDir(), "audit-events", "", 0, []string{msg}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "audit-events") || !strings.Contains(out.String(), "devstoreaccount1") {
		t.Errorf("output %q does not say where the message went", out.String())
	}
	// From standard input too, with the trailing newline of `echo` dropped.
	if err := run(t.TempDir(), "audit-events", "", 0, nil, strings.NewReader(msg+"\n"), &out); err != nil {
		t.Fatal(err)
	}

	svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := int32(10)
	resp, err := svc.NewQueueClient("audit-events").DequeueMessages(context.Background(), &azqueue.DequeueMessagesOptions{NumberOfMessages: &n})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Messages) != 2 {
		t.Fatalf("queue holds %d messages, want 2", len(resp.Messages))
	}
	for _, m := range resp.Messages {
		b, err := base64.StdEncoding.DecodeString(*m.MessageText)
		if err != nil || string(b) != msg {
			t.Errorf("message text %q decodes to %q (%v), want base64 of %s", *m.MessageText, b, err, msg)
		}
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	t.Setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
	for name, tc := range map[string]struct {
		args  []string
		stdin string
		want  string
	}{
		"empty":     {nil, "", "empty"},
		"two":       {[]string{"a", "b"}, "", "one argument"},
		"too large": {[]string{strings.Repeat("x", maxMessageBytes+1)}, "", "more than a queue message"},
	} {
		t.Run(name, func(t *testing.T) {
			err := run(t.TempDir(), "orders", "", 0, tc.args, strings.NewReader(tc.stdin), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestSendRefusesRealAccountWithoutFlag checks the refusal happens before any request:
// the account in these settings does not exist and is never dialled.
func TestSendRefusesRealAccountWithoutFlag(t *testing.T) {
	t.Setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=prodorders;AccountKey=a2V5;EndpointSuffix=core.windows.net")
	err := run(t.TempDir(), "orders", "", 0, []string{"{}"}, nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "-account prodorders") {
		t.Errorf("error %v, want a refusal naming -account prodorders", err)
	}
}
