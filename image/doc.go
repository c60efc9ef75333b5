// Package image holds the recipe of the thinkgen container image and its
// test. The package has no Go API.
//
// image/Dockerfile builds the image for users with a registry and base
// images: CPU (DEVICE=cpu, on debian:bookworm-slim) or CUDA (DEVICE=cuda, on
// an nvidia/cuda 12.1 runtime image), with Ray of the version pinned in
// scripts/requirements-ray.txt in the venv /opt/ray, libtorch 2.1.0's
// libraries in /opt/thinkgen/lib, thinkgen in /usr/local/bin, the shipped
// base checkpoints in /opt/thinkgen/base, the non-root user ray (uid 1000,
// group 100) that the RayJob's pods run as, and Ray's and the controller's
// ports.
//
// `make image` builds the same CPU layout on a machine that cannot pull base
// images (scripts/image.sh): a Debian bookworm root filesystem from Debian
// packages (mmdebstrap), Ray from PyPI wheels, the libtorch libraries,
// bin/thinkgen and base/, packaged as an OCI image layout (umoci) under
// ~/.cache/thinkgen/image/oci (tag cpu) and unpacked as a runtime bundle
// beside it.
//
// The test runs inside that unpacked root filesystem, as the image's user
// with the image's environment (read from the bundle's config.json), in
// private mount and PID namespaces (unshare, then chroot; as root): it
// checks the image's configuration against the Dockerfile, runs `thinkgen
// doctor`, starts a Ray head with `ray start --head`, submits a two-step
// embedded `thinkgen train` of configs/tiny.yaml to it as a Ray job and
// checks that the job succeeded and the run committed both steps. It reads
// the root filesystem's path from THINKGEN_IMAGE (`bash scripts/image.sh
// rootfs` prints it once `make image` has built the image) and is skipped
// without it.
package image
