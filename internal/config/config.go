// Package config reads the app settings (environment variables) into a Config once, at
// start-up, and validates them, so that a wrong value stops the handler with an error that
// names the setting instead of failing later under load.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is every setting the handler reads. Defaults are documented in the README's
// settings table and in Defaults.
type Config struct {
	Port         int    // FUNCTIONS_CUSTOMHANDLER_PORT
	AppRoot      string // FUNCTIONS_APP_ROOT_PATH: where host.json and the function folders are
	LogLevel     string // LOG_LEVEL
	SafetyMargin time.Duration

	// Set from host.json (and the AzureFunctionsJobHost__ overrides the host honours).
	FunctionTimeout time.Duration
	OrdersQueue     string
	NotifyQueue     string

	Storage StorageConfig
	Cosmos  CosmosConfig

	FulfilmentURL string
	Fulfilment    HTTPDependencyConfig

	HTTPMaxBodyBytes int64
	HTTPShedMaxWait  time.Duration

	Requeue RequeueConfig
}

// StorageConfig is how the handler reaches the queues itself, to re-enqueue a message with
// a delay or to poison it with a reason. It reads the same settings as the host.
type StorageConfig struct {
	ConnectionString string // AzureWebJobsStorage
	QueueServiceURL  string // AzureWebJobsStorage__queueServiceUri, or derived from __accountName
	ClientID         string // AzureWebJobsStorage__clientId
}

// CosmosConfig configures the store client and the policies around it.
type CosmosConfig struct {
	Endpoint        string
	Key             string // only for the local emulator
	Database        string
	Container       string
	CreateIfMissing bool
	ClientID        string // AZURE_CLIENT_ID: the user-assigned managed identity

	// Client retries (azcore): transport errors, 408 and 5xx. Never 429.
	SDKMaxRetries    int
	WriteMaxRetries  int
	SDKRetryDelay    time.Duration
	SDKMaxRetryDelay time.Duration
	SDKTryTimeout    time.Duration

	// Throttle retries (failsafe-go): 429 only.
	ThrottleMaxRetries int
	ThrottleMaxWait    time.Duration

	OperationTimeout time.Duration
	MaxConcurrency   int
	QueueWait        time.Duration

	WriteRateInitial float64
	WriteRateMin     float64
	WriteRateMax     float64
	WriteRateGrowth  float64

	Breaker BreakerConfig
}

// BreakerConfig configures a time-based circuit breaker.
type BreakerConfig struct {
	FailureRate      float64
	MinRequests      int
	Window           time.Duration
	Delay            time.Duration
	SuccessThreshold int
}

// HTTPDependencyConfig configures the policies around a third-party HTTP API.
type HTTPDependencyConfig struct {
	AttemptTimeout time.Duration
	MaxRetries     int
	MaxWait        time.Duration
	MaxConcurrency int
	Breaker        BreakerConfig
}

// RequeueConfig governs how a queue message that failed for a transient reason is kept
// alive past the host's maxDequeueCount.
type RequeueConfig struct {
	BaseDelay time.Duration
	MaxDelay  time.Duration
	Horizon   time.Duration
}

// Getenv looks up a setting; os.LookupEnv in production, a map in tests.
type Getenv func(key string) (string, bool)

