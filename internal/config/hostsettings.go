package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// hostSettings are the values the handler takes from host.json and function.json, so the
// deadline it works to and the queues it writes to are the ones the host really uses.
type hostSettings struct {
	FunctionTimeout time.Duration
	OrdersQueue     string
	NotifyQueue     string
}

// readHostSettings reads host.json and the process and notify function.json files under
// root. The host lets an app setting AzureFunctionsJobHost__functionTimeout override
// host.json, and so does this. With no root (the handler run by hand) it uses defaults.
func readHostSettings(root string, getenv Getenv) (hostSettings, error) {
	hs := hostSettings{FunctionTimeout: 5 * time.Minute, OrdersQueue: "orders", NotifyQueue: "notifications"}
	if root != "" {
		b, err := os.ReadFile(filepath.Join(root, "host.json"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return hs, fmt.Errorf("FUNCTIONS_APP_ROOT_PATH: reading host.json: %w", err)
		}
		if err == nil {
			var h struct {
				FunctionTimeout string `json:"functionTimeout"`
			}
			if err := json.Unmarshal(b, &h); err != nil {
				return hs, fmt.Errorf("FUNCTIONS_APP_ROOT_PATH: host.json: %w", err)
			}
			if h.FunctionTimeout != "" {
				d, err := ParseDuration(h.FunctionTimeout)
				if err != nil || d <= 0 {
					return hs, fmt.Errorf("host.json functionTimeout %q is not a positive duration", h.FunctionTimeout)
				}
				hs.FunctionTimeout = d
			}
		}
		if q, err := triggerQueue(root, "process"); err != nil {
			return hs, err
		} else if q != "" {
			hs.OrdersQueue = q
		}
		if q, err := triggerQueue(root, "notify"); err != nil {
			return hs, err
		} else if q != "" {
			hs.NotifyQueue = q
		}
	}
	if v, ok := getenv("AzureFunctionsJobHost__functionTimeout"); ok && strings.TrimSpace(v) != "" {
		d, err := ParseDuration(v)
		if err != nil || d <= 0 {
			return hs, fmt.Errorf("AzureFunctionsJobHost__functionTimeout %q is not a positive duration", v)
		}
		hs.FunctionTimeout = d
	}
	return hs, nil
}

// triggerQueue returns the queueName of the queue trigger in <root>/<function>/function.json,
// or "" when the function does not exist.
func triggerQueue(root, function string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, function, "function.json"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var f struct {
		Bindings []struct {
			Type      string `json:"type"`
			QueueName string `json:"queueName"`
		} `json:"bindings"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("%s/function.json: %w", function, err)
	}
	for _, b := range f.Bindings {
		if strings.EqualFold(b.Type, "queueTrigger") {
			if strings.Contains(b.QueueName, "%") {
				return "", fmt.Errorf("%s/function.json: queueName %q uses an app-setting expression, which the handler does not resolve", function, b.QueueName)
			}
			return b.QueueName, nil
		}
	}
	return "", nil
}
