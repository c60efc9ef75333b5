// Package queue is the controller's side of distributed mode: an in-memory
// queue of tasks that workers lease, with deadlines, heartbeats, retries
// and exactly-once completion.
//
// # Life of a task
//
// The controller [Queue.Submit]s a task and [Queue.Wait]s for it (or uses an
// [Executor], which does both). A worker [Queue.Register]s with its roles and
// capacity, then [Queue.Lease]s tasks whose kind one of its roles serves, in
// submission order; a lease lasts Options.LeaseTTL and each
// [Queue.Heartbeat] extends it. The holder ends its attempt with
// [Queue.Complete] or [Queue.Fail].
//
//  1. A lease that expires (its worker was killed, hangs or lost its network)
//     puts the task back with Attempt+1; the new attempt writes new output
//     keys (see task.Task.OutputKey), so a straggler of the old attempt
//     cannot overwrite them.
//  2. Complete is accepted only from the worker that holds the current
//     attempt's lease, before its deadline; anything else (a stale attempt,
//     another worker, an expired lease) is refused with [ErrStaleAttempt],
//     [ErrNotHolder] or [ErrLeaseExpired] and changes nothing. A repeated
//     Complete or Fail of the same attempt by the same worker (a retried
//     request whose reply was lost) is accepted once and then acknowledged
//     without effect. So every task completes exactly once.
//  3. Fail re-queues the task with Attempt+1 until Options.MaxAttempts
//     attempts were used (expired leases count), then fails it permanently;
//     a fatal failure fails it permanently at once, and Wait's error then
//     wraps task.ErrFatal.
//  4. A worker that has not been heard from for Options.WorkerTTL (and is not
//     waiting in Lease) is dropped: its leases expire, and its next call gets
//     [ErrUnknownWorker], upon which it registers again.
//
// # Duties of the owner
//
// Expiry is checked when a holder calls in and by [Queue.Expire]; the owner
// runs [Queue.Run] in a goroutine, which calls Expire a few times per TTL.
// Time is read from Options.Clock, so tests drive expiry with a fake clock.
package queue