// Load reads and validates the configuration. All problems are reported together.
func Load(getenv Getenv) (*Config, error) {
	r := &reader{getenv: getenv}
	c := &Config{}
	c.Port = r.int("FUNCTIONS_CUSTOMHANDLER_PORT", 0, 1, 65535)
	if r.str("FUNCTIONS_CUSTOMHANDLER_PORT", "") == "" {
		r.fail("FUNCTIONS_CUSTOMHANDLER_PORT", "is not set; the Functions host sets it when it starts the handler")
	}
	c.AppRoot = r.str("FUNCTIONS_APP_ROOT_PATH", "")
	c.LogLevel = r.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error")
	c.SafetyMargin = r.duration("INVOCATION_SAFETY_MARGIN", 5*time.Second, time.Second, time.Hour)

	hs, err := readHostSettings(c.AppRoot, getenv)
	if err != nil {
		r.errs = append(r.errs, err)
	}
	c.FunctionTimeout, c.OrdersQueue, c.NotifyQueue = hs.FunctionTimeout, hs.OrdersQueue, hs.NotifyQueue

	c.Storage.ConnectionString = r.str("AzureWebJobsStorage", "")
	c.Storage.QueueServiceURL = r.str("AzureWebJobsStorage__queueServiceUri", "")
	if c.Storage.QueueServiceURL == "" {
		if acct := r.str("AzureWebJobsStorage__accountName", ""); acct != "" {
			c.Storage.QueueServiceURL = "https://" + acct + ".queue.core.windows.net/"
		}
	}
	c.Storage.ClientID = r.str("AzureWebJobsStorage__clientId", "")
	if c.Storage.ConnectionString == "" && c.Storage.QueueServiceURL == "" {
		r.fail("AzureWebJobsStorage", "is not set: give a connection string (local) or AzureWebJobsStorage__queueServiceUri / __accountName (managed identity)")
	}

	cc := &c.Cosmos
	cc.Endpoint = r.str("COSMOS_ENDPOINT", "")
	cc.Key = r.str("COSMOS_KEY", "")
	cc.Database = r.str("COSMOS_DATABASE", "sluice")
	cc.Container = r.str("COSMOS_CONTAINER", "orders")
	cc.ClientID = r.str("AZURE_CLIENT_ID", "")
	local := false
	if cc.Endpoint == "" {
		r.fail("COSMOS_ENDPOINT", "is not set")
	} else if u, err := url.Parse(cc.Endpoint); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		r.fail("COSMOS_ENDPOINT", "must be an absolute https URL such as https://<account>.documents.azure.com:443/")
	} else {
		local = IsLoopbackHost(u.Hostname())
		if u.Scheme == "http" && !local {
			r.fail("COSMOS_ENDPOINT", "must use https for a non-local account")
		}
	}
	if cc.Key != "" && !local && cc.Endpoint != "" {
		r.fail("COSMOS_KEY", "is only accepted for the local emulator (a loopback COSMOS_ENDPOINT); in Azure the handler authenticates with its managed identity")
	}
	cc.CreateIfMissing = r.bool("COSMOS_CREATE_IF_MISSING", local)

	cc.SDKMaxRetries = r.int("COSMOS_SDK_MAX_RETRIES", 2, 0, 10)
	cc.WriteMaxRetries = r.int("COSMOS_WRITE_MAX_RETRIES", 2, 0, 10)
	cc.SDKRetryDelay = r.duration("COSMOS_SDK_RETRY_DELAY", 200*time.Millisecond, time.Millisecond, time.Minute)
	cc.SDKMaxRetryDelay = r.duration("COSMOS_SDK_MAX_RETRY_DELAY", 2*time.Second, time.Millisecond, 5*time.Minute)
	cc.SDKTryTimeout = r.duration("COSMOS_SDK_TRY_TIMEOUT", 4*time.Second, 100*time.Millisecond, 5*time.Minute)
	cc.ThrottleMaxRetries = r.int("COSMOS_THROTTLE_MAX_RETRIES", 9, 0, 100)
	cc.ThrottleMaxWait = r.duration("COSMOS_THROTTLE_MAX_WAIT", 30*time.Second, 0, time.Hour)
	cc.OperationTimeout = r.duration("COSMOS_OPERATION_TIMEOUT", 60*time.Second, time.Second, time.Hour)
	cc.MaxConcurrency = r.int("COSMOS_MAX_CONCURRENCY", 16, 1, 10000)
	cc.QueueWait = r.duration("COSMOS_QUEUE_WAIT", 30*time.Second, 0, time.Hour)
	cc.WriteRateInitial = r.float("COSMOS_WRITE_RATE_INITIAL", 20, 0.1, 1e6)
	cc.WriteRateMin = r.float("COSMOS_WRITE_RATE_MIN", 1, 0.1, 1e6)
	cc.WriteRateMax = r.float("COSMOS_WRITE_RATE_MAX", 1000, 0.1, 1e6)
	cc.WriteRateGrowth = r.float("COSMOS_WRITE_RATE_GROWTH", 0.05, 0.001, 1)
	cc.Breaker = r.breaker("COSMOS_BREAKER_", BreakerConfig{FailureRate: 0.5, MinRequests: 10, Window: 10 * time.Second, Delay: 5 * time.Second, SuccessThreshold: 2})

	c.FulfilmentURL = r.str("FULFILMENT_API_URL", "")
	if c.FulfilmentURL != "" {
		if u, err := url.Parse(c.FulfilmentURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			r.fail("FULFILMENT_API_URL", "must be an absolute http(s) URL")
		} else if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
			r.fail("FULFILMENT_API_URL", "must use https for a non-local API")
		}
	}
	fc := &c.Fulfilment
	fc.AttemptTimeout = r.duration("FULFILMENT_ATTEMPT_TIMEOUT", 10*time.Second, 100*time.Millisecond, 10*time.Minute)
	fc.MaxRetries = r.int("FULFILMENT_MAX_RETRIES", 3, 0, 100)
	fc.MaxWait = r.duration("FULFILMENT_MAX_WAIT", 30*time.Second, 0, time.Hour)
	fc.MaxConcurrency = r.int("FULFILMENT_MAX_CONCURRENCY", 8, 1, 10000)
	fc.Breaker = r.breaker("FULFILMENT_BREAKER_", BreakerConfig{FailureRate: 0.5, MinRequests: 5, Window: 30 * time.Second, Delay: 15 * time.Second, SuccessThreshold: 1})

	c.HTTPMaxBodyBytes = int64(r.int("HTTP_MAX_BODY_BYTES", 1<<20, 1024, 100<<20))
	c.HTTPShedMaxWait = r.duration("HTTP_SHED_MAX_WAIT", 5*time.Millisecond, 0, time.Minute)

	c.Requeue.BaseDelay = r.duration("QUEUE_REQUEUE_BASE_DELAY", 5*time.Second, 0, 7*24*time.Hour)
	c.Requeue.MaxDelay = r.duration("QUEUE_REQUEUE_MAX_DELAY", 5*time.Minute, time.Second, 7*24*time.Hour)
	c.Requeue.Horizon = r.duration("QUEUE_RETRY_HORIZON", time.Hour, time.Minute, 7*24*time.Hour)

	if len(r.errs) == 0 {
		c.validate(r)
	}
	if len(r.errs) > 0 {
		return nil, errors.Join(r.errs...)
	}
	return c, nil
}

