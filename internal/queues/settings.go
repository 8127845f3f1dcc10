package queues

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/internal/config"
)

// FromSettings finds the queue connection the way the app does: the environment's
// AzureWebJobsStorage (or its identity-based __queueServiceUri / __accountName form),
// else the Values of local.settings.json, else of local.settings.sample.json. source
// says which it used.
func FromSettings(root string, getenv func(string) (string, bool)) (o Options, source string, err error) {
	read := func(get func(string) string) Options {
		o := Options{
			ConnectionString: strings.TrimSpace(get("AzureWebJobsStorage")),
			ServiceURL:       strings.TrimSpace(get("AzureWebJobsStorage__queueServiceUri")),
			ClientID:         strings.TrimSpace(get("AzureWebJobsStorage__clientId")),
		}
		if acct := strings.TrimSpace(get("AzureWebJobsStorage__accountName")); o.ServiceURL == "" && acct != "" {
			o.ServiceURL = "https://" + acct + ".queue.core.windows.net/"
		}
		return o
	}
	env := read(func(k string) string { v, _ := getenv(k); return v })
	if env.ConnectionString != "" || env.ServiceURL != "" {
		return env, "the environment", nil
	}
	for _, name := range []string{"local.settings.json", "local.settings.sample.json"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return o, "", err
		}
		var doc struct{ Values map[string]string }
		if err := json.Unmarshal(b, &doc); err != nil {
			return o, "", fmt.Errorf("%s: %w", name, err)
		}
		if o = read(func(k string) string { return doc.Values[k] }); o.ConnectionString != "" || o.ServiceURL != "" {
			return o, name, nil
		}
	}
	return o, "", errors.New("AzureWebJobsStorage is not set in the environment, local.settings.json or local.settings.sample.json")
}

// developmentAccount is the account name of the Storage emulator.
const developmentAccount = "devstoreaccount1"

// Account names the storage account o points at, and whether it is the local emulator:
// the development account on a loopback address.
func Account(o Options) (name string, development bool, err error) {
	if o.ConnectionString == "" {
		u, err := url.Parse(o.ServiceURL)
		if err != nil || u.Host == "" {
			return "", false, errors.New("AzureWebJobsStorage__queueServiceUri is not a URL")
		}
		return accountOfEndpoint(u)
	}
	cs := strings.TrimSuffix(strings.TrimSpace(o.ConnectionString), ";")
	if strings.EqualFold(cs, "UseDevelopmentStorage=true") {
		return developmentAccount, true, nil
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if ep := fields["queueendpoint"]; ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return "", false, errors.New("AzureWebJobsStorage: QueueEndpoint is not a URL")
		}
		name, development, err = accountOfEndpoint(u)
		if acct := fields["accountname"]; acct != "" {
			// A connection string's own account name is the one its key signs for.
			name = acct
			development = development && acct == developmentAccount
		}
		return name, development, err
	}
	if acct := fields["accountname"]; acct != "" {
		// Without an endpoint the SDK goes to <account>.queue.<suffix>: never local.
		return acct, false, nil
	}
	return "", false, errors.New("AzureWebJobsStorage names neither an AccountName nor a QueueEndpoint")
}

// accountOfEndpoint reads the account from a queue endpoint: the emulator's path style
// (http://127.0.0.1:10001/devstoreaccount1) on loopback, the host's first label
// (https://<account>.queue.core.windows.net) elsewhere.
func accountOfEndpoint(u *url.URL) (string, bool, error) {
	if config.IsLoopbackHost(u.Hostname()) {
		first, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return first, first == developmentAccount, nil
	}
	label, _, _ := strings.Cut(u.Hostname(), ".")
	return label, false, nil
}

// CheckAccount refuses an account other than the local emulator unless the caller named
// it (a command's -account flag); it returns the account for the command to report.
func CheckAccount(o Options, confirmed string) (string, error) {
	name, development, err := Account(o)
	if err != nil {
		return "", err
	}
	switch {
	case confirmed != "" && !strings.EqualFold(confirmed, name):
		return "", fmt.Errorf("-account %s was given, but the settings point at storage account %q; nothing was done", confirmed, name)
	case !development && confirmed == "":
		return "", fmt.Errorf("the settings point at storage account %q, not the local emulator; run again with -account %s to use it", name, name)
	}
	if development {
		return name + " (local emulator)", nil
	}
	return name, nil
}
