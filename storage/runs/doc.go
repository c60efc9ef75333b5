// Package runs is the layout of a training run in a store, and reads and
// writes its records. Everything of a run lives under runs/<run>/:
//
//	run.json                                  State: the run's configuration, how far it has committed, the checkpoint versions kept
//	lease.json                                Lease: the controller that holds the run, until when, and the run's epoch
//	steps/<step>/manifest.json                a committed step: the shards it lists (storage.StepManifestKey)
//	steps/<step>/metrics/controller-e<epoch>-a<n>.arrow  the step's metrics, one row per name (MetricsKey)
//	checkpoints/<version>/manifest.json       a checkpoint version (storage.CheckpointManifestKey)
//	checkpoints/<version>/e<epoch>-a<n>/…     its files, under the tag of the attempt that wrote them
//	eval/<version>.json                       held-out scores of a version, by mode (EvalKey)
//	eval/<version>-rows.json                  the same, per row (EvalRowsKey)
//	eval/<version>-grid-<mode>.png            a grid of held-out samples (EvalGridKey)
//	tensorboard/events.out.tfevents.<start>.<id>.<host>  TensorBoard event files (TensorBoardPrefix)
//	curves.png                                the training curves (CurvesKey)
//
// Steps and versions are zero-padded to six digits, so listings sort in
// their order. The controller writes run.json, the metrics and the event
// files; the train command the eval results and curves; read-only tools
// (report, sweep, export, the CLI) read them through this package and do
// not depend on the controller.
package runs