// validate checks the settings against each other, the way Polly validates its standard
// pipeline: every wait the policies may add up to has to fit inside the invocation.
func (c *Config) validate(r *reader) {
	budget := c.FunctionTimeout - c.SafetyMargin
	if budget <= 0 {
		r.fail("INVOCATION_SAFETY_MARGIN", fmt.Sprintf("(%v) must be shorter than host.json functionTimeout (%v)", c.SafetyMargin, c.FunctionTimeout))
		return
	}
	cc := &c.Cosmos
	if cc.OperationTimeout > budget {
		r.fail("COSMOS_OPERATION_TIMEOUT", fmt.Sprintf("(%v) must not exceed host.json functionTimeout (%v) less INVOCATION_SAFETY_MARGIN (%v)", cc.OperationTimeout, c.FunctionTimeout, c.SafetyMargin))
	}
	if cc.ThrottleMaxWait >= cc.OperationTimeout {
		r.fail("COSMOS_THROTTLE_MAX_WAIT", fmt.Sprintf("(%v) must be shorter than COSMOS_OPERATION_TIMEOUT (%v)", cc.ThrottleMaxWait, cc.OperationTimeout))
	}
	// The client's own retries for one attempt: every try may run to its timeout, with
	// the growing delays between them.
	sdkWorst := time.Duration(cc.SDKMaxRetries+1) * cc.SDKTryTimeout
	for i := 1; i <= cc.SDKMaxRetries; i++ {
		d := cc.SDKRetryDelay * time.Duration((1<<i)-1)
		if d > cc.SDKMaxRetryDelay {
			d = cc.SDKMaxRetryDelay
		}
		sdkWorst += d
	}
	if sdkWorst > cc.OperationTimeout {
		r.fail("COSMOS_SDK_MAX_RETRIES", fmt.Sprintf("with COSMOS_SDK_TRY_TIMEOUT %v can take %v, longer than COSMOS_OPERATION_TIMEOUT (%v)", cc.SDKTryTimeout, sdkWorst, cc.OperationTimeout))
	}
	// Writes: azcosmos never retries a failed write (it cannot know the write is safe to
	// repeat), so each write attempt is one try; Sluice repeats transient failures
	// itself, COSMOS_WRITE_MAX_RETRIES times with the SDK's delays.
	writeWorst := time.Duration(cc.WriteMaxRetries+1) * cc.SDKTryTimeout
	for i := 0; i < cc.WriteMaxRetries; i++ {
		writeWorst += min(cc.SDKRetryDelay<<i, cc.SDKMaxRetryDelay)
	}
	if writeWorst > cc.OperationTimeout {
		r.fail("COSMOS_WRITE_MAX_RETRIES", fmt.Sprintf("with COSMOS_SDK_TRY_TIMEOUT %v can take %v, longer than COSMOS_OPERATION_TIMEOUT (%v)", cc.SDKTryTimeout, writeWorst, cc.OperationTimeout))
	}
	if cc.SDKRetryDelay > cc.SDKMaxRetryDelay {
		r.fail("COSMOS_SDK_RETRY_DELAY", fmt.Sprintf("(%v) must not exceed COSMOS_SDK_MAX_RETRY_DELAY (%v)", cc.SDKRetryDelay, cc.SDKMaxRetryDelay))
	}
	if cc.QueueWait > budget {
		r.fail("COSMOS_QUEUE_WAIT", fmt.Sprintf("(%v) must not exceed host.json functionTimeout less INVOCATION_SAFETY_MARGIN (%v)", cc.QueueWait, budget))
	}
	if cc.WriteRateMin > cc.WriteRateMax {
		r.fail("COSMOS_WRITE_RATE_MIN", fmt.Sprintf("(%v) must not exceed COSMOS_WRITE_RATE_MAX (%v)", cc.WriteRateMin, cc.WriteRateMax))
	}
	if cc.WriteRateInitial < cc.WriteRateMin || cc.WriteRateInitial > cc.WriteRateMax {
		r.fail("COSMOS_WRITE_RATE_INITIAL", fmt.Sprintf("(%v) must lie between COSMOS_WRITE_RATE_MIN (%v) and COSMOS_WRITE_RATE_MAX (%v)", cc.WriteRateInitial, cc.WriteRateMin, cc.WriteRateMax))
	}
	fc := &c.Fulfilment
	fWorst := time.Duration(fc.MaxRetries+1)*fc.AttemptTimeout + fc.MaxWait
	if fWorst > budget {
		r.fail("FULFILMENT_MAX_RETRIES", fmt.Sprintf("with FULFILMENT_ATTEMPT_TIMEOUT %v and FULFILMENT_MAX_WAIT %v can take %v, longer than host.json functionTimeout less INVOCATION_SAFETY_MARGIN (%v)", fc.AttemptTimeout, fc.MaxWait, fWorst, budget))
	}
	if c.Requeue.BaseDelay > c.Requeue.MaxDelay {
		r.fail("QUEUE_REQUEUE_BASE_DELAY", fmt.Sprintf("(%v) must not exceed QUEUE_REQUEUE_MAX_DELAY (%v)", c.Requeue.BaseDelay, c.Requeue.MaxDelay))
	}
	// A queue message can stay invisible for at most 7 days.
	if c.Requeue.MaxDelay > 7*24*time.Hour {
		r.fail("QUEUE_REQUEUE_MAX_DELAY", "must not exceed 7 days, the longest visibility delay Azure Storage accepts")
	}
}

