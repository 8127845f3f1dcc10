package faultproxy

import (
	"maps"
	"sync"
	"time"
)

// Fault names a kind of injected failure in [Stats.Faults].
type Fault string

const (
	FaultStatus   Fault = "status"   // a scripted status code
	FaultLatency  Fault = "latency"  // a request held back (SetLatency or Rule.Latency)
	FaultReset    Fault = "reset"    // connection reset before forwarding
	FaultTruncate Fault = "truncate" // forwarded, then the response was cut short
	FaultOutage   Fault = "outage"   // a request that arrived during an outage
)

// maxBuckets bounds the time series: an hour of 100 ms buckets.
const maxBuckets = 36000

// Bucket is one interval of the time series, for charts.
type Bucket struct {
	Offset          time.Duration // start of the interval, since Stats.Since
	WritesForwarded int64
	WritesThrottled int64 // 429 from the token bucket
	WritesFaulted   int64 // scripted faults and outages
}

// Stats is a snapshot of what the proxy saw since it started or since
// the last Reset. Maps are copies and never nil.
type Stats struct {
	Since   time.Time
	Elapsed time.Duration

	Requests         int64 // every request received, of any kind
	MetadataRequests int64
	ReadRequests     int64
	WriteRequests    int64 // writes attempted by clients

	MetadataForwarded int64
	ReadsForwarded    int64
	WritesForwarded   int64 // writes that reached the store

	ThrottledReads  int64 // 429 from the read token bucket
	ThrottledWrites int64 // 429 from the write token bucket

	Faults        map[Fault]int64
	FaultStatuses map[int]int64 // scripted and outage status codes sent
	DuringOutage  int64         // requests that arrived during an outage

	Responses       map[int]int64 // status codes sent to clients, from any source
	UpstreamErrors  int64         // requests the store did not answer
	AccountRewrites int64         // account metadata responses pointed at the proxy

	// WriteAttempts counts write attempts per document id, from the body
	// of creates and upserts and from the path otherwise. Batches and
	// bodies over 4 MiB are counted under "".
	WriteAttempts map[string]int64

	BucketWidth     time.Duration
	Series          []Bucket
	SeriesTruncated bool // the run outlived maxBuckets intervals
}

// Throttled is the number of 429s the token buckets sent.
func (s Stats) Throttled() int64 { return s.ThrottledReads + s.ThrottledWrites }

// counters is the proxy's mutable Stats. One mutex is enough: each request
// takes it a few times for well under a microsecond.
type counters struct {
	mu sync.Mutex
	s  Stats
}

func (c *counters) reset(now time.Time, width time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s = Stats{
		Since:         now,
		Faults:        map[Fault]int64{},
		FaultStatuses: map[int]int64{},
		Responses:     map[int]int64{},
		WriteAttempts: map[string]int64{},
		BucketWidth:   width,
	}
}

func (c *counters) snapshot(now time.Time) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.Elapsed = now.Sub(s.Since)
	s.Faults = maps.Clone(c.s.Faults)
	s.FaultStatuses = maps.Clone(c.s.FaultStatuses)
	s.Responses = maps.Clone(c.s.Responses)
	s.WriteAttempts = maps.Clone(c.s.WriteAttempts)
	s.Series = append([]Bucket(nil), c.s.Series...)
	return s
}

func (c *counters) request(k Kind, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Requests++
	switch k {
	case Metadata:
		c.s.MetadataRequests++
	case Reads:
		c.s.ReadRequests++
	case Writes:
		c.s.WriteRequests++
		c.s.WriteAttempts[id]++
	}
}

func (c *counters) forwarded(k Kind, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch k {
	case Metadata:
		c.s.MetadataForwarded++
	case Reads:
		c.s.ReadsForwarded++
	case Writes:
		c.s.WritesForwarded++
		if b := c.bucketAt(now); b != nil {
			b.WritesForwarded++
		}
	}
}

func (c *counters) throttled(k Kind, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Responses[429]++
	if k == Writes {
		c.s.ThrottledWrites++
		if b := c.bucketAt(now); b != nil {
			b.WritesThrottled++
		}
	} else {
		c.s.ThrottledReads++
	}
}

// fault records an injected failure; status is 0 when none was sent.
func (c *counters) fault(k Kind, f Fault, status int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Faults[f]++
	if status != 0 {
		c.s.FaultStatuses[status]++
		c.s.Responses[status]++
	}
	if f == FaultOutage {
		c.s.DuringOutage++
	}
	// Latency delays a request without failing it.
	if k == Writes && f != FaultLatency {
		if b := c.bucketAt(now); b != nil {
			b.WritesFaulted++
		}
	}
}

func (c *counters) response(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Responses[status]++
}

func (c *counters) upstreamError() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.UpstreamErrors++
}

func (c *counters) accountRewrite() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.AccountRewrites++
}

// bucketAt returns the series interval holding now, growing the series as
// needed; nil once the series is full. c.mu must be held.
func (c *counters) bucketAt(now time.Time) *Bucket {
	i := int(now.Sub(c.s.Since) / c.s.BucketWidth)
	if i < 0 {
		i = 0
	}
	if i >= maxBuckets {
		c.s.SeriesTruncated = true
		return nil
	}
	for len(c.s.Series) <= i {
		c.s.Series = append(c.s.Series, Bucket{Offset: time.Duration(len(c.s.Series)) * c.s.BucketWidth})
	}
	return &c.s.Series[i]
}
