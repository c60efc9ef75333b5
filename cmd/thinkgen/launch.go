package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/cluster/kuberay"
	"github.com/thinkgen/thinkgen/config"
)

func launchCommand() *command {
	return &command{
		name:  "launch",
		usage: "[flags] | status|logs|stop --run R [flags]",
		short: "run a training run on Kubernetes as a KubeRay RayJob; its status, logs, stop",
		long: `Launch builds the run's KubeRay RayJob and a ConfigMap with the resolved
run configuration (package cluster/kuberay), applies them in --namespace
(default cluster.namespace) and follows the RayJob's status until it ends;
exit 1 if the run did not succeed. The Ray head runs the controller
(thinkgen train --listen 0.0.0.0:7700) as the RayJob's entrypoint; worker
groups rollout, learner and reward run thinkgen worker with
cluster.workers.* replicas and cluster.* resources. The image is
cluster.image; the store must be s3://.

Credentials are never put into the objects: every pod takes
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the Secret cluster.secret
(keys aws-access-key-id, aws-secret-access-key; give keys scoped to the
run's bucket) and mounts its key token as the file /var/run/thinkgen/token
(never an environment variable). Create it first, e.g.
  kubectl create secret generic thinkgen --from-literal=aws-access-key-id=… \
    --from-literal=aws-secret-access-key=… --from-literal=token=$(openssl rand -hex 32)

--dry-run prints the objects as YAML and talks to no cluster.

Launch is idempotent: when the run's RayJob exists with the same
configuration, launch changes nothing, prints the run's status and follows
it; with another configuration it refuses, naming the keys that differ,
unless --replace (the old RayJob is deleted, then the new one created). The
controller continues a run that the store already has (train
--resume-if-exists, taking the configuration recorded in the store), so
launch stop then launch resumes it on a new Ray cluster.

  thinkgen launch status --run R   the RayJob's job and deployment status
  thinkgen launch logs --run R     logs of the head pod (--role submitter: the
                                   controller's output as KubeRay's submitter
                                   tails it; --role rollout|learner|reward: a
                                   worker's); --follow, --tail N, --pod P
  thinkgen launch stop --run R     deletes the RayJob (KubeRay removes its Ray
                                   cluster) and the ConfigMap

The cluster is the one of --kubeconfig, else $KUBECONFIG, else
~/.kube/config, else the in-cluster service account.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			run := fs.String("run", "", "run name: the RayJob's name (default run.name, else train-<config name>)")
			namespace := fs.String("namespace", "", "Kubernetes namespace (default cluster.namespace)")
			kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
			dryRun := fs.Bool("dry-run", false, "print the ConfigMap and RayJob as YAML; apply nothing")
			resume := fs.Bool("resume", false, "the run must be in the store already: the controller continues it (train --resume); without it the controller continues the run if the store has it, else starts it")
			replace := fs.Bool("replace", false, "when the run is launched with another configuration, delete its RayJob and launch this one (default: refuse, naming the keys that differ)")
			follow := fs.BoolP("follow", "f", true, "launch: follow the RayJob's status until it ends; logs: keep streaming (only when given)")
			role := fs.String("role", "head", "logs: head, submitter, rollout, learner or reward")
			pod := fs.String("pod", "", "logs: the pod's name, when the role has several")
			tail := fs.Int64("tail", 0, "logs: start from the last N lines (0: all)")
			return func(ctx context.Context, args []string) error {
				verb := ""
				if len(args) > 0 {
					verb = args[0]
					if len(args) > 1 {
						return usagef("unexpected arguments: %s", strings.Join(args[1:], " "))
					}
				}
				switch verb {
				case "", "status", "logs", "stop":
				default:
					return usagef("unknown launch subcommand %q: want status, logs or stop", verb)
				}
				ns := *namespace
				if verb != "" {
					if *run == "" {
						return usagef("launch %s: --run is required", verb)
					}
					if *dryRun {
						return usagef("--dry-run: only for a launch")
					}
					if ns == "" {
						ns = config.Default().Cluster.Namespace
						if len(rf.configs) > 0 {
							cfg, err := rf.load()
							if err != nil {
								return err
							}
							ns = cfg.Cluster.Namespace
						}
					}
				}
				// Build first, so that --dry-run needs no cluster.
				var objs *kuberay.Objects
				if verb == "" {
					cfg, err := rf.load()
					if err != nil {
						return err
					}
					name := rf.runName(*run, cfg)
					objs, err = kuberay.Build(cfg, kuberay.Options{Run: name, Namespace: ns, Resume: *resume})
					if err != nil {
						return &usageError{err}
					}
					if *dryRun {
						text, err := objs.YAML()
						if err != nil {
							return err
						}
						_, err = e.stdout.Write(text)
						return err
					}
					ns = objs.RayJob.Namespace
				}
				rc, err := kuberay.RESTConfig(*kubeconfig)
				if err != nil {
					return err
				}
				c, err := kuberay.NewClient(rc)
				if err != nil {
					return err
				}
				switch verb {
				case "status":
					st, err := c.Status(ctx, ns, *run)
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, st)
					return nil
				case "logs":
					return c.Logs(ctx, ns, *run, kuberay.LogOptions{Role: *role, Pod: *pod, Follow: *follow && fs.Changed("follow"), Tail: *tail}, e.stdout)
				case "stop":
					if err := c.Stop(ctx, ns, *run); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "run %s: RayJob and ConfigMap deleted in namespace %s\n", *run, ns)
					return nil
				}
				how, err := c.Apply(ctx, objs, *replace)
				if err != nil {
					return err
				}
				name := objs.RayJob.Name
				switch how {
				case kuberay.Unchanged:
					st, err := c.Status(ctx, ns, name)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "run %s: already launched with this configuration; nothing changed\n%s\n", name, st)
				default:
					fmt.Fprintf(e.stdout, "run %s: RayJob %s/%s %s; the controller is %s\n", name, ns, name, how, kuberay.ControllerURL(name))
				}
				if !*follow {
					return nil
				}
				st, err := c.Follow(ctx, ns, objs.RayJob.Name, func(s kuberay.Status) { fmt.Fprintln(e.stdout, s) })
				if err != nil {
					if errors.Is(err, context.Canceled) {
						fmt.Fprintf(e.stderr, "stopped following; the run goes on (thinkgen launch stop --run %s ends it)\n", objs.RayJob.Name)
						return nil
					}
					return err
				}
				if st.Failed() {
					return fmt.Errorf("run %s ended: %s", st.Run, st)
				}
				return nil
			}
		},
	}
}