// IsLoopbackHost reports whether host names this machine: localhost or a loopback IP.
// Only such endpoints may use the emulator's well-known key and self-signed certificate.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

type reader struct {
	getenv Getenv
	errs   []error
}

func (r *reader) fail(key, msg string) {
	r.errs = append(r.errs, fmt.Errorf("%s %s", key, msg))
}

func (r *reader) str(key, def string) string {
	if v, ok := r.getenv(key); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func (r *reader) oneOf(key, def string, allowed ...string) string {
	v := strings.ToLower(r.str(key, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(key, fmt.Sprintf("is %q; want one of %s", v, strings.Join(allowed, ", ")))
	return def
}

func (r *reader) int(key string, def, min, max int) int {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(key, fmt.Sprintf("is %q; want a whole number", v))
		return def
	}
	if n < min || n > max {
		r.fail(key, fmt.Sprintf("is %d; want %d to %d", n, min, max))
		return def
	}
	return n
}

func (r *reader) float(key string, def, min, max float64) float64 {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		r.fail(key, fmt.Sprintf("is %q; want a number", v))
		return def
	}
	if !(f >= min && f <= max) { // refuses NaN too
		r.fail(key, fmt.Sprintf("is %v; want %v to %v", f, min, max))
		return def
	}
	return f
}

func (r *reader) bool(key string, def bool) bool {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(key, fmt.Sprintf("is %q; want true or false", v))
		return def
	}
	return b
}

