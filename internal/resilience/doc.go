// Package resilience holds the policies Sluice wraps around every dependency: a parser for
// the servers' wait hints, an adaptive pacer for writes, and a Dependency that composes
// failsafe-go's timeout, retry and circuit breaker with a bulkhead and the pacer.
//
// # Who retries what
//
// One dependency's attempts must not multiply across layers, so each kind of failure has
// exactly one owner:
//
//   - 429 (throttling) is retried only here, by the failsafe-go retry policy, which waits
//     for the server's hint (x-ms-retry-after-ms, retry-after-ms or Retry-After in either
//     form) and never past the caller's deadline. The pacer slows every writer of the
//     instance at the same moment, which is what keeps the throttled share low: capping
//     concurrency alone leaves every writer retrying into the same empty bucket.
//   - Transport errors, 408 and 5xx on a read are retried by the client library:
//     azcosmos's own client retry policy (once in the region, then in another region
//     when one is configured), inside azcore's retry policy, which is configured with
//     429 removed from its status codes. Every try is bounded by its own timeout.
//   - The same failures on a write are never retried by azcosmos, which cannot know a
//     write is safe to repeat. Sluice's writes are (a create checks for an existing
//     item, an upsert replaces it), so the dependency retries them itself, with
//     DependencyOptions.TransientMaxRetries and a jittered backoff. Set that only where
//     no lower layer retries, or the attempts multiply.
//   - The circuit breaker sees what is left after those retries, including attempts
//     that timed out while the caller still waited; a caller giving up is not counted.
//   - Anything else is returned at once: a 400 or 413 does not get better by repetition.
//
// When the budget runs out, the caller decides: a queue function re-enqueues the message
// with a delay (the message outlives maxDequeueCount without being poisoned), an HTTP
// function sheds the request with 429 or 503 and a Retry-After.
package resilience
