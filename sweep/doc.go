// Package sweep runs hyper-parameter sweeps: many training runs of one
// base configuration, each with its own values of some config keys, ranked
// by an eval score.
//
// A sweep file ([ReadFile], docs/sweeps.md) names a base run configuration,
// overrides for every trial, and a search space: per config key, a list of
// values, a linear range or a log range. [Spec.Expand] turns it into
// trials, every combination (grid) or seeded random draws. Each trial is
// a run of the store, <sweep>-t001, …, trained by `thinkgen train` with
// the trial's --set overrides.
//
// The caller:
//
//  1. reads the file ([ReadFile]), resolves it against the base
//     configuration ([Spec.Resolve]: unknown keys are refused, integer
//     keys found) and checks every trial's configuration
//     ([Spec.CheckTrials]), all before any work;
//  2. loads the sweep's state from the store ([LoadState]): a new one, or
//     the one a previous run left in sweeps/<name>/sweep.json;
//  3. runs a [Runner] with a [Launcher] ([Local] processes, [Ray] jobs or
//     [KubeRay] RayJobs):
//     it starts the unfinished trials, Parallel at a time (resuming runs
//     that exist), polls their committed steps, stops losing trials with
//     the median rule ([EarlyStop.Decide]) if asked, reads each finished
//     trial's objective from its eval scores ([Objective.ReadObjective])
//     and writes the state after every change;
//  4. writes the leaderboard ([State.WriteTable], [State.WriteCSV],
//     [State.WriteArrow], [State.WritePlot]).
package sweep