// duration accepts Go durations ("1500ms", "30s") and the host's hh:mm:ss form.
func (r *reader) duration(key string, def, min, max time.Duration) time.Duration {
	v := r.str(key, "")
	if v == "" {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		r.fail(key, fmt.Sprintf("is %q; want a duration such as 30s, 1500ms or 00:00:30", v))
		return def
	}
	if d < min || d > max {
		r.fail(key, fmt.Sprintf("is %v; want %v to %v", d, min, max))
		return def
	}
	return d
}

func (r *reader) breaker(prefix string, def BreakerConfig) BreakerConfig {
	return BreakerConfig{
		FailureRate:      r.float(prefix+"FAILURE_RATE", def.FailureRate, 0.01, 1),
		MinRequests:      r.int(prefix+"MIN_REQUESTS", def.MinRequests, 1, 100000),
		Window:           r.duration(prefix+"WINDOW", def.Window, time.Second, time.Hour),
		Delay:            r.duration(prefix+"DELAY", def.Delay, 100*time.Millisecond, time.Hour),
		SuccessThreshold: r.int(prefix+"SUCCESS_THRESHOLD", def.SuccessThreshold, 1, 1000),
	}
}

// ParseDuration reads a Go duration or a .NET TimeSpan in [d.]hh:mm:ss[.fff] form, the
// form host.json uses.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	// strconv reads "-00" as 0, which would drop the sign of "-00:05:00"; no setting
	// takes a negative duration, so signs are refused outright.
	if strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	days := 0
	if i := strings.Index(s, "."); i >= 0 && i < strings.Index(s, ":") {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days, s = n, s[i+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || m < 0 || m > 59 || !(sec >= 0 && sec < 60) {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	// Refuse what a time.Duration cannot hold rather than let it wrap around.
	if total := float64(days)*86400 + float64(h)*3600 + float64(m)*60 + sec; math.Abs(total) >= float64(math.MaxInt64/int64(time.Second)) {
		return 0, fmt.Errorf("invalid duration %q: too long", s)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}
