// Package dist joins a learner rank to a data-parallel process group and
// runs the collectives the learner needs — all-reduce (sum), broadcast,
// all-gather and barrier — through libtorch's own c10d, never a
// hand-written all-reduce.
//
// A small C++ shim (shim.cc) binds three c10d classes that libtorch ships:
// a TCPStore for the rendezvous (rank 0 hosts it at [Config.Addr]; every
// rank connects to it), a PrefixStore that keeps each [Config.Epoch]'s keys
// apart, and the backend: ProcessGroupGloo on CPU, or ProcessGroupNCCL in
// a binary built with the cuda tag (DEVICE=cuda make build; that path is
// compiled and linked by scripts/cuda-compile-check.sh but has never run,
// for want of a GPU). Gloo's headers come from Debian's libgloo-dev
// (scripts/gloo.sh, run by make setup); its code is the copy inside
// libtorch_cpu.so. The shim catches every C++ exception and returns its
// message, so a failing collective is an ordinary Go error.
//
// # Timeouts
//
// Nothing waits forever. [New] fails after [Config.JoinTimeout] (or
// [Config.Timeout]) when a rank never arrives, with an error naming the
// address; every collective fails after [Config.Timeout] when a rank dies
// or stops taking part. A group whose collective failed is unusable: close
// it and form a new one (a new epoch) with every rank.
//
// # Tensors
//
// Tensors cross as gotch handles and are changed in place (AllGather
// returns new tensors the caller drops). [Group.AllReduceSum] and
// [Group.Broadcast] move the tensors of one dtype and device as one flat
// buffer (one collective per dtype), and [Group.AllReduceGrads] cuts a
// model's gradients into buckets of about [BucketBytes] to bound that
// buffer's memory.
//
// # Token-mean losses over ranks
//
// With N ranks each holding 1/N of a mini-batch, the gradients must be
// those of the loss over the whole mini-batch. For a token-mean loss
// L = Σ_all ℓ / T, where T is the mini-batch's real-token count over all
// ranks, rank r computes its own token-mean L_r = Σ_r ℓ / T_r; then
// L = Σ_r (T_r/T) · L_r. So each rank obtains T by an all-reduce of T_r,
// scales its loss by T_r/T before backward, and the gradients are summed
// (not averaged) over the ranks: every rank then holds ∇L, exactly what
// one rank would compute on the whole mini-batch (up to float rounding),
// and applies the identical optimiser update. [Group.SumFloat64s] and
// [Group.AllReduceGrads] are these two steps. A sample-mean loss is the
// same with samples for tokens.
package dist
